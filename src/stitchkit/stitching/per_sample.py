"""What one evaluation pass keeps per test image (:class:`PairSamples`), so that intervals can be made
later by resampling images, never by running the networks again (issue 19).

Per stitched pair, for each test image ``n``: ``hits[n]`` (1 = the stitched network classified it
right), ``residual_num[n] = ‖T(f(x_n)) − g(x_n)‖²`` and ``residual_den[n] = ‖g(x_n)‖²`` (the pooled test
residual is ``residual_num.sum() / residual_den.sum()``, exactly the record's ``residual``), and both
donors' own hits on the same images (``front_hits`` is None where the front network's classes are not
the labels'). ``images`` are the images' indices in the test split.

The fit residual (in-sample, on the K fit images) keeps ``fit_num[k]`` and ``fit_den[k]`` per fit image,
with the installed map **held fixed** (:func:`~.matching.fit_image_terms`): resampling them covers how the
number depends on which fit images it is evaluated on, not the refit a new draw of K images would make.

A run folder keeps them in ``per_sample.npz`` beside ``result.json``; a grid's arrays in the study's
contract layout (``(F, E, N)``, :func:`grid_arrays`) go to one ``per_sample.npz`` per stitch unit.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import StitchkitError
from ..utils.io import read_npz, write_npz_atomic

#: the file of a run folder (and of a study's stitch unit)
PER_SAMPLE_FILE = "per_sample.npz"


@dataclass
class PairSamples:
    """One pair's per-image statistics (module docstring)."""

    hits: np.ndarray
    residual_num: np.ndarray
    residual_den: np.ndarray
    end_hits: np.ndarray | None
    front_hits: np.ndarray | None
    images: np.ndarray
    fit_num: np.ndarray | None = None
    fit_den: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.hits = np.asarray(self.hits, dtype=np.uint8)
        self.residual_num = np.asarray(self.residual_num, dtype=np.float64)
        self.residual_den = np.asarray(self.residual_den, dtype=np.float64)
        self.images = np.asarray(self.images, dtype=np.int64)
        for name in ("end_hits", "front_hits"):
            if getattr(self, name) is not None:
                setattr(self, name, np.asarray(getattr(self, name), dtype=np.uint8))
        n = len(self.hits)
        sizes = {
            name: len(getattr(self, name))
            for name in ("residual_num", "residual_den", "images", "end_hits", "front_hits")
            if getattr(self, name) is not None
        }
        if any(size != n for size in sizes.values()):
            raise StitchkitError(
                f"per-sample statistics of one pair must all cover the same {n} images, got sizes {sizes}"
            )
        if (self.fit_num is None) != (self.fit_den is None):
            raise StitchkitError("the fit residual's per-image terms need both numerators and denominators")
        if self.fit_num is not None:
            self.fit_num, self.fit_den = (
                np.asarray(self.fit_num, dtype=np.float64),
                np.asarray(self.fit_den, dtype=np.float64),
            )
            if self.fit_num.shape != self.fit_den.shape or self.fit_num.ndim != 1:
                raise StitchkitError(
                    f"the fit residual's numerators and denominators must be two vectors of one length, got shapes "
                    f"{self.fit_num.shape} and {self.fit_den.shape}"
                )

    @property
    def n(self) -> int:
        return len(self.hits)

    @property
    def accuracy(self) -> float:
        return float(self.hits.mean())

    @property
    def residual(self) -> float:
        return float(self.residual_num.sum() / self.residual_den.sum())

    def to_arrays(self) -> dict[str, np.ndarray]:
        arrays = {
            "hits": self.hits,
            "residual_num": self.residual_num,
            "residual_den": self.residual_den,
            "images": self.images,
        }
        arrays.update(
            {
                name: getattr(self, name)
                for name in ("end_hits", "front_hits", "fit_num", "fit_den")
                if getattr(self, name) is not None
            }
        )
        return arrays

    def save(self, path: str | os.PathLike) -> None:
        write_npz_atomic(path, self.to_arrays())

    @classmethod
    def load(cls, path: str | os.PathLike) -> PairSamples:
        arrays = read_npz(path)
        missing = [k for k in ("hits", "residual_num", "residual_den", "images") if k not in arrays]
        if missing:
            raise StitchkitError(f"{str(path)!r} lacks {', '.join(missing)}; it is not a stitch run's per-sample file")
        return cls(
            arrays["hits"],
            arrays["residual_num"],
            arrays["residual_den"],
            arrays.get("end_hits"),
            arrays.get("front_hits"),
            arrays["images"],
            arrays.get("fit_num"),
            arrays.get("fit_den"),
        )


def load_run_samples(run_dir: str | os.PathLike) -> PairSamples | None:
    """The per-sample statistics of a run folder, or None when it has none (a run from before they were kept)."""
    path = Path(run_dir) / PER_SAMPLE_FILE
    return PairSamples.load(path) if path.is_file() else None


def grid_arrays(
    samples: dict[tuple[str, str], PairSamples], front_layers: Sequence[str], end_layers: Sequence[str]
) -> dict[str, np.ndarray]:
    """A grid's per-sample statistics in the study's layout: ``hits`` uint8 and ``residual_num`` /
    ``residual_den`` float64 ``(F, E, N)``, the donors' ``front_hits`` / ``end_hits`` ``(N,)``
    (``front_hits`` left out where the front network's classes are not the labels'), ``images``, the
    layer names, and ``fit_num`` / ``fit_den`` ``(F, E, K)`` where every pair kept its fit images' terms.
    Every pair must be there, on the same images."""
    missing = [f"{f} -> {e}" for f in front_layers for e in end_layers if (f, e) not in samples]
    if missing:
        raise StitchkitError(
            f"no per-sample statistics for {', '.join(missing)} (runs from before they were kept: run them again "
            "with --overwrite)"
        )
    first = samples[(front_layers[0], end_layers[0])]
    if any(not np.array_equal(s.images, first.images) for s in samples.values()):
        raise StitchkitError(
            "the pairs of a grid were evaluated on different test images; their statistics cannot be stacked"
        )

    def stack(name: str) -> np.ndarray:
        return np.stack([np.stack([getattr(samples[(f, e)], name) for e in end_layers]) for f in front_layers])

    arrays = {
        "front_layers": np.array(list(front_layers), dtype=str),
        "end_layers": np.array(list(end_layers), dtype=str),
        "hits": stack("hits"),
        "residual_num": stack("residual_num"),
        "residual_den": stack("residual_den"),
        "images": first.images,
    }
    for name in ("end_hits", "front_hits"):
        if getattr(first, name) is not None:
            arrays[name] = getattr(first, name)
    if all(s.fit_num is not None for s in samples.values()) and len({s.fit_num.size for s in samples.values()}) == 1:
        arrays["fit_num"], arrays["fit_den"] = stack("fit_num"), stack("fit_den")
    return arrays
