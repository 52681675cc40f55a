"""The findings of a study: for each claim of the paper that its units can test, a statement, the
numbers behind it, and a verdict — supported, not supported, or not testable here (with the reason).

The claims (:data:`.model.CLAIMS`) and their criteria were fixed before any study's numbers were looked
at; each claim's function states its criterion. The thresholds are the config's ``[findings]``
section. Findings are computed from the stored unit records only: no unit depends on them, so
changing a threshold recomputes nothing else.

* :mod:`.stitching` — C1a, C1b, C2, C3, C4 (stitch grids);
* :mod:`.ood` — C5 (the OOD tests of the stitch grids);
* :mod:`.grounding` — C6 (the sensitivity and specificity tests);
* :mod:`.render` — text, the report's HTML section, ``findings.json``.

Conventions for inputs the criteria leave open (also in ``findings.json``): a NaN or missing cell never
counts as supporting a claim and stays in the denominator. A claim is judged on every finished network
pair that can test it (each pair's verdict, reason and numbers are listed); with several, it is
supported when it holds for more than ``pair_support`` of the pairs on which it is testable ("holds for
k of n pairs"), and one pair decides alone. C5 combines its detectors the same way (``detector_support``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..runner import prepare_study
from ..store import UnitRecord
from ..store_access import read_store
from .grounding import claim_c6
from .model import CLAIMS, VERDICTS, Finding, Findings, Link, Part, Thresholds
from .ood import claim_c5
from .render import CSS, render_html, render_text, write_findings_json
from .stitching import claim_c1a, claim_c1b, claim_c2, claim_c3, claim_c4
from .view import StudyView

CLAIM_FUNCTIONS = (claim_c1a, claim_c1b, claim_c2, claim_c3, claim_c4, claim_c5, claim_c6)


def compute_findings(records: Sequence[UnitRecord], settings: dict[str, Any] | None = None) -> Findings:
    """The findings of a study's planned units (in plan order; unfinished ones included, so that a
    claim can say which of its units is not computed yet). ``settings``: the [findings] section."""
    thresholds = Thresholds.from_config(settings)
    view = StudyView(records)
    findings = [claim(view, thresholds) for claim in CLAIM_FUNCTIONS]
    return Findings(findings, thresholds, sum(r.status == "done" for r in records), len(records))


def study_findings(config_path: str | Path, study_dir: str | Path | None = None) -> tuple[Findings, dict[str, Any]]:
    """The findings of a study as its config plans it now (finished, partly finished or not started;
    thresholds from the config's [findings]), each with its verdict's robustness ([uncertainty]
    verdict_resamples); reads the store, writes nothing. Returns the findings and the config."""
    config, study_dir, units = prepare_study(config_path, study_dir)
    stored: dict[str, UnitRecord] = {}
    with read_store(study_dir) as store:
        if store is not None:
            stored = {r.id: r for r in store.all()}
    records = [stored.get(u.id) or UnitRecord(u.id, u.kind, u.label, u.params, list(u.deps), "pending") for u in units]
    # deferred: stitchkit.study.uncertainty imports this package (for compute_findings)
    from ..uncertainty import UncertaintySettings, verdict_robustness

    findings = compute_findings(records, config["findings"])
    return verdict_robustness(
        records, study_dir, findings, config["findings"], UncertaintySettings.from_config(config)
    ), config


__all__ = [
    "CLAIMS",
    "CSS",
    "Finding",
    "Findings",
    "Link",
    "Part",
    "Thresholds",
    "VERDICTS",
    "compute_findings",
    "render_html",
    "render_text",
    "study_findings",
    "write_findings_json",
]
