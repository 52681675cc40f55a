"""The ``network`` unit: use a given checkpoint, recording its identity and clean accuracy."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ...declarations import declare
from ..params import UnitParams
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
