"""Stitching-based indices: the direct-matching residual (from arrays) and the accuracy indices (from models).

**dm_residual** (Csiszárik et al. 2021; "DM structural error" in Balogh & Jelasity 2025): the least-squares
affine map from X to Y with bias, W, b = argmin ‖XWᵀ + b − Y‖²_F (the minimum-norm solution, equal to
``pinv([X, 1])·Y``; :mod:`stitchkit.stitching.direct_match`), and the in-sample relative residual

    ‖XWᵀ + b − Y‖²_F / ‖Y‖²_F      (uncentred target norm, as in the original)

over all rows at once (the pooled ratio, references.md section 3). A distance in [0, 1] (the best map is
at least as good as W = 0, b = 0), not symmetric. Invariant to invertible affine maps of X (the fit absorbs
them) but only to orthogonal maps, isotropic scaling and permutations of Y (a shift of Y changes the
uncentred norm), so the declared invariances, which must hold for both arguments, are those three.
Fitted in float64 whatever ``dtype`` says.

**dm_accuracy / tlm_accuracy** are the accuracies of the stitched network after direct matching or task
loss matching; they need the two models and data, so they are registered here as metadata only (so that
a study can list them next to the array measures) and are produced by ``stitchkit stitch``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..declarations import declare
from ..errors import StitchkitError
from ..stitching.direct_match import LeastSquaresAccumulator, relative_residual
from .base import Measure, Prepared


@dataclass
class RawMatrix(Prepared):
    x: Tensor | None = None


@declare(
    "measure",
    "dm_residual",
    order=8,
    kind="distance",
    range=(0.0, 1.0),
    symmetric=False,
    invariances={"orthogonal", "isotropic_scaling", "permutation"},
    description="direct matching: relative residual ‖XWᵀ + b − Y‖²/‖Y‖² (uncentred) of the least-squares affine map "
    "from X to Y; also invariant to invertible affine maps of X alone",
    citation="Csiszárik et al., Similarity and Matching of Neural Network Representations, NeurIPS 2021; "
    "Balogh & Jelasity, How not to Stitch Representations to Measure Similarity, AAAI 2025",
    original_policy="positions",
    requires_models=False,
)
class DMResidual(Measure):
    def __init__(self, *, rcond: float | None = None, dtype=torch.float64):
        super().__init__(dtype=dtype)
        self.rcond = rcond

    def prepare(self, x) -> RawMatrix:
        x = self._matrix(x)
        return RawMatrix(int(x.shape[0]), int(x.shape[1]), x=x)

    def _fit(self, a: RawMatrix, b: RawMatrix) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """The rows (float64) and the least-squares map fitted on all of them."""
        self._check_pair(a, b)
        x, y = a.x.double(), b.x.double().to(a.x.device)
        acc = LeastSquaresAccumulator(a.d, b.d, device=x.device)
        acc.update(x, y)
        weight, bias = acc.solve(self.rcond)
        return x, y, weight, bias

    def compare(self, a: RawMatrix, b: RawMatrix) -> float:
        x, y, weight, bias = self._fit(a, b)
        return min(max(relative_residual(x @ weight.T + bias, y), 0.0), 1.0)

    def row_terms(self, a: RawMatrix, b: RawMatrix) -> tuple[Tensor, Tensor]:
        """Each row's ``‖x Wᵀ + b − y‖²`` and ``‖y‖²`` (float64), the map fitted once on all rows: their sums'
        ratio is :meth:`compare`'s value, and weighted sums of them are the residual of a resample with
        the fit held fixed."""
        x, y, weight, bias = self._fit(a, b)
        return ((x @ weight.T + bias - y) ** 2).sum(dim=1), (y**2).sum(dim=1)


class _ModelBased(Measure):
    """An index that needs the models, not activation arrays."""

    how = ""

    def _refuse(self) -> StitchkitError:
        return StitchkitError(
            f"{self.info.name} is computed from two models and data, not from activation arrays: {self.how}"
        )

    def prepare(self, x):
        raise self._refuse()

    def compare(self, a, b) -> float:
        raise self._refuse()

    def __call__(self, x, y) -> float:
        raise self._refuse()


@declare(
    "measure",
    "dm_accuracy",
    order=9,
    kind="similarity",
    range=(0.0, 1.0),
    symmetric=False,
    invariances=(),
    description="accuracy of the stitched network after direct matching (least-squares stitching layer)",
    citation="Csiszárik et al., NeurIPS 2021; Balogh & Jelasity, AAAI 2025",
    requires_models=True,
)
class DMAccuracy(_ModelBased):
    how = "run `stitchkit stitch` with direct matching (pinv initialisation) and read the stitched accuracy"


@declare(
    "measure",
    "tlm_accuracy",
    order=10,
    kind="similarity",
    range=(0.0, 1.0),
    symmetric=False,
    invariances=(),
    description="accuracy of the stitched network after task loss matching (stitching layer trained on the task loss)",
    citation="Bansal, Nakkiran & Barak, NeurIPS 2021; Csiszárik et al., NeurIPS 2021; Balogh & Jelasity, AAAI 2025",
    requires_models=True,
)
class TLMAccuracy(_ModelBased):
    how = "run `stitchkit stitch` with task loss matching (a trained stitching layer) and read the stitched accuracy"
