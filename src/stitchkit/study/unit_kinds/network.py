"""The ``network`` unit: use a given checkpoint, recording its identity and clean accuracy."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from ...data.provenance import note_provenance, other_datasets
from ...declarations import declare
from ...errors import StitchkitError
from ...utils.names import network_names
from ..params import UnitParams
from ..planning import PlanContext, Planned, file_hash
from ..units import Unit, UnitContext
from .shared import NETWORK_EVAL_BATCH, fingerprint, write_hits

KIND = "network"


@dataclass(frozen=True)
class NetworkParams(UnitParams):
    kind: ClassVar[str] = KIND
    # where the checkpoint was found: not part of the unit's identity (its content hash is), so a study
    # stays finished when it, the checkpoints or the checkout move
    path: str = field(metadata={"identity": False})
    sha256: str
    dataset: str
    model: str
    options: dict[str, Any]


@declare(
    "unit_kind",
    KIND,
    order=2,
    record="NetworkParams",
    network=True,
    planner="plan",
    title="Base networks",
    help="use a given checkpoint: record its identity and clean accuracy",
)
def run_network(unit: Unit, ctx: UnitContext) -> dict[str, Any]:
    from ...training.base import evaluate_model  # deferred: no torch until a unit runs

    p, run = NetworkParams.from_params(unit.params), ctx.run
    target = ctx.out_dir / "final.pt"
    shutil.copyfile(p.path, target)  # the study keeps the exact file it measured
    stats = evaluate_model(str(target), run=run, dataset=p.dataset, batch_size=NETWORK_EVAL_BATCH, keep_hits=True)
    return {
        "metrics": {"test_acc": stats["acc"], "test_top5": stats.get("top5"), "test_loss": stats["loss"]},
        "artifacts": {"checkpoint": target, "per_sample": write_hits(ctx, stats["hits"])},
        "model_hashes": {"network": fingerprint(str(target))},
    }


def plan(ctx: PlanContext, planned: Planned) -> list[Unit]:
    """A ``network`` unit per given checkpoint (``networks.checkpoints``), each file once; what each
    checkpoint records about its augmentation goes into ``ctx.augment_records``."""
    from ...models.checkpoint import load_checkpoint  # deferred: importing the study package must not import torch

    config = ctx.config
    check_provenance(config)
    nets_cfg, dataset = config["networks"], config["study"]["dataset"]
    networks: list[Unit] = []
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
            sha256=file_hash(path),
            dataset=dataset,
            model=ckpt.model_spec["name"],
            options=ckpt.model_spec.get("options", {}),
        )
        networks.append(Unit(params.kind, params.to_params(), (), f"network {name}"))
        ctx.augment_records[networks[-1].id] = ckpt.augment
    hashes: dict[str, int] = {}
    for i, n in enumerate(networks):
        if n.params["sha256"] in hashes:
            raise StitchkitError(
                f"study config: networks.checkpoints[{i}] is the same file as "
                f"networks.checkpoints[{hashes[n.params['sha256']]}]; "
                "give each network once"
            )
        hashes[n.params["sha256"]] = i
    return networks


def check_provenance(config: dict[str, Any]) -> None:
    """Refuse a checkpoint that records a dataset other than ``study.dataset`` unless
    ``networks.allow_other_dataset`` (then each one is said once,
    :func:`~stitchkit.data.provenance.note_provenance`)."""
    from ...models.checkpoint import load_checkpoint  # deferred: importing the study package must not import torch

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
