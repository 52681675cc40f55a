"""Ranks a layer can have: a rank-r approximation keeps r principal directions of the layer's
features (channels of a conv map, the embedding of tokens), so r is at most that feature count.

A rank above it leaves the activation unchanged: it *is* the layer's full rank. Where ranks apply to
several layers at once (probes of every layer, similarity grids, the paper's rank lists) such a rank
is kept for the layers it fits and, for the others, **clamped**: the result records the rank actually
used (``rank_used``), and one warning line names every clamped (layer, rank). Where a rank is the
object of the test (the sensitivity test's candidates), a rank above the feature count is refused
instead, since its candidate would be the full-rank layer counted a second time.
"""

from __future__ import annotations

import sys
from typing import Mapping, Sequence

from ..errors import StitchkitError
from .probe import Rank, activation_kind, feature_count


def rank_used(rank: Rank, shape: Sequence[int]) -> int | None:
    """The rank an approximation of a layer with per-sample ``shape`` really has (None: full rank,
    not truncated)."""
    return None if rank is None else min(int(rank), feature_count(shape))


def _unit(shape: Sequence[int]) -> str:
    return "channels" if activation_kind(shape) == "conv" else "features"


def clamped_ranks(ranks: Sequence[Rank], shapes: Mapping[str, Sequence[int]]) -> list[tuple[str, int, int]]:
    """``(layer, rank, feature count)`` for every rank above a layer's feature count."""
    return [(layer, int(r), feature_count(shape)) for layer, shape in shapes.items() for r in ranks
            if r is not None and r > feature_count(shape)]


def warn_clamped(ranks: Sequence[Rank], shapes: Mapping[str, Sequence[int]], label: str = "rank") -> list[tuple[str, int, int]]:
    """Print one warning line (stderr) for the ranks :func:`clamped_ranks` finds; returns them."""
    found = clamped_ranks(ranks, shapes)
    if found:
        shown = "; ".join(f"{r} at {layer} ({limit} {_unit(shapes[layer])})" for layer, r, limit in found[:8])
        more = f"; … {len(found)} in all" if len(found) > 8 else ""
        print(f"stitchkit: warning: {label} above a layer's channel count is that layer's full rank, so it is clamped and recorded "
              f"as rank_used: {shown}{more}", file=sys.stderr, flush=True)
    return found


def check_ranks_fit(ranks: Sequence[Rank], shapes: Mapping[str, Sequence[int]], label: str = "rank") -> None:
    """Refuse any rank above the feature count of any of the layers (``shapes``: layer -> activation
    shape without the batch; a shape no rank applies to is refused too)."""
    for layer, shape in shapes.items():
        limit = feature_count(shape)
        over = sorted({int(r) for r in ranks if r is not None and r > limit}, reverse=True)
        if over:
            raise StitchkitError(
                f"{label} {over[0]} is above the {limit} {_unit(shape)} of layer {layer}, so its candidate would be the full-rank layer "
                f"counted twice; use ranks up to {limit}"
            )
