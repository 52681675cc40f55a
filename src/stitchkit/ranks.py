"""Ranks and low-rank modes: the one home of what a rank is, how it is written, checked and clamped.

A rank-r approximation keeps r principal directions of a layer's features (channels of a conv map, the
embedding of tokens), so r is at most that feature count; ``None`` is the full rank (no truncation).
Probes, similarity, stitching's source reduction and the study all read ranks from here, and the
command line reads the low-rank modes from here too: this module imports neither torch nor numpy.

A rank above a layer's feature count leaves the activation unchanged: it *is* the layer's full rank.
Where ranks apply to several layers at once (probes of every layer, similarity grids, the paper's
rank lists) such a rank is kept for the layers it fits and, for the others, **clamped**: the result
records the rank actually used (``rank_used``), and one warning line names every clamped (layer,
rank). Where a rank is the object of the test (the sensitivity test's candidates), a rank above the
feature count is refused instead, since its candidate would be the full-rank layer counted a second
time.

**Low-rank modes** (:data:`LOW_RANK_MODES`): ``fixed`` estimates one basis and applies it to every
batch; ``per_batch`` is the original's SVD of every batch. :func:`low_rank_mode` reads a mode and the
earlier spellings of :data:`RENAMED_LOW_RANK_MODES`.
"""

from __future__ import annotations

import numbers
import sys
from collections.abc import Iterable, Mapping, Sequence

from .errors import StitchkitError, unknown_name, warn

#: a rank: a positive number of kept directions, or None for the full rank
Rank = int | None

#: low-rank modes of probes, similarity and the stitched source: one fixed basis, or the original's SVD of every
#: batch
LOW_RANK_MODES = ("fixed", "per_batch")
#: earlier spellings, still read (stored stitch runs and scripts hold them) with a deprecation warning
RENAMED_LOW_RANK_MODES = {"per-batch": "per_batch"}


def low_rank_mode(mode: str) -> str:
    """``mode`` as one of :data:`LOW_RANK_MODES` (every command and function spells them so); an earlier
    spelling (:data:`RENAMED_LOW_RANK_MODES`: the stitch command's ``per-batch``) is read with a deprecation
    warning, anything else refused with the choices."""
    renamed = RENAMED_LOW_RANK_MODES.get(str(mode))
    if renamed is not None:
        warn(
            f"low-rank mode {mode!r} is deprecated: every command now spells it {renamed!r}; "
            f"{mode!r} will stop being accepted"
        )
        return renamed
    if mode not in LOW_RANK_MODES:
        raise unknown_name("low-rank mode", str(mode), LOW_RANK_MODES)
    return mode


def rank_label(rank: Rank) -> str:
    """A rank as files and people read it: ``full`` for no truncation, else the number."""
    return "full" if rank is None else str(int(rank))


def _is_positive_integer(value: object) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= 1


def check_rank(rank: Rank, name: str = "rank", *, full: bool = False) -> Rank:
    """``rank`` as an int (numpy integers too); ``None`` (the full rank) only where ``full`` allows
    it; anything else is a :class:`~stitchkit.errors.StitchkitError` naming ``name``."""
    if rank is None and full:
        return None
    if not _is_positive_integer(rank):
        raise StitchkitError(f"{name} must be a positive integer, got {rank!r}")
    return int(rank)


def check_ranks(ranks: Iterable[Rank] | None) -> list[Rank]:
    """Unique ranks, full rank (None) first, then descending (the original's order)."""
    out: list[Rank] = []
    for r in ranks if ranks is not None else [None]:
        if r is not None and not _is_positive_integer(r):
            raise StitchkitError(f"ranks must be positive integers (or None for full rank), got {r!r}")
        r = None if r is None else int(r)
        if r not in out:
            out.append(r)
    return descending(out or [None])


def descending(ranks: Iterable[Rank]) -> list[Rank]:
    """The original's order of ranks: full rank (None, the highest) first, then from the highest number."""
    return sorted(ranks, key=lambda r: (r is not None, -(r or 0)))


def parse_ranks(values: Sequence[str] | None, flag: str) -> list[Rank]:
    """Ranks given on the command line: positive integers, or ``full``/``none`` for full rank (several in
    one value apart by commas or spaces), each once. Nothing given means full rank only (the original's
    ``[None]``); ``flag`` names the option in the error."""
    if not values:
        return [None]
    out: list[Rank] = []
    for text in values:
        for part in str(text).replace(",", " ").split():
            if part.lower() in ("none", "full"):
                out.append(None)
                continue
            try:
                rank = int(part)
            except ValueError:
                raise StitchkitError(f"{flag} takes positive integers (or 'full'), got {part!r}") from None
            if rank < 1:
                raise StitchkitError(f"{flag} takes positive integers (or 'full'), got {rank}")
            out.append(rank)
    return list(dict.fromkeys(out))


# -- ranks against a layer's features ------------------------------------------------------------------


def activation_kind(shape: Sequence[int]) -> str:
    """``conv``, ``tokens`` or ``vector`` for a per-sample activation shape (without the batch)."""
    return {3: "conv", 2: "tokens", 1: "vector"}.get(len(shape)) or _bad_shape(shape)


def _bad_shape(shape) -> str:
    raise StitchkitError(f"a probe reads activations of shape (C, H, W), (T, D) or (D,) per sample, got {tuple(shape)}")


def feature_count(shape: Sequence[int]) -> int:
    """Features a rank counts (and a probe's linear map sees): channels for conv, the embedding dim for
    tokens; ``shape`` is one sample's, without the batch."""
    kind = activation_kind(shape)
    return int(shape[0]) if kind == "conv" else int(shape[-1])


def rank_used(rank: Rank, shape: Sequence[int]) -> int | None:
    """The rank an approximation of a layer with per-sample ``shape`` really has (None: full rank,
    not truncated)."""
    return None if rank is None else min(int(rank), feature_count(shape))


def _unit(shape: Sequence[int]) -> str:
    return "channels" if activation_kind(shape) == "conv" else "features"


def clamped_ranks(ranks: Sequence[Rank], shapes: Mapping[str, Sequence[int]]) -> list[tuple[str, int, int]]:
    """``(layer, rank, feature count)`` for every rank above a layer's feature count."""
    return [
        (layer, int(r), feature_count(shape))
        for layer, shape in shapes.items()
        for r in ranks
        if r is not None and r > feature_count(shape)
    ]


def warn_clamped(
    ranks: Sequence[Rank], shapes: Mapping[str, Sequence[int]], label: str = "rank"
) -> list[tuple[str, int, int]]:
    """Print one warning line (stderr) for the ranks :func:`clamped_ranks` finds; returns them."""
    found = clamped_ranks(ranks, shapes)
    if found:
        shown = "; ".join(f"{r} at {layer} ({limit} {_unit(shapes[layer])})" for layer, r, limit in found[:8])
        more = f"; … {len(found)} in all" if len(found) > 8 else ""
        print(
            f"stitchkit: warning: {label} above a layer's channel count is that layer's full rank, so it is clamped "
            f"and recorded as rank_used: {shown}{more}",
            file=sys.stderr,
            flush=True,
        )
    return found


def check_ranks_fit(ranks: Sequence[Rank], shapes: Mapping[str, Sequence[int]], label: str = "rank") -> None:
    """Refuse any rank above the feature count of any of the layers (``shapes``: layer -> activation
    shape without the batch; a shape no rank applies to is refused too)."""
    for layer, shape in shapes.items():
        limit = feature_count(shape)
        over = sorted({int(r) for r in ranks if r is not None and r > limit}, reverse=True)
        if over:
            raise StitchkitError(
                f"{label} {over[0]} is above the {limit} {_unit(shape)} of layer {layer}, so its candidate would be "
                f"the full-rank layer counted twice; use ranks up to {limit}"
            )


__all__ = [
    "LOW_RANK_MODES",
    "RENAMED_LOW_RANK_MODES",
    "Rank",
    "activation_kind",
    "check_rank",
    "check_ranks",
    "check_ranks_fit",
    "clamped_ranks",
    "descending",
    "feature_count",
    "low_rank_mode",
    "parse_ranks",
    "rank_label",
    "rank_used",
    "warn_clamped",
]
