"""Turning a study config into units of work and their dependencies.

Networks come first (``train`` per seed, or ``network`` per given checkpoint); every method depends
on the networks it uses:

* ``stitch`` — one layer grid per (front network, end network, method), activations shared inside;
* ``detectors`` — energy OOD detectors for every end layer of an end network;
* ``ood`` — the OOD test of one stitch grid (energy and training-free detectors);
* ``similarity`` — the measure matrices of a network pair;
* ``probes`` — linear probes of one network's layers at each rank;
* ``sensitivity`` / ``specificity`` — the tests of Ding et al. over all networks.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..choices import SCHEDULE_KEYS
from ..data import dataset_info  # the torch-free catalogue
from ..data.augmentation import resolve_augmentation
from ..data.provenance import note_provenance, other_datasets
from ..errors import StitchkitError
from ..ranks import check_ranks_fit, feature_count  # torch-free: importing the study package must not import torch
from ..utils.names import network_names
from .unit_kinds.detectors import DetectorsParams
from .unit_kinds.network import NetworkParams
from .unit_kinds.ood import OodParams
from .unit_kinds.probes import ProbesParams
from .unit_kinds.sensitivity import SensitivityParams
from .unit_kinds.similarity import SimilarityParams
from .unit_kinds.specificity import SpecificityParams
from .unit_kinds.stitch import StitchParams
from .unit_kinds.train import TrainParams
from .units import Unit

if TYPE_CHECKING:
    from ..models.layers import LayeredModel


def _file_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def network(spec: dict[str, Any], dataset: str) -> LayeredModel:
    """The (untrained) network a model name and options describe, cut into its stitchable layers."""
    from ..models import (
        get_model,  # deferred: importing the study package must not import torch (pool workers set threads first)
    )
    from ..models.layers import layered

    info = dataset_info(dataset)
    model = get_model(
        spec["model"],
        num_classes=info.num_classes,
        in_channels=info.shape[0],
        input_size=tuple(info.shape[1:]),
        **spec["options"],
    )
    return layered(model)


def default_ranks(shape: tuple[int, ...]) -> list[int]:
    """Halving ranks below the feature count (channels, or token width): C/2, C/4, …, 1."""
    ranks, r = [], feature_count(shape) // 2
    while r >= 1:
        ranks.append(r)
        r //= 2
    return ranks


def _select(net: LayeredModel, wanted: str | list[str], where: str) -> list[str]:
    """The layers a config key asks for ("all", a comma list or a list), in the network's order."""
    chosen = set(net.resolve(wanted, where=f"study config: {where}"))
    return [layer for layer in net.layers if layer in chosen]


def _pairs(n: int, how: str) -> list[tuple[int, int]]:
    if how == "self":
        return [(i, i) for i in range(n)]
    if how == "all":
        return [(i, j) for i in range(n) for j in range(n) if i != j]
    pairs = [(0, j) for j in range(1, n)]
    if how == "first":
        pairs = pairs[:1]
    if how == "first_and_self":
        pairs = pairs[:1]
    if how in ("reference_and_self", "first_and_self"):
        pairs = [(0, 0)] + pairs
    if not pairs:
        raise StitchkitError('study config: stitching between networks needs at least two networks (or pairs = "self")')
    return pairs


def _check_networks(config: dict[str, Any], networks: list[Unit]) -> None:
    """Each network once, and enough of them for the sensitivity test."""
    hashes: dict[str, int] = {}
    for i, n in enumerate(networks):
        if n.kind == NetworkParams.kind:
            if n.params["sha256"] in hashes:
                raise StitchkitError(
                    f"study config: networks.checkpoints[{i}] is the same file as "
                    f"networks.checkpoints[{hashes[n.params['sha256']]}]; "
                    "give each network once"
                )
            hashes[n.params["sha256"]] = i
    if config["sensitivity"]["enabled"] and len(networks) < 2:
        raise StitchkitError(
            "study config: the sensitivity test needs at least two networks (it ranks each network's low-rank versions "
            "against the others); add a seed or a checkpoint, or set [sensitivity] enabled = false"
        )


@dataclass
class _Context:
    """What every part of the plan reads: the config, the networks and the layers of their architecture."""

    config: dict[str, Any]
    networks: list[Unit]
    names: list[str]
    net: LayeredModel
    shapes: dict[str, tuple[int, ...]]
    front_layers: list[str]
    end_layers: list[str]
    #: network id → whether it was trained with the dataset's augmentation, as its record says (None: no record)
    augment_records: dict[str, bool | None] = field(default_factory=dict)

    @property
    def common(self) -> dict[str, Any]:
        return {"dataset": self.config["study"]["dataset"], "seed": self.config["study"]["seed"]}

    def augmented(self, section: str, network_id: str, dataset: str | None = None) -> bool | None:
        """What the images a ``section`` unit feeds through a network get, ``[section] augment``
        resolved by the network's record: True the dataset's augmentation, False none, None the same
        either way (the dataset has no augmentation)."""
        from ..data import dataset_augments  # deferred: importing the study package must not import torch

        if not dataset_augments(dataset or self.config["study"]["dataset"]):
            return None
        return resolve_augmentation(self.config[section]["augment"], self.augment_records[network_id]).augment

    @property
    def layers(self) -> list[str]:
        return list(self.shapes)


def _network_units(config: dict[str, Any]) -> tuple[list[Unit], dict[str, bool | None]]:
    """A ``network`` unit per given checkpoint, else a ``train`` unit per seed; and what each network's
    record says about its augmentation (the checkpoint's, else ``networks.augment``)."""
    from ..models.checkpoint import load_checkpoint  # deferred: importing the study package must not import torch

    nets_cfg, dataset = config["networks"], config["study"]["dataset"]
    networks: list[Unit] = []
    records: dict[str, bool | None] = {}
    paths = [Path(raw).expanduser().resolve() for raw in nets_cfg["checkpoints"]]
    # names only label (a unit's identity is its content, Unit.id): the config's, else the files' own
    for i, (raw, path, name) in enumerate(
        zip(nets_cfg["checkpoints"], paths, nets_cfg["names"] or network_names(paths))
    ):
        ckpt = load_checkpoint(path)
        if not ckpt.self_describing:
            raise StitchkitError(
                f"study config: networks.checkpoints[{i}] {raw!r} does not describe its architecture; use a stitchkit "
                f"checkpoint (final.pt)"
            )
        params = NetworkParams(
            path=str(path),
            sha256=_file_hash(path),
            dataset=dataset,
            model=ckpt.model_spec["name"],
            options=ckpt.model_spec.get("options", {}),
        )
        networks.append(Unit(params.kind, params.to_params(), (), f"network {name}"))
        records[networks[-1].id] = ckpt.augment
    if networks:
        return networks, records
    keys = (
        "model",
        "options",
        "epochs",
        "batch_size",
        "lr",
        "optimizer",
        "weight_decay",
        "momentum",
        "scheduler",
        "milestones",
        "augment",
        "train_subset",
        "schedule_unit",
        "warmup_fraction",
    )
    names = nets_cfg["names"] or [f"{nets_cfg['model']} s{seed}" for seed in nets_cfg["seeds"]]
    for seed, name in zip(nets_cfg["seeds"], names):
        params = TrainParams(**{k: nets_cfg[k] for k in keys}, dataset=dataset, seed=seed)
        networks.append(Unit(params.kind, params.to_params(), (), f"train {name}"))
        records[networks[-1].id] = params.augment
    return networks, records


def _stitch_units(ctx: _Context) -> list[Unit]:
    """One layer grid per (front network, end network, method)."""
    st = ctx.config["stitching"]
    if not st["enabled"]:
        return []
    units = []
    for i, j in _pairs(len(ctx.networks), st["pairs"]):
        for method in st["methods"]:
            training = (
                {}
                if method == "dm"
                else {
                    k: st[k]
                    for k in ("epochs", "batch_size", "lr", "weight_decay", "train_subset", "amp", *SCHEDULE_KEYS)
                }
            )
            params = StitchParams(
                **ctx.common,
                method=method,
                front_layers=ctx.front_layers,
                end_layers=ctx.end_layers,
                type=st["type"],
                fit_samples=st["fit_samples"],
                eval_samples=st["eval_samples"],
                dm_solver=st["dm_solver"],
                augment=ctx.augmented("stitching", ctx.networks[j].id) is not False,
                **training,
            )
            units.append(
                Unit(
                    params.kind,
                    params.to_params(),
                    (ctx.networks[i].id, ctx.networks[j].id),
                    f"stitch {method} {ctx.names[i]}→{ctx.names[j]}",
                )
            )
    return units


def _ood_units(ctx: _Context, stitch_units: list[Unit]) -> list[Unit]:
    """Energy detectors for every end network of a grid, and the OOD test of every grid."""
    oc = ctx.config["ood"]
    # the stitches the OOD test looks at: all, or (ood.self_pairs = false) those between two networks
    ood_stitches = [u for u in stitch_units if oc["self_pairs"] or u.deps[0] != u.deps[1]]
    if not oc["enabled"] or not ood_stitches:
        return []
    detector_units: dict[str, Unit] = {}
    if oc["energy"]:
        for end_id in sorted({u.deps[1] for u in ood_stitches}, key=[n.id for n in ctx.networks].index):
            params = DetectorsParams(
                **ctx.common,
                detector=oc["detector"],
                options=oc["detector_options"],
                layers=ctx.end_layers,
                outliers=oc["outliers"],
                finetune_id=oc["finetune_id"],
                pretrain_epochs=oc["pretrain_epochs"],
                finetune_epochs=oc["finetune_epochs"],
                batch_size=oc["batch_size"],
                train_subset=oc["train_subset"],
                **{k: oc[k] for k in SCHEDULE_KEYS},
                augment=ctx.augmented("ood", end_id) is not False,
                finetune_id_augment=ctx.augmented("ood", end_id, oc["finetune_id"]) is True,
            )
            label = next(n.label for n in ctx.networks if n.id == end_id).split(" ", 1)[1]
            detector_units[end_id] = Unit(params.kind, params.to_params(), (end_id,), f"detectors {label}")
    units = list(detector_units.values())
    for su in ood_stitches:
        deps = (su.id,) + ((detector_units[su.deps[1]].id,) if su.deps[1] in detector_units else ())
        params = OodParams(
            **ctx.common,
            training_free=oc["training_free"],
            sanity=oc["sanity"],
            eval_samples=oc["eval_samples"],
            energy=oc["energy"],
        )
        units.append(Unit(params.kind, params.to_params(), deps, f"ood {su.label.split(' ', 1)[1]}"))
    return units


def _similarity_units(ctx: _Context) -> list[Unit]:
    sc = ctx.config["similarity"]
    if not sc["enabled"]:
        return []
    n = len(ctx.networks)
    units = []
    for i, j in _pairs(n, sc["pairs"]) if n > 1 or sc["pairs"] == "self" else [(0, 0)]:
        params = SimilarityParams(
            **ctx.common,
            measures=sc["measures"],
            n_samples=sc["n_samples"],
            policy=sc["policy"],
            layers=ctx.layers,
            **similarity_uncertainty(ctx.config),
        )
        units.append(
            Unit(
                params.kind,
                params.to_params(),
                (ctx.networks[i].id, ctx.networks[j].id),
                f"similarity {ctx.names[i]}↔{ctx.names[j]}",
            )
        )
    return units


def similarity_uncertainty(config: dict[str, Any]) -> dict[str, Any]:
    """The similarity units' interval and null settings (:class:`~.params.SimilarityParams`), from [uncertainty]."""
    u = config["uncertainty"]
    return {
        "bootstrap": u["similarity_bootstrap"],
        "permutations": u["permutations"],
        "level": u["level"],
        "uncertainty_seed": u["seed"],
    }


def _probe_units(ctx: _Context) -> list[Unit]:
    pc = ctx.config["probes"]
    if not pc["enabled"]:
        return []
    probe_layers = _select(ctx.net, pc["layers"], "probes.layers")
    units = []
    for n, name in zip(ctx.networks, ctx.names, strict=True):
        params = ProbesParams(
            **ctx.common,
            layers=probe_layers,
            ranks=pc["ranks"],
            epochs=pc["epochs"],
            train_subset=pc["train_subset"],
            augment=ctx.augmented("probes", n.id) is True,
            **{k: pc[k] for k in SCHEDULE_KEYS},
        )
        units.append(Unit(params.kind, params.to_params(), (n.id,), f"probes {name}"))
    return units


def _test_units(ctx: _Context, probe_ids: list[str]) -> list[Unit]:
    """The sensitivity and specificity tests; they score representations with the probes units' probes
    (shared through the probe cache), so those are dependencies too."""

    config, shapes = ctx.config, ctx.shapes
    sc, pc, st = config["similarity"], config["probes"], config["stitching"]
    middle = ctx.layers[len(ctx.layers) // 2]
    deps = tuple(n.id for n in ctx.networks) + tuple(probe_ids)
    shared = dict(
        **ctx.common,
        n_samples=sc["n_samples"],
        policy=sc["policy"],
        probe_epochs=pc["epochs"],
        probe_train_subset=pc["train_subset"],
        fit_samples=st["fit_samples"],
        probe_augment=[ctx.augmented("probes", n.id) is True for n in ctx.networks],
        tlm_augment=[ctx.augmented("stitching", n.id) is not False for n in ctx.networks],
        **{f"probe_{k}": pc[k] for k in SCHEDULE_KEYS},
    )
    units = []
    sens = config["sensitivity"]
    if sens["enabled"]:
        layer = _select(ctx.net, [sens["layer"]], "sensitivity.layer")[0] if sens["layer"] else middle
        check_ranks_fit(sens["ranks"], {layer: shapes[layer]}, "study config: sensitivity.ranks")
        params = SensitivityParams(
            layer=layer, ranks=sens["ranks"] or default_ranks(shapes[layer]), measures=sens["measures"], **shared
        )
        units.append(Unit(params.kind, params.to_params(), deps, f"sensitivity {layer}"))
    spec_cfg = config["specificity"]
    if spec_cfg["enabled"]:
        layer = (
            _select(ctx.net, [spec_cfg["reference_layer"]], "specificity.reference_layer")[0]
            if spec_cfg["reference_layer"]
            else middle
        )
        params = SpecificityParams(reference_layer=layer, layers=ctx.layers, measures=spec_cfg["measures"], **shared)
        units.append(Unit(params.kind, params.to_params(), deps, f"specificity {layer}"))
    return units


def _check_provenance(config: dict[str, Any]) -> None:
    """Refuse a checkpoint that records a dataset other than ``study.dataset`` unless
    ``networks.allow_other_dataset`` (then each one is said once,
    :func:`~stitchkit.data.provenance.note_provenance`)."""
    from ..models.checkpoint import load_checkpoint  # deferred: importing the study package must not import torch

    dataset = config["study"]["dataset"]
    for i, raw in enumerate(config["networks"]["checkpoints"]):
        recorded = load_checkpoint(Path(raw).expanduser().resolve()).dataset
        if not other_datasets({"": recorded}, dataset):
            continue
        if not config["networks"]["allow_other_dataset"]:
            raise StitchkitError(
                f"study config: networks.checkpoints[{i}] {raw!r} was trained on {recorded}, not on study.dataset "
                f"{dataset!r}; "
                f"set study.dataset = {recorded!r}, or networks.allow_other_dataset = true to study it on {dataset}"
            )
        note_provenance({f"networks.checkpoints[{i}]": recorded}, dataset)


def plan_study(config: dict[str, Any], study_dir: Path) -> list[Unit]:
    """Every unit of a study, dependencies first (see the module docstring)."""
    dataset = config["study"]["dataset"]
    info = dataset_info(dataset)  # fail early on an unknown name
    _check_provenance(config)
    networks, augment_records = _network_units(config)
    _check_networks(config, networks)
    net = network({"model": networks[0].params["model"], "options": networks[0].params["options"]}, dataset)
    ctx = _Context(
        config,
        networks,
        [n.label.split(" ", 1)[1] for n in networks],
        net,
        net.shapes(info.shape),
        _select(net, config["layers"]["front"], "layers.front"),
        _select(net, config["layers"]["end"], "layers.end"),
        augment_records=augment_records,
    )
    stitch_units = _stitch_units(ctx)
    probe_units = _probe_units(ctx)
    units = [
        *networks,
        *stitch_units,
        *_ood_units(ctx, stitch_units),
        *_similarity_units(ctx),
        *probe_units,
        *_test_units(ctx, [u.id for u in probe_units]),
    ]
    from .checks import check_units  # deferred: importing the study package must not import torch

    check_units(config, networks, units, net)  # what each unit would meet on its networks, before anything is written
    return units
