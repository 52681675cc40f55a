"""The demo-scale sweep: at which (affordable) scale do the paper's effects show?

For each setting it trains (or reuses) two seeds of a CIFAR-style ResNet-18 on Fashion-MNIST, runs a
small study with the given stitching budget (DM and TLM grids, the TLM self-pairs of the first network
for claim C4), and reports what the findings section decides on, with the cost:

* DM's accuracy on the corresponding layers relative to the end network (mean and minimum), and the
  fraction of corresponding layers at >= 0.9 (claim C1a's criterion);
* TLM's relative accuracy on the corresponding layers (is it trained enough?) and on the distant
  late → early pairs (claim C2), DM's there;
* the verdicts of C1a, C1b, C2, C3 and C4 (the criteria fixed in the findings section; not tuned here);
* seconds: network training (per network), DM grid, TLM grids.

Settings are given as ``--setting key=value,...`` (repeatable), keys: width, epochs, subset (training
images of the networks), layers (blocks | stages), k (DM fit images), tlm_epochs, tlm_subset, tlm_lr,
eval (test images), self (1: also the TLM and DM grids of the first network into itself, for claim C4; 0: skip them),
tlm (0: the DM
grid only, for settings that only vary what DM sees), tlm_aug (TLM's augmentation: network = what the networks were
trained with,
none here; dataset = the dataset's default flip + crop, what TLM used before it followed the networks), tlm_sched (none,
cosine,
linear or onecycle: then stepped per optimizer step) with tlm_warmup (its warm-up fraction of the steps), nets (train:
train the two
networks; demo: the shipped ones of examples/demo.toml, which must match width 32, 2 epochs, 20,000 images). Networks
are cached under
``--cache`` by (width, epochs, subset, seed), so several settings share them. Results are appended to ``--out`` (JSON
lines) and printed as a Markdown table.

    python benchmarks/sweep_demo.py --setting width=16,epochs=2,subset=20000,layers=stages
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
from sweep_common import run_sweep, sweep_parser  # noqa: E402  (a sibling script)

DEFAULTS = dict(
    width=8,
    epochs=2,
    subset=20000,
    layers="blocks",
    k=100,
    tlm_epochs=1,
    tlm_subset=8000,
    tlm_lr=1e-2,
    tlm_batch=64,
    eval=2000,
    self=1,
    tlm=1,
    tlm_aug="network",
    tlm_sched="none",
    tlm_warmup=0.0,
    nets="train",
)
# : the networks examples/demo.toml stitches (width 32, 2 epochs of 20,000 images): ``nets=demo`` uses them instead of
# training
DEMO_NETWORKS = [REPO / "examples" / "demo_networks" / f"resnet18_w32_seed{seed}.pt" for seed in (0, 1)]
STAGES = ["layer1.1", "layer2.1", "layer3.1", "layer4.1"]


def network(cache: Path, s: dict, seed: int) -> tuple[Path, float]:
    """A trained network for the setting (cached); returns its checkpoint and the training seconds."""
    from stitchkit.training.base import TrainSettings, train_model
    from stitchkit.training.optim import OptimConfig

    if s["nets"] == "demo":
        if (s["width"], s["epochs"], s["subset"]) != (32, 2, 20000):
            raise SystemExit("nets=demo: the shipped networks are width 32, 2 epochs, 20,000 images")
        return DEMO_NETWORKS[seed], math.nan
    folder = cache / f"r18_w{s['width']}_e{s['epochs']}_n{s['subset']}_s{seed}"
    info = folder / "sweep.json"
    if info.is_file():
        return folder / "final.pt", json.loads(info.read_text())["seconds"]
    start = time.perf_counter()
    train_model(
        TrainSettings(
            model="resnet18",
            save_dir=str(folder),
            dataset="fashion",
            epochs=s["epochs"],
            batch_size=128,
            optim=OptimConfig(lr=2e-3),
            seed=seed,
            workers=0,
            save_frequency=s["epochs"],
            model_options={"width": s["width"]},
            train_subset=s["subset"],
            augment=False,
            progress=False,
            verbose=False,
            overwrite=True,
        )
    )
    seconds = time.perf_counter() - start
    info.write_text(json.dumps({"seconds": seconds}))
    return folder / "final.pt", seconds


def study_config(s: dict, checkpoints: list[Path]) -> str:
    layers = json.dumps(STAGES) if s["layers"] == "stages" else '"all"'
    return f"""
[study]
name = "sweep"
dataset = "fashion"
device = "cpu"
[networks]
checkpoints = {json.dumps([str(c) for c in checkpoints])}
[layers]
front = {layers}
end = {layers}
[stitching]
methods = {'["dm", "tlm"]' if s["tlm"] else '["dm"]'}
pairs = "{"first_and_self" if s["self"] else "first"}"
fit_samples = {s["k"]}
epochs = {s["tlm_epochs"]}
batch_size = {s["tlm_batch"]}
lr = {s["tlm_lr"]}
train_subset = {s["tlm_subset"]}
eval_samples = {s["eval"]}
augment = "{s["tlm_aug"]}"
{_schedule(s)}[similarity]
enabled = false
[ood]
enabled = false
[probes]
enabled = false
[sensitivity]
enabled = false
[specificity]
enabled = false
"""


def _schedule(s: dict) -> str:
    """TLM's schedule keys: per optimizer step when there is one (a one-epoch run has no per-epoch schedule)."""
    if s["tlm_sched"] == "none":
        return ""
    return f'scheduler = "{s["tlm_sched"]}"\nschedule_unit = "step"\nwarmup_fraction = {s["tlm_warmup"]}\n'


def measure(s: dict, cache: Path, work: Path) -> dict:
    from stitchkit.study.findings import study_findings
    from stitchkit.study.runner import STORE_NAME
    from stitchkit.study.store import Store

    nets = [network(cache, s, seed) for seed in (0, 1)]
    name = "_".join(f"{k}{v}" for k, v in s.items())
    folder = work / name
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "study.toml"
    config.write_text(study_config(s, [path for path, _ in nets]))
    subprocess.run(
        [sys.executable, "-m", "stitchkit", "study", str(config), "--out", str(folder / "study"), "--no-progress"],
        check=True,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
    )
    findings, _ = study_findings(config, folder / "study")
    with Store(folder / "study" / STORE_NAME, readonly=True) as store:
        records = store.all()
    seconds: dict[str, float] = {}
    grids = {}
    for r in records:
        if r.kind == "stitch":
            key = ("self " if r.deps[0] == r.deps[1] else "") + r.config["method"]
            seconds[key] = r.seconds or 0.0
            grids[key] = r.metrics
    row = {
        "setting": s,
        "train_seconds_per_network": sum(t for _, t in nets) / 2,
        "seconds": seconds,
        "verdicts": {f.claim: f.verdict for f in findings.findings},
    }
    for method in ("dm", "tlm"):
        if method not in grids:
            row[method] = None
            continue
        m = grids[method]
        name_ = "DM accuracy" if method == "dm" else "TLM accuracy"
        matrix = m["matrices"][name_]
        end_acc = m["end_accuracy"]
        rel = [[(v / end_acc) if v is not None else math.nan for v in row_] for row_ in matrix["values"]]
        n = len(rel)
        diag = [rel[i][i] for i in range(n)]
        gap = math.ceil(0.5 * n)
        far = [rel[i][j] for i in range(n) for j in range(n) if i - j >= gap]
        row[method] = {
            "diag_mean": sum(diag) / n,
            "diag_min": min(diag),
            "diag_match_fraction": sum(d >= 0.9 for d in diag) / n,
            "late_early_mean": sum(far) / len(far) if far else math.nan,
            "end_accuracy": end_acc,
        }
    return row


def _seconds(value: float) -> str:
    return "shipped" if value is None or math.isnan(value) else f"{value:.0f}"


def _budget_extras(s: dict) -> str:
    """TLM's augmentation and schedule where they are not the defaults (rows written before these keys existed used the
    dataset's)."""
    aug = s.get("tlm_aug", "dataset")
    extras = [] if aug == "network" else [f"aug {aug}"]
    if s.get("tlm_sched", "none") != "none":
        extras.append(f"{s['tlm_sched']}/step, warm-up {s['tlm_warmup']:g}")
    return "".join(f", {e}" for e in extras)


def table(rows: list[dict]) -> str:
    head = (
        "| width | net epochs × images | layers | K | TLM epochs × images (lr, batch) | end acc | DM diag rel (mean / "
        "min / ≥0.9) | "
        "TLM diag rel | TLM late→early rel | DM late→early rel | C1a | C1b | C2 | C3 | C4 | train s/net | DM s | TLM "
        "s (+ self) |"
    )
    lines = [head, "|" + "---|" * 18]
    short = {"supported": "yes", "not supported": "no", "not testable": "n/t"}
    for r in rows:
        s, dm, v, t = r["setting"], r["dm"], r["verdicts"], r["seconds"]
        tlm = r["tlm"]
        # the DM-only rows (tlm=0) have no TLM budget, numbers or verdicts that depend on TLM
        tlm_budget, tlm_diag, tlm_far, tlm_seconds = (
            ("–",) * 4
            if tlm is None
            else (
                f"{s['tlm_epochs']} × {s['tlm_subset']} ({s['tlm_lr']:g}, {s['tlm_batch']}{_budget_extras(s)})",
                f"{tlm['diag_mean']:.2f}",
                f"{tlm['late_early_mean']:.2f}",
                f"{t.get('tlm', 0):.0f} (+{t.get('self tlm', 0):.0f})",
            )
        )
        claims = (
            ("C1a", "C1b")
            + (() if tlm is None else ("C2", "C3"))
            + (("C4",) if tlm is not None and s.get("self", 1) else ())
        )
        verdicts = [short.get(v.get(c), "?") if c in claims else "–" for c in ("C1a", "C1b", "C2", "C3", "C4")]
        lines.append(
            f"| {s['width']} | {s['epochs']} × {s['subset']} | {s['layers']} | {s['k']} | {tlm_budget} | "
            f"{dm['end_accuracy']:.3f} | {dm['diag_mean']:.2f} / {dm['diag_min']:.2f} / "
            f"{dm['diag_match_fraction']:.2f} | {tlm_diag} | {tlm_far} | {dm['late_early_mean']:.2f} | "
            + " | ".join(verdicts)
            + f" | {_seconds(r['train_seconds_per_network'])} | {t.get('dm', 0):.0f} | {tlm_seconds} |"
        )
    return "\n".join(lines)


def main() -> None:
    p = sweep_parser(__doc__, "runs/sweep/results.jsonl")
    p.add_argument("--cache", default="runs/sweep/networks")
    p.add_argument("--work", default="runs/sweep/studies")
    args = p.parse_args()
    run_sweep(args, DEFAULTS, lambda s: measure(s, Path(args.cache), Path(args.work)), table)


if __name__ == "__main__":
    main()
