"""The stitching methods, declared once: direct matching (``dm``), task loss matching (``tlm``) and task
loss matching started from the direct-matching solution (``tlm_from_dm``), with their titles, their
initialisation and the direct-matching solvers.

The notebook API (:func:`stitchkit.stitch_grid`), the study (its schema, its stitch units, its report and
findings) and the stitch command read these names from here. The module imports nothing heavy: the
study's schema and the command line's ``--help`` read it without torch (which is also why it is not
inside :mod:`stitchkit.stitching`, whose package imports torch).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class StitchMethod:
    """One way of making a stitch: ``init`` is the :class:`~stitchkit.stitching.StitchSettings` ``init``
    it sets (``pinv`` = fit by direct matching first); ``trains``: task loss matching follows."""

    name: str
    title: str
    init: str
    trains: bool
    help: str

    @property
    def direct_matching(self) -> bool:
        """Whether the stitching layer is fitted by direct matching (before any training)."""
        return self.init == "pinv"


#: every method by name, in the order the study and the report show them
STITCH_METHODS: dict[str, StitchMethod] = {
    m.name: m
    for m in (
        StitchMethod("dm", "DM", "pinv", False, "direct matching"),
        StitchMethod("tlm", "TLM", "rand", True, "task loss matching"),
        StitchMethod("tlm_from_dm", "TLM from DM", "pinv", True, "TLM initialised by DM"),
    )
}
#: the method names
METHODS = tuple(STITCH_METHODS)
#: how the stitch units and the API name each method's matrices ("DM accuracy", "TLM residual (test, pooled)", …)
METHOD_TITLES = {name: m.title for name, m in STITCH_METHODS.items()}
#: each method's initialisation: DM fits by least squares and trains nothing; TLM trains from a random
#: start, or from the DM solution ("tlm_from_dm")
METHOD_INIT = {name: m.init for name, m in STITCH_METHODS.items()}
#: methods whose stitching layer is fitted by direct matching
DIRECT_MATCHING_METHODS = tuple(name for name, m in STITCH_METHODS.items() if m.direct_matching)
#: "dm = direct matching, tlm = task loss matching, tlm_from_dm = TLM initialised by DM"
METHODS_HELP = ", ".join(f"{name} = {m.help}" for name, m in STITCH_METHODS.items())

#: direct-matching solvers: stitchkit's (float64 statistics, minimum-norm least squares; the default) and
#: the original's float32 pinv with torch's default cutoff on the K fit images in one batch
DM_SOLVERS = ("stitchkit", "original")
DEFAULT_DM_SOLVER = DM_SOLVERS[0]


def either_of(names: tuple[str, ...] | list[str], quote: str = "") -> str:
    """``a, b or c`` (each name between ``quote``), as messages list the choices."""
    shown = [f"{quote}{n}{quote}" for n in names]
    return shown[0] if len(shown) == 1 else f"{', '.join(shown[:-1])} or {shown[-1]}"


__all__ = [
    "DEFAULT_DM_SOLVER",
    "DIRECT_MATCHING_METHODS",
    "DM_SOLVERS",
    "METHODS",
    "METHODS_HELP",
    "METHOD_INIT",
    "METHOD_TITLES",
    "STITCH_METHODS",
    "StitchMethod",
    "either_of",
]
