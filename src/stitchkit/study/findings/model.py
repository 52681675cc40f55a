"""The records of the findings: the thresholds, one finding per claim, the links to what it rests on."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from ...utils.io import json_safe
from ..config import SCHEMA, validate_section

SUPPORTED, NOT_SUPPORTED, NOT_TESTABLE = "supported", "not supported", "not testable"
VERDICTS = (SUPPORTED, NOT_SUPPORTED, NOT_TESTABLE)

#: the paper's claims, as the findings state them (Balogh & Jelasity 2025; the criteria are in each claim's function)
CLAIMS: dict[str, str] = {
    "C1a": "DM reproduces the end network's accuracy on architecturally corresponding layers.",
    "C1b": "DM's residual is smallest near the corresponding layer.",
    "C2": "TLM rates distant layers (late front → early end) as highly similar where DM does not.",
    "C3": "TLM's most similar front layer for an end layer is often not the corresponding one.",
    "C4": "Within one network, TLM rates some other layer as more similar to a layer than the layer itself.",
    "C5": "TLM's stitched representations are OOD for the end network even when they are accurate, while DM's are "
          "in-distribution where DM matches.",
    "C6": "Direct matching tracks functional differences (sensitivity and specificity tests of Ding et al.) at least as well "
          "as the similarity indices.",
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

    @classmethod
    def from_config(cls, section: dict[str, Any] | None = None, source: str = "study config") -> "Thresholds":
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

    def to_dict(self) -> dict[str, Any]:
        return json_safe({"claim": self.claim, "statement": self.statement, "verdict": self.verdict, "reason": self.reason,
                          "numbers": self.numbers, "thresholds": self.thresholds, "links": [link.to_dict() for link in self.links],
                          "units": self.units})


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
            "thresholds": {name: {"value": value, "default": defaults[name], "rationale": rationale[name]}
                           for name, value in self.thresholds.to_dict().items()},
            "units": {"done": self.units_done, "planned": self.units_planned},
            "conventions": {
                "relative_accuracy": "stitched accuracy / the end network's own accuracy on the same test images",
                "nan": "a missing or non-finite cell never counts as supporting a claim; it stays in the denominator",
                "verdict_basis": "the first finished grid (in plan order) of the kind a claim needs; the other grids are listed",
            },
        }


@dataclass
class Outcome:
    """A claim's criterion applied to one candidate (a grid, or a pair of grids)."""

    verdict: str
    reason: str
    numbers: dict[str, Any] = field(default_factory=dict)
    links: list[Link] = field(default_factory=list)
    units: list[str] = field(default_factory=list)
    #: the headline numbers, listed for the candidates that do not decide
    summary: dict[str, Any] = field(default_factory=dict)


def not_testable(claim: str, thresholds: dict[str, float], reason: str, **extra: Any) -> Finding:
    return Finding(claim, CLAIMS[claim], NOT_TESTABLE, reason, thresholds=thresholds, **extra)


def first_decides(claim: str, thresholds: dict[str, float], outcomes: list[Outcome]) -> Finding:
    """The first finished candidate (in plan order) decides; the others are listed beside it, so that
    a study of many pairs shows whether they agree, without any choice among them."""
    first = outcomes[0]
    numbers = dict(first.numbers)
    reason = first.reason
    if len(outcomes) > 1:
        numbers["other grids"] = [{"units": o.units, "verdict": o.verdict, **o.summary} for o in outcomes[1:]]
        agree = sum(o.verdict == first.verdict for o in outcomes[1:])
        reason += f" — from the first of {len(outcomes)} finished candidates; {agree} of the other {len(outcomes) - 1} give the same verdict"
    return Finding(claim, CLAIMS[claim], first.verdict, reason, numbers, thresholds, first.links, first.units)
