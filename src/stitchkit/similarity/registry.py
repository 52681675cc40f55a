"""The measure registry: one entry per measure; adding a measure is adding its class to ``_CLASSES``.

>>> get_measure("cka")(X, Y)                 # a float
>>> get_measure("rbf_cka", sigma=0.5)(X, Y)  # options are keyword arguments
>>> measure_info("pwcca").kind               # "distance"
"""

from __future__ import annotations

import inspect

from ..errors import StitchkitError, unknown_name
from .base import Measure, MeasureInfo
from .cca import PWCCA, SVCCA, MeanCCA
from .cka import DebiasedLinearCKA, LinearCKA, RBFCKA
from .direct import DMAccuracy, DMResidual, TLMAccuracy
from .procrustes import Procrustes

_CLASSES: tuple[type[Measure], ...] = (
    LinearCKA,
    DebiasedLinearCKA,
    RBFCKA,
    MeanCCA,
    SVCCA,
    PWCCA,
    Procrustes,
    DMResidual,
    DMAccuracy,
    TLMAccuracy,
)
_REGISTRY: dict[str, type[Measure]] = {cls.info.name: cls for cls in _CLASSES}


def _measure_class(name: str) -> type[Measure]:
    key = str(name).strip().lower().replace("-", "_")
    if key not in _REGISTRY:
        raise unknown_name("measure", str(name), list(_REGISTRY))
    return _REGISTRY[key]


def list_measures(*, requires_models: bool | None = None) -> list[str]:
    """Names of the registered measures; ``requires_models=False`` keeps those computed from arrays,
    ``True`` those computed from models (stitching accuracies)."""
    return [n for n, c in _REGISTRY.items() if requires_models is None or c.info.requires_models == requires_models]


def measure_info(name: str) -> MeasureInfo:
    """Metadata of a measure by name; an unknown name lists the known ones."""
    return _measure_class(name).info


def measure_options(name: str) -> dict[str, object]:
    """The options a measure accepts, with their defaults."""
    sig = inspect.signature(_measure_class(name).__init__)
    return {p.name: p.default for p in sig.parameters.values() if p.kind is p.KEYWORD_ONLY}


def get_measure(name: str | Measure, **options) -> Measure:
    """A measure configured with ``options`` (see :func:`measure_options`); a :class:`Measure` instance
    is returned as it is (then no options may be given)."""
    if isinstance(name, Measure):
        if options:
            raise StitchkitError(f"options {sorted(options)} cannot be applied to the already configured measure {name!r}")
        return name
    cls = _measure_class(name)
    accepted = measure_options(cls.info.name)
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise StitchkitError(
            f"measure {cls.info.name!r} has no option {', '.join(map(repr, unknown))}; "
            f"its options are {', '.join(accepted) if accepted else 'none'}"
        )
    return cls(**options)
