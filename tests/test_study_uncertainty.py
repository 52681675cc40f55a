"""The study's uncertainty (issue 19): the [uncertainty] section and what it changes of the plan, intervals
computed at report time from the per-sample statistics units store (synthetic records and artifacts in
the CONTRACT formats, checked against an independent resampling of the images), the report's interval
panels, tables and CSV columns, the spread across network pairs, and each verdict's robustness."""

import csv
import json
import math
import statistics
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as sps

from stitchkit.errors import StitchkitError
from stitchkit.ood.metrics import ood_metrics
from stitchkit.sensitivity.comparisons import sensitivity_comparisons
from stitchkit.sensitivity.per_sample import sample_arrays
from stitchkit.sensitivity.report import grounding_report
from stitchkit.study import Store, validate
from stitchkit.study.config import load_config
from stitchkit.study.findings import compute_findings
from stitchkit.study.ood_records import NORM_RATIO_MATRIX
from stitchkit.study.plan import plan_study
from stitchkit.study.report import write_report
from stitchkit.study.seeds import across_pairs
from stitchkit.study.uncertainty import (
    Resamples,
    UncertaintySettings,
    interval_matrices,
    mean_samples,
    ratio_samples,
    scalar_intervals,
    verdict_robustness,
)
from stitchkit.study.units import Unit
from stitchkit.uncertainty.bootstrap import percentile_interval, resample_counts

TINY = Path(__file__).parent / "configs" / "tiny_study.toml"
LAYERS = ["l0", "l1", "l2"]
N = 120
K_FIT = 40


def resampled_indices(counts_row):
    """The images one resample draws, as indices (the independent path: resample, then compute)."""
    return np.repeat(np.arange(counts_row.size), counts_row)


def grid(values, rows=LAYERS, cols=LAYERS, kind="accuracy", value_range=(0, 1)):
    values = np.asarray(values, dtype=float)
    return {
        "rows": list(rows),
        "cols": list(cols),
        "values": [[None if math.isnan(v) else float(v) for v in row] for row in values],
        "kind": kind,
        "range": list(value_range),
    }


class Study:
    """A study store with hand-made unit records and per-sample artifacts (nothing is trained)."""

    def __init__(self, tmp_path, uncertainty=None):
        self.dir = tmp_path / "study"
        self.store = Store(self.dir / "study.sqlite")
        self.store.set_meta(
            "config", {"study": {"name": "synthetic", "dataset": "digits"}, "uncertainty": uncertainty or {}}
        )
        self.rng = np.random.default_rng(0)
        self.plan = []

    def add(self, unit, metrics, artifacts=None):
        self.store.add_planned([unit])
        self.store.mark_done(
            unit.id, {"metrics": metrics, "artifacts": {k: name for k, (name, _) in (artifacts or {}).items()}}
        )
        for name, arrays in (artifacts or {}).values():
            folder = self.dir / "units" / f"{unit.kind}-{unit.id}"
            folder.mkdir(parents=True, exist_ok=True)
            np.savez(folder / name, **arrays)
        self.plan.append(unit.id)
        self.store.set_meta("plan", self.plan)
        return unit

    def network(self, seed, hits=None):
        """A trained network's record; with ``hits``, its per-image clean hits stored as the unit stores them."""
        unit = Unit(
            "train", {"model": "resnet18", "options": {"width": 4}, "seed": seed}, (), f"train resnet18 s{seed}"
        )
        if hits is None:
            return self.add(unit, {"test_acc": 0.9})
        return self.add(
            unit,
            {"test_acc": float(hits.mean())},
            {"per_sample": ("per_sample.npz", {"hits": hits, "images": np.arange(hits.size)})},
        )

    def stitch(self, method, front, end, p_hit, p_end=0.95, n=N, fit_images=K_FIT):
        """Exactly round(p_hit · n) hits per cell (F × E) on random images, residual terms per test image and
        (``fit_images`` > 0) per fit image; the stored matrices are exactly what they give."""
        p_hit = np.asarray(p_hit, dtype=float)
        hits = np.stack([self.exact_hits(p, n) for p in p_hit.ravel()]).reshape(*p_hit.shape, n)
        num, den = self.rng.gamma(2.0, 1.0, (*p_hit.shape, n)), self.rng.gamma(4.0, 1.0, (*p_hit.shape, n))
        fit_num, fit_den = (
            self.rng.gamma(1.0, 1.0, (*p_hit.shape, fit_images)),
            self.rng.gamma(5.0, 1.0, (*p_hit.shape, fit_images)),
        )
        end_hits, front_hits = self.exact_hits(p_end, n), self.exact_hits(0.9, n)
        title = {"dm": "DM", "tlm": "TLM"}[method]
        matrices = {
            f"{title} accuracy": grid(hits.mean(-1)),
            f"{title} residual (test, pooled)": grid(num.sum(-1) / den.sum(-1), kind="distance", value_range=(0, None)),
            f"{title} residual (fit samples)": grid(
                fit_num.sum(-1) / fit_den.sum(-1) if fit_images else np.ones(p_hit.shape),
                kind="distance",
                value_range=(0, None),
            ),
        }
        names = [u.label.split(" ", 1)[1] for u in (front, end)]
        unit = Unit(
            "stitch",
            {"method": method, "front_layers": LAYERS, "end_layers": LAYERS, "seed": 0},
            (front.id, end.id),
            f"stitch {method} {names[0]}→{names[1]}",
        )
        stats = {
            "front_layers": np.array(LAYERS),
            "end_layers": np.array(LAYERS),
            "hits": hits,
            "residual_num": num,
            "residual_den": den,
            "front_hits": front_hits,
            "end_hits": end_hits,
            "images": np.arange(n, dtype=np.int64),
        }
        if fit_images:
            stats.update(fit_num=fit_num, fit_den=fit_den)
        return self.add(
            unit,
            {"matrices": matrices, "end_accuracy": float(end_hits.mean()), "front_accuracy": float(front_hits.mean())},
            {"per_sample": ("per_sample.npz", stats)},
        )

    def exact_hits(self, p, n):
        return self.rng.permutation(np.arange(n) < round(p * n)).astype(np.uint8)

    def ood(self, stitch, shift, n=N, detectors=("knn",)):
        """Genuine scores N(0, 1), stitched N(shift[i, j], 1); the AUROC matrices are what the scores give."""
        stats, matrices = {}, {}
        for d in detectors:
            auroc = np.zeros((len(LAYERS), len(LAYERS)))
            for j, end in enumerate(LAYERS):
                stats[f"genuine|{end}|{d}"] = genuine = self.rng.normal(size=n)
                stats[f"norm_genuine|{end}"] = self.rng.gamma(5.0, 1.0, n)
                for i, front in enumerate(LAYERS):
                    stats[f"stitched|{front}|{end}|{d}"] = stitched = self.rng.normal(shift[i][j], 1.0, n)
                    stats[f"norm_stitched|{front}|{end}"] = self.rng.gamma(5.0 + i, 1.0, n)
                    auroc[i, j] = ood_metrics(genuine, stitched).auroc
            matrices[f"AUROC ({d})"] = grid(auroc, kind="similarity")
        norm = np.array(
            [
                [stats[f"norm_stitched|{f}|{e}"].mean() / stats[f"norm_genuine|{e}"].mean() for e in LAYERS]
                for f in LAYERS
            ]
        )
        matrices[NORM_RATIO_MATRIX] = grid(norm, kind="ratio", value_range=(0, None))
        sanity = [{"layer": layer, "detector": d, "auroc": 0.99} for layer in LAYERS for d in detectors]
        unit = Unit(
            "ood",
            {"training_free": list(detectors), "sanity": "digits"},
            (stitch.id,),
            f"ood {stitch.label.split(' ', 1)[1]}",
        )
        return self.add(
            unit,
            {"matrices": matrices, "tables": {"detector sanity check (genuine test activations vs digits)": sanity}},
            {"scores": ("scores.npz", stats)},
        )

    def probes(self, network, p_hit, n=N):
        ranks = ["full", "2"]
        hits = {
            f"hits|{layer}|{rank}": (self.rng.random(n) < p_hit).astype(np.uint8) for layer in LAYERS for rank in ranks
        }
        values = [[hits[f"hits|{layer}|{rank}"].mean() for rank in ranks] for layer in LAYERS]
        unit = Unit("probes", {"layers": LAYERS}, (network.id,), f"probes {network.label.split(' ', 1)[1]}")
        return self.add(
            unit,
            {"matrices": {"probe accuracy": {**grid(values, cols=ranks), "row_label": "layer", "col_label": "rank"}}},
            {"per_sample": ("per_sample.npz", {**hits, "images": np.arange(n)})},
        )

    def similarity(self, a, b, values, p_values=None):
        entry = grid(values, kind="similarity")
        if p_values is not None:
            entry.update(
                lower=grid(np.asarray(values) - 0.05)["values"],
                upper=grid(np.asarray(values) + 0.05)["values"],
                p_value=grid(p_values)["values"],
                interval={
                    "method": "percentile bootstrap",
                    "resamples": 50,
                    "level": 0.95,
                    "seed": 0,
                    "permutations": 20,
                },
            )
        names = [u.label.split(" ", 1)[1] for u in (a, b)]
        return self.add(
            Unit("similarity", {"measures": ["cka"]}, (a.id, b.id), f"similarity {names[0]}↔{names[1]}"),
            {"matrices": {"cka": entry}},
        )

    def ranking(self, kind, networks, resamples, seed=0, n_test=N, keep=True):
        """A sensitivity or specificity test's record (its table from :func:`grounding_report`) and, with
        ``keep``, its per-sample file (probe hits, cka and dm_residual values on each resample)."""
        names = [u.label.split(" ", 1)[1] for u in networks]
        comparisons = sensitivity_comparisons(names, ["z"], [2, 1])
        reps = list(dict.fromkeys([c.reference for c in comparisons] + [c.candidate for c in comparisons]))
        hits = {
            rep: self.exact_hits(0.9 - 0.2 * (rep.rank is not None) - 0.15 * (rep.rank == 1), n_test) for rep in reps
        }
        scores = {rep: float(h.mean()) for rep, h in hits.items()}
        gap = np.array([abs(scores[c.reference] - scores[c.candidate]) for c in comparisons])
        # dm_residual tracks the functional difference with noise; cka a little less well
        values = {
            "dm_residual": np.clip(gap + self.rng.normal(0, 0.08, (resamples, gap.size)), 0, 1),
            "cka": np.clip(1 - gap + self.rng.normal(0, 0.1, (resamples, gap.size)), 0, 1),
        }
        report = grounding_report(kind, comparisons, scores, {m: v.mean(0).tolist() for m, v in values.items()})
        table = [
            {
                k: row[k]
                for k in ("measure", "scope", "spearman", "spearman_p", "kendall", "kendall_p", "bad_fraction", "n")
            }
            for row in report.stats
            if row["group"] == "all"
        ]
        unit = Unit(kind, {"measures": ["cka", "dm_residual"]}, tuple(u.id for u in networks), f"{kind} test")
        artifacts = (
            {"per_sample": ("per_sample.npz", sample_arrays(comparisons, scores, hits, values, seed=seed))}
            if keep
            else None
        )
        self.add(unit, {"tables": {f"{kind} test (Spearman ρ, Kendall τ, one-sided p, bad pairs)": table}}, artifacts)
        return comparisons, reps, hits, values

    def records(self):
        order = {i: k for k, i in enumerate(self.plan)}
        return sorted(self.store.all(), key=lambda r: order[r.id])


@pytest.fixture
def study(tmp_path):
    s = Study(tmp_path)
    yield s
    s.store.close()


def settings(**given):
    return UncertaintySettings.from_config({"uncertainty": given})


# -- the config and the plan ---------------------------------------------------------------------------
def test_uncertainty_defaults_and_bad_values():
    assert validate({"networks": {"seeds": [0, 1]}})["uncertainty"] == {
        "bootstrap": 1000,
        "similarity_bootstrap": 50,
        "permutations": 50,
        "level": 0.95,
        "seed": 0,
        "verdict_resamples": 200,
    }
    for given, message in (
        ({"bootstrap": -1}, "uncertainty.bootstrap must be ≥ 0"),
        ({"level": 1.0}, "uncertainty.level must be in (0, 1)"),
        ({"resamples": 3}, "unknown key uncertainty.resamples"),
    ):
        with pytest.raises(StitchkitError, match=message.replace("(", r"\(").replace(")", r"\)")):
            validate({"networks": {"seeds": [0, 1]}, "uncertainty": given})


def test_uncertainty_reruns_no_stitch_ood_or_probe_unit(tmp_path):
    """Switching the bootstrap on changes no stitch, OOD, probes or detectors unit's id (their intervals come
    from stored per-sample statistics); the similarity units carry it, and with it all off keep the ids they had."""

    def plan(extra):
        path = tmp_path / f"c{len(extra)}.toml"
        path.write_text(TINY.read_text() + extra)
        return {u.label: u for u in plan_study(load_config(path), tmp_path / "s")}

    off = plan("\n[uncertainty]\nbootstrap = 0\nsimilarity_bootstrap = 0\npermutations = 0\n")
    on = plan("\n[uncertainty]\nbootstrap = 1000\nsimilarity_bootstrap = 100\npermutations = 200\nseed = 3\n")
    assert off.keys() == on.keys()
    for label, unit in off.items():
        if unit.kind == "similarity":
            assert unit.id != on[label].id and "bootstrap" not in unit.params and on[label].params["bootstrap"] == 100
            assert on[label].params["uncertainty_seed"] == 3
        elif unit.kind != "sensitivity" and unit.kind != "specificity":
            assert unit.id == on[label].id, label
    assert any(u.kind == "stitch" for u in off.values()) and any(u.kind == "ood" for u in off.values())


# -- resampled statistics -------------------------------------------------------------------------------
def test_mean_and_ratio_samples_equal_resampling_the_images():
    rng = np.random.default_rng(1)
    values, num, den = rng.random((3, 4, 50)), rng.random((2, 50)), rng.random((2, 50)) + 0.5
    counts = resample_counts(50, 30, seed=7)
    means, ratios = mean_samples(values, counts), ratio_samples(num, den, counts)
    for b, row in enumerate(counts):
        idx = resampled_indices(row)
        np.testing.assert_allclose(means[b], values[..., idx].mean(-1))
        np.testing.assert_allclose(ratios[b], num[:, idx].sum(-1) / den[:, idx].sum(-1))
    ones = np.ones((1, 50), dtype=np.int32)  # the resample that draws every image once is the plain statistic
    np.testing.assert_allclose(mean_samples(values, ones)[0], values.mean(-1))


def test_stitch_intervals_from_per_sample_statistics(study):
    a, b = study.network(0), study.network(1)
    unit = study.stitch("dm", a, b, np.full((3, 3), 0.7))
    record = study.store.get(unit.id)
    out = interval_matrices(study.dir, record, settings(bootstrap=300, seed=5))
    stats = np.load(study.dir / "units" / f"stitch-{unit.id}" / "per_sample.npz")
    counts = resample_counts(N, 300, 5)
    idx = [resampled_indices(row) for row in counts]
    acc = np.stack([stats["hits"][..., i].mean(-1) for i in idx])
    res = np.stack([stats["residual_num"][..., i].sum(-1) / stats["residual_den"][..., i].sum(-1) for i in idx])
    for name, samples in (("DM accuracy", acc), ("DM residual (test, pooled)", res)):
        lower, upper = percentile_interval(samples, 0.95)
        np.testing.assert_allclose(np.array(out[name]["lower"], dtype=float), lower)
        np.testing.assert_allclose(np.array(out[name]["upper"], dtype=float), upper)
        assert out[name]["interval"] == {"method": "percentile bootstrap", "resamples": 300, "level": 0.95, "seed": 5}
        values = np.array(out[name]["values"], dtype=float)
        assert (np.array(out[name]["lower"]) <= values + 1e-12).all() and (
            values <= np.array(out[name]["upper"]) + 1e-12
        ).all()
    # the fit residual: the K fit images' own resamples (not the test images'), the fit held fixed and said so
    fit_idx = [resampled_indices(row) for row in resample_counts(K_FIT, 300, 5)]
    fit = np.stack([stats["fit_num"][..., i].sum(-1) / stats["fit_den"][..., i].sum(-1) for i in fit_idx])
    lower, upper = percentile_interval(fit, 0.95)
    np.testing.assert_allclose(np.array(out["DM residual (fit samples)"]["lower"], dtype=float), lower)
    np.testing.assert_allclose(np.array(out["DM residual (fit samples)"]["upper"], dtype=float), upper)
    assert "held fixed" in out["DM residual (fit samples)"]["interval"]["held_fixed"]
    old = study.stitch("dm", a, b, np.full((3, 3), 0.7), fit_images=0)  # stored before the fit terms were kept
    assert (
        "lower"
        not in interval_matrices(study.dir, study.store.get(old.id), settings(bootstrap=50))[
            "DM residual (fit samples)"
        ]
    )
    assert "lower" not in interval_matrices(study.dir, record, settings(bootstrap=0))["DM accuracy"]


def test_the_relative_accuracy_interval_resamples_the_stitch_and_the_end_network_together(study):
    a, b = study.network(0), study.network(1)
    unit = study.stitch("dm", a, b, np.full((3, 3), 0.7), p_end=0.8)
    record = study.store.get(unit.id)
    stats = np.load(study.dir / "units" / f"stitch-{unit.id}" / "per_sample.npz")
    idx = [resampled_indices(row) for row in resample_counts(N, 300, 5)]
    ratios = np.stack([stats["hits"][..., i].mean(-1) / stats["end_hits"][i].mean() for i in idx])
    lower, upper = percentile_interval(ratios, 0.95)
    out = interval_matrices(study.dir, record, settings(bootstrap=300, seed=5))["DM accuracy"]["relative"]
    np.testing.assert_allclose(np.array(out["lower"], dtype=float), lower)
    np.testing.assert_allclose(np.array(out["upper"], dtype=float), upper)
    point = stats["hits"].mean(-1) / stats["end_hits"].mean()
    assert (lower <= point + 1e-12).all() and (point <= upper + 1e-12).all()
    assert "relative" not in interval_matrices(study.dir, record, settings(bootstrap=0))["DM accuracy"]


def test_ood_and_probe_intervals(study):
    a, b = study.network(0), study.network(1)
    stitch = study.stitch("tlm", a, b, np.full((3, 3), 0.9))
    ood = study.store.get(study.ood(stitch, [[0.0, 1.0, 2.0]] * 3).id)
    out = interval_matrices(study.dir, ood, settings(bootstrap=200))
    stats = np.load(study.dir / "units" / f"ood-{ood.id}" / "scores.npz")
    counts = resample_counts(N, 200, 0)
    idx = [resampled_indices(row) for row in counts]
    expected = [
        ood_metrics(stats["genuine|l2|knn"][i], stats["stitched|l0|l2|knn"][i]).auroc for i in idx
    ]  # the same images on both sides
    lower, upper = percentile_interval(np.array(expected))
    assert out["AUROC (knn)"]["lower"][0][2] == pytest.approx(lower) and out["AUROC (knn)"]["upper"][0][
        2
    ] == pytest.approx(upper)
    norm = [stats["norm_stitched|l1|l0"][i].mean() / stats["norm_genuine|l0"][i].mean() for i in idx]
    lower, upper = percentile_interval(np.array(norm))
    assert out[NORM_RATIO_MATRIX]["lower"][1][0] == pytest.approx(lower) and out[NORM_RATIO_MATRIX]["upper"][1][
        0
    ] == pytest.approx(upper)
    probes = study.store.get(study.probes(a, 0.8).id)
    out = interval_matrices(study.dir, probes, settings(bootstrap=200))
    hits = np.load(study.dir / "units" / f"probes-{probes.id}" / "per_sample.npz")["hits|l1|2"]
    lower, upper = percentile_interval(np.array([hits[i].mean() for i in idx]))
    assert out["probe accuracy"]["lower"][1][1] == pytest.approx(lower) and out["probe accuracy"]["upper"][1][
        1
    ] == pytest.approx(upper)


def test_a_unit_without_per_sample_statistics_keeps_its_matrices(study):
    a, b = study.network(0), study.network(1)
    unit = study.add(
        Unit("stitch", {"method": "dm", "seed": 0}, (a.id, b.id), "stitch dm s0→s1"),
        {"matrices": {"DM accuracy": grid(np.eye(3))}},
    )
    assert "lower" not in interval_matrices(study.dir, study.store.get(unit.id), settings())["DM accuracy"]


def test_base_accuracy_and_the_findings_end_accuracy_get_intervals(study):
    hits = study.exact_hits(0.8, 200)
    a, b = study.network(0, hits), study.network(1)
    unit = study.stitch("dm", a, b, np.where(np.eye(3, dtype=bool), 0.9, 0.2))
    given = settings(bootstrap=300, seed=2)
    lower, upper = percentile_interval(
        np.array([hits[resampled_indices(row)].mean() for row in resample_counts(200, 300, 2)]), 0.95
    )
    assert scalar_intervals(study.dir, study.store.get(a.id), given)["test_acc"] == pytest.approx(
        (lower, upper), abs=1e-12
    )
    assert scalar_intervals(study.dir, study.store.get(b.id), given) == {}  # stored before the hits were kept
    assert scalar_intervals(study.dir, study.store.get(a.id), settings(bootstrap=0)) == {}
    end_hits = np.load(study.dir / "units" / f"stitch-{unit.id}" / "per_sample.npz")["end_hits"]
    records = study.records()
    findings = verdict_robustness(records, study.dir, compute_findings(records), None, given)
    lower, upper = percentile_interval(
        np.array([end_hits[resampled_indices(row)].mean() for row in resample_counts(N, 300, 2)]), 0.95
    )
    assert findings["C1a"].numbers["end accuracy interval"] == pytest.approx([lower, upper], abs=1e-12)
    study.store.set_meta(
        "config",
        {
            "study": {"name": "s", "dataset": "digits"},
            "uncertainty": {"bootstrap": 300, "seed": 2, "verdict_resamples": 5},
        },
    )
    rows = list(csv.DictReader((write_report(study.dir).parent / "tables" / "base_accuracy.csv").open()))
    assert (
        float(rows[0]["test accuracy (lower)"])
        <= float(rows[0]["test accuracy"])
        <= float(rows[0]["test accuracy (upper)"])
    )
    assert rows[1]["test accuracy (lower)"] == ""


# -- the verdicts' robustness ---------------------------------------------------------------------------
def c1a_hand(hits, end_hits, counts, match=0.9, most=0.75):
    """C1a by hand on every resample: the fraction of corresponding layers reaching match ≥ most."""
    out = []
    for row in counts:
        i = resampled_indices(row)
        relative = np.diagonal(hits[..., i].mean(-1)) / end_hits[i].mean()
        out.append((relative >= match).mean() >= most)
    return np.array(out)


@pytest.mark.parametrize(
    "p_diag,p_end,fragile", [(0.99, 0.9, False), (0.9, 1.0, True)]
)  # far above match; exactly at it
def test_c1a_robustness_equals_the_verdict_recomputed_by_hand(study, p_diag, p_end, fragile):
    a, b = study.network(0), study.network(1)
    unit = study.stitch("dm", a, b, np.where(np.eye(3, dtype=bool), p_diag, 0.2), p_end=p_end)
    records = study.records()
    findings = verdict_robustness(records, study.dir, compute_findings(records), None, settings(verdict_resamples=60))
    stats = np.load(study.dir / "units" / f"stitch-{unit.id}" / "per_sample.npz")
    supported = c1a_hand(stats["hits"], stats["end_hits"], resample_counts(N, 60, 0))
    same = supported if findings["C1a"].verdict == "supported" else ~supported
    assert findings["C1a"].robustness == pytest.approx(same.mean())
    assert findings["C1a"].fragile is fragile
    assert findings["C6"].robustness is None and "not resampled" in findings["C6"].robustness_note


def test_fragile_verdicts_in_the_report_and_findings_json(study):
    a, b = study.network(0), study.network(1)
    study.stitch("dm", a, b, np.where(np.eye(3, dtype=bool), 0.9, 0.2), p_end=1.0)  # exactly at match: fragile
    study.store.set_meta(
        "config",
        {"study": {"name": "s", "dataset": "digits"}, "uncertainty": {"verdict_resamples": 40, "bootstrap": 100}},
    )
    path = write_report(study.dir)
    data = json.loads((path.parent / "findings.json").read_text())
    c1a = next(f for f in data["findings"] if f["claim"] == "C1a")
    assert (
        0 <= c1a["robustness"] < 0.9
        and c1a["fragile"] is True
        and "of 40 bootstrap resamples" in c1a["robustness_note"]
    )
    c6 = next(f for f in data["findings"] if f["claim"] == "C6")
    assert c6["robustness"] is None and c6["fragile"] is False and c6["robustness_note"].startswith("not resampled")
    assert data["uncertainty"]["verdict_resamples"] == 40
    page = path.read_text()
    assert "fragile" in page and "robustness" in page


def test_c5_robustness_uses_the_same_images_for_stitches_and_scores(study):
    a, b = study.network(0), study.network(1)
    tlm = study.stitch("tlm", a, b, np.full((3, 3), 0.97))
    dm = study.stitch("dm", a, b, np.where(np.eye(3, dtype=bool), 0.97, 0.3))
    study.ood(tlm, [[3.0] * 3] * 3)  # clearly OOD
    study.ood(dm, [[0.0] * 3] * 3)  # genuine-like
    records = study.records()
    findings = verdict_robustness(records, study.dir, compute_findings(records), None, settings(verdict_resamples=20))
    assert findings["C5"].verdict == "supported" and findings["C5"].robustness == 1.0 and not findings["C5"].fragile


def c6_hand(tests, counts_test, alpha=0.05, tolerance=0.05):
    """C6 on each resample, from the resampled images directly: in both tests dm_residual's Spearman ρ is
    significantly positive and not below cka's by more than the tolerance."""
    out = []
    for b, row in enumerate(counts_test):
        idx = np.repeat(np.arange(row.size), row)
        ok = True
        for comparisons, reps, hits, values in tests:
            acc = {rep: hits[rep][idx].mean() for rep in reps}
            f = [abs(acc[c.reference] - acc[c.candidate]) for c in comparisons]
            dm = sps.spearmanr(values["dm_residual"][b], f, alternative="greater")
            cka = sps.spearmanr(1 - values["cka"][b], f).statistic
            ok &= bool(dm.statistic > 0 and dm.pvalue < alpha and dm.statistic >= cka - tolerance)
        out.append(ok)
    return np.array(out)


def c6_study(study, kept, verdict_resamples, seed):
    """Three networks' sensitivity and specificity tests that kept ``kept`` resamples; the study's C6
    robustness on ``verdict_resamples``, and whether the verdict comes out the same, by hand, on each kept one."""
    nets = [study.network(s) for s in range(3)]
    tests = [study.ranking(kind, nets, kept, seed=seed) for kind in ("sensitivity", "specificity")]
    records = study.records()
    findings = verdict_robustness(
        records, study.dir, compute_findings(records), None, settings(verdict_resamples=verdict_resamples, seed=seed)
    )
    supported = c6_hand(tests, resample_counts(N, kept, seed))
    return records, findings, (supported if findings["C6"].verdict == "supported" else ~supported)


def test_c6_robustness_equals_the_verdict_recomputed_on_the_resampled_images(study):
    _, findings, same = c6_study(study, kept=40, verdict_resamples=40, seed=3)
    assert 0 < same.mean() and findings["C6"].robustness == pytest.approx(same.mean())
    note = findings["C6"].robustness_note
    assert (
        "of 40 bootstrap resamples" in note
        and "held fixed: sensitivity test: the comparisons" in note
        and "specificity test" in note
    )


def test_c6_not_resampled_when_the_tests_kept_other_resamples_or_none(study):
    nets = [study.network(seed) for seed in range(2)]
    study.ranking("sensitivity", nets, 30, seed=1)
    study.ranking("specificity", nets, 30, seed=1, keep=False)  # run before the tests kept per-sample statistics
    records = study.records()
    findings = verdict_robustness(
        records, study.dir, compute_findings(records), None, settings(verdict_resamples=40, seed=2)
    )
    assert findings["C6"].robustness is None
    assert (
        "kept its measures' values on 30 resamples (seed 1), none of the study's 40 (seed 2)"
        in findings["C6"].robustness_note
    )
    assert "--rerun sensitivity" in findings["C6"].robustness_note
    again = verdict_robustness(
        records, study.dir, compute_findings(records), None, settings(verdict_resamples=30, seed=1)
    )
    assert again["C6"].robustness is not None and "specificity test entirely" in again["C6"].robustness_note


def test_c6_is_counted_on_the_first_resamples_the_tests_kept(study):
    """The tests keep their indices on the first similarity_bootstrap of the verdict resamples (a smaller draw
    of the same seed is the larger one's prefix): C6 is counted on those, the other claims on all."""
    assert np.array_equal(resample_counts(N, 200, 3)[:25], resample_counts(N, 25, 3))
    records, findings, same = c6_study(study, kept=25, verdict_resamples=60, seed=3)
    assert findings["C6"].robustness == pytest.approx(same.mean())
    assert (
        f"in {int(same.sum())} of 25 bootstrap resamples of the test images (the first 25 of the study's 60"
        in findings["C6"].robustness_note
    )
    fewer = verdict_robustness(
        records, study.dir, compute_findings(records), None, settings(verdict_resamples=10, seed=3)
    )
    assert fewer["C6"].robustness == pytest.approx(same[:10].mean())
    assert "of 10 bootstrap resamples" in fewer["C6"].robustness_note and "the first" not in fewer["C6"].robustness_note


# -- the report -----------------------------------------------------------------------------------------
def test_report_shows_intervals_p_values_and_bound_columns(study):
    a, b = study.network(0), study.network(1)
    study.stitch("dm", a, b, np.full((3, 3), 0.8))
    study.similarity(a, b, np.full((3, 3), 0.5), p_values=[[0.01, 0.2, 0.01]] * 3)
    study.store.set_meta(
        "config",
        {"study": {"name": "s", "dataset": "digits"}, "uncertainty": {"bootstrap": 100, "verdict_resamples": 5}},
    )
    path = write_report(study.dir)
    tables = path.parent / "tables"
    with open(next(tables.glob("stitch*DM_accuracy*.csv"))) as f:
        header = next(csv.reader(f))
    assert "l0 (lower)" in header and "l2 (upper)" in header
    with open(next(tables.glob("similarity*cka*.csv"))) as f:
        header = next(csv.reader(f))
    assert "l1 (p)" in header
    page = path.read_text()
    assert (
        "values with 95% intervals" in page
        and "permutation p-value" in page
        and "not above what unrelated representations" in page
    )


def test_report_without_bootstrap_has_no_bounds(study):
    a, b = study.network(0), study.network(1)
    study.stitch("dm", a, b, np.full((3, 3), 0.8))
    study.store.set_meta(
        "config", {"study": {"name": "s", "dataset": "digits"}, "uncertainty": {"bootstrap": 0, "verdict_resamples": 0}}
    )
    path = write_report(study.dir)
    with open(next((path.parent / "tables").glob("stitch*DM_accuracy*.csv"))) as f:
        assert not any("(lower)" in c for c in next(csv.reader(f)))
    assert "not measured" in path.read_text()


# -- seeds ----------------------------------------------------------------------------------------------
def test_spread_across_network_pairs(study):
    nets = [study.network(s) for s in range(3)]
    values = {(0, 1): np.full((3, 3), 0.5), (0, 2): np.full((3, 3), 0.7), (1, 2): np.arange(9).reshape(3, 3) / 10}
    values[(1, 2)][0, 0] = np.nan
    for (i, j), v in values.items():
        study.similarity(nets[i], nets[j], v)
    (spread,) = across_pairs(study.records())
    assert spread.name == "cka" and len(spread.pairs) == 3 and not spread.self_pairs
    for r in range(3):
        for c in range(3):
            cell = [v[r, c] for v in values.values() if np.isfinite(v[r, c])]
            assert spread.mean[r, c] == pytest.approx(statistics.fmean(cell))
            assert spread.std[r, c] == pytest.approx(statistics.stdev(cell))
    assert spread.table_rows()[0]["pairs"] == 2
    path = write_report(study.dir)
    assert "Across network pairs (seeds)" in path.read_text()


def test_no_spread_with_two_networks(study):
    a, b = study.network(0), study.network(1)
    study.similarity(a, b, np.full((3, 3), 0.5))
    study.similarity(b, a, np.full((3, 3), 0.6))
    assert across_pairs(study.records()) == []


def test_resamples_are_the_same_for_the_same_number_of_images():
    r = Resamples(20, 3)
    assert r(50) is r(50) and np.array_equal(r(50), resample_counts(50, 20, 3))
