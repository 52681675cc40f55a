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
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import StitchkitError
from ..results import Matrix
from ..utils.io import parquet_available, write_csv_atomic, write_parquet_atomic, write_text_atomic
from .artifact_names import artifact_stem
from .findings import CSS as FINDINGS_CSS
from .findings import Thresholds, compute_findings, render_html, write_findings_json
from .findings.ood import SANITY_TABLE, passes_sanity
from .findings.view import StitchGrid
from .ood_records import UnitFigure, score_figures
from .report_tables import CSS as TABLE_CSS
from .report_tables import html_table
from .report_text import kind_intro, kind_order, kind_title
from .report_uncertainty import interval_caption, interval_table_html, interval_width, not_above_null, spread_figure
from .seeds import across_pairs
from .store import UnitRecord
from .store_access import STORE_NAME, read_store
from .uncertainty import UncertaintySettings, interval_matrices, scalar_intervals, verdict_robustness
from .units import network_kinds

#: figures a unit kind draws from its own records, shown after the unit's heatmaps
UNIT_FIGURES: dict[str, Callable[[UnitRecord], list[UnitFigure]]] = {"ood": score_figures}
#: the resolution of the report's PNG figures: the page shows them at this size (fonts of 7–10 pt read at
#: 13–18 px), each linked to itself at full size
FIGURE_DPI = 130


def _heatmap(
    matrix: Matrix, png: Path, pdf: Path, alpha: float, spread: np.ndarray | None = None, spread_title: str = ""
) -> None:
    """The one heatmap of stitchkit.results; beside it a panel of each cell's uncertainty (its interval's
    width, or the given ``spread``) and × on the cells not above the permutation null, where there are any."""
    markers = not_above_null(matrix, alpha)
    if spread is None and matrix.has_interval:
        spread, spread_title = interval_width(matrix), "interval width"
    fig = matrix.plot() if spread is None and markers is None else spread_figure(matrix, spread, spread_title, markers)
    fig.savefig(png, dpi=FIGURE_DPI)
    fig.savefig(pdf)


def _write_table(rows: list[dict[str, Any]], path_csv: Path) -> str | None:
    """CSV, and Parquet beside it when pyarrow is installed."""
    write_csv_atomic(path_csv, rows)
    if not parquet_available():
        return None
    parquet = path_csv.with_suffix(".parquet")
    write_parquet_atomic(parquet, rows)
    return parquet.name


def _base_rows(records: list[UnitRecord], study_dir: Path, settings: UncertaintySettings) -> list[dict[str, Any]]:
    rows = []
    for r in records:
        if r.kind in network_kinds() and r.status == "done":
            bounds = scalar_intervals(study_dir, r, settings).get("test_acc")  # from the unit's per-image hits
            interval = {"test accuracy (lower)": bounds[0], "test accuracy (upper)": bounds[1]} if bounds else {}
            rows.append(
                {
                    "network": r.label.split(" ", 1)[1],
                    "test accuracy": r.metrics.get("test_acc"),
                    **interval,
                    "top-5": r.metrics.get("test_top5"),
                    "seconds": r.seconds,
                    "content hash": r.model_hashes.get("network"),
                }
            )
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


def _figure_html(
    stem: str, title: str, png: Path, table_stem: str | None, caption: str | None, *, wide: bool = False
) -> str:
    """A report figure: the embedded PNG (linked to itself at full size), its title, how to read it, and
    links to its PDF and its data's CSV where they exist; ``wide`` figures (many panels) take the page's width."""
    text = html.escape(title) + (f". {html.escape(caption)}" if caption else "")
    links = [f'<a href="figures/{png.name}">full size</a>']
    if png.with_suffix(".pdf").is_file():
        links.append(f'<a href="figures/{png.stem}.pdf">PDF</a>')
    if table_stem is not None:
        links.append(f'<a href="tables/{table_stem}.csv">CSV</a>')
    return (
        f'<figure id="{stem}"{" class=wide" if wide else ""}><a href="figures/{png.name}"><img '
        f'alt="{html.escape(title)}" '
        f'src="{_embedded_png(png)}"></a><figcaption>{text} ({", ".join(links)})</figcaption></figure>'
    )


def _matrix_html(
    title: str,
    stem: str,
    entry: dict[str, Any],
    out: Path,
    exports: list[str],
    alpha: float,
    spread: np.ndarray | None = None,
    spread_title: str = "",
) -> tuple[str, str]:
    """A matrix's heatmap (with its uncertainty, where it has any) and its CSV (with the bound columns): the
    figure's HTML, and that of its values' table (folded away; empty without intervals or p-values)."""
    matrix = Matrix.from_dict(entry, name=title)
    png, pdf = out / "figures" / f"{stem}.png", out / "figures" / f"{stem}.pdf"
    _heatmap(matrix, png, pdf, alpha, spread, spread_title)
    rows = [
        {"front \\ end": row[matrix.corner], **{k: v for k, v in row.items() if k != matrix.corner}}
        for row in matrix.table_rows()
    ]
    _write_table(rows, out / "tables" / f"{stem}.csv")
    exports.append(f"{stem}.csv")
    caption = "; ".join(filter(None, [entry.get("caption"), interval_caption(matrix, alpha)]))
    wide = spread is not None or matrix.has_interval
    table = interval_table_html(matrix) if matrix.has_interval or matrix.p_value is not None else ""
    return _figure_html(stem, title, png, stem, caption or None, wide=wide), table


def _unit_section(
    r: UnitRecord,
    study_dir: Path,
    out: Path,
    exports: list[str],
    settings: UncertaintySettings,
    thresholds: Thresholds,
    shown: dict[str, str],
) -> str:
    """A unit's heatmaps (with the intervals its per-sample statistics give; a stitch grid's relative accuracy
    beside its accuracy), tables (those not ``shown`` before) and own figures (written to ``figures/`` and
    ``tables/``), as HTML."""
    alpha = thresholds.alpha
    parts = [f"<h3>{html.escape(r.label)}</h3>"]
    relative = _relative_accuracy(r)
    for mname, matrix in interval_matrices(study_dir, r, settings).items():
        relative_bounds = matrix.pop("relative", {})
        figure, table = _matrix_html(
            f"{r.label}: {mname}", artifact_stem(r.kind, r.label, mname), matrix, out, exports, alpha
        )
        if relative is not None and mname == relative[0]:  # beside the absolute accuracy it is computed from
            name = f"{mname.removesuffix(' accuracy')} relative accuracy"
            bounded = {**relative[1], **relative_bounds}
            figure += _matrix_html(
                f"{r.label}: {name}", artifact_stem(r.kind, r.label, name), bounded, out, exports, alpha
            )[0]
        parts.append(figure + table)
    for extra in UNIT_FIGURES.get(r.kind, lambda record: [])(r):
        stem = artifact_stem(r.kind, r.label, extra.name)
        png = out / "figures" / f"{stem}.png"
        extra.figure.savefig(png, dpi=FIGURE_DPI)
        extra.figure.savefig(out / "figures" / f"{stem}.pdf")
        parts.append(
            _figure_html(
                stem,
                f"{r.label}: {extra.name}",
                png,
                artifact_stem(r.kind, r.label, extra.table),
                extra.caption,
                wide=True,
            )
        )
    for tname, rows in (r.metrics.get("tables") or {}).items():
        stem = artifact_stem(r.kind, r.label, tname)
        _write_table(rows, out / "tables" / f"{stem}.csv")
        exports.append(f"{stem}.csv")
        parts.append(_unit_table(r, tname, rows, shown, thresholds))
    for aname, rel in (
        r.artifacts or {}
    ).items():  # figures a unit drew itself (the sensitivity and specificity tests' plots)
        if str(rel).endswith(".png"):
            src = study_dir / "units" / f"{r.kind}-{r.id}" / rel
            if src.is_file():
                stem = artifact_stem(r.kind, r.label, aname)
                shutil.copyfile(src, out / "figures" / f"{stem}.png")
                parts.append(
                    _figure_html(stem, f"{r.label}: {aname}", out / "figures" / f"{stem}.png", None, None, wide=True)
                )
    return "\n".join(parts)


def _unit_table(
    r: UnitRecord, name: str, rows: list[dict[str, Any]], shown: dict[str, str], thresholds: Thresholds
) -> str:
    """A unit's table as HTML: once (a table equal to one shown before, e.g. the sanity check of the end
    network two OOD units share, links to it), with the sanity check's failures marked."""
    stem = artifact_stem(r.kind, r.label, name)
    key = json.dumps([name, rows], sort_keys=True, default=str)
    if key in shown:
        return f'<p id="{stem}">{html.escape(name)}: the same table as <a href="#{shown[key]}">above</a>.</p>'
    shown[key] = stem
    heading = f'<h4 id="{stem}">{html.escape(name)}</h4>'
    if name.startswith(SANITY_TABLE):
        marked = [{**row, "passes": passes_sanity(row, thresholds.detector_sanity)} for row in rows]
        failing = sum(not row["passes"] for row in marked)
        note = (
            (
                f"<p>{failing} of {len(marked)} rows fail the check (red: AUROC below detector_sanity = "
                f"{thresholds.detector_sanity:g}); "
                "the findings do not use a detector on a layer where it fails.</p>"
            )
            if failing
            else ""
        )
        return heading + note + html_table(marked, lambda row: None if row["passes"] else "fail")
    return heading + html_table(rows)


def _relative_accuracy(r: UnitRecord) -> tuple[str, dict[str, Any]] | None:
    """A stitch unit's relative accuracy matrix (stitched / the end network's own accuracy, as the findings
    read it: :class:`~.findings.view.StitchGrid`) and the name of the accuracy matrix it comes from; None for other
    units."""
    if r.kind != "stitch" or r.status != "done":
        return None
    grid = StitchGrid.of(r)
    if grid.accuracy is None:
        return None
    values = [[float(v) if np.isfinite(v) else None for v in row] for row in grid.accuracy.values]
    caption = (
        f"The stitched accuracy divided by the end network's own accuracy ({grid.end_accuracy:.3f}): 1 = as accurate "
        f"as the end "
        "network (white), blue below, red above"
    )
    return f"{grid.title} accuracy", {
        "rows": list(grid.accuracy.rows),
        "cols": list(grid.accuracy.cols),
        "values": values,
        "kind": "ratio",
        "range": [0, None],
        "caption": caption,
    }


def _seeds_section(records: list[UnitRecord], out: Path, exports: list[str], alpha: float) -> str:
    """Seeds as a source of variance: each stitch and similarity matrix kind's mean across the network
    pairs with its standard deviation beside it, and a table (none with fewer than three networks)."""
    spreads = across_pairs(records)
    if not spreads:
        return ""
    parts = [
        '<h2 id="seeds">Across network pairs (seeds)</h2><p>Per cell, the mean and the standard deviation across the '
        "network pairs of each matrix kind: how much a number depends on which trained networks were compared.</p>"
    ]
    for spread in spreads:
        stem = artifact_stem("seeds", spread.kind, spread.title)
        parts.append(
            "".join(
                _matrix_html(
                    spread.title, stem, spread.mean_matrix(), out, exports, alpha, spread.std, "standard deviation"
                )
            )
        )
        _write_table(spread.table_rows(), out / "tables" / f"{stem}_table.csv")
        exports.append(f"{stem}_table.csv")
        parts.append(
            f"<details><summary>{html.escape(spread.title)}: mean and standard deviation per cell</summary>"
            + html_table(spread.table_rows())
            + "</details>"
        )
    return "\n".join(parts)


def _has_results(r: UnitRecord) -> bool:
    return bool(
        r.metrics.get("matrices")
        or r.metrics.get("tables")
        or any(str(v).endswith(".png") for v in (r.artifacts or {}).values())
    )


def _status_rows(records: list[UnitRecord]) -> list[dict[str, Any]]:
    """Per kind: units done, failed and left, and the seconds they took."""
    timing: dict[str, float] = {}
    for r in records:
        if r.seconds:
            timing[r.kind] = timing.get(r.kind, 0.0) + r.seconds
    return [
        {
            "kind": k,
            "done": sum(1 for r in records if r.kind == k and r.status == "done"),
            "failed": sum(1 for r in records if r.kind == k and r.status == "failed"),
            "left": sum(1 for r in records if r.kind == k and r.status in ("pending", "running")),
            "seconds": round(timing.get(k, 0.0), 1),
        }
        for k in dict.fromkeys(r.kind for r in records)
    ]


def _notes(records: list[UnitRecord]) -> str:
    failed = [r for r in records if r.status == "failed"]
    pending = [r for r in records if r.status in ("pending", "running")]
    notes = ""
    if failed:
        notes += "<h3>Failed units</h3>" + html_table([{"unit": r.label, "error": r.error} for r in failed])
    if pending:
        notes += f"<p class=warn>{len(pending)} unit(s) are not finished; run the study again to complete them.</p>"
    return notes


def _page(
    name: str, version: str, dataset: str, n_units: int, findings_html: str, units_html: str, sections: list[str]
) -> str:
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>stitchkit study: {html.escape(name)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1240px; padding: 0 1em; color: #222; }}
{TABLE_CSS}
figure {{ display: inline-block; margin: 0.5em; vertical-align: top; max-width: 100%; }}
figure img {{ max-width: 100%; height: auto; }}
figcaption {{ font-size: 0.85em; color: #555; max-width: 640px; }} figure.wide figcaption {{ max-width: 100%; }}
p.intro {{ max-width: 60em; }} .warn {{ color: #a40; }}
{FINDINGS_CSS}
</style></head><body>
<h1>stitchkit study: {html.escape(name)}</h1>
<p>stitchkit {html.escape(str(version))}; dataset {html.escape(dataset)};
{n_units} units. Tables are exported as CSV (and Parquet where available) in <code>tables/</code>, figures as
PNG and PDF in <code>figures/</code>.</p>
{findings_html}
<h2>Units</h2><p class=intro>{html.escape(kind_intro("units"))}</p>{units_html}
{"".join(sections)}
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
    findings = verdict_robustness(
        records, study_dir, compute_findings(records, config.get("findings")), config.get("findings"), settings
    )
    write_findings_json(
        out / "findings.json",
        findings,
        {"study": (config.get("study") or {}).get("name", study_dir.name), "uncertainty": vars(settings)},
    )
    order = kind_order()
    records.sort(key=lambda r: (order.index(r.kind) if r.kind in order else len(order), r.label))
    name = (config.get("study") or {}).get("name", study_dir.name)
    sections: list[str] = []
    exports: list[str] = []
    base = _base_rows(records, study_dir, settings)
    thresholds = findings.thresholds
    if base:
        _write_table(base, out / "tables" / "base_accuracy.csv")
        exports.append("base_accuracy.csv")
        sections.append(
            f"<h2>Base networks</h2><p class=intro>{html.escape(kind_intro('base', thresholds))}</p>" + html_table(base)
        )
    current_kind = None
    shown: dict[str, str] = {}  # tables already on the page, by content: each is shown once
    for r in filter(_has_results, records):
        if r.kind != current_kind:
            intro = kind_intro(r.kind, thresholds)
            sections.append(
                f"<h2>{html.escape(kind_title(r.kind))}</h2>"
                + (f"<p class=intro>{html.escape(intro)}</p>" if intro else "")
            )
            current_kind = r.kind
        sections.append(_unit_section(r, study_dir, out, exports, settings, thresholds, shown))
    sections.append(_seeds_section(records, out, exports, findings.thresholds.alpha))
    status_rows = _status_rows(records)
    _write_table(status_rows, out / "tables" / "units.csv")
    dataset = str((config.get("study") or {}).get("dataset", "?"))
    page = _page(
        name, version, dataset, len(records), render_html(findings), html_table(status_rows) + _notes(records), sections
    )
    path = out / "index.html"
    write_text_atomic(path, page)
    return path
