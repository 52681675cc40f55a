"""OOD detectors on hidden representations, behind one interface (pytorch-ood style).

A :class:`Detector` is fitted on in-distribution activations of one layer and then scores new
activations of that layer. ``predict`` returns **outlier scores** (higher = more OOD), one per sample;
:mod:`stitchkit.ood.metrics` turns them into AUROC/AUPR/FPR95 under a stated convention.

* :class:`EnergyDetector` — a trained representation classifier (``repr_cls_*``) scored by its energy
  ``E = −T·logsumexp(f/T)`` (Liu et al., NeurIPS 2020). Training (supervised pre-training + energy
  fine-tuning with outlier exposure) is :func:`stitchkit.ood.train.train_detectors`; ``fit`` is a no-op.
* :class:`MahalanobisDetector` — class-conditional Gaussians with one shared covariance on pooled
  activations; score = min over classes of the squared Mahalanobis distance (Lee, Lee, Lee & Shin,
  "A Simple Unified Framework for Detecting Out-of-Distribution Samples and Adversarial Attacks",
  NeurIPS 2018, eq. 2). Without their input pre-processing and layer ensemble.
* :class:`KNNDetector` — distance to the k-th nearest training feature after L2 normalisation (Sun,
  Ming, Zhu & Li, "Out-of-Distribution Detection with Deep Nearest Neighbors", ICML 2022).

The two training-free detectors need no network per layer, so a CPU user gets an answer quickly.

>>> det = make_detector("mahalanobis").fit(train_activations, train_labels)
>>> scores = det.predict(test_activations)         # higher = more OOD
"""

from __future__ import annotations

import abc
from typing import Any, Iterable

import torch
from torch import Tensor, nn

from ..activations.pooling import POOLINGS, pool_features  # noqa: F401 (POOLINGS: re-exported)
from ..choices import TRAINING_FREE_DETECTORS  # torch-free home of the names (the CLI reads them)
from ..errors import StitchkitError, unknown_name
from .scores import energy_score

def _batches(data: Any, labels: Any = None) -> Iterable[tuple[Tensor, Tensor | None]]:
    """A tensor (with optional labels) or an iterable of ``(x, y)`` / ``x`` batches."""
    if isinstance(data, Tensor) or hasattr(data, "shape"):
        x = torch.as_tensor(data)
        y = None if labels is None else torch.as_tensor(labels)
        step = 1024
        for start in range(0, x.shape[0], step):
            yield x[start:start + step], (None if y is None else y[start:start + step])
        return
    for batch in data:
        if isinstance(batch, (list, tuple)):
            yield batch[0], (batch[1] if len(batch) > 1 else None)
        else:
            yield batch, None


class Detector(abc.ABC):
    """Base class: ``fit`` on ID activations of one layer, ``predict`` outlier scores (higher = OOD)."""

    #: registry name
    name: str = ""
    #: what ``predict`` returns, for result records
    score_name: str = ""
    #: whether ``fit`` needs class labels
    needs_labels: bool = False

    def fit(self, data: Any, labels: Any = None) -> "Detector":
        """Fit on ID activations: a tensor ``(N, …)`` with ``labels``, or an iterable of ``(x, y)``
        batches. Returns ``self``."""
        return self

    @abc.abstractmethod
    def predict(self, x: Tensor) -> Tensor:
        """Outlier scores ``(B,)`` for a batch of activations; higher = more OOD."""

    @torch.no_grad()
    def predict_batches(self, batches: Iterable[Any]) -> Tensor:
        """Scores of every batch (``x`` or ``(x, …)``), concatenated on the CPU."""
        out = [self.predict(b[0] if isinstance(b, (list, tuple)) else b).detach().cpu() for b in batches]
        return torch.cat(out) if out else torch.zeros(0)

    def describe(self) -> dict[str, Any]:
        """The detector's settings, for result records."""
        return {"detector": self.name, "score": self.score_name}


class EnergyDetector(Detector):
    """A trained representation classifier scored by energy (Liu et al. 2020).

    ``model`` maps activations of one layer to class logits (``repr_cls_resnet*`` / ``repr_cls_vit_*``).
    """

    name = "energy"
    score_name = "energy"

    def __init__(self, model: nn.Module, temperature: float = 1.0, device: torch.device | str | None = None, meta: dict | None = None):
        self.model = model
        self.temperature = float(temperature)
        if device is not None:
            self.model.to(device)
        self.model.eval()
        self.meta = dict(meta or {})

    @property
    def device(self) -> torch.device:
        param = next(self.model.parameters(), None)
        return param.device if param is not None else torch.device("cpu")

    def to(self, device: torch.device | str) -> "EnergyDetector":
        self.model.to(device)
        return self

    @torch.no_grad()
    def logits(self, x: Tensor) -> Tensor:
        self.model.eval()
        return self.model(x.to(self.device, non_blocking=True))

    @torch.no_grad()
    def predict(self, x: Tensor) -> Tensor:
        return energy_score(self.logits(x).float(), self.temperature)

    def describe(self) -> dict[str, Any]:
        spec = getattr(self.model, "stitchkit_spec", None)
        out = {**super().describe(), "temperature": self.temperature, "model_spec": spec}
        if self.meta.get("id"):
            out["detector_id"] = self.meta["id"]
        return out


class MahalanobisDetector(Detector):
    """Class-conditional Gaussians with a shared (tied) covariance on pooled activations (Lee et al.
    2018). Score = ``min_c (x − μ_c)ᵀ Σ⁺ (x − μ_c)``.

    Statistics are streamed in float64 (per-class sums, the total second moment), so any number of
    fitting samples can be used. ``shrinkage`` adds ``shrinkage · mean(diag Σ) · I`` before inverting
    (0 = the pseudo-inverse of the plain estimate).
    """

    name = "mahalanobis"
    score_name = "min squared Mahalanobis distance to a class mean"
    needs_labels = True

    def __init__(self, pool: str = "avg", shrinkage: float = 1e-6):
        if pool not in POOLINGS:
            raise unknown_name("pooling", pool, POOLINGS)
        if shrinkage < 0:
            raise StitchkitError(f"shrinkage must be non-negative, got {shrinkage}")
        self.pool, self.shrinkage = pool, float(shrinkage)
        self.means: Tensor | None = None
        self.precision: Tensor | None = None
        self.n_fit = 0

    @torch.no_grad()
    def fit(self, data: Any, labels: Any = None) -> "MahalanobisDetector":
        sums: dict[int, Tensor] = {}
        counts: dict[int, int] = {}
        second: Tensor | None = None
        n = 0
        for x, y in _batches(data, labels):
            if y is None:
                raise StitchkitError("the Mahalanobis detector needs class labels to fit (class-conditional means)")
            f = pool_features(x, self.pool).double().cpu()
            y = torch.as_tensor(y).cpu().long()
            second = f.T @ f if second is None else second + f.T @ f
            n += f.shape[0]
            for c in y.unique().tolist():
                rows = f[y == c]
                sums[c] = sums[c] + rows.sum(0) if c in sums else rows.sum(0)
                counts[c] = counts.get(c, 0) + rows.shape[0]
        if n < 2 or second is None:
            raise StitchkitError("the Mahalanobis detector needs at least two fitting samples")
        classes = sorted(sums)
        means = torch.stack([sums[c] / counts[c] for c in classes])
        # Shared covariance: Σ = (Σ_i x xᵀ − Σ_c n_c μ_c μ_cᵀ) / N (within-class scatter).
        between = sum(counts[c] * torch.outer(means[i], means[i]) for i, c in enumerate(classes))
        cov = (second - between) / n
        if self.shrinkage > 0:
            cov = cov + self.shrinkage * max(float(cov.diagonal().mean()), 1e-12) * torch.eye(cov.shape[0], dtype=cov.dtype)
        self.means = means
        self.precision = torch.linalg.pinv(cov, hermitian=True)
        self.classes = classes
        self.n_fit = n
        return self

    @torch.no_grad()
    def predict(self, x: Tensor) -> Tensor:
        if self.means is None or self.precision is None:
            raise StitchkitError("fit the Mahalanobis detector on ID activations before scoring")
        f = pool_features(x, self.pool).double().cpu()
        if f.shape[1] != self.means.shape[1]:
            raise StitchkitError(f"the Mahalanobis detector was fitted on {self.means.shape[1]} features, got {f.shape[1]}")
        diff = f[:, None, :] - self.means[None, :, :]  # (B, C, F)
        d2 = torch.einsum("bcf,fg,bcg->bc", diff, self.precision, diff)
        return d2.min(dim=1).values.float()

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "pool": self.pool, "shrinkage": self.shrinkage, "n_fit": self.n_fit}


class KNNDetector(Detector):
    """Distance to the ``k``-th nearest ID feature, features L2-normalised (Sun et al. 2022).

    ``max_fit`` caps the stored bank (the first samples seen; pass a random subset to ``fit`` for a
    random bank). Sun et al. use k = 50 for CIFAR-10 with the full training set; with small banks use a
    smaller k.
    """

    name = "knn"
    score_name = "distance to the k-th nearest normalised ID feature"

    def __init__(self, k: int = 50, pool: str = "avg", normalize: bool = True, max_fit: int | None = None, chunk: int = 4096):
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise StitchkitError(f"k must be a positive integer, got {k!r}")
        if pool not in POOLINGS:
            raise unknown_name("pooling", pool, POOLINGS)
        self.k, self.pool, self.normalize, self.max_fit, self.chunk = k, pool, bool(normalize), max_fit, int(chunk)
        self.bank: Tensor | None = None

    def _features(self, x: Tensor) -> Tensor:
        f = pool_features(x, self.pool).float().cpu()
        return nn.functional.normalize(f, dim=1) if self.normalize else f

    @torch.no_grad()
    def fit(self, data: Any, labels: Any = None) -> "KNNDetector":
        parts, n = [], 0
        for x, _ in _batches(data, labels):
            f = self._features(x)
            if self.max_fit is not None:
                f = f[: max(self.max_fit - n, 0)]
            if f.shape[0]:
                parts.append(f)
                n += f.shape[0]
            if self.max_fit is not None and n >= self.max_fit:
                break
        if not parts:
            raise StitchkitError("the k-NN detector got no fitting samples")
        self.bank = torch.cat(parts)
        if self.bank.shape[0] < self.k:
            raise StitchkitError(f"the k-NN detector needs at least k = {self.k} fitting samples, got {self.bank.shape[0]}; lower k")
        return self

    @torch.no_grad()
    def predict(self, x: Tensor) -> Tensor:
        if self.bank is None:
            raise StitchkitError("fit the k-NN detector on ID activations before scoring")
        f = self._features(x)
        if f.shape[1] != self.bank.shape[1]:
            raise StitchkitError(f"the k-NN detector was fitted on {self.bank.shape[1]} features, got {f.shape[1]}")
        best: Tensor | None = None  # the k smallest distances so far, (B, k)
        for start in range(0, self.bank.shape[0], self.chunk):
            d = torch.cdist(f, self.bank[start:start + self.chunk])
            merged = d if best is None else torch.cat([best, d], dim=1)
            best = merged.topk(min(self.k, merged.shape[1]), dim=1, largest=False).values
        return best[:, self.k - 1]

    def describe(self) -> dict[str, Any]:
        n = 0 if self.bank is None else int(self.bank.shape[0])
        return {**super().describe(), "k": self.k, "pool": self.pool, "normalize": self.normalize, "n_fit": n}


DETECTORS: dict[str, type[Detector]] = {"energy": EnergyDetector, "mahalanobis": MahalanobisDetector, "knn": KNNDetector}
TRAINING_FREE = TRAINING_FREE_DETECTORS


def list_detectors() -> list[str]:
    return list(DETECTORS)


def make_detector(name: str, **options: Any) -> Detector:
    """A detector by registry name. ``energy`` needs ``model=`` (use the detector registry to load a
    trained one); the training-free ones take their options (``k``, ``pool``, ``shrinkage`` …)."""
    if name not in DETECTORS:
        raise unknown_name("detector", name, DETECTORS)
    try:
        return DETECTORS[name](**options)
    except TypeError as exc:
        raise StitchkitError(f"detector {name!r}: {exc}") from None
