"""What the report says about each of its sections: a title per unit kind and one sentence on what the
rows, columns and colours of its figures and tables mean (both declared with the kind, in
:mod:`stitchkit.study.unit_kinds`; the colours are those of
:data:`stitchkit.results.plot.KIND_CMAPS`, the same in the API's figures)."""

from __future__ import annotations

from ..declarations import catalogue
from .findings import Thresholds


def kind_title(kind: str) -> str:
    """The report's section title of a unit kind: its declared ``title`` (else its name)."""
    known = catalogue("unit_kind").get(kind)
    return known.get("title", kind) if known is not None else kind


def kind_order() -> list[str]:
    """The unit kinds in the order of their report sections (their declarations' order)."""
    return list(catalogue("unit_kind"))


def kind_intro(kind: str, thresholds: Thresholds | None = None) -> str:
    """One sentence (plain text) on how to read a kind's figures and tables (its declared ``intro``, or one
    of the report's own sections: ``base``, ``units``); empty for a kind without one. ``thresholds``: the
    study's (the OOD section names the sanity check's); the defaults without them."""
    sanity = thresholds.detector_sanity if thresholds is not None else Thresholds.defaults()["detector_sanity"]
    if kind in SECTION_INTROS:
        return SECTION_INTROS[kind]
    known = catalogue("unit_kind").get(kind)
    return known.get("intro", "").format(detector_sanity=sanity) if known is not None else ""


#: what the report's own sections (not a unit kind's) say
SECTION_INTROS = {
    "base": "One row per network: its top-1 and top-5 accuracy on the study's test set, the seconds it took and the "
    "hash of its weights (what identifies it; its name only labels it).",
    "units": "One row per kind of unit: how many are done, failed and left, and the seconds they took.",
}
