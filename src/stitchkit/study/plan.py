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
from pathlib import Path
from typing import Any

from ..errors import StitchkitError
from .units import Unit


def _file_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def network_layers(spec: dict[str, Any], dataset: str) -> dict[str, tuple[int, ...]]:
    """Stitchable layers (in order) with their activation shapes, for a network described by a model
    name and options (no training needed)."""
    from ..data import dataset_info
    from ..models import get_model
    from ..models.layers import layered

    info = dataset_info(dataset)
    model = get_model(spec["model"], num_classes=info.num_classes, in_channels=info.shape[0], input_size=tuple(info.shape[1:]), **spec["options"])
    return layered(model).shapes(info.shape)


def default_ranks(shape: tuple[int, ...]) -> list[int]:
    """Halving ranks below the feature count (channels, or token width): C/2, C/4, …, 1."""
    features = shape[0] if len(shape) == 3 else shape[-1]
    ranks, r = [], features // 2
    while r >= 1:
        ranks.append(r)
        r //= 2
    return ranks


def _select(layers: list[str], wanted: str | list[str], where: str) -> list[str]:
    if wanted == "all":
        return list(layers)
    if isinstance(wanted, str):
        wanted = [w.strip() for w in wanted.split(",") if w.strip()]
    missing = [w for w in wanted if w not in layers]
    if missing:
        raise StitchkitError(f"study config: {where} has {missing[0]!r}, which is not a stitchable layer; valid layers: {', '.join(layers)}")
    return [layer for layer in layers if layer in wanted]


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
        raise StitchkitError("study config: stitching between networks needs at least two networks (or pairs = \"self\")")
    return pairs


def _check_networks(config: dict[str, Any], networks: list[Unit]) -> None:
    """Each network once, and enough of them for the sensitivity test."""
    hashes: dict[str, int] = {}
    for i, n in enumerate(networks):
        if n.kind == "network":
            if n.params["sha256"] in hashes:
                raise StitchkitError(f"study config: networks.checkpoints[{i}] is the same file as networks.checkpoints[{hashes[n.params['sha256']]}]; "
                                     "give each network once")
            hashes[n.params["sha256"]] = i
    if config["sensitivity"]["enabled"] and len(networks) < 2:
        raise StitchkitError("study config: the sensitivity test needs at least two networks (it ranks each network's low-rank versions "
                             "against the others); add a seed or a checkpoint, or set [sensitivity] enabled = false")


def plan_study(config: dict[str, Any], study_dir: Path) -> list[Unit]:
    from ..probing.ranks import check_ranks_fit  # deferred: importing the study package must not import torch (pool workers set threads first)

    study, nets_cfg = config["study"], config["networks"]
    dataset = study["dataset"]
    from ..data import dataset_info

    dataset_info(dataset)  # fail early on an unknown name
    networks: list[Unit] = []
    if nets_cfg["checkpoints"]:
        from ..models.checkpoint import load_checkpoint

        for i, raw in enumerate(nets_cfg["checkpoints"]):
            path = Path(raw).expanduser().resolve()
            ckpt = load_checkpoint(path)
            if not ckpt.self_describing:
                raise StitchkitError(f"study config: networks.checkpoints[{i}] {raw!r} does not describe its architecture; use a stitchkit checkpoint (final.pt)")
            params = {"path": str(path), "sha256": _file_hash(path), "dataset": dataset, "model": ckpt.model_spec["name"], "options": ckpt.model_spec.get("options", {})}
            networks.append(Unit("network", params, (), f"network {path.name}#{i}"))
    else:
        keys = ("model", "options", "epochs", "batch_size", "lr", "optimizer", "weight_decay", "momentum", "scheduler", "milestones", "augment", "train_subset")
        for seed in nets_cfg["seeds"]:
            params = {k: nets_cfg[k] for k in keys}
            params.update(dataset=dataset, seed=seed)
            networks.append(Unit("train", params, (), f"train {nets_cfg['model']} s{seed}"))
    _check_networks(config, networks)
    spec = {"model": networks[0].params["model"], "options": networks[0].params["options"]}
    shapes = network_layers(spec, dataset)
    layers = list(shapes)
    front_layers = _select(layers, config["layers"]["front"], "layers.front")
    end_layers = _select(layers, config["layers"]["end"], "layers.end")
    units: list[Unit] = list(networks)
    names = [n.label.split(" ", 1)[1] for n in networks]
    common = {"dataset": dataset, "seed": study["seed"]}

    st = config["stitching"]
    stitch_units: list[Unit] = []
    if st["enabled"]:
        for i, j in _pairs(len(networks), st["pairs"]):
            for method in st["methods"]:
                params = {**common, "method": method, "front_layers": front_layers, "end_layers": end_layers, "type": st["type"],
                          "fit_samples": st["fit_samples"], "eval_samples": st["eval_samples"]}
                if method != "dm":
                    params.update(epochs=st["epochs"], batch_size=st["batch_size"], lr=st["lr"], weight_decay=st["weight_decay"], train_subset=st["train_subset"])
                    if st["amp"]:  # only when set, so that the units of existing studies keep their identities
                        params["amp"] = True
                if method != "tlm" and st["dm_solver"] != "stitchkit":  # likewise: only when not the default
                    params["dm_solver"] = st["dm_solver"]
                stitch_units.append(Unit("stitch", params, (networks[i].id, networks[j].id), f"stitch {method} {names[i]}→{names[j]}"))
        units += stitch_units

    oc = config["ood"]
    # the stitches the OOD test looks at: all, or (ood.self_pairs = false) those between two networks
    ood_stitches = [u for u in stitch_units if oc["self_pairs"] or u.deps[0] != u.deps[1]]
    if oc["enabled"] and ood_stitches:
        detector_units: dict[str, Unit] = {}
        if oc["energy"]:
            for end_id in sorted({u.deps[1] for u in ood_stitches}, key=[n.id for n in networks].index):
                params = {**common, "detector": oc["detector"], "options": oc["detector_options"], "layers": end_layers, "outliers": oc["outliers"], "finetune_id": oc["finetune_id"],
                          "pretrain_epochs": oc["pretrain_epochs"], "finetune_epochs": oc["finetune_epochs"], "batch_size": oc["batch_size"],
                          "train_subset": oc["train_subset"]}
                label = next(n.label for n in networks if n.id == end_id).split(" ", 1)[1]
                detector_units[end_id] = Unit("detectors", params, (end_id,), f"detectors {label}")
            units += list(detector_units.values())
        for su in ood_stitches:
            deps = (su.id,) + ((detector_units[su.deps[1]].id,) if su.deps[1] in detector_units else ())
            params = {**common, "training_free": oc["training_free"], "sanity": oc["sanity"], "eval_samples": oc["eval_samples"], "energy": oc["energy"]}
            units.append(Unit("ood", params, deps, f"ood {su.label.split(' ', 1)[1]}"))

    sc = config["similarity"]
    if sc["enabled"]:
        for i, j in _pairs(len(networks), sc["pairs"]) if len(networks) > 1 or sc["pairs"] == "self" else [(0, 0)]:
            params = {**common, "measures": sc["measures"], "n_samples": sc["n_samples"], "policy": sc["policy"], "layers": layers}
            units.append(Unit("similarity", params, (networks[i].id, networks[j].id), f"similarity {names[i]}↔{names[j]}"))

    pc = config["probes"]
    probe_ids: list[str] = []
    if pc["enabled"]:
        probe_layers = _select(layers, pc["layers"], "probes.layers")
        for n, name in zip(networks, names):
            params = {**common, "layers": probe_layers, "ranks": pc["ranks"], "epochs": pc["epochs"], "train_subset": pc["train_subset"]}
            units.append(Unit("probes", params, (n.id,), f"probes {name}"))
            probe_ids.append(units[-1].id)

    middle = layers[len(layers) // 2]
    # the tests score representations with the probes units' probes (shared through the probe cache)
    test_deps = tuple(n.id for n in networks) + tuple(probe_ids)
    sens = config["sensitivity"]
    if sens["enabled"]:
        layer = _select(layers, [sens["layer"]], "sensitivity.layer")[0] if sens["layer"] else middle
        check_ranks_fit(sens["ranks"], {layer: shapes[layer]}, "study config: sensitivity.ranks")
        params = {**common, "layer": layer, "ranks": sens["ranks"] or default_ranks(shapes[layer]), "measures": sens["measures"], "n_samples": sc["n_samples"], "policy": sc["policy"],
                  "probe_epochs": pc["epochs"], "probe_train_subset": pc["train_subset"], "fit_samples": st["fit_samples"]}
        units.append(Unit("sensitivity", params, test_deps, f"sensitivity {layer}"))
    spec_cfg = config["specificity"]
    if spec_cfg["enabled"]:
        layer = _select(layers, [spec_cfg["reference_layer"]], "specificity.reference_layer")[0] if spec_cfg["reference_layer"] else middle
        params = {**common, "reference_layer": layer, "layers": layers, "measures": spec_cfg["measures"], "n_samples": sc["n_samples"], "policy": sc["policy"],
                  "probe_epochs": pc["epochs"], "probe_train_subset": pc["train_subset"], "fit_samples": st["fit_samples"]}
        units.append(Unit("specificity", params, test_deps, f"specificity {layer}"))
    return units
