"""Sampling fresh, non-repeating subsets of a huge dataset epoch after epoch (seed spec section 5.4)."""

from __future__ import annotations

from collections.abc import Iterator, Sized

import torch
from torch.utils.data import Sampler

from ..errors import StitchkitError


class MultiEpochDisjointSubsetSampler(Sampler[int]):
    """Yield ``n_samples`` indices per epoch, disjoint from the previous epochs' until the data are
    used up.

    The sampler holds one random permutation of all indices (drawn from ``generator``, or from
    torch's global RNG when None, like the original). Each ``__iter__`` yields the next slice of
    ``n_samples`` indices; once the slices are used up, a new permutation is drawn. So CIFAR-5M's
    6M images give 120 epochs of 50,000 images that never repeat. The last slice of a permutation can
    be shorter, as in the original.

    ``len()`` is the length of the slice that the next ``__iter__`` will yield (the original always
    returned ``n_samples``, which overstated the short last slice and sets smaller than ``n_samples``).
    """

    def __init__(self, data_source: Sized, n_samples: int, generator: torch.Generator | None = None):
        if isinstance(n_samples, bool) or not isinstance(n_samples, int) or n_samples <= 0:
            raise StitchkitError(f"n_samples must be a positive integer (samples per epoch), got {n_samples!r}")
        self.data_source = data_source
        self.n_samples = n_samples
        self.generator = generator
        self._permutation = self._draw()
        self._position = 0

    def _draw(self) -> torch.Tensor:
        return torch.randperm(len(self.data_source), generator=self.generator)

    def _next_slice_bounds(self) -> tuple[int, int]:
        start = self._position if self._position < len(self._permutation) else 0
        return start, min(start + self.n_samples, len(self._permutation))

    def __len__(self) -> int:
        start, stop = self._next_slice_bounds()
        return stop - start

    def __iter__(self) -> Iterator[int]:
        if self._position >= len(self._permutation):
            self._permutation = self._draw()
            self._position = 0
        start, stop = self._next_slice_bounds()
        self._position = stop
        return iter(self._permutation[start:stop].tolist())
