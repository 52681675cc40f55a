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
  min – max), when the OOD units record it, and the Spearman ρ between the energy AUROC and the norm
  ratio over all TLM stitches;
* C5's verdict per detector and overall;
* the scaling check: each detector's AUROC for the end network's own test activations multiplied by c
  (c = 0.5 … 8) against the unscaled ones, per end layer — what a detector makes of activations that
  differ from genuine ones only in their norm (above ½: flagged; below ½: rated more typical).

Settings are ``--setting key=value,...`` (repeatable); keys: width (detector base width), pretrain,
finetune (epochs), outliers (the fine-tuning outlier set), subset (detector training images), aug (the detectors'
augmentation: network = as the networks were trained, none here; dataset = flip + crop, what they used before). Results
are appended to ``--out`` (JSON lines) and printed as a Markdown table.

    python benchmarks/sweep_detectors.py --setting width=4,pretrain=2,finetune=2 --setting
    width=16,pretrain=4,finetune=4
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

DEFAULTS = dict(width=4, pretrain=2, finetune=2, outliers="natural_patches_gray", subset=5000, aug="network")
OFF = ("similarity", "probes", "sensitivity", "specificity")
SHORT = {"supported": "yes", "not supported": "no", "not testable": "n/t"}


def study_config(base: Path, s: dict) -> str:
    """The base config with the setting's [ood] budget and the parts C5 does not use switched off."""
    from stitchkit.study.config import toml_value

    raw = tomllib.loads(base.read_text())
    raw["networks"]["checkpoints"] = [str((REPO / p).resolve()) for p in raw["networks"]["checkpoints"]]
    raw["stitching"]["pairs"] = "first"  # C5 uses the stitches between two networks only
    raw["ood"].update(
        detector_options={"width": s["width"]},
        pretrain_epochs=s["pretrain"],
        finetune_epochs=s["finetune"],
        outliers=s["outliers"],
        train_subset=s["subset"],
        self_pairs=False,
        augment=s["aug"],
    )
    for section in OFF:
        raw[section] = {"enabled": False}
    return "\n".join(
        f"[{section}]\n" + "".join(f"{k} = {toml_value(v)}\n" for k, v in keys.items()) for section, keys in raw.items()
    )


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
    subprocess.run(
        [sys.executable, "-m", "stitchkit", "study", str(config), "--out", str(study), "--no-progress", "--no-report"],
        check=True,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
    )
    findings, _ = study_findings(config, study)
    c5 = findings["C5"]
    with Store(study / STORE_NAME, readonly=True) as store:
        records = {r.id: r for r in store.all()}
    _, _, units = prepare_study(config, study)  # this setting's units (the folder also holds the other settings')
    detectors = [records[u.id] for u in units if u.kind == "detectors"]
    oods = [records[u.id] for u in units if u.kind == "ood"]
    row: dict = {
        "setting": s,
        "detector_seconds": sum(r.seconds or 0.0 for r in detectors),
        "c5": c5.verdict,
        "c5_reason": c5.reason,
        "sanity": {},
        "detectors": {},
    }
    for ood in oods:
        for table_name, rows in (ood.metrics.get("tables") or {}).items():
            if table_name.startswith("detector sanity check"):
                for r in rows:
                    row["sanity"].setdefault(r["detector"], {})[r["layer"]] = r["auroc"]
    per = c5.numbers.get("per detector") or {}  # one network pair: the pair's numbers are the finding's
    norm = _norm_ratios(oods)
    row["energy_norm_rho"] = _energy_norm_rho(oods, norm)
    for detector, numbers in per.items():
        tlm = numbers.get("TLM: accurate stitches flagged OOD") or {}
        dm = numbers.get("DM: matching stitches in-distribution") or {}
        row["detectors"][detector] = {
            "verdict": numbers.get("verdict"),
            "tlm_auroc": _spread([c["AUROC"] for c in tlm.get("cells", [])]),
            "dm_auroc": _spread([c["AUROC"] for c in dm.get("cells", [])]),
            "tlm_norm_ratio": _spread([norm.get(("tlm", c["front"], c["end"])) for c in tlm.get("cells", [])]),
        }
    registry = (
        study / "units" / f"detectors-{detectors[0].id}" / detectors[0].artifacts["registry"] if detectors else None
    )
    row["scaling"] = scaling_check(config, registry)
    return row


SCALES = (0.5, 1.0, 2.0, 4.0, 8.0)


def scaling_check(config: Path, registry_dir: Path | None, n: int = 1000, fit: int = 2000) -> dict:
    """{detector: {end layer: {scale: AUROC}}}: genuine test activations × c against the unscaled ones,
    for the setting's energy detectors (its detectors unit's registry) and the training-free ones (fitted on
    ``fit`` training images, as the OOD test fits them); ID positive, as the OOD test."""
    # deferred: the sweep's driver needs no torch until here
    import numpy as np
    import torch

    from stitchkit.data import get_dataset
    from stitchkit.data.loading import batches_of, sample_subset
    from stitchkit.models.layers import layered
    from stitchkit.models.loading import load_model
    from stitchkit.ood.evaluate import fit_training_free, load_layer_detectors
    from stitchkit.ood.metrics import ood_metrics
    from stitchkit.ood.registry import DetectorRegistry
    from stitchkit.study.config import load_config

    cfg = load_config(config)
    end_path = cfg["networks"]["checkpoints"][1]  # the end network of the stitches C5 reads (seed 0 → seed 1)
    end, _ = load_model(end_path)
    end.eval()
    layers = list(cfg["layers"]["end"])
    detectors = {layer: {} for layer in layers}
    if registry_dir is not None:
        registry = DetectorRegistry(registry_dir)
        for layer, det in load_layer_detectors(registry, end, layers).items():
            detectors[layer]["energy"] = det
    train = sample_subset(get_dataset(cfg["study"]["dataset"], "train", augment=False), fit, seed=0)
    for layer, fitted in fit_training_free(end, layers, train, names=cfg["ood"]["training_free"]).items():
        detectors[layer].update(fitted)
    test = sample_subset(get_dataset(cfg["study"]["dataset"], "test"), n)
    extractor = layered(end).extractor(layers)
    scores = {(layer, name, c): [] for layer in layers for name in detectors[layer] for c in SCALES}
    with torch.no_grad():
        for x, _ in batches_of(test, 250, data_path="loader"):
            acts = extractor(x)
            for layer in layers:
                for name, det in detectors[layer].items():
                    for c in SCALES:
                        scores[(layer, name, c)].append(det.predict(acts[layer] * c).float().numpy())
    out: dict = {}
    for layer in layers:
        for name in detectors[layer]:
            genuine = np.concatenate(scores[(layer, name, 1.0)])
            out.setdefault(name, {})[layer] = {
                str(c): ood_metrics(genuine, np.concatenate(scores[(layer, name, c)]), score=name).auroc for c in SCALES
            }
    return out


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


def _energy_norm_rho(oods: list, norm: dict) -> float | None:
    """Spearman ρ between the energy AUROC and the norm ratio over all TLM stitches (None without both)."""
    from scipy.stats import spearmanr  # deferred, as the other analysis imports

    tlm = next((o for o in oods if o.label.split(" ")[1] == "tlm"), None)
    auroc = (tlm.metrics.get("matrices") or {}).get("AUROC (energy)") if tlm is not None else None
    if not auroc or not norm:
        return None
    pairs = [
        (auroc["values"][i][j], norm.get(("tlm", r, c)))
        for i, r in enumerate(auroc["rows"])
        for j, c in enumerate(auroc["cols"])
    ]
    pairs = [(a, b) for a, b in pairs if a is not None and b is not None]
    return float(spearmanr([a for a, _ in pairs], [b for _, b in pairs]).statistic) if len(pairs) > 2 else None


def _rho(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def _fmt(spread: dict | None) -> str:
    return "–" if not spread else f"{spread['median']:.2f} ({spread['min']:.2f}–{spread['max']:.2f})"


def table(rows: list[dict]) -> str:
    head = (
        "| detector width | pre-train × fine-tune epochs | images | outliers | detectors s | sanity AUROC energy / "
        "Mahalanobis / k-NN "
        "(min–max over layers) | energy AUROC: accurate TLM / matching DM | k-NN AUROC: TLM / DM | Mahalanobis AUROC: "
        "TLM / DM | TLM norm ratio | ρ(energy AUROC, norm ratio) | C5 energy / Mah. / k-NN → overall |"
    )
    lines = [head, "|" + "---|" * 12]
    for r in rows:
        s, d = r["setting"], r["detectors"]

        def sanity(det: str) -> str:
            values = list(r["sanity"].get(det, {}).values())
            return "–" if not values else f"{min(values):.2f}–{max(values):.2f}"

        def pair(det: str) -> str:
            return "–" if det not in d else f"{_fmt(d[det]['tlm_auroc'])} / {_fmt(d[det]['dm_auroc'])}"

        ratio = next(
            (d[k]["tlm_norm_ratio"] for k in ("energy", "knn", "mahalanobis") if k in d and d[k]["tlm_norm_ratio"]),
            None,
        )
        verdicts = " / ".join(SHORT.get(d.get(k, {}).get("verdict"), "–") for k in ("energy", "mahalanobis", "knn"))
        aug = "" if s.get("aug", "network") == "network" else f" (aug {s['aug']})"
        lines.append(
            f"| {s['width']} | {s['pretrain']} × {s['finetune']} | {s['subset']}{aug} | {s['outliers']} | "
            f"{r['detector_seconds']:.0f} | "
            f"{sanity('energy')} / {sanity('mahalanobis')} / {sanity('knn')} | {pair('energy')} | {pair('knn')} | "
            f"{pair('mahalanobis')} | "
            f"{_fmt(ratio)} | {_rho(r.get('energy_norm_rho'))} | {verdicts} → {SHORT[r['c5']]} |"
        )
    lines += ["", scaling_table(rows)]
    return "\n".join(lines)


def scaling_table(rows: list[dict]) -> str:
    """The scaling check of each setting: per detector, the AUROC of genuine activations × c (min – max over
    the end layers). The training-free detectors do not depend on the setting: their rows come once."""
    head = (
        "| detector width | pre-train × fine-tune | images | outliers | detector | "
        + " | ".join(f"× {c:g}" for c in SCALES if c != 1.0)
        + " |"
    )
    lines = [head, "|" + "---|" * (5 + len(SCALES) - 1)]
    shown: set[str] = set()
    for r in rows:
        s = r["setting"]
        for name, per_layer in (r.get("scaling") or {}).items():
            if name != "energy" and name in shown:
                continue
            shown.add(name)
            cells = []
            for c in SCALES:
                if c == 1.0:
                    continue
                values = [v[str(c)] for v in per_layer.values()]
                cells.append(f"{min(values):.2f}–{max(values):.2f}")
            aug = "" if s.get("aug", "network") == "network" else f" (aug {s['aug']})"
            budget = (
                f"{s['width']} | {s['pretrain']} × {s['finetune']} | {s['subset']}{aug} | {s['outliers']}"
                if name == "energy"
                else "– | – | – | –"
            )
            lines.append(f"| {budget} | {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    p = sweep_parser(__doc__, "runs/sweep_detectors/results.jsonl")
    p.add_argument(
        "--base",
        default=str(REPO / "examples" / "demo.toml"),
        help="the study config whose networks and stitching are used",
    )
    p.add_argument("--work", default="runs/sweep_detectors")
    args = p.parse_args()
    run_sweep(args, DEFAULTS, lambda s: measure(s, Path(args.base), Path(args.work)), table)


if __name__ == "__main__":
    main()
