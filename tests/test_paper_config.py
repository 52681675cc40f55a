"""The paper's own setting (examples/paper_cifar10_resnet18.toml) runs end to end when its data is there.

The config is taken as it is and only its *sizes* are scaled down (width, epochs, seeds, ranks, sample
counts); everything that decides what runs stays the paper's: CIFAR-10, the rc2c_pre stitching layer,
reference and self pairs, DM and TLM, energy detectors fine-tuned on CIFAR-5M with the 300K random
images as outliers, SVHN as the sanity set, the sensitivity and specificity tests at layer3.1. The data
are tiny random files in the real formats, in a data root of their own (nothing is downloaded).
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

from test_data import write_cifar5m, write_cifar10, write_oe, write_svhn

from stitchkit.study import Store, run_study
from stitchkit.study.config import toml_value
from stitchkit.study.findings import study_findings
from stitchkit.study.report import write_report
from stitchkit.study.runner import STORE_NAME

PAPER = Path(__file__).parent.parent / "examples" / "paper_cifar10_resnet18.toml"

# key → the smaller value; nothing else of the paper's config changes
SIZES = {
    ("study", "workers"): 0,
    ("study", "device"): "cpu",
    ("networks", "options"): {"width": 4},
    ("networks", "seeds"): [0, 1],
    ("networks", "epochs"): 1,
    ("networks", "batch_size"): 16,
    ("layers", "front"): ["layer1.1", "layer3.1", "layer4.1"],
    ("layers", "end"): ["layer1.1", "layer3.1", "layer4.1"],
    ("stitching", "epochs"): 1,
    ("stitching", "batch_size"): 16,
    ("similarity", "n_samples"): 24,
    ("ood", "detector_options"): {"width": 2},
    ("ood", "pretrain_epochs"): 1,
    ("ood", "finetune_epochs"): 1,
    ("ood", "batch_size"): 16,
    ("probes", "ranks"): [4, 2, 1],
    ("probes", "epochs"): 1,
    ("sensitivity", "ranks"): [4, 2, 1],
}


def scaled_paper_config(path: Path, data_root: Path) -> dict:
    config = tomllib.loads(PAPER.read_text())
    for (section, key), value in SIZES.items():
        config.setdefault(section, {})[key] = value
    config["study"]["data_root"] = str(data_root)
    path.write_text(
        "\n".join(
            f"[{section}]\n" + "\n".join(f"{k} = {toml_value(v)}" for k, v in keys.items()) + "\n"
            for section, keys in config.items()
        )
    )
    return config


def test_the_paper_setting_runs_end_to_end_on_its_own_data(tmp_path):
    root = tmp_path / "data"
    root.mkdir()
    write_cifar10(root, n_per_batch=16, n_test=40)
    write_cifar5m(root)
    write_oe(root, n=40)
    write_svhn(root, n=24)
    original = tomllib.loads(PAPER.read_text())
    config = scaled_paper_config(tmp_path / "paper.toml", root)
    unchanged = [(s, k) for s, keys in original.items() for k in keys if (s, k) not in SIZES]
    assert (
        ("stitching", "type") in unchanged and ("ood", "finetune_id") in unchanged and ("ood", "outliers") in unchanged
    )
    assert all(config[s][k] == original[s][k] for s, k in unchanged)

    summary = run_study(tmp_path / "paper.toml", tmp_path / "study", progress=False)
    assert summary.counts["failed"] == 0 and summary.counts["pending"] == 0 and summary.counts["done"] > 0
    kinds = set(summary.seconds_by_kind)
    assert {"train", "stitch", "detectors", "ood", "similarity", "probes", "sensitivity", "specificity"} <= kinds

    report = write_report(tmp_path / "study").parent
    text = (report / "index.html").read_text()
    assert "Findings" in text
    with Store(tmp_path / "study" / STORE_NAME, readonly=True) as store:
        stitches = [r for r in store.all() if r.kind == "stitch"]
    assert {r.config["type"] for r in stitches} == {"rc2c_pre"} and {r.config["method"] for r in stitches} == {
        "dm",
        "tlm",
    }
    assert {r.deps[0] == r.deps[1] for r in stitches} == {True, False}  # reference and self pairs
    written = json.loads((report / "findings.json").read_text())
    findings, _ = study_findings(tmp_path / "paper.toml", tmp_path / "study")
    verdicts = {f.claim: f.verdict for f in findings.findings}
    assert {f["claim"]: f["verdict"] for f in written["findings"]} == verdicts
    assert set(verdicts) >= {"C1a", "C1b", "C2", "C3", "C4", "C5", "C6"}
    assert set(verdicts.values()) <= {"supported", "not supported", "not testable"}
