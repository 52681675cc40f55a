"""The records of the findings: the thresholds, one finding per claim, the links to what it rests on."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from ...utils.io import json_safe
from ..config import SCHEMA, validate_section

SUPPORTED, NOT_SUPPORTED, NOT_TESTABLE = "supported", "not supported", "not testable"
VERDICTS = (SUPPORTED, NOT_SUPPORTED, NOT_TESTABLE)
#: a verdict that comes out the same in fewer than this fraction of the bootstrap resamples is fragile
FRAGILE_BELOW = 0.9

#: the paper's claims, as the findings state them (Balogh & Jelasity 2025; the criteria are in each claim's function)
CLAIMS: dict[str, str] = {
    "C1a": "DM reproduces the end network's accuracy on architecturally corresponding layers.",
    "C1b": "DM's residual is smallest near the corresponding layer.",
    "C2": "TLM rates distant layers (late front → early end) as highly similar where DM does not.",
    "C3": "TLM's most similar front layer for an end layer is often not the corresponding one.",
    "C4": "Within one network, TLM rates some other layer as more similar to a layer than the layer itself.",
    "C5": "TLM's stitched representations are OOD for the end network even when they are accurate, while DM's are "
    "in-distribution where DM matches.",
    "C6": "Direct matching tracks functional differences (sensitivity and specificity tests of Ding et al.) at least "
    "as well as the similarity indices.",
}


@dataclass(frozen=True)
class Thresholds:
    """The [findings] section of a study config (defaults and rationale live in the config schema)."""

    match: float
    high: float
    most: float
    often: float
    near: int
    tie: float
    far: float
    ood_auroc: float
    id_auroc: float
    detector_sanity: float
    alpha: float
    rho_tolerance: float
    detector_support: float
    pair_support: float

    @classmethod
    def from_config(cls, section: dict[str, Any] | None = None, source: str = "study config") -> Thresholds:
        """Checked values, defaults filled in (a store written before [findings] existed has none)."""
        return cls(**validate_section("findings", section or {}, source))

    def pick(self, *names: str) -> dict[str, float]:
        return {name: getattr(self, name) for name in names}

    def to_dict(self) -> dict[str, float]:
        return asdict(self)

    @staticmethod
    def rationale() -> dict[str, str]:
        return {f.name: SCHEMA["findings"][f.name].help for f in fields(Thresholds)}

    @staticmethod
    def defaults() -> dict[str, float]:
        return {f.name: SCHEMA["findings"][f.name].default for f in fields(Thresholds)}


@dataclass(frozen=True)
class Link:
    """A heatmap (``figure``) or table of the report that a verdict rests on."""

    title: str
    stem: str
    figure: bool = True

    @property
    def file(self) -> str:
        """Relative to the report folder."""
        return f"figures/{self.stem}.png" if self.figure else f"tables/{self.stem}.csv"

    def to_dict(self) -> dict[str, str]:
        return {"title": self.title, "anchor": f"index.html#{self.stem}", "file": self.file}


@dataclass(frozen=True)
class Part:
    """One sub-verdict behind a finding: a network pair's (a claim over several pairs) or a detector's (C5)."""

    label: str
    verdict: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        return {"label": self.label, "verdict": self.verdict, "reason": self.reason}


@dataclass
class Finding:
    claim: str
    statement: str
    verdict: str
    reason: str
    numbers: dict[str, Any] = field(default_factory=dict)
    #: the thresholds this claim's criterion uses
    thresholds: dict[str, float] = field(default_factory=dict)
    links: list[Link] = field(default_factory=list)
    #: labels of the units the verdict rests on
    units: list[str] = field(default_factory=list)
    #: the sub-verdicts the verdict combines (per network pair, or C5's per detector), in order
    parts: list[Part] = field(default_factory=list)
    #: the fraction of bootstrap resamples of the test images in which the verdict comes out the same
    #: (None: not measured, ``robustness_note`` says why); :mod:`stitchkit.study.uncertainty`
    robustness: float | None = None
    robustness_note: str = ""

    @property
    def fragile(self) -> bool:
        """Whether the verdict holds in fewer than :data:`FRAGILE_BELOW` of the resamples."""
        return self.robustness is not None and self.robustness < FRAGILE_BELOW

    def to_dict(self) -> dict[str, Any]:
        return json_safe(
            {
                "claim": self.claim,
                "statement": self.statement,
                "verdict": self.verdict,
                "reason": self.reason,
                "robustness": self.robustness,
                "fragile": self.fragile,
                "robustness_note": self.robustness_note,
                "numbers": self.numbers,
                "thresholds": self.thresholds,
                "links": [link.to_dict() for link in self.links],
                "units": self.units,
                "parts": [part.to_dict() for part in self.parts],
            }
        )


@dataclass
class Findings:
    findings: list[Finding]
    thresholds: Thresholds
    units_done: int
    units_planned: int

    def __getitem__(self, claim: str) -> Finding:
        for f in self.findings:
            if f.claim == claim:
                return f
        raise KeyError(claim)

    def to_dict(self) -> dict[str, Any]:
        rationale = Thresholds.rationale()
        defaults = Thresholds.defaults()
        return {
            "findings": [f.to_dict() for f in self.findings],
            "thresholds": {
                name: {"value": value, "default": defaults[name], "rationale": rationale[name]}
                for name, value in self.thresholds.to_dict().items()
            },
            "units": {"done": self.units_done, "planned": self.units_planned},
            "conventions": {
                "relative_accuracy": "stitched accuracy / the end network's own accuracy on the same test images",
                "nan": "a missing or non-finite cell never counts as supporting a claim; it stays in the denominator",
                "verdict_basis": "every finished network pair a claim can use is evaluated on its own; with several, "
                "the claim is supported when it holds for more than pair_support of the pairs on which it is testable",
                "robustness": "the fraction of bootstrap resamples of the test images (every matrix and donor "
                "accuracy the claim reads "
                f"recomputed on the resample, thresholds fixed) in which the verdict comes out the same; below "
                f"{FRAGILE_BELOW:g} "
                "the verdict is fragile",
            },
        }


@dataclass
class Outcome:
    """A claim's criterion applied to one candidate (a grid, or a pair of grids), usually one network pair."""

    verdict: str
    reason: str
    numbers: dict[str, Any] = field(default_factory=dict)
    links: list[Link] = field(default_factory=list)
    units: list[str] = field(default_factory=list)
    #: the headline numbers of this candidate (listed with the verdicts of every pair)
    summary: dict[str, Any] = field(default_factory=dict)
    #: which networks this candidate is about (e.g. "resnet18 s0→resnet18 s1")
    pair: str = ""
    #: sub-verdicts of this candidate (C5: one per detector)
    parts: list[Part] = field(default_factory=list)


def not_testable(claim: str, thresholds: dict[str, float], reason: str, **extra: Any) -> Finding:
    return Finding(claim, CLAIMS[claim], NOT_TESTABLE, reason, thresholds=thresholds, **extra)


def majority(verdicts: list[str], more_than: float) -> tuple[str, int, int]:
    """(verdict, supporting, testable) of several sub-verdicts: supported when more than ``more_than``
    of the testable ones support; not testable when none is testable."""
    testable = [v for v in verdicts if v != NOT_TESTABLE]
    supporting = sum(v == SUPPORTED for v in testable)
    if not testable:
        return NOT_TESTABLE, 0, 0
    return (SUPPORTED if supporting / len(testable) > more_than else NOT_SUPPORTED), supporting, len(testable)


def _unique(items: list[Any]) -> list[Any]:
    return list(dict.fromkeys(items))


def percent(fraction: float) -> str:
    """0.75 → "75%", 2 / 3 → "67%": a share in words."""
    return f"{100 * fraction:.0f}%"


def share(fraction: float, needed: float, name: str, *, strict: bool = False) -> str:
    """A share beside the threshold it is held against, in words: "100%; at least 75% needed (most = 0.75)",
    or with ``strict`` "50%; more than 50% needed (detector_support = 0.5)"."""
    return (
        f"{percent(fraction)}; {'more than' if strict else 'at least'} {percent(needed)} needed ({name} = {needed:g})"
    )


def pairs_decide(
    claim: str, thresholds: dict[str, float], outcomes: list[Outcome], pair_support: float, noun: str = "network pairs"
) -> Finding:
    """Every finished candidate (network pair) is judged on its own. One decides alone; with several, the
    claim is supported when it holds for more than ``pair_support`` of those on which it is testable
    ("holds for k of n pairs"), each pair's verdict, reason and numbers listed."""
    if len(outcomes) == 1:
        only = outcomes[0]
        return Finding(
            claim,
            CLAIMS[claim],
            only.verdict,
            only.reason,
            dict(only.numbers),
            thresholds,
            only.links,
            only.units,
            list(only.parts),
        )
    verdict, k, n = majority([o.verdict for o in outcomes], pair_support)
    untested = len(outcomes) - n
    parts = [Part(o.pair or " / ".join(o.units), o.verdict, o.reason) for o in outcomes]
    numbers: dict[str, Any] = {
        "pairs holding": k,
        "pairs tested": n,
        "pairs not testable": untested,
        "per pair": [
            {"pair": o.pair, "units": o.units, "verdict": o.verdict, "reason": o.reason, **o.numbers} for o in outcomes
        ],
    }
    if verdict == NOT_TESTABLE:
        reason = f"not testable on any of the {len(outcomes)} {noun}; the first: {outcomes[0].reason}"
    else:
        fraction = k / n
        reason = (
            f"holds for {k} of {n} {noun}"
            + (f" ({untested} more not testable)" if untested else "")
            + f" ({share(fraction, pair_support, 'pair_support', strict=True)}): "
            + "; ".join(
                f"{p.label}: {p.verdict}" + (f" ({_headline(o.summary)})" if o.summary else "")
                for p, o in zip(parts, outcomes)
            )
        )
    links = _unique([link for o in outcomes for link in o.links])
    units = _unique([u for o in outcomes for u in o.units])
    return Finding(claim, CLAIMS[claim], verdict, reason, numbers, thresholds, links, units, parts)


def _headline(summary: dict[str, Any]) -> str:
    def show(value: Any) -> str:
        return f"{value:.3g}" if isinstance(value, float) else str(value)

    return ", ".join(f"{k} {show(v)}" for k, v in summary.items() if k != "verdict reason")
