"""OOD detectors on hidden representations, behind one interface (pytorch-ood style): one base class
(:mod:`.base`), one module per detector, each declared at its class
(``@declare("detector", name, ...)``); this module lists none of them.

* :mod:`.energy` — :class:`EnergyDetector`, a trained representation classifier scored by its energy
  (Liu et al., NeurIPS 2020); ``trains=True``: ``stitchkit detector train`` makes it.
* :mod:`.mahalanobis` — :class:`MahalanobisDetector`, class-conditional Gaussians with a shared
  covariance (Lee et al., NeurIPS 2018).
* :mod:`.knn` — :class:`KNNDetector`, the distance to the k-th nearest normalised ID feature (Sun et al.,
  ICML 2022).

The training-free detectors (``trains=False``) need no network per layer, so a CPU user gets an answer
quickly; their declared ``options`` are what the command line offers (``--knn-k``, ``--pool``).

>>> det = make_detector("mahalanobis").fit(train_activations, train_labels)
>>> scores = det.predict(test_activations)         # higher = more OOD
"""

from __future__ import annotations

from typing import Any

from ...activations.pooling import POOLINGS, pool_features
from ...declarations import catalogue, implementation, names
from ...errors import StitchkitError, unknown_name
from .base import Detector
from .energy import EnergyDetector
from .knn import KNNDetector
from .mahalanobis import MahalanobisDetector

__all__ = [
    "POOLINGS",
    "Detector",
    "EnergyDetector",
    "KNNDetector",
    "MahalanobisDetector",
    "list_detectors",
    "make_detector",
    "pool_features",
    "training_free_detectors",
]


def list_detectors() -> list[str]:
    """Every declared detector's name, in the declared order."""
    return list(catalogue("detector"))


def training_free_detectors() -> tuple[str, ...]:
    """The detectors fitted on activations alone (declared ``trains=False``): no network per layer."""
    return names("detector", trains=False)


def make_detector(name: str, **options: Any) -> Detector:
    """A detector by its declared name. ``energy`` needs ``model=`` (use the detector registry to load a
    trained one); the training-free ones take their options (``k``, ``pool``, ``shrinkage`` …)."""
    known = catalogue("detector")
    if name not in known:
        raise unknown_name("detector", name, known)
    try:
        return implementation("detector", name)(**options)
    except TypeError as exc:
        raise StitchkitError(f"detector {name!r}: {exc}") from None
