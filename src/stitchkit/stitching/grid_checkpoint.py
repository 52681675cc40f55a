"""The checkpoint of a grid's grouped training: the state after each finished epoch, in one file,
so that an interrupted grid continues from its last epoch. It is only a cache of finished epochs: a
file that cannot be read, or that another grid (key, runs, epochs, version) wrote, is ignored."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from ..utils.io import torch_save_atomic
from .grouped import GroupedTrainingState

#: Version of the grouped-training checkpoint file (a different one is ignored, not misread).
CHECKPOINT_VERSION = 1


def checkpoint_identity(key: str, runs: list[str], epochs: int) -> dict[str, Any]:
    """What a checkpoint must have been written for to be used."""
    return {"version": CHECKPOINT_VERSION, "key": key, "runs": runs, "epochs": epochs}


def load_grouped_checkpoint(
    path: Path | None, identity: dict[str, Any], log: Callable[[str], None]
) -> GroupedTrainingState | None:
    """The saved state, when ``path`` holds one for ``identity``; else None (start over)."""
    if path is None or not path.is_file():
        return None
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # unreadable: start over (it is only a cache of finished epochs)
        return None
    if saved.get("identity") != identity:
        return None
    state = GroupedTrainingState(**saved["state"])
    log(f"continuing grouped training of {len(identity['runs'])} pairs after epoch {state.epoch} (from {path})")
    return state


def save_grouped_checkpoint(path: Path, identity: dict[str, Any], state: GroupedTrainingState) -> None:
    torch_save_atomic(
        {
            "identity": identity,
            "state": {
                "epoch": state.epoch,
                "layers": state.layers,
                "optimizer": state.optimizer,
                "scheduler": state.scheduler,
                "history": state.history,
            },
        },
        path,
    )
