"""What a grid reads from and writes to the persistent activation cache (``--activation-cache``):
the donors' accuracies on the test samples, and both networks' test activations. Single pairs run
one process after another (the original's workflow) then skip the donors' full passes."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from torch import nn

from ..activations.extract import ActivationCache
from ..errors import StitchkitError
from ..models.layers import layered
from ..utils.io import read_npz, write_npz_atomic
from .donors import Donor
from .grid_evaluation import SharedActivations
from .grouped import GridPass

#: each donor's per-image hits (uint8 ``hits``, the samples' order) beside its accuracy record in the cache
#: (not ``.npy``: that folder's ``<layer>.npy`` files are activations)
HITS_FILE = "donor_hits.npz"

DonorRecord = tuple[float | None, float | None, "np.ndarray | None", "np.ndarray | None"]


def cached_donor_accuracy(
    cache: ActivationCache | None, front: Donor, end: Donor, sample_key: str, n: int
) -> DonorRecord | None:
    """Both donors' accuracies on the ``n`` samples of ``sample_key`` and their per-image hits (None for
    a donor without an accuracy), when all of them are cached."""
    if cache is None:
        return None
    records = [cache.accuracy(donor.model, sample_key) for donor in (front, end)]
    if any(r is None or r.get("n") != n for r in records):
        return None
    hits = []
    for donor, record in zip((front, end), records):
        path = cache.folder(donor.model, sample_key) / HITS_FILE
        if record["accuracy"] is None:
            hits.append(None)
            continue
        try:
            values = read_npz(path).get("hits") if path.is_file() else None
        except StitchkitError:  # a damaged cache entry is a missing one
            values = None
        if values is None or values.shape != (n,):  # an entry from before per-image hits were kept: measure again
            return None
        hits.append(values.astype(np.uint8))
    return records[0]["accuracy"], records[1]["accuracy"], hits[0], hits[1]


def store_donor_accuracy(
    cache: ActivationCache | None, front: Donor, end: Donor, sample_key: str, n: int, record: DonorRecord
) -> None:
    if cache is None:
        return
    for donor, accuracy, hits in zip((front, end), record[:2], record[2:]):
        if hits is not None:  # first, so that an accuracy record always has its hits
            write_npz_atomic(
                cache.folder(donor.model, sample_key) / HITS_FILE, {"hits": np.asarray(hits, dtype=np.uint8)}
            )
        cache.put_accuracy(donor.model, sample_key, accuracy, n)


class DonorAccuracy:
    """The donors' accuracies and per-image hits on a grid's test samples: read from the persistent
    cache when it has them, else None until the grid's first evaluation measures them (:meth:`store`)."""

    def __init__(self, cache: ActivationCache | None, front: Donor, end: Donor, sample_key: str, n: int):
        self.cache, self.front, self.end, self.sample_key, self.n = cache, front, end, sample_key, n
        self.accuracy: tuple[float | None, float | None] | None = None
        self.hits: tuple[np.ndarray | None, np.ndarray | None] = (None, None)
        record = cached_donor_accuracy(cache, front, end, sample_key, n)
        if record is not None:
            self.accuracy, self.hits = record[:2], record[2:]

    @property
    def measured(self) -> bool:
        return self.accuracy is not None

    def store(
        self,
        front_accuracy: float | None,
        end_accuracy: float | None,
        front_hits: np.ndarray | None,
        end_hits: np.ndarray | None,
    ) -> None:
        self.accuracy, self.hits = (front_accuracy, end_accuracy), (front_hits, end_hits)
        store_donor_accuracy(self.cache, self.front, self.end, self.sample_key, self.n, (*self.accuracy, *self.hits))


def shared_activations(
    cache: ActivationCache,
    grid: GridPass,
    front: tuple[nn.Module, nn.Module],
    end: tuple[nn.Module, nn.Module],
    input_shape: Sequence[int],
    sample_key: str,
    n: int,
    limit_bytes: float,
) -> tuple[SharedActivations | None, SharedActivations | None]:
    """The two networks' test activations from the cache, or writers that fill it during the
    evaluation: every stitchable layer of both networks when that fits ``limit_bytes`` (so that any
    later pair of these networks finds them), else the layers this grid needs, else the end network's
    alone. ``front`` and ``end`` are (the donor's model, the model the session computes with); the
    cache is keyed by the donor's."""
    same = end[1] is front[1]
    sides = [("end", *end)] if same else [("front", *front), ("end", *end)]
    needed_layers = {
        "front": grid.front_layers,
        "end": sorted(
            set(grid.end_layers) | (set(grid.front_layers) if same else set()), key=layered(end[1]).layers.index
        ),
    }
    cached = {which: cache.lookup(original, needed_layers[which], sample_key) for which, original, _ in sides}
    cached = {which: acts if acts is not None and len(acts) == n else None for which, acts in cached.items()}

    def size(model: nn.Module, layers: Sequence[str]) -> int:
        return sum(math.prod(shape) for shape in layered(model).shapes(tuple(input_shape), layers).values()) * 4 * n

    missing = {which: model for which, _, model in sides if cached[which] is None}
    plans = [
        {which: list(layered(model).layers) for which, model in missing.items()},
        {which: needed_layers[which] for which in missing},
        {which: needed_layers[which] for which in missing if which == "end"},
    ]
    plan = next((p for p in plans if sum(size(missing[w], layers) for w, layers in p.items()) <= limit_bytes), {})
    out = {}
    for which, original, _ in sides:
        if cached[which] is not None:
            out[which] = SharedActivations(cached=cached[which])
        elif which in plan:
            out[which] = SharedActivations(sink=cache.writer(original, sample_key, n), layers=plan[which])
    ends_from, fronts_from = out.get("end"), out.get("front")
    if same and ends_from is not None and ends_from.cached is not None:
        fronts_from = SharedActivations(cached=ends_from.cached)  # one network: its cache serves both sides
    return fronts_from, ends_from
