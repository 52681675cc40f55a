"""The study report: a self-contained HTML page, PNG and PDF figures, and every table as CSV (and
Parquet where pyarrow is installed), all from the store.

Units report in two generic shapes, so the report needs no knowledge of each kind:

* ``metrics["matrices"]``: ``{name: {"rows": [...], "cols": [...], "values": [[...]], "kind":
  "similarity"|"distance"|"accuracy"|"ratio", "range": [lo, hi] | None, "caption": how to read it
  (optional)}}`` — drawn as labelled heatmaps;
* ``metrics["tables"]``: ``{name: [ {column: value, …}, … ]}`` — shown as tables and exported.

A kind may also draw figures of its own records (:data:`UNIT_FIGURES`; the OOD unit's score
distributions, :func:`.ood_records.score_figures`); they follow the unit's heatmaps.
"""

from __future__ import annotations

import base64
import html
import math
import shutil
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..errors import StitchkitError
from ..results import Matrix
from ..utils.io import write_csv_atomic, write_text_atomic
from .artifact_names import artifact_stem
from .findings import CSS as FINDINGS_CSS
from .findings import compute_findings, render_html, write_findings_json
from .ood_records import UnitFigure, score_figures
from .report_uncertainty import interval_caption, interval_table_html, interval_width, not_above_null, spread_figure
from .runner import STORE_NAME, read_store
from .seeds import across_pairs
from .store import UnitRecord
from .uncertainty import UncertaintySettings, interval_matrices, scalar_intervals, verdict_robustness

KIND_ORDER = ["train", "network", "stitch", "ood", "similarity", "probes", "sensitivity", "specificity", "detectors"]
#: figures a unit kind draws from its own records, shown after the unit's heatmaps
UNIT_FIGURES: dict[str, Callable[[UnitRecord], list[UnitFigure]]] = {"ood": score_figures}


def _heatmap(matrix: Matrix, png: Path, pdf: Path, alpha: float, spread: np.ndarray | None = None, spread_title: str = "") -> None:
    """The one heatmap of stitchkit.results; beside it a panel of each cell's uncertainty (its interval's
    width, or the given ``spread``) and × on the cells not above the permutation null, where there are any."""
    markers = not_above_null(matrix, alpha)
    if spread is None and matrix.has_interval:
        spread, spread_title = interval_width(matrix), "interval width"
    fig = matrix.plot() if spread is None and markers is None else spread_figure(matrix, spread, spread_title, markers)
    fig.savefig(png, dpi=130)
    fig.savefig(pdf)


def _write_table(rows: list[dict[str, Any]], path_csv: Path) -> str | None:
    """CSV, and Parquet beside it when pyarrow is installed."""
    write_csv_atomic(path_csv, rows)
    try:
        import pyarrow as pa  # optional: Parquet beside the CSV when pyarrow is installed
        import pyarrow.parquet as pq
    except ImportError:
        return None
    table = pa.Table.from_pylist([{k: (None if v is None else str(v) if isinstance(v, (list, dict)) else v) for k, v in r.items()} for r in rows])
    parquet = path_csv.with_suffix(".parquet")
    pq.write_table(table, parquet)
    return parquet.name


def _html_table(rows: list[dict[str, Any]]) -> str:
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]

    def fmt(v: Any) -> str:
        if v is None:  # not applicable (e.g. the genuine rows' front layer), not the text "None"
            return ""
        if isinstance(v, float):
            return "nan" if math.isnan(v) else f"{v:.4g}"
        return html.escape(str(v))

    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{fmt(r.get(c, ''))}</td>" for c in columns) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _base_rows(records: list[UnitRecord], study_dir: Path, settings: UncertaintySettings) -> list[dict[str, Any]]:
    rows = []
    for r in records:
        if r.kind in ("train", "network") and r.status == "done":
            bounds = scalar_intervals(study_dir, r, settings).get("test_acc")  # from the unit's per-image hits
            interval = {"test accuracy (lower)": bounds[0], "test accuracy (upper)": bounds[1]} if bounds else {}
            rows.append({"network": r.label.split(" ", 1)[1], "test accuracy": r.metrics.get("test_acc"), **interval,
                         "top-5": r.metrics.get("test_top5"), "seconds": r.seconds, "content hash": r.model_hashes.get("network")})
    return rows


def _stored_study(study_dir: Path) -> tuple[list[UnitRecord], dict[str, Any], str]:
    """The records of the last planned config (in plan order), its config and the stitchkit version that ran it."""
    if not (study_dir / STORE_NAME).is_file():
        raise StitchkitError(f"{str(study_dir)!r} holds no study (no {STORE_NAME}); run `stitchkit study CONFIG` first")
    with read_store(study_dir) as store:
        records = store.all()
        config = store.get_meta("config", {})
        version = store.get_meta("stitchkit_version", "?")
        plan = store.get_meta("plan", None)
    if plan is not None:  # only the last config's units, in plan order; results of earlier configs stay in the store
        order = {unit_id: i for i, unit_id in enumerate(plan)}
        records = sorted((r for r in records if r.id in order), key=lambda r: order[r.id])
    return records, config, version


def _embedded_png(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()


def _figure_html(stem: str, title: str, png: Path, table_stem: str, caption: str | None, *, wide: bool = False) -> str:
    """A report figure: the embedded PNG, its title, how to read it, and links to its PDF and its data's
    CSV; ``wide`` figures (many panels) take the page's width."""
    text = html.escape(title) + (f". {html.escape(caption)}" if caption else "")
    return (f'<figure id="{stem}"{" class=wide" if wide else ""}><img alt="{html.escape(title)}" src="{_embedded_png(png)}"><figcaption>{text} '
            f'(<a href="figures/{stem}.pdf">PDF</a>, <a href="tables/{table_stem}.csv">CSV</a>)</figcaption></figure>')


def _matrix_html(title: str, stem: str, entry: dict[str, Any], out: Path, exports: list[str], alpha: float,
                 spread: np.ndarray | None = None, spread_title: str = "") -> str:
    """A matrix's heatmap (with its uncertainty, where it has any) and its CSV (with the bound columns), as HTML."""
    matrix = Matrix.from_dict(entry, name=title)
    png, pdf = out / "figures" / f"{stem}.png", out / "figures" / f"{stem}.pdf"
    _heatmap(matrix, png, pdf, alpha, spread, spread_title)
    rows = [{"front \\ end": row[matrix.corner], **{k: v for k, v in row.items() if k != matrix.corner}} for row in matrix.table_rows()]
    _write_table(rows, out / "tables" / f"{stem}.csv")
    exports.append(f"{stem}.csv")
    caption = "; ".join(filter(None, [entry.get("caption"), interval_caption(matrix, alpha)]))
    wide = spread is not None or matrix.has_interval
    table = interval_table_html(matrix) if matrix.has_interval or matrix.p_value is not None else ""
    return _figure_html(stem, title, png, stem, caption or None, wide=wide) + table


def _unit_section(r: UnitRecord, study_dir: Path, out: Path, exports: list[str], settings: UncertaintySettings, alpha: float) -> str:
    """A unit's heatmaps (with the intervals its per-sample statistics give), tables and own figures
    (written to ``figures/`` and ``tables/``), as HTML."""
    parts = [f"<h3>{html.escape(r.label)}</h3>"]
    for mname, matrix in interval_matrices(study_dir, r, settings).items():
        parts.append(_matrix_html(f"{r.label}: {mname}", artifact_stem(r.kind, r.label, mname), matrix, out, exports, alpha))
    for extra in UNIT_FIGURES.get(r.kind, lambda record: [])(r):
        stem = artifact_stem(r.kind, r.label, extra.name)
        png = out / "figures" / f"{stem}.png"
        extra.figure.savefig(png, dpi=100)
        extra.figure.savefig(out / "figures" / f"{stem}.pdf")
        parts.append(_figure_html(stem, f"{r.label}: {extra.name}", png, artifact_stem(r.kind, r.label, extra.table), extra.caption, wide=True))
    for tname, rows in (r.metrics.get("tables") or {}).items():
        stem = artifact_stem(r.kind, r.label, tname)
        _write_table(rows, out / "tables" / f"{stem}.csv")
        exports.append(f"{stem}.csv")
        parts.append(f'<h4 id="{stem}">{html.escape(tname)}</h4>' + _html_table(rows))
    for aname, rel in (r.artifacts or {}).items():  # figures a unit drew itself (e.g. the tests' plots)
        if str(rel).endswith(".png"):
            src = study_dir / "units" / f"{r.kind}-{r.id}" / rel
            if src.is_file():
                parts.append(f'<figure><img alt="{html.escape(r.label)}: {html.escape(aname)}" src="{_embedded_png(src)}"><figcaption>'
                             f'{html.escape(r.label)}: {html.escape(aname)}</figcaption></figure>')
    return "\n".join(parts)


def _seeds_section(records: list[UnitRecord], out: Path, exports: list[str], alpha: float) -> str:
    """Seeds as a source of variance: each stitch and similarity matrix kind's mean across the network
    pairs with its standard deviation beside it, and a table (none with fewer than three networks)."""
    spreads = across_pairs(records)
    if not spreads:
        return ""
    parts = ["<h2 id=\"seeds\">Across network pairs (seeds)</h2><p>Per cell, the mean and the standard deviation across the network "
             "pairs of each matrix kind: how much a number depends on which trained networks were compared.</p>"]
    for spread in spreads:
        stem = artifact_stem("seeds", spread.kind, spread.title)
        parts.append(_matrix_html(spread.title, stem, spread.mean_matrix(), out, exports, alpha, spread.std, "standard deviation"))
        _write_table(spread.table_rows(), out / "tables" / f"{stem}_table.csv")
        exports.append(f"{stem}_table.csv")
        parts.append(f"<details><summary>{html.escape(spread.title)}: mean and standard deviation per cell</summary>"
                     + _html_table(spread.table_rows()) + "</details>")
    return "\n".join(parts)


def _has_results(r: UnitRecord) -> bool:
    return bool(r.metrics.get("matrices") or r.metrics.get("tables") or any(str(v).endswith(".png") for v in (r.artifacts or {}).values()))


def _status_rows(records: list[UnitRecord]) -> list[dict[str, Any]]:
    """Per kind: units done, failed and left, and the seconds they took."""
    timing: dict[str, float] = {}
    for r in records:
        if r.seconds:
            timing[r.kind] = timing.get(r.kind, 0.0) + r.seconds
    return [{"kind": k, "done": sum(1 for r in records if r.kind == k and r.status == "done"),
             "failed": sum(1 for r in records if r.kind == k and r.status == "failed"),
             "left": sum(1 for r in records if r.kind == k and r.status in ("pending", "running")),
             "seconds": round(timing.get(k, 0.0), 1)} for k in dict.fromkeys(r.kind for r in records)]


def _notes(records: list[UnitRecord]) -> str:
    failed = [r for r in records if r.status == "failed"]
    pending = [r for r in records if r.status in ("pending", "running")]
    notes = ""
    if failed:
        notes += "<h3>Failed units</h3>" + _html_table([{"unit": r.label, "error": r.error} for r in failed])
    if pending:
        notes += f"<p class=warn>{len(pending)} unit(s) are not finished; run the study again to complete them.</p>"
    return notes


def _page(name: str, version: str, dataset: str, n_units: int, findings_html: str, units_html: str, sections: list[str]) -> str:
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>stitchkit study: {html.escape(name)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }}
table {{ border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }}
th, td {{ border: 1px solid #ccc; padding: 3px 8px; text-align: right; }}
th {{ background: #f3f3f3; }} td:first-child, th:first-child {{ text-align: left; }}
figure {{ display: inline-block; margin: 0.5em; vertical-align: top; }} img {{ max-width: 520px; }}
figcaption {{ font-size: 0.8em; color: #555; max-width: 520px; }} .warn {{ color: #a40; }}
figure.wide img, figure.wide figcaption {{ max-width: 1060px; }}
{FINDINGS_CSS}
</style></head><body>
<h1>stitchkit study: {html.escape(name)}</h1>
<p>stitchkit {html.escape(str(version))}; dataset {html.escape(dataset)};
{n_units} units. Tables are exported as CSV (and Parquet where available) in <code>tables/</code>, figures as PNG and PDF in
<code>figures/</code>.</p>
{findings_html}
<h2>Units</h2>{units_html}
{''.join(sections)}
</body></html>
"""


def write_report(study_dir: str | Path) -> Path:
    """Write ``report/index.html`` (+ figures and tables) for a study folder; returns the HTML path."""
    study_dir = Path(study_dir)
    records, config, version = _stored_study(study_dir)
    out = study_dir / "report"
    for folder in ("figures", "tables"):  # figures of units no longer planned must not linger
        shutil.rmtree(out / folder, ignore_errors=True)
        (out / folder).mkdir(parents=True, exist_ok=True)
    settings = UncertaintySettings.from_config(config)
    findings = verdict_robustness(records, study_dir, compute_findings(records, config.get("findings")), config.get("findings"), settings)
    write_findings_json(out / "findings.json", findings, {"study": (config.get("study") or {}).get("name", study_dir.name),
                                                          "uncertainty": vars(settings)})
    records.sort(key=lambda r: (KIND_ORDER.index(r.kind) if r.kind in KIND_ORDER else 99, r.label))
    name = (config.get("study") or {}).get("name", study_dir.name)
    sections: list[str] = []
    exports: list[str] = []
    base = _base_rows(records, study_dir, settings)
    if base:
        _write_table(base, out / "tables" / "base_accuracy.csv")
        exports.append("base_accuracy.csv")
        sections.append("<h2>Base networks</h2>" + _html_table(base))
    current_kind = None
    for r in filter(_has_results, records):
        if r.kind != current_kind:
            sections.append(f"<h2>{html.escape(r.kind)}</h2>")
            current_kind = r.kind
        sections.append(_unit_section(r, study_dir, out, exports, settings, findings.thresholds.alpha))
    sections.append(_seeds_section(records, out, exports, findings.thresholds.alpha))
    status_rows = _status_rows(records)
    _write_table(status_rows, out / "tables" / "units.csv")
    dataset = str((config.get("study") or {}).get("dataset", "?"))
    page = _page(name, version, dataset, len(records), render_html(findings), _html_table(status_rows) + _notes(records), sections)
    path = out / "index.html"
    write_text_atomic(path, page)
    return path
