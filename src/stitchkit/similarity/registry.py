"""The measure registry, derived from the declarations: a measure is known by its ``@declare("measure", …)``
at its class (:mod:`stitchkit.declarations`); nothing here lists them.

>>> get_measure("cka")(X, Y)                 # a float
>>> get_measure("rbf_cka", sigma=0.5)(X, Y)  # options are keyword arguments
>>> measure_info("pwcca").kind               # "distance"
"""

from __future__ import annotations

import inspect

from ..declarations import catalogue, implementation
from ..errors import StitchkitError, unknown_name
from .base import Measure, MeasureInfo


def _measure_class(name: str) -> type[Measure]:
    key = str(name).strip().lower().replace("-", "_")
    known = catalogue("measure")
    if key not in known:
        raise unknown_name("measure", str(name), list(known))
    return implementation("measure", key)


def list_measures(*, requires_models: bool | None = None) -> list[str]:
    """Names of the declared measures, in their declared order; ``requires_models=False`` keeps those
    computed from arrays, ``True`` those computed from models (stitching accuracies)."""
    return [
        name
        for name, decl in catalogue("measure").items()
        if requires_models is None or decl.get("requires_models") == requires_models
    ]


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
            raise StitchkitError(
                f"options {sorted(options)} cannot be applied to the already configured measure {name!r}"
            )
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
