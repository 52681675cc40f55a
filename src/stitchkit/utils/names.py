"""Names of networks given as checkpoint files: what labels them in results, figures and file names
when no name is given (one home for the study planner and the sensitivity test)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

#: the stems of the files every ``stitchkit train`` run writes into its own folder: they name no network
#: (the training loop's names, stitchkit.training.base; not imported from there, which would import torch)
RUN_FILE_STEMS = ("final", "last")


def network_names(paths: Sequence[str | os.PathLike]) -> list[str]:
    """Short distinct names of checkpoint files: their stems (``resnet18_w32_seed0``), else as many of
    their last folders as tell them apart, without a file name that says nothing (a run's
    ``runs/fm_r18_s0/final.pt`` is ``fm_r18_s0``; two ``runs/r18_s0/final.pt`` and ``runs/r18_s1/final.pt``
    are ``r18_s0`` and ``r18_s1``). A study config's ``[networks] names`` and the
    sensitivity test's ``names`` override them."""
    paths = [Path(p) for p in paths]
    parts = [[*(part for part in p.parent.parts if part != p.anchor), p.stem] for p in paths]
    shared = len(paths) > 1 and len({p[-1] for p in parts}) == 1  # the file name they all share says nothing
    if (shared or all(p[-1] in RUN_FILE_STEMS for p in parts)) and all(len(p) > 1 for p in parts):
        parts = [p[:-1] for p in parts]
    for keep in range(1, max(map(len, parts), default=0) + 1):
        names = ["/".join(p[-keep:]) for p in parts]
        if len(set(names)) == len(names):
            return names
    return [str(p) for p in paths]  # same folders and stems: only the suffixes differ
