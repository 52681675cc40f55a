"""The sensitivity and specificity tests: the statistics against scipy and by hand, the test designs,
a toy sensitivity test whose ordering is known, the model-level run with stitching measures, and the
``stitchkit sensitivity`` / ``stitchkit specificity`` commands."""

import csv
import io
import json
import math
from dataclasses import replace

import numpy as np
import pytest
import torch
from scipy import stats as sps

from stitchkit.cli import main
from stitchkit.errors import StitchkitError
from stitchkit.models import get_model
from stitchkit.models.checkpoint import save_checkpoint
from stitchkit.probing import ProbeConfig, probe_activations
from stitchkit.sensitivity import (
    GroundingSettings,
    array_measure_values,
    bad_pair_fraction,
    grounding_report,
    network_names,
    rank_agreement,
    run_grounding_test,
    sensitivity_comparisons,
    specificity_comparisons,
)
from stitchkit.similarity import Rep, RepresentationBank, measure_info

D = [0.10, 0.40, 0.35, 0.80, 0.55, 0.90, 0.20, 0.70]
F = [0.01, 0.05, 0.08, 0.20, 0.06, 0.30, 0.02, 0.10]


def test_rank_statistics_equal_scipys_one_sided_tests():
    a = rank_agreement(D, F)
    s = sps.spearmanr(D, F, alternative="greater")
    k = sps.kendalltau(D, F, alternative="greater")
    assert (a.spearman, a.spearman_p) == pytest.approx((s.statistic, s.pvalue), rel=1e-12)
    assert (a.kendall, a.kendall_p) == pytest.approx((k.statistic, k.pvalue), rel=1e-12)
    # by hand: rank differences 0, 1, −2, 0, 1, 0, 0, 0 → Σd² = 6; two discordant pairs of 28
    assert a.n == 8 and a.spearman == pytest.approx(1 - 6 * 6 / (8 * 63)) and a.kendall == pytest.approx((26 - 2) / 28)
    assert a.bad_fraction == pytest.approx(2 / 28)
    # a measure that orders the pairs the wrong way round has a p-value near 1
    assert rank_agreement([-v for v in D], F).spearman_p > 0.99


def test_bad_pairs_by_hand():
    # pairs (i<j) of d = [.1 .2 .3 .4], f = [0 .2 .1 .3]: only (1, 2) is ordered the other way → 1/6
    assert bad_pair_fraction([0.1, 0.2, 0.3, 0.4], [0.0, 0.2, 0.1, 0.3]) == (pytest.approx(1 / 6), 6)
    # equal functional differences are not ordered pairs; a tie in d counts half
    assert bad_pair_fraction([0.1, 0.1, 0.3], [0.0, 0.2, 0.2]) == (pytest.approx(0.5 / 2), 2)
    assert math.isnan(bad_pair_fraction([1, 2], [0.5, 0.5])[0])
    # without ties the fraction is (1 − τ)/2
    a = rank_agreement(D, F)
    assert a.bad_fraction == pytest.approx((1 - a.kendall) / 2) and a.ordered_pairs == 28
    with pytest.raises(StitchkitError, match="one functional difference per dissimilarity"):
        rank_agreement([1, 2, 3], [1, 2])
    assert math.isnan(rank_agreement([1, 1, 1], [1, 2, 3]).spearman)  # constant: undefined, not a crash


def test_dissimilarities_come_from_the_measure_metadata():
    assert measure_info("cka").dissimilarity(0.8) == pytest.approx(0.2)
    assert measure_info("cka_debiased").dissimilarity(-0.5) == pytest.approx(1.5)
    assert measure_info("procrustes").dissimilarity(0.3) == pytest.approx(0.3)
    assert measure_info("pwcca").dissimilarity(0.25) == pytest.approx(0.25)
    assert measure_info("dm_accuracy").dissimilarity(0.9) == pytest.approx(0.1)


def test_the_test_designs():
    sens = sensitivity_comparisons(["a", "b"], ["l1"], [4, 2])
    # references: (a, l1, full), (b, l1, full); candidates: l1 of both networks at full, 4 and 2, minus the reference
    assert len(sens) == 2 * (2 * 3 - 1)
    assert all(c.reference.rank is None and c.candidate != c.reference and c.group == "l1" for c in sens)
    assert Rep("b", "l1", None) in {c.candidate for c in sens if c.reference.network == "a"}
    spec = specificity_comparisons(["a", "b", "c"], ["l1", "l2", "l3"], ["l2"])
    assert len(spec) == 3 * (9 - 1) and {c.group for c in spec} == {"l2"}
    assert len(specificity_comparisons(["a", "b"], ["l1", "l2"])) == 2 * 2 * 3
    with pytest.raises(StitchkitError, match="not among the compared layers"):
        specificity_comparisons(["a"], ["l1"], ["l9"])
    assert network_names(["runs/s0/final.pt", "runs/s1/final.pt"]) == ["s0", "s1"]
    assert network_names(["a/m1.pt", "a/m2.pt"]) == ["m1", "m2"]


def bits_representation(n, generator):
    """16 classes = 4 bits; bit j is ±a_j along feature j (a = 4, 3, 2, 1.5), then two pure-noise
    features of lower variance: the top-r principal directions carry r bits for r ≤ 4."""
    y = torch.randint(0, 16, (n,), generator=generator)
    bits = torch.stack([(y >> j) & 1 for j in range(4)], dim=1).float() * 2 - 1
    signal = bits * torch.tensor([4.0, 3.0, 2.0, 1.5])
    noise = torch.randn(n, 2, generator=generator) * torch.tensor([1.0, 0.7])
    x = torch.cat([signal, noise], dim=1) + 0.05 * torch.randn(n, 6, generator=generator)
    return x, y


def test_toy_sensitivity_test_recovers_the_known_ordering():
    g = torch.Generator().manual_seed(0)
    (xtr, ytr), (xte, yte) = bits_representation(1024, g), bits_representation(512, g)
    q, _ = torch.linalg.qr(torch.randn(6, 6, generator=g))
    nets = {"a": (xtr, xte), "b": (xtr @ q, xte @ q)}  # "b" is "a" rotated: the same function
    ranks = [5, 4, 3, 2, 1]
    scores = {}
    for name, (tr, te) in nets.items():
        report = probe_activations(
            {"z": tr}, ytr, {"z": te}, yte, ranks=[None] + ranks, config=ProbeConfig(epochs=8, lr=0.05)
        )
        for r in report.results:
            scores[Rep(name, "z", r.rank)] = r.val_acc
    for name in nets:  # the designed task: 4 bits → accuracy about 1, 1, 1/2, 1/4, 1/8 at ranks 4..1
        accs = [scores[Rep(name, "z", r)] for r in [None, 4, 3, 2, 1]]
        assert accs[0] > 0.97 and accs[1] > 0.97 and accs[2] < 0.65 and accs[3] < 0.35 and accs[4] < 0.2
        assert accs == sorted(accs, reverse=True)
    comparisons = sensitivity_comparisons(list(nets), ["z"], ranks)
    bank = RepresentationBank({name: {"z": te} for name, (_, te) in nets.items()})
    values = array_measure_values(bank, comparisons, ["cka", "procrustes", "pwcca"])
    report = grounding_report("sensitivity", comparisons, scores, values)
    for name in nets:
        cka_d = [
            measure_info("cka").dissimilarity(v)
            for c, v in zip(comparisons, values["cka"])
            if c.reference.network == "a" and c.candidate.network == name and c.candidate.rank is not None
        ]
        assert cka_d == sorted(cka_d) and cka_d[0] < cka_d[-1]  # CKA dissimilarity grows as the rank drops
    for measure in ("cka", "procrustes"):
        st = report.stat(measure)
        assert st["spearman"] > 0.8 and st["spearman_p"] < 1e-3 and st["kendall"] > 0.6 and st["bad_fraction"] < 0.2
    # CCA is invariant to invertible maps: a low-rank version is "identical" on the kept directions — it is not
    # sensitive
    assert report.stat("pwcca")["spearman"] < report.stat("cka")["spearman"]
    assert {row["scope"] for row in report.stats} == {"pooled", "mean_over_references"}


def test_probe_cache_writers_merge(tmp_path):
    from stitchkit.probing.cache import ProbeCache

    path = tmp_path / "cache.json"
    first, second = ProbeCache(path), ProbeCache(path)  # both opened before either writes
    first.put("a", {"val_acc": 0.5})
    second.put("b", {"val_acc": 0.25})
    first.save()
    second.save()
    again = ProbeCache(path)
    assert again.get("a") == 0.5 and again.get("b") == 0.25


def test_report_tables_json_and_figure(tmp_path):
    comparisons = sensitivity_comparisons(["a", "b"], ["z"], [2, 1])
    scores = {Rep(n, "z", r): acc for n in "ab" for r, acc in ((None, 0.9), (2, 0.7), (1, 0.4))}
    values = {"cka": list(np.linspace(0.99, 0.4, len(comparisons)))}
    report = grounding_report("sensitivity", comparisons, scores, values, {"dataset": "toy"})
    paths = report.write(tmp_path)
    rows = list(csv.DictReader(io.StringIO(paths["stats"].read_text())))
    assert {(r["group"], r["scope"]) for r in rows} == {
        ("z", "pooled"),
        ("z", "mean_over_references"),
        ("all", "pooled"),
        ("all", "mean_over_references"),
    }
    points = list(csv.DictReader(io.StringIO(paths["points"].read_text())))
    assert len(points) == len(comparisons) and float(points[0]["dissimilarity"]) == pytest.approx(
        1 - float(points[0]["value"])
    )
    data = json.loads(paths["json"].read_text())
    assert data["test"] == "sensitivity" and data["per_reference"]
    assert paths["figure"].read_bytes()[:4] == b"\x89PNG"
    assert "Spearman" in report.table()
    with pytest.raises(StitchkitError, match="no functional score"):
        grounding_report("sensitivity", comparisons, {}, {"cka": [0.5] * len(comparisons)})


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp("seeds")
    paths = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        model = get_model("resnet18", num_classes=10, in_channels=1, input_size=28, width=4)
        path = root / f"s{seed}" / "final.pt"
        save_checkpoint(path, model, dataset="digits", input_shape=(1, 28, 28))
        paths.append(path)
    return paths


def test_model_level_sensitivity_with_direct_matching_accuracy(checkpoints):
    from stitchkit.models.loading import load_model

    models = {p.parent.name: load_model(p)[0] for p in checkpoints}
    settings = GroundingSettings(
        measures=["cka", "dm_residual", "dm_accuracy"],
        n_samples=64,
        probe=ProbeConfig(epochs=1, batch_size=256, augment=False),
        stitch_test_samples=64,
        stitch_fit_samples=16,
        device="cpu",
        verbose=False,
        bootstrap=4,
        bootstrap_seed=2,
    )
    report = run_grounding_test("sensitivity", models, "digits", layers=["layer4.1"], ranks=[4], settings=settings)
    assert report.measures() == ["cka", "dm_residual", "dm_accuracy"]
    assert len(report.points) == 3 * 2 * (2 * 2 - 1)
    # what the pass kept per image: every probe's hits (their means are the scores) and the array measures on 4
    # resamples
    kept = report.samples
    assert kept["hits"].shape[0] == len(kept["reps"]) == 4 and kept["hits"].shape[1] > 64
    np.testing.assert_allclose(kept["hits"].mean(axis=1), kept["scores"][kept["hits_of"]], atol=1e-12)
    assert kept["values|cka"].shape == kept["values|dm_residual"].shape == (4, 6) and "values|dm_accuracy" not in kept
    assert int(kept["resamples"]) == 4 and int(kept["seed"]) == 2
    dm = [p for p in report.points if p["measure"] == "dm_accuracy"]
    assert all(0.0 <= p["value"] <= 1.0 for p in dm)
    assert report.info["probe_accuracy"] and report.info["seconds"]["stitching"] > 0
    assert report.stat("cka", "layer4.1")["n"] == 6


def test_each_network_runs_its_test_images_once_for_the_probes_and_the_measures(checkpoints):
    from stitchkit.activations import extract_activations, sample_subset
    from stitchkit.data import get_dataset
    from stitchkit.models.loading import load_model
    from stitchkit.probing import probe_model

    models = {p.parent.name: load_model(p)[0] for p in checkpoints}
    probe = ProbeConfig(epochs=1, batch_size=128, augment=False, train_subset=200)
    settings = GroundingSettings(
        measures=["cka", "procrustes"], n_samples=100, probe=probe, device="cpu", verbose=False
    )
    seen = {name: [] for name in models}
    hooks = [
        m.conv1.register_forward_hook(lambda mod, inp, out, name=name: seen[name].append(inp[0].shape[0]))
        for name, m in models.items()
    ]
    report = run_grounding_test("specificity", models, "digits", layers=["layer2.0", "layer3.0"], settings=settings)
    for h in hooks:
        h.remove()
    test = get_dataset("digits", "test")
    # the probes' training subset and every test image once (besides the one-item passes that infer layer shapes)
    assert all(sum(b for b in n if b > 1) == 200 + len(test) for n in seen.values())
    # the same numbers as the separate passes: probes on their own test pass, measures on their own extraction
    train = get_dataset("digits", "train", augment=False)
    for name, model in models.items():
        alone = probe_model(
            model, ["layer2.0", "layer3.0"], {"train": train, "test": test}, config=replace(probe, device="cpu")
        )
        for r in alone.results:
            assert report.info["probe_accuracy"][Rep(name, r.layer).label()] == pytest.approx(
                r.val_acc, abs=1.5 / len(test)
            )
    acts = {
        name: extract_activations(m, ["layer2.0", "layer3.0"], sample_subset(test, 100)).layers
        for name, m in models.items()
    }
    comparisons = specificity_comparisons(list(models), ["layer2.0", "layer3.0"])
    values = array_measure_values(RepresentationBank(acts), comparisons, ["cka", "procrustes"])
    for measure in ("cka", "procrustes"):
        assert [p["value"] for p in report.points if p["measure"] == measure] == values[measure]


def test_task_loss_matching_accuracy_of_one_comparison(checkpoints):
    from stitchkit.models.loading import load_model
    from stitchkit.sensitivity import Comparison, stitching_measure_values

    models = {p.parent.name: load_model(p)[0] for p in checkpoints}
    comparison = Comparison("layer4.1", Rep("s0", "layer4.1"), Rep("s1", "layer4.1", 4))
    settings = GroundingSettings(
        tlm_epochs=1,
        tlm_batch_size=32,
        tlm_train_samples=96,
        stitch_test_samples=32,
        stitch_fit_samples=8,
        device="cpu",
        verbose=False,
        low_rank_mode="per_batch",
    )
    values = stitching_measure_values(models, [comparison], ["tlm_accuracy", "dm_accuracy"], "digits", settings)
    assert set(values) == {"tlm_accuracy", "dm_accuracy"} and all(0.0 <= v[0] <= 1.0 for v in values.values())


def test_sensitivity_and_specificity_commands(checkpoints, tmp_path, capsys):
    common = [
        "-e",
        "1",
        "-b",
        "256",
        "--no-augment",
        "--probe-train-subset",
        "300",
        "--n-samples",
        "48",
        "-gpu",
        "-1",
        "-workers",
        "0",
        "--no-progress",
        "--quiet",
    ]
    out = tmp_path / "sens"
    code = main(
        [
            "sensitivity",
            *map(str, checkpoints),
            "-l",
            "layer3.1",
            "-ranks",
            "8",
            "2",
            "--measures",
            "cka",
            "procrustes",
            "-o",
            str(out),
        ]
        + common
    )
    text = capsys.readouterr().out
    assert code == 0 and "sensitivity test on digits: 2 network(s)" in text and "procrustes" in text
    assert {"sensitivity_stats.csv", "sensitivity_points.csv", "sensitivity.json", "probes.json"} <= {
        p.name for p in out.iterdir()
    }
    cached = json.loads((out / "probes.json").read_text())
    assert len(cached) == 2 * 3  # two networks × (full, 8, 2)
    out2 = tmp_path / "spec"
    code = main(
        [
            "specificity",
            *map(str, checkpoints),
            "-l",
            "layer2.1",
            "layer3.1",
            "layer4.1",
            "--reference-layers",
            "layer3.1",
            "--measures",
            "cka",
            "--probe-cache",
            str(out / "probes.json"),
            "-o",
            str(out2),
            "--no-figure",
        ]
        + common
    )
    text = capsys.readouterr().out
    assert code == 0 and "[layer3.1]" in text
    data = json.loads((out2 / "specificity.json").read_text())
    assert len(data["points"]) == 2 * (6 - 1) and data["info"]["reference_layers"] == ["layer3.1"]
    assert not (out2 / "specificity.png").exists()


@pytest.mark.parametrize(
    "args,message",
    [
        (["sensitivity", "{ck}", "{ck1}", "-l", "layer3.1", "-ranks", "full"], "at least one rank"),
        (["sensitivity", "{ck}", "{ck1}", "-l", "layer7", "-ranks", "2"], "not a stitchable layer"),
        (["sensitivity", "{ck}", "{ck1}", "-l", "layer3.1", "-ranks", "2", "--n-samples", "2"], "at least 3"),
        (["specificity", "{tmp}/missing.pt"], "does not exist"),
        (["specificity", "{ck}", "{ck}", "--names", "a"], "one distinct name per checkpoint"),
        (["specificity", "{ck}", "-o", "{tmp}/afile/x"], "cannot create output folder"),
    ],
)
def test_bad_input_is_one_line_with_exit_code_2(checkpoints, args, message, tmp_path, capsys):
    (tmp_path / "afile").write_text("")
    args = [
        a.replace("{ck1}", str(checkpoints[1])).replace("{ck}", str(checkpoints[0])).replace("{tmp}", str(tmp_path))
        for a in args
    ]
    if "-o" not in args:
        args += ["-o", str(tmp_path / "o")]
    code = main(args + ["-gpu", "-1", "-workers", "0", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1
