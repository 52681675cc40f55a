"""The detector-budget sweep: is the energy detector's verdict on TLM's stitches an artefact of small detectors?

Each setting is the demo's study (``examples/demo.toml``: its networks, layers and stitching budget) with
another ``[ood]`` budget, run into ONE study folder: the stitch grids are units whose ids do not depend
on ``[ood]``, so they are computed once and every setting only trains its detectors and runs its OOD
tests. Similarity, probes and the two ranking tests are switched off (they do not touch C5). For each
setting it reports, from the stored unit records and the findings (criteria not tuned here):

* the detectors' cost (seconds of the detectors unit) and each detector's sanity AUROC against the
  sanity set (digits) per end layer (min – max over the layers);
* per detector, the AUROC of the accurate TLM stitches (a_tlm >= high) and of the matching DM stitches
  (a_dm >= match) on the layers where it passes its sanity check (median, min – max);
* the norm ratio of the stitched activations to the genuine ones of the accurate TLM stitches (median,
  min – max), when the OOD units record it;
* C5's verdict per detector and overall.

Settings are ``--setting key=value,...`` (repeatable); keys: width (detector base width), pretrain,
finetune (epochs), outliers (the fine-tuning outlier set), subset (detector training images). Results
are appended to ``--out`` (JSON lines) and printed as a Markdown table.

    python benchmarks/sweep_detectors.py --setting width=4,pretrain=2,finetune=2 --setting width=16,pretrain=4,finetune=4
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
from sweep_common import run_sweep, sweep_parser  # noqa: E402  (a sibling script)

DEFAULTS = dict(width=4, pretrain=2, finetune=2, outliers="natural_patches_gray", subset=5000)
OFF = ("similarity", "probes", "sensitivity", "specificity")
SHORT = {"supported": "yes", "not supported": "no", "not testable": "n/t"}


def study_config(base: Path, s: dict) -> str:
    """The base config with the setting's [ood] budget and the parts C5 does not use switched off."""
    from stitchkit.study.config import toml_value

    raw = tomllib.loads(base.read_text())
    raw["networks"]["checkpoints"] = [str((REPO / p).resolve()) for p in raw["networks"]["checkpoints"]]
    raw["stitching"]["pairs"] = "first"  # C5 uses the stitches between two networks only
    raw["ood"].update(detector_options={"width": s["width"]}, pretrain_epochs=s["pretrain"], finetune_epochs=s["finetune"],
                      outliers=s["outliers"], train_subset=s["subset"], self_pairs=False)
    for section in OFF:
        raw[section] = {"enabled": False}
    return "\n".join(f"[{section}]\n" + "".join(f"{k} = {toml_value(v)}\n" for k, v in keys.items()) for section, keys in raw.items())


def _spread(values: list[float]) -> dict | None:
    values = [v for v in values if v is not None]
    if not values:
        return None
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


def measure(s: dict, base: Path, work: Path) -> dict:
    from stitchkit.study.findings import study_findings
    from stitchkit.study.runner import STORE_NAME, prepare_study
    from stitchkit.study.store import Store

    name = "_".join(f"{k}{v}" for k, v in s.items())
    work.mkdir(parents=True, exist_ok=True)
    config = work / f"{name}.toml"
    config.write_text(study_config(base, s))
    study = work / "study"
    subprocess.run([sys.executable, "-m", "stitchkit", "study", str(config), "--out", str(study), "--no-progress", "--no-report"], check=True,
                   cwd=REPO, stdout=subprocess.DEVNULL)
    findings, _ = study_findings(config, study)
    c5 = findings["C5"]
    with Store(study / STORE_NAME, readonly=True) as store:
        records = {r.id: r for r in store.all()}
    _, _, units = prepare_study(config, study)  # this setting's units (the folder also holds the other settings')
    detectors = [records[u.id] for u in units if u.kind == "detectors"]
    oods = [records[u.id] for u in units if u.kind == "ood"]
    row: dict = {"setting": s, "detector_seconds": sum(r.seconds or 0.0 for r in detectors), "c5": c5.verdict, "c5_reason": c5.reason,
                 "sanity": {}, "detectors": {}}
    for ood in oods:
        for table_name, rows in (ood.metrics.get("tables") or {}).items():
            if table_name.startswith("detector sanity check"):
                for r in rows:
                    row["sanity"].setdefault(r["detector"], {})[r["layer"]] = r["auroc"]
    per = c5.numbers.get("per detector") or {}  # one network pair: the pair's numbers are the finding's
    norm = _norm_ratios(oods)
    for detector, numbers in per.items():
        tlm = numbers.get("TLM: accurate stitches flagged OOD") or {}
        dm = numbers.get("DM: matching stitches in-distribution") or {}
        row["detectors"][detector] = {
            "verdict": numbers.get("verdict"),
            "tlm_auroc": _spread([c["AUROC"] for c in tlm.get("cells", [])]),
            "dm_auroc": _spread([c["AUROC"] for c in dm.get("cells", [])]),
            "tlm_norm_ratio": _spread([norm.get(("tlm", c["front"], c["end"])) for c in tlm.get("cells", [])]),
        }
    return row


def _norm_ratios(oods: list) -> dict:
    """(method, front, end) → stitched / genuine mean norm, from the OOD units that record it."""
    out = {}
    for ood in oods:
        method = ood.label.split(" ")[1]  # "ood tlm <front>→<end>"
        for name, m in (ood.metrics.get("matrices") or {}).items():
            if name.startswith("norm ratio"):
                for i, r in enumerate(m["rows"]):
                    for j, c in enumerate(m["cols"]):
                        out[(method, r, c)] = m["values"][i][j]
    return out


def _fmt(spread: dict | None) -> str:
    return "–" if not spread else f"{spread['median']:.2f} ({spread['min']:.2f}–{spread['max']:.2f})"


def table(rows: list[dict]) -> str:
    head = ("| detector width | pre-train × fine-tune epochs | images | outliers | detectors s | sanity AUROC energy / Mahalanobis / k-NN "
            "(min–max over layers) | energy AUROC: accurate TLM / matching DM | k-NN AUROC: TLM / DM | Mahalanobis AUROC: TLM / DM | "
            "TLM norm ratio | C5 energy / Mah. / k-NN → overall |")
    lines = [head, "|" + "---|" * 11]
    for r in rows:
        s, d = r["setting"], r["detectors"]

        def sanity(det: str) -> str:
            values = list(r["sanity"].get(det, {}).values())
            return "–" if not values else f"{min(values):.2f}–{max(values):.2f}"

        def pair(det: str) -> str:
            return "–" if det not in d else f"{_fmt(d[det]['tlm_auroc'])} / {_fmt(d[det]['dm_auroc'])}"

        ratio = next((d[k]["tlm_norm_ratio"] for k in ("energy", "knn", "mahalanobis") if k in d and d[k]["tlm_norm_ratio"]), None)
        verdicts = " / ".join(SHORT.get(d.get(k, {}).get("verdict"), "–") for k in ("energy", "mahalanobis", "knn"))
        lines.append(f"| {s['width']} | {s['pretrain']} × {s['finetune']} | {s['subset']} | {s['outliers']} | {r['detector_seconds']:.0f} | "
                     f"{sanity('energy')} / {sanity('mahalanobis')} / {sanity('knn')} | {pair('energy')} | {pair('knn')} | {pair('mahalanobis')} | "
                     f"{_fmt(ratio)} | {verdicts} → {SHORT[r['c5']]} |")
    return "\n".join(lines)


def main() -> None:
    p = sweep_parser(__doc__, "runs/sweep_detectors/results.jsonl")
    p.add_argument("--base", default=str(REPO / "examples" / "demo.toml"), help="the study config whose networks and stitching are used")
    p.add_argument("--work", default="runs/sweep_detectors")
    args = p.parse_args()
    run_sweep(args, DEFAULTS, lambda s: measure(s, Path(args.base), Path(args.work)), table)


if __name__ == "__main__":
    main()
