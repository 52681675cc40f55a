"""The fit set's activations of a grid: every needed layer of each network extracted **once** for the
K fit images and read by every pair's direct matching (in memory, or memory-mapped in a cache folder
when larger than ``memory_limit_gb``)."""

from __future__ import annotations

import math
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from ..activations.extract import ActivationCache, Activations, ExtractionSettings, extract_activations
from ..errors import StitchkitError
from ..models.layers import layered
from ..utils.io import ensure_writable_dir
from .grid_data import BatchOptions
from .matching import PairSource, cached_pairs, image_pairs
from .stitcher import Stitcher


@dataclass(frozen=True)
class CacheOptions:
    """Where and when the fit activations go to disk."""

    memory_limit_gb: float
    cache_dir: str | None
    workers: int
    progress: bool


def _wanted_layers(
    front: tuple[nn.Module, Sequence[str]], end: tuple[nn.Module, Sequence[str]]
) -> dict[int, tuple[nn.Module, list[str]]]:
    """Each network's needed layers in its order (one entry when front and end are the same network)."""
    wanted: dict[int, tuple[nn.Module, list[str]]] = {}
    for model, layers in (front, end):
        entry = wanted.setdefault(id(model), (model, []))
        entry[1].extend(layer for layer in layers if layer not in entry[1])
    for model, layers in wanted.values():
        layers.sort(key=layered(model).layers.index)
    return wanted


class FitActivations:
    """The fit set's activations of both networks (:meth:`extract`), and each pair's source of them."""

    def __init__(self, fit_loader: Callable[[], object], options: BatchOptions):
        self.fit_loader = fit_loader  # the fit batches, for a pair the cache does not hold
        self.options = options
        self.acts: dict[int, Activations] = {}
        self.root: Path | None = None
        self.seconds = 0.0

    def extract(
        self,
        front: tuple[nn.Module, Sequence[str]],
        end: tuple[nn.Module, Sequence[str]],
        fit_set,
        sample_key: str,
        input_shape: Sequence[int],
        cache: CacheOptions,
        log: Callable[[str], None],
    ) -> None:
        """Extract every needed layer (``(model, layers)`` of each network) once for ``fit_set``."""
        started = time.perf_counter()
        wanted = _wanted_layers(front, end)
        per_image = (
            sum(
                math.prod(shape)
                for model, layers in wanted.values()
                for shape in layered(model).shapes(tuple(input_shape), layers).values()
            )
            * 4
        )
        total = per_image * len(fit_set)
        store: ActivationCache | None = None
        if total > cache.memory_limit_gb * 2**30:
            if cache.cache_dir is None:
                raise StitchkitError("internal: a disk cache needs a folder")  # set by stitch_grid
            self.root = Path(cache.cache_dir)
            store = ActivationCache(ensure_writable_dir(self.root))
            log(f"activations: {total / 2**30:.2f} GiB, memory-mapped under {self.root}")
        o = self.options
        for key, (model, layers) in wanted.items():
            how = ExtractionSettings(
                device=o.device,
                batch_size=o.batch_size,
                workers=cache.workers,
                progress=cache.progress,
                desc="activations fit",
            )
            if store is not None:
                self.acts[key] = store.get(model, layers, fit_set, sample_key, how)
            else:
                self.acts[key] = extract_activations(model, layers, fit_set, settings=how)
        self.seconds += time.perf_counter() - started

    def source(self, stitcher: Stitcher) -> PairSource:
        """The pair's fit batches: read from the extracted activations, else computed from the images."""
        front, end = self.acts.get(id(stitcher.front_model)), self.acts.get(id(stitcher.end_model))
        if front is not None and end is not None:
            return cached_pairs(
                front, stitcher.front_layer, end, stitcher.end_layer, self.options.batch_size, self.options.device
            )
        return image_pairs(stitcher, self.fit_loader(), self.options.device)

    def close(self, remove: bool) -> None:
        self.acts = {}
        if remove and self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
