"""The findings as text (``stitchkit study CONFIG --findings``), as the report's HTML section, and as JSON."""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from ...utils.io import json_safe, write_json_atomic
from .model import Finding, Findings, Part, Thresholds

#: styles of the findings section (the report puts them in its page head)
CSS = """
.findings td { text-align: left; vertical-align: top; } .findings td.verdict { white-space: nowrap; font-weight: 600; }
.v-supported { color: #1a7f37; } .v-not-supported { color: #b42318; } .v-not-testable { color: #6b6b6b; }
.findings .fragile { color: #a40; font-weight: 600; } .findings .robustness { font-size: 0.9em; color: #555; }
.findings ul.parts { margin: 0.3em 0 0 1em; padding: 0; font-size: 0.92em; }
details pre { font-size: 0.8em; max-height: 30em; overflow: auto; background: #f7f7f7; padding: 0.5em; }
"""


def _after_label(part: Part) -> str:
    """A part's reason without a leading repetition of its label ("energy: 3 of 4 …" under "energy")."""
    prefix = f"{part.label}: "
    return part.reason[len(prefix) :] if part.reason.startswith(prefix) else part.reason


def _css_class(verdict: str) -> str:
    return "v-" + verdict.replace(" ", "-")


def robustness_text(f: Finding) -> str:
    """ "robustness 0.93 (…)", "robustness 0.71, FRAGILE (…)" or "robustness: not resampled (why)"; empty when never
    asked, and for a claim that is not testable (its reason says why; findings.json keeps the note)."""
    if f.verdict == "not testable":
        return ""
    if f.robustness is None:
        return f"robustness: {f.robustness_note}" if f.robustness_note else ""
    return f"robustness {f.robustness:.2f}{', FRAGILE' if f.fragile else ''}: {f.robustness_note}"


def render_text(findings: Findings, name: str | None = None) -> str:
    of_study = f" of study {name!r}" if name else ""
    head = f"Findings{of_study} ({findings.units_done} of {findings.units_planned} units done)"
    lines = [head, ""]
    for f in findings.findings:
        lines.append(f"{f.claim:<4} {f.statement}")
        lines.append(f"     {f.verdict}{' (fragile)' if f.fragile else ''}: {f.reason}")
        if robustness_text(f):
            lines.append(f"     {robustness_text(f)}")
        for part in f.parts:
            lines.append(f"       · {part.label}: {part.verdict}: {_after_label(part)}")
        if f.links:
            lines.append("     rests on: " + "; ".join(link.title for link in f.links))
        lines.append("")
    values = ", ".join(f"{k} = {v:g}" for k, v in findings.thresholds.to_dict().items())
    lines.append(f"thresholds ([findings] in the config; changing them recomputes no unit): {values}")
    return "\n".join(lines)


def render_html(findings: Findings) -> str:
    """The report's findings section: one row per claim, each verdict linking to what it rests on."""
    rows = []
    for f in findings.findings:
        links = (
            "<br>".join(f'<a href="#{html.escape(link.stem)}">{html.escape(link.title)}</a>' for link in f.links) or "—"
        )
        parts = "".join(
            f'<li>{html.escape(part.label)}: <span class="{_css_class(part.verdict)}">{part.verdict}</span>: '
            f"{html.escape(_after_label(part))}</li>"
            for part in f.parts
        )
        robust = robustness_text(f)
        why = (
            html.escape(f.reason)
            + (f'<ul class="parts">{parts}</ul>' if parts else "")
            + (
                f'<div class="robustness{" fragile" if f.fragile else ""}">{html.escape(robust)}</div>'
                if robust
                else ""
            )
        )
        fragile = '<br><span class="fragile">fragile</span>' if f.fragile else ""
        rows.append(
            f'<tr><td>{f.claim}</td><td>{html.escape(f.statement)}</td><td class="verdict '
            f'{_css_class(f.verdict)}">{f.verdict}{fragile}</td>'
            f"<td>{why}</td><td>{links}</td></tr>"
        )
    numbers = "".join(
        f"<h4>{f.claim}</h4><pre>{html.escape(json.dumps(json_safe(f.numbers), indent=1, ensure_ascii=False))}</pre>"
        for f in findings.findings
        if f.numbers
    )
    rationale, defaults = Thresholds.rationale(), Thresholds.defaults()
    thresholds = "".join(
        f"<tr><td>{k}</td><td>{v:g}</td><td>{defaults[k]:g}</td><td>{html.escape(rationale[k])}</td></tr>"
        for k, v in findings.thresholds.to_dict().items()
    )
    return f"""<h2 id="findings">Findings</h2>
<p>Each claim of the paper that this study's units can test, with the numbers behind it and a verdict:
supported, not supported, or not testable here (with the reason). Verdicts come from the stored results
({findings.units_done} of {findings.units_planned} units done) and the thresholds below; relative accuracy
is the stitched accuracy divided by the end network's own accuracy; a missing cell never counts as
supporting a claim. Also in <a href="findings.json">findings.json</a>.</p>
<table class="findings"><thead><tr><th>claim</th><th>statement</th><th>verdict</th><th>why</th>
<th>rests on</th></tr></thead>
<tbody>{"".join(rows)}</tbody></table>
<details><summary>The numbers behind each verdict</summary>{numbers}</details>
<h3>Thresholds</h3>
<p>Set in the <code>[findings]</code> section of the config; they are read from the stored results only,
so changing them recomputes no unit (run the study again, or <code>stitchkit study CONFIG --findings</code>).</p>
<table class="findings"><thead><tr><th>key</th><th>value</th><th>default</th><th>meaning and rationale</th></tr></thead>
<tbody>{thresholds}</tbody></table>
"""


def write_findings_json(path: str | Path, findings: Findings, extra: dict[str, Any] | None = None) -> Path:
    path = Path(path)
    write_json_atomic(path, json_safe({**(extra or {}), **findings.to_dict()}))
    return path
