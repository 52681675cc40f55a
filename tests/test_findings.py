"""The findings section: every claim's verdict comes out each way (supported, not supported, not
testable) on small synthetic studies — unit records written into a store, with matrices built so that
the expected verdict follows from the criteria by hand — plus the [findings] config, the report's
section and findings.json, `stitchkit study CONFIG --findings`, and one real tiny study end to end."""

import json
import math
import re
import textwrap
from pathlib import Path

import numpy as np
import pytest

from stitchkit.cli import main
from stitchkit.errors import StitchkitError
from stitchkit.study import Store, run_study, validate
from stitchkit.study.config import load_config
from stitchkit.study.findings import compute_findings
from stitchkit.study.findings.grounding import ordering_agreement
from stitchkit.study.findings.stitching import distant_gap
from stitchkit.study.ood_records import NORM_RATIO_MATRIX
from stitchkit.study.plan import plan_study
from stitchkit.study.report import write_report
from stitchkit.study.units import Unit

TINY = Path(__file__).parent / "configs" / "tiny_study.toml"
LAYERS = ["l0", "l1", "l2", "l3"]
TITLES = {"dm": "DM", "tlm": "TLM", "tlm_from_dm": "TLM from DM"}
NAN = math.nan


def matrix(values, rows=LAYERS, cols=None):
    cols = rows if cols is None else cols
    values = np.asarray(values, dtype=float)
    return {
        "rows": list(rows),
        "cols": list(cols),
        "values": [[None if math.isnan(v) else float(v) for v in row] for row in values],
        "kind": "accuracy",
        "range": [0, 1],
    }


def diagonal(on, off, n=4):
    """on the diagonal ``on``, elsewhere ``off``."""
    return np.where(np.eye(n, dtype=bool), on, off)


class Synthetic:
    """A study store with hand-made unit records (nothing is trained or computed)."""

    def __init__(self, tmp_path):
        self.dir = tmp_path / "study"
        self.store = Store(self.dir / "study.sqlite")
        self.units = []

    def add(self, unit, metrics=None, done=True, error=None):
        self.store.add_planned([unit])
        self.units.append(unit)
        if done:
            self.store.mark_done(unit.id, {"metrics": metrics or {}})
        elif error:
            self.store.mark_failed(unit.id, error)
        return unit

    def network(self, seed, model="resnet18"):
        return self.add(
            Unit("train", {"model": model, "options": {"width": 4}, "seed": seed}, (), f"train {model} s{seed}"),
            {"test_acc": 0.9},
        )

    def stitch(
        self, method, front, end, accuracy=None, end_accuracy=1.0, residual=None, rows=LAYERS, cols=None, done=True
    ):
        cols = rows if cols is None else cols
        matrices = {}
        if accuracy is not None:
            matrices[f"{TITLES[method]} accuracy"] = matrix(accuracy, rows, cols)
        if residual is not None:
            matrices[f"{TITLES[method]} residual (test, pooled)"] = matrix(residual, rows, cols)
        names = [u.label.split(" ", 1)[1] for u in (front, end)]
        unit = Unit(
            "stitch",
            {"method": method, "front_layers": list(rows), "end_layers": list(cols), "seed": 0},
            (front.id, end.id),
            f"stitch {method} {names[0]}→{names[1]}",
        )
        return self.add(unit, {"matrices": matrices, "end_accuracy": end_accuracy}, done=done)

    def ood(self, stitch, aurocs, sanity=None, training_free=("mahalanobis", "knn"), done=True, norms=None):
        """``aurocs``: detector → AUROC matrix; ``sanity``: detector → sanity AUROC of every end layer (or layer →
        AUROC);
        ``norms``: the norm-ratio matrix (stitched / genuine)."""
        tables = {}
        if sanity is not None:
            rows = []
            for detector, values in sanity.items():
                per_layer = values if isinstance(values, dict) else {layer: values for layer in LAYERS}
                rows += [
                    {"layer": layer, "detector": detector, "auroc": v, "aupr": 0.5, "fpr95": 0.5}
                    for layer, v in per_layer.items()
                ]
            tables["detector sanity check (genuine test activations vs digits)"] = rows
        unit = Unit(
            "ood",
            {"training_free": list(training_free), "sanity": "digits"},
            (stitch.id,),
            f"ood {stitch.label.split(' ', 1)[1]}",
        )
        metrics = {"matrices": {f"AUROC ({d})": matrix(v) for d, v in aurocs.items()}, "tables": tables}
        if norms is not None:
            metrics["matrices"][NORM_RATIO_MATRIX] = {**matrix(norms), "kind": "ratio", "range": [0, None]}
        return self.add(unit, metrics, done=done)

    def grounding(self, test, stats, done=True):
        """``stats``: measure → (Spearman ρ, one-sided p)."""
        rows = []
        for measure, (rho, p) in stats.items():
            rows.append(
                {
                    "measure": measure,
                    "scope": "pooled",
                    "spearman": rho,
                    "spearman_p": p,
                    "kendall": rho,
                    "kendall_p": p,
                    "bad_fraction": 0.2,
                    "n": 30,
                }
            )
            rows.append(
                {
                    "measure": measure,
                    "scope": "mean_over_references",
                    "spearman": -0.9,
                    "spearman_p": None,
                    "kendall": -0.9,
                    "kendall_p": None,
                    "bad_fraction": 0.2,
                    "n": 30,
                }
            )  # another scope: must not be read
        table = {f"{test} test (Spearman ρ, Kendall τ, one-sided p, bad pairs)": rows}
        return self.add(
            Unit(test, {"layer": "l1", "measures": list(stats)}, (), f"{test} l1"), {"tables": table}, done=done
        )

    def findings(self, **thresholds):
        return compute_findings(self.store.all(), thresholds)


@pytest.fixture
def study(tmp_path):
    s = Synthetic(tmp_path)
    yield s
    s.store.close()


@pytest.fixture
def pair(study):
    """Two networks of the same architecture."""
    return study.network(0), study.network(1)


# -- the config ------------------------------------------------------------------------------------------
def test_findings_defaults_are_the_fixed_criteria():
    assert validate({"networks": {"seeds": [0, 1]}})["findings"] == {
        "match": 0.90,
        "high": 0.90,
        "most": 0.75,
        "often": 0.5,
        "near": 1,
        "tie": 0.005,
        "far": 0.5,
        "ood_auroc": 0.75,
        "id_auroc": 0.65,
        "detector_sanity": 0.90,
        "alpha": 0.05,
        "rho_tolerance": 0.05,
        "detector_support": 0.5,
        "pair_support": 0.5,
    }


@pytest.mark.parametrize(
    "section,message",
    [
        ({"match": 0}, "findings.match must be in (0, 1]"),
        ({"most": 1.5}, "findings.most must be in (0, 1]"),
        ({"near": 0.5}, "findings.near must be an integer"),
        ({"alpha": 1}, "findings.alpha must be in (0, 1)"),
        ({"id_auroc": 0.8}, "findings.id_auroc (0.8) must not exceed findings.ood_auroc (0.75)"),
        ({"treshold": 1}, "unknown key findings.treshold"),
        ({"pair_support": 1}, "findings.pair_support must be in [0, 1)"),
        ({"detector_support": -0.1}, "findings.detector_support must be in [0, 1)"),
        ({"rho_tolerance": -0.01}, "findings.rho_tolerance must be ≥ 0"),
    ],
)
def test_bad_findings_thresholds_are_refused(section, message):
    with pytest.raises(StitchkitError) as info:
        validate({"networks": {"seeds": [0, 1]}, "findings": section})
    assert message in str(info.value)


def test_changing_the_findings_thresholds_changes_no_unit(tmp_path):
    changed = tmp_path / "changed.toml"
    changed.write_text(TINY.read_text() + "\n[findings]\nmatch = 0.5\nalpha = 0.01\nnear = 2\n")
    before = [u.id for u in plan_study(load_config(TINY), tmp_path / "a")]
    after = [u.id for u in plan_study(load_config(changed), tmp_path / "a")]
    assert before == after and load_config(changed)["findings"]["match"] == 0.5


def test_the_thresholds_decide(study, pair):
    study.stitch("dm", *pair, diagonal(0.92, 0.3))
    assert study.findings()["C1a"].verdict == "supported"
    assert study.findings(match=0.95)["C1a"].verdict == "not supported"
    assert study.findings(match=0.95)["C1a"].thresholds == {"match": 0.95, "most": 0.75, "pair_support": 0.5}


def test_index_helpers_by_hand():
    assert [distant_gap(0.5, n) for n in (1, 2, 3, 4, 8)] == [1, 1, 2, 2, 4]
    assert distant_gap(0.3, 10) == 3 and distant_gap(1, 4) == 4  # 0.3 · 10 is exactly 3
    ding = {"pwcca": 0.87, "procrustes": 0.86, "cka": 0.751}
    assert ordering_agreement({"pwcca": 0.5, "procrustes": 0.4, "cka": 0.1}, ding) == pytest.approx(1.0)
    assert ordering_agreement({"pwcca": 0.1, "procrustes": 0.4, "cka": 0.5}, ding) == pytest.approx(-1.0)
    # one adjacent swap of three: 2 concordant, 1 discordant pair → τ = 1/3
    assert ordering_agreement({"pwcca": 0.4, "procrustes": 0.5, "cka": 0.1}, ding) == pytest.approx(1 / 3)
    assert ordering_agreement({"cka": 0.1}, ding) is None


# -- C1a -------------------------------------------------------------------------------------------------
def test_c1a_supported_on_a_strong_diagonal(study, pair):
    study.stitch("dm", *pair, diagonal(0.88, 0.3), end_accuracy=0.9)  # a = 0.978 on the diagonal
    f = study.findings()["C1a"]
    assert f.verdict == "supported" and f.numbers["fraction reaching match"] == 1.0
    assert f.numbers["relative accuracy a_dm[i, i]"]["l2"] == pytest.approx(0.88 / 0.9)
    assert f.units == ["stitch dm resnet18 s0→resnet18 s1"] and f.links[0].title.endswith("DM accuracy")


def test_c1a_not_supported_on_a_flat_grid(study, pair):
    study.stitch("dm", *pair, np.full((4, 4), 0.5), end_accuracy=0.9)
    f = study.findings()["C1a"]
    assert f.verdict == "not supported" and f.numbers["fraction reaching match"] == 0.0


def test_c1a_is_relative_to_the_end_network(study, pair):
    study.stitch("dm", *pair, diagonal(0.75, 0.2), end_accuracy=0.8)  # 0.9375 of a 80% network: matches
    assert study.findings()["C1a"].verdict == "supported"


def test_c1a_needs_most_layers_and_nan_never_supports(study, pair):
    acc = diagonal(0.95, 0.2)
    acc[0, 0] = 0.5  # 3 of 4 = most
    study.stitch("dm", *pair, acc)
    assert study.findings()["C1a"].verdict == "supported"
    study.store.close()
    other = Synthetic(study.dir.parent / "other")
    nets = other.network(0), other.network(1)
    acc[1, 1] = NAN  # 2 of 4 (a NaN cell is not a match)
    other.stitch("dm", *nets, acc)
    f = other.findings()["C1a"]
    assert f.verdict == "not supported" and f.numbers["fraction reaching match"] == 0.5
    other.store.close()


@pytest.mark.parametrize(
    "setup,needle",
    [
        ("nothing", "the study has no DM grid between two different networks"),
        ("tlm only", '"dm" in stitching.methods'),
        ("self pair", "the study has no DM grid between two different networks"),
        ("other architecture", "the study has no DM grid between two different networks of the same architecture"),
        ("pending", "not computed yet (stitch dm resnet18 s0→resnet18 s1: pending"),
        ("failed", "stitch dm resnet18 s0→resnet18 s1: failed (out of memory)"),
    ],
)
def test_c1a_not_testable(study, setup, needle):
    a = study.network(0)
    b = study.network(1, model="vit_tiny") if setup == "other architecture" else study.network(1)
    grid = diagonal(0.95, 0.3)
    if setup == "tlm only":
        study.stitch("tlm", a, b, grid)
    elif setup == "self pair":
        study.stitch("dm", a, a, grid)
    elif setup == "other architecture":
        study.stitch("dm", a, b, grid)
    elif setup == "pending":
        study.stitch("dm", a, b, grid, done=False)
    elif setup == "failed":
        unit = study.stitch("dm", a, b, grid, done=False)
        study.store.mark_failed(unit.id, "out of memory")
    f = study.findings()["C1a"]
    assert f.verdict == "not testable" and needle in f.reason, f.reason


def test_every_pair_is_judged_and_a_majority_of_the_tested_pairs_decides(study, pair):
    """Three pairs: two hold, one does not → holds for 2 of 3 (> pair_support = 0.5); each pair's verdict,
    reason and numbers are listed. Two of four, a tie, is not more than half: not supported."""
    third, fourth = study.network(2), study.network(3)
    study.stitch("dm", *pair, diagonal(0.95, 0.3))
    study.stitch("dm", pair[0], third, np.full((4, 4), 0.5))
    study.stitch("dm", pair[0], fourth, diagonal(0.92, 0.3))
    f = study.findings()["C1a"]
    assert f.verdict == "supported" and f.reason.startswith(
        "holds for 2 of 3 network pairs (67%; more than 50% needed (pair_support = 0.5)): "
    )
    assert "resnet18 s0→resnet18 s2: not supported (fraction reaching match 0)" in f.reason
    assert [(p.label, p.verdict) for p in f.parts] == [
        ("resnet18 s0→resnet18 s1", "supported"),
        ("resnet18 s0→resnet18 s2", "not supported"),
        ("resnet18 s0→resnet18 s3", "supported"),
    ]
    assert f.numbers["pairs holding"] == 2 and f.numbers["pairs tested"] == 3 and f.numbers["pairs not testable"] == 0
    per_pair = f.numbers["per pair"]
    assert (
        per_pair[1]["units"] == ["stitch dm resnet18 s0→resnet18 s2"] and per_pair[1]["fraction reaching match"] == 0.0
    )
    assert per_pair[2]["relative accuracy a_dm[i, i]"]["l1"] == pytest.approx(0.92)
    assert f.units == [
        "stitch dm resnet18 s0→resnet18 s1",
        "stitch dm resnet18 s0→resnet18 s2",
        "stitch dm resnet18 s0→resnet18 s3",
    ]
    assert len(f.links) == 3
    assert study.findings(pair_support=0.7)["C1a"].verdict == "not supported"  # 2/3 is not more than 0.7
    study.stitch("dm", third, fourth, np.full((4, 4), 0.4))  # 2 of 4: a tie is not a majority
    f = study.findings()["C1a"]
    assert f.verdict == "not supported" and f.reason.startswith(
        "holds for 2 of 4 network pairs (50%; more than 50% needed (pair_support = 0.5))"
    )


def test_pairs_that_cannot_test_a_claim_are_left_out_of_the_count(study, pair):
    """C2 on two pairs: one TLM grid is undertrained (not testable), the other decides: holds for 1 of 1."""
    third = study.network(2)
    study.stitch("tlm", *pair, np.full((4, 4), 0.95))
    study.stitch("dm", *pair, diagonal(0.95, 0.3))
    study.stitch("tlm", pair[0], third, np.full((4, 4), 0.5))
    study.stitch("dm", pair[0], third, diagonal(0.95, 0.3))
    f = study.findings()["C2"]
    assert f.verdict == "supported" and f.reason.startswith("holds for 1 of 1 network pairs (1 more not testable)")
    assert [p.verdict for p in f.parts] == ["supported", "not testable"] and "budget is too small" in f.parts[1].reason
    study.store.close()
    none = Synthetic(study.dir.parent / "none")
    nets = none.network(0), none.network(1), none.network(2)
    for other in nets[1:]:
        none.stitch("tlm", nets[0], other, np.full((4, 4), 0.5))
        none.stitch("dm", nets[0], other, diagonal(0.95, 0.3))
    f = none.findings()["C2"]
    assert f.verdict == "not testable" and f.reason.startswith(
        "not testable on any of the 2 network pairs; the first: TLM does not reach"
    )
    none.store.close()


def test_c4_counts_networks_stitched_into_themselves(study, pair):
    beaten = diagonal(0.90, 0.80)
    beaten[2, 0] = beaten[3, 1] = 0.97
    study.stitch("tlm", pair[0], pair[0], beaten)
    study.stitch("tlm", pair[1], pair[1], diagonal(0.95, 0.80))
    f = study.findings()["C4"]
    assert f.verdict == "not supported" and f.reason.startswith(
        "holds for 1 of 2 networks stitched into themselves (50%; more than 50% needed (pair_support"
    )
    assert [p.label for p in f.parts] == ["resnet18 s0→resnet18 s0", "resnet18 s1→resnet18 s1"]


def test_findings_text_and_html_show_each_pair(study, pair):
    from stitchkit.study.findings import render_html, render_text

    third = study.network(2)
    study.stitch("dm", *pair, diagonal(0.95, 0.3))
    study.stitch("dm", pair[0], third, np.full((4, 4), 0.5))
    findings = study.findings()
    text = render_text(findings)
    assert (
        "       · resnet18 s0→resnet18 s2: not supported: 0 of 4 corresponding layers reach 90% of the end network's "
        "accuracy (match = 0.9)" in text
    )
    page = render_html(findings)
    assert '<ul class="parts"><li>resnet18 s0→resnet18 s1: <span class="v-supported">supported</span>: 4 of 4' in page
    data = findings.to_dict()
    assert data["findings"][0]["parts"][1] == {
        "label": "resnet18 s0→resnet18 s2",
        "verdict": "not supported",
        "reason": findings["C1a"].parts[1].reason,
    }


def test_corresponding_layers_are_the_layers_both_lists_have(study, pair):
    """front l0..l3, end l1, l3: the square sub-grid is l1, l3 (a DM that matches there is supported)."""
    acc = np.array([[0.2, 0.2], [0.95, 0.2], [0.2, 0.2], [0.2, 0.95]])
    study.stitch("dm", *pair, acc, rows=LAYERS, cols=["l1", "l3"])
    f = study.findings()["C1a"]
    assert f.verdict == "supported" and set(f.numbers["relative accuracy a_dm[i, i]"]) == {"l1", "l3"}
    study.store.close()
    other = Synthetic(study.dir.parent / "disjoint")
    nets = other.network(0), other.network(1)
    other.stitch("dm", *nets, np.full((2, 2), 0.9), rows=["l0", "l1"], cols=["l2", "l3"])
    f = other.findings()["C1a"]
    assert f.verdict == "not testable" and "no layer in common" in f.reason
    other.store.close()


# -- C1b -------------------------------------------------------------------------------------------------
def test_c1b_supported_when_the_residual_is_smallest_on_the_diagonal(study, pair):
    study.stitch("dm", *pair, diagonal(0.9, 0.3), residual=diagonal(0.1, 0.8))
    f = study.findings()["C1b"]
    assert (
        f.verdict == "supported"
        and f.numbers["fraction near"] == 1.0
        and f.links[0].title.endswith("DM residual (test, pooled)")
    )


def test_c1b_not_supported_when_the_first_layer_is_always_closest(study, pair):
    residual = np.full((4, 4), 0.8)
    residual[0, :] = 0.1  # end layers l0, l1 are within one layer of l0; l2, l3 are not: 2 of 4
    study.stitch("dm", *pair, diagonal(0.9, 0.3), residual=residual)
    f = study.findings()["C1b"]
    assert f.verdict == "not supported" and f.numbers["fraction near"] == 0.5
    assert f.numbers["front layer(s) of the smallest residual, per end layer"]["l3"] == ["l0"]
    assert study.findings(near=3)["C1b"].verdict == "supported"


def test_c1b_near_nan_and_ties(study, pair):
    residual = np.full((4, 4), 0.8)
    for j in range(4):
        residual[min(j + 1, 3), j] = 0.1  # one layer off: near with near = 1, not with near = 0
    study.stitch("dm", *pair, diagonal(0.9, 0.3), residual=residual)
    assert study.findings()["C1b"].verdict == "supported"
    assert study.findings(near=0)["C1b"].numbers["fraction near"] == 0.25  # only l3 (its own row)
    study.store.close()
    other = Synthetic(study.dir.parent / "nan")
    nets = other.network(0), other.network(1)
    residual = diagonal(0.1, 0.8)
    residual[3, 1] = NAN  # the minimum of column l1 is unknown
    residual[3, 0] = 0.1  # column l0: equal minima at l0 and l3 (l3 is far) → not near
    other.stitch("dm", *nets, diagonal(0.9, 0.3), residual=residual)
    f = other.findings()["C1b"]
    assert f.numbers["fraction near"] == 0.5 and f.verdict == "not supported"
    assert f.numbers["front layer(s) of the smallest residual, per end layer"] == {
        "l0": ["l0", "l3"],
        "l1": None,
        "l2": ["l2"],
        "l3": ["l3"],
    }
    other.store.close()


def test_c1b_not_testable(study, pair):
    assert "no DM grid" in study.findings()["C1b"].reason
    study.stitch("dm", *pair, diagonal(0.9, 0.3))  # accuracy only
    f = study.findings()["C1b"]
    assert f.verdict == "not testable" and "has no residual matrix" in f.reason


# -- C2 --------------------------------------------------------------------------------------------------
def test_c2_supported_when_tlm_is_high_on_distant_pairs_and_dm_is_not(study, pair):
    study.stitch("tlm", *pair, np.full((4, 4), 0.95))
    study.stitch("dm", *pair, diagonal(0.95, 0.3))
    f = study.findings()["C2"]
    assert f.verdict == "supported" and f.numbers["minimum index gap"] == 2
    assert [(r["front"], r["end"]) for r in f.numbers["distant pairs"]] == [("l2", "l0"), ("l3", "l0"), ("l3", "l1")]
    assert [link.title.split(": ")[1] for link in f.links] == ["TLM accuracy", "DM accuracy"]


def test_c2_not_supported_when_dm_is_high_there_too(study, pair):
    study.stitch("tlm", *pair, np.full((4, 4), 0.95))
    dm = np.full((4, 4), 0.3)
    dm[2, 0] = dm[3, 0] = dm[3, 1] = dm[0, 0] = dm[1, 1] = dm[2, 2] = dm[3, 3] = 0.95
    dm[3, 1] = 0.5  # 1 of 3 distant pairs: TLM high, DM not → 1/3 < often
    study.stitch("dm", *pair, dm)
    f = study.findings()["C2"]
    assert f.verdict == "not supported" and f.numbers["fraction"] == pytest.approx(1 / 3)


def test_c2_not_testable(study, pair):
    study.stitch("dm", *pair, diagonal(0.95, 0.3))
    assert "no TLM and DM grids of the same pair" in study.findings()["C2"].reason
    study.stitch("tlm", *pair, diagonal(0.6, 0.6))  # undertrained: not even the corresponding layers
    f = study.findings()["C2"]
    assert f.verdict == "not testable" and "its budget is too small to tell" in f.reason
    study.store.close()
    one = Synthetic(study.dir.parent / "one-layer")
    nets = one.network(0), one.network(1)
    one.stitch("tlm", *nets, [[0.95]], rows=["l0"])
    one.stitch("dm", *nets, [[0.95]], rows=["l0"])
    f = one.findings()["C2"]
    assert f.verdict == "not testable" and "no pair has front index − end index ≥ ceil(far · n) = 1" in f.reason
    one.store.close()


# -- C3 --------------------------------------------------------------------------------------------------
def test_c3_supported_when_another_front_layer_is_best(study, pair):
    tlm = np.full((4, 4), 0.93)
    tlm[3, :] = 0.99  # the last front layer is best for every end layer (l3 is its own: 3 of 4 are not)
    study.stitch("tlm", *pair, tlm)
    study.stitch("dm", *pair, diagonal(0.95, 0.3))
    f = study.findings()["C3"]
    assert f.verdict == "supported" and f.numbers["TLM fraction not corresponding"] == 0.75
    assert (
        f.numbers["DM fraction not corresponding"] == 0.0
        and f.numbers["TLM, per end layer"]["l0"]["best front layer"] == "l3"
    )


def test_c3_not_supported_when_the_corresponding_layer_is_best_or_tied(study, pair):
    tlm = diagonal(0.95, 0.5)
    tlm[3, 0] = tlm[3, 1] = tlm[3, 2] = 0.953  # within the tie: counted for the corresponding layer
    study.stitch("tlm", *pair, tlm)
    f = study.findings()["C3"]
    assert f.verdict == "not supported" and f.numbers["TLM fraction not corresponding"] == 0.0
    assert f.numbers["DM fraction not corresponding"] is None and "no DM grid of this pair" in f.reason
    assert study.findings(tie=0.001)["C3"].verdict == "supported"  # 0.003 beats a tie of 0.001


def test_c3_not_testable(study, pair):
    assert "no TLM grid between two different networks" in study.findings()["C3"].reason
    study.stitch("tlm", pair[0], pair[0], np.full((4, 4), 0.95))  # a self pair is C4's, not C3's
    assert "no TLM grid between two different networks" in study.findings()["C3"].reason
    study.stitch("tlm", *pair, np.full((4, 4), 0.5))
    f = study.findings()["C3"]
    assert f.verdict == "not testable" and "budget is too small" in f.reason


def test_c3_a_nan_corresponding_cell_decides_nothing(study, pair):
    tlm = np.full((4, 4), 0.93)
    tlm[3, :] = 0.99
    tlm[0, 0] = tlm[1, 1] = NAN  # l0, l1: a_tlm[j, j] unknown → not counted; l2 beaten; l3 its own → 1 of 4
    tlm[2, 2] = 0.95
    study.stitch("tlm", *pair, tlm)
    f = study.findings(most=0.5)["C3"]
    assert f.numbers["TLM fraction not corresponding"] == 0.25 and f.verdict == "not supported"


# -- C4 --------------------------------------------------------------------------------------------------
def test_c4_supported_when_another_layer_beats_the_layer_itself(study, pair):
    tlm = diagonal(0.90, 0.80)
    tlm[2, 0] = tlm[3, 1] = 0.97  # end layers l0, l1 are beaten by deeper layers: 2 of 4
    study.stitch("tlm", pair[0], pair[0], tlm)
    f = study.findings()["C4"]
    assert f.verdict == "supported" and f.numbers["fraction"] == 0.5
    assert f.numbers["per layer"]["l0"]["layers rated more similar"] == ["l2"] and f.units == [
        "stitch tlm resnet18 s0→resnet18 s0"
    ]


def test_c4_not_supported_when_each_layer_is_its_own_best(study, pair):
    tlm = diagonal(0.95, 0.80)
    tlm[2, 0] = 0.954  # a tie
    study.stitch("tlm", pair[0], pair[0], tlm)
    f = study.findings()["C4"]
    assert f.verdict == "not supported" and f.numbers["fraction"] == 0.0


def test_c4_not_testable_without_a_self_pair(study, pair):
    study.stitch("tlm", *pair, np.full((4, 4), 0.95))
    f = study.findings()["C4"]
    assert f.verdict == "not testable" and 'stitching.pairs = "reference_and_self"' in f.reason


# -- C5 --------------------------------------------------------------------------------------------------
def ood_study(study, pair, tlm_auroc=0.9, dm_auroc=0.55, sanity=0.95, tlm_acc=0.95, dm_acc=None, **ood):
    tlm = study.stitch("tlm", *pair, np.full((4, 4), tlm_acc))
    dm = study.stitch("dm", *pair, diagonal(0.95, 0.3) if dm_acc is None else dm_acc)
    aurocs = ood.pop("aurocs", None)
    for unit, auroc in ((tlm, tlm_auroc), (dm, dm_auroc)):
        given = aurocs or {"energy": np.full((4, 4), auroc), "mahalanobis": np.full((4, 4), 0.5)}
        study.ood(unit, given, sanity=None if sanity is None else {d: sanity for d in given}, **ood)


def test_c5_supported_when_accurate_tlm_is_ood_and_matching_dm_is_not(study, pair):
    """Energy and Mahalanobis both pass their sanity check; energy supports, Mahalanobis (0.5 everywhere:
    TLM not flagged) does not: 1 of 2 is not more than half → not supported overall; each detector's
    verdict is listed. With Mahalanobis flagging TLM too, 2 of 2 → supported."""
    ood_study(study, pair)
    f = study.findings()["C5"]
    assert f.verdict == "not supported", f.reason
    assert f.reason.startswith(
        "1 of 2 detectors that can test it support it (50%; more than 50% needed (detector_support = 0.5)) — energy: "
        "supported; mahalanobis: not supported"
    )
    energy = f.numbers["per detector"]["energy"]
    assert (
        energy["verdict"] == "supported"
        and f.numbers["detectors supporting"] == 1
        and f.numbers["detectors that can test it"] == 2
    )
    assert (
        energy["TLM: accurate stitches flagged OOD"]["pairs"] == 16
        and energy["TLM: accurate stitches flagged OOD"]["fraction"] == 1.0
    )
    assert energy["DM: matching stitches in-distribution"]["pairs"] == 4  # the diagonal only
    assert [(p.label, p.verdict) for p in f.parts] == [("energy", "supported"), ("mahalanobis", "not supported")]
    titles = [link.title for link in f.links]
    assert (
        sum(t.endswith("AUROC (energy)") for t in titles) == 2
        and sum(t.endswith("AUROC (mahalanobis)") for t in titles) == 2
    )
    assert any(not link.figure for link in f.links)
    assert study.findings(detector_support=0.4)["C5"].verdict == "supported"  # 1/2 > 0.4


def test_c5_overall_is_a_majority_of_the_detectors_that_can_test_it(study, pair):
    """energy inverted (AUROC 0.1 on TLM: not flagged), k-NN and Mahalanobis flag TLM and not DM → 2 of 3."""
    tlm = study.stitch("tlm", *pair, np.full((4, 4), 0.95))
    dm = study.stitch("dm", *pair, diagonal(0.95, 0.3))
    sanity = {"energy": 0.95, "mahalanobis": 0.95, "knn": 0.95}
    study.ood(
        tlm,
        {"energy": np.full((4, 4), 0.1), "mahalanobis": np.full((4, 4), 1.0), "knn": np.full((4, 4), 0.99)},
        sanity=sanity,
    )
    study.ood(
        dm,
        {"energy": np.full((4, 4), 0.5), "mahalanobis": np.full((4, 4), 0.6), "knn": np.full((4, 4), 0.55)},
        sanity=sanity,
    )
    f = study.findings()["C5"]
    assert f.verdict == "supported" and f.reason.startswith(
        "2 of 3 detectors that can test it support it (67%; more than 50% needed (detector_support = 0.5))"
    )
    assert [(p.label, p.verdict) for p in f.parts] == [
        ("energy", "not supported"),
        ("mahalanobis", "supported"),
        ("knn", "supported"),
    ]
    assert "detectors disagree" not in f.reason  # this study did not record the norms


def test_c5_says_what_the_scores_react_to_when_the_detectors_disagree(study, pair):
    """With the norm ratios recorded, each accurate TLM stitch carries its own, and a split vote names
    their scale (median and range over the accurate TLM stitches)."""
    tlm = study.stitch("tlm", *pair, np.full((4, 4), 0.95))
    dm = study.stitch("dm", *pair, diagonal(0.95, 0.3))
    sanity = {"energy": 0.95, "knn": 0.95}
    norms = np.full((4, 4), 2.0)
    norms[3, 0], norms[0, 3] = 6.0, 1.5
    study.ood(tlm, {"energy": np.full((4, 4), 0.1), "knn": np.full((4, 4), 1.0)}, sanity=sanity, norms=norms)
    study.ood(dm, {"energy": np.full((4, 4), 0.5), "knn": np.full((4, 4), 0.5)}, sanity=sanity, norms=np.ones((4, 4)))
    f = study.findings()["C5"]
    assert f.verdict == "not supported" and f.reason.startswith("1 of 2 detectors")
    assert (
        "the detectors disagree — the accurate TLM stitches' activations have 2× the genuine ones' mean norm (median; "
        "1.5–6)" in f.reason
    )
    cells = f.numbers["per detector"]["energy"]["TLM: accurate stitches flagged OOD"]["cells"]
    assert next(c for c in cells if (c["front"], c["end"]) == ("l3", "l0"))["norm ratio"] == 6.0
    assert f.numbers["norm ratio of the accurate TLM stitches (median, min, max)"] == (2.0, 1.5, 6.0)
    assert sum(link.title.endswith(NORM_RATIO_MATRIX) for link in f.links) == 2


def test_c5_a_detector_that_fails_its_sanity_check_does_not_vote(study, pair):
    """energy fails its sanity check everywhere: it cannot test the claim; Mahalanobis alone decides."""
    tlm = study.stitch("tlm", *pair, np.full((4, 4), 0.95))
    dm = study.stitch("dm", *pair, diagonal(0.95, 0.3))
    sanity = {"energy": 0.6, "mahalanobis": 0.95}
    study.ood(tlm, {"energy": np.full((4, 4), 0.1), "mahalanobis": np.full((4, 4), 0.9)}, sanity=sanity)
    study.ood(dm, {"energy": np.full((4, 4), 0.9), "mahalanobis": np.full((4, 4), 0.5)}, sanity=sanity)
    f = study.findings()["C5"]
    assert f.verdict == "supported" and f.reason.startswith("1 of 1 detectors that can test it support it")
    assert (
        f.parts[0].verdict == "not testable"
        and "passes the sanity check on no end layer (its sanity AUROC is below detector_sanity = 0.9 on each)"
        in f.parts[0].reason
    )


@pytest.mark.parametrize("tlm_auroc,dm_auroc", [(0.7, 0.55), (0.9, 0.7)])
def test_c5_not_supported(study, pair, tlm_auroc, dm_auroc):
    ood_study(study, pair, tlm_auroc=tlm_auroc, dm_auroc=dm_auroc)  # 0.7 is neither flagged OOD nor in-distribution
    f = study.findings()["C5"]
    assert f.verdict == "not supported" and f.numbers["per detector"]["energy"]["verdict"] == "not supported"


@pytest.mark.parametrize(
    "case,needle",
    [
        ("no ood", "the study has no OOD test of a TLM and a DM grid"),
        (
            "sanity fails",
            "no detector can test it — energy: not usable: in ood tlm resnet18 s0→resnet18 s1 it passes the sanity "
            "check",
        ),
        ("no sanity", "has no sanity check (set ood.sanity)"),
        ("tlm inaccurate", "there is no accurate TLM pair"),
        ("dm matches nothing", "DM does not match any pair"),
        ("pending", "not computed yet (ood tlm resnet18 s0→resnet18 s1: pending"),
    ],
)
def test_c5_not_testable(study, pair, case, needle):
    if case == "no ood":
        study.stitch("tlm", *pair, np.full((4, 4), 0.95))
        study.stitch("dm", *pair, diagonal(0.95, 0.3))
    elif case == "pending":
        tlm = study.stitch("tlm", *pair, np.full((4, 4), 0.95))
        dm = study.stitch("dm", *pair, diagonal(0.95, 0.3))
        study.ood(tlm, {"energy": np.full((4, 4), 0.9)}, done=False)
        study.ood(dm, {"energy": np.full((4, 4), 0.5)}, done=False)
    else:
        ood_study(
            study,
            pair,
            sanity={"sanity fails": 0.8, "no sanity": None}.get(case, 0.95),
            tlm_acc=0.5 if case == "tlm inaccurate" else 0.95,
            dm_acc=np.full((4, 4), 0.5) if case == "dm matches nothing" else None,
        )
    f = study.findings()["C5"]
    assert f.verdict == "not testable" and needle in f.reason, f.reason


def test_c5_training_free_detector_and_only_usable_layers(study, pair):
    """Training-free detectors only; a layer whose detector fails the sanity check does not count, even
    where it would change the verdict."""
    tlm = study.stitch("tlm", *pair, np.full((4, 4), 0.95))
    dm = study.stitch("dm", *pair, diagonal(0.95, 0.3))
    knn = np.full((4, 4), 0.9)
    flagged = np.full((4, 4), 0.9)
    flagged[:, 0] = flagged[:, 1] = 0.5  # not flagged on end layers l0, l1 …
    sanity = {
        "knn": 0.95,
        "mahalanobis": {"l0": 0.5, "l1": 0.5, "l2": 0.95, "l3": 0.95},
    }  # … whose detector is not usable
    study.ood(tlm, {"mahalanobis": flagged, "knn": knn}, sanity=sanity)
    study.ood(dm, {"mahalanobis": np.full((4, 4), 0.5), "knn": np.full((4, 4), 0.5)}, sanity=sanity)
    f = study.findings()["C5"]
    maha = f.numbers["per detector"]["mahalanobis"]
    assert maha["usable end layers (TLM test)"] == ["l2", "l3"] and maha["verdict"] == "supported"
    assert (
        maha["TLM: accurate stitches flagged OOD"]["pairs"] == 8
        and maha["DM: matching stitches in-distribution"]["pairs"] == 2
    )
    assert f.numbers["per detector"]["knn"]["verdict"] == "supported" and f.verdict == "supported"


# -- C6 --------------------------------------------------------------------------------------------------
GOOD = {"cka": (0.5, 0.01), "pwcca": (0.4, 0.02), "procrustes": (0.6, 0.001), "dm_residual": (0.7, 0.001)}


def test_c6_supported(study):
    study.grounding("sensitivity", GOOD)
    study.grounding(
        "specificity", {**GOOD, "dm_residual": (0.56, 0.03)}
    )  # 0.04 below the highest index (0.6): within rho_tolerance
    f = study.findings()["C6"]
    assert f.verdict == "supported", f.reason
    assert (
        f.numbers["specificity"]["highest index"] == "procrustes" and f.numbers["specificity"]["highest index ρ"] == 0.6
    )
    assert (
        "specificity: ρ = 0.56 with p = 0.03, significant at alpha = 0.05; within rho_tolerance = 0.05 of the best "
        "index's ρ 0.6 (procrustes)" in f.reason
    )
    assert f.numbers["sensitivity"]["study's ordering of the indices"] == ["procrustes", "cka", "pwcca"]
    assert f.numbers["sensitivity"]["Kendall τ with Ding et al.'s ordering"] == pytest.approx(-1 / 3)
    assert f.numbers["specificity"]["Ding et al.'s ordering"] == ["cka", "procrustes", "pwcca"]
    assert [link.figure for link in f.links] == [False, False]


def test_c6_compares_with_the_best_index_not_the_worst(study):
    """DM above the lowest index (PWCCA 0.4) but more than rho_tolerance below the highest (Procrustes 0.6):
    not "at least as well as the similarity indices"."""
    study.grounding("sensitivity", GOOD)
    study.grounding("specificity", {**GOOD, "dm_residual": (0.54, 0.001)})
    f = study.findings()["C6"]
    assert (
        f.verdict == "not supported"
        and "more than rho_tolerance = 0.05 below the best index's ρ 0.6 (procrustes)" in f.reason
    )
    assert study.findings(rho_tolerance=0.1)["C6"].verdict == "supported"


@pytest.mark.parametrize("dm_residual", [(0.7, 0.2), (0.3, 0.001), (NAN, NAN), (-0.8, 0.01)])
def test_c6_not_supported(study, dm_residual):
    study.grounding("sensitivity", GOOD)
    study.grounding(
        "specificity", {**GOOD, "dm_residual": dm_residual}
    )  # not significant, below the indices, undefined, negative
    assert study.findings()["C6"].verdict == "not supported"


def test_c6_not_testable(study):
    assert "no sensitivity test" in study.findings()["C6"].reason
    study.grounding("sensitivity", GOOD)
    assert "no specificity test" in study.findings()["C6"].reason
    study.grounding("specificity", {k: v for k, v in GOOD.items() if k != "dm_residual"})
    f = study.findings()["C6"]
    assert f.verdict == "not testable" and "dm_residual is not among the specificity test's measures" in f.reason


# -- the report, findings.json and the CLI -----------------------------------------------------------------
def test_report_has_the_findings_section_with_links_that_resolve(study, pair):
    ood_study(study, pair, norms=np.full((4, 4), 1.5))  # the norm-ratio heatmaps are linked too
    study.stitch("tlm", pair[0], pair[0], diagonal(0.9, 0.95))
    study.grounding("sensitivity", GOOD)
    study.grounding("specificity", GOOD)
    config = validate({"study": {"name": "synthetic"}, "networks": {"seeds": [0, 1]}, "findings": {"often": 0.6}})
    study.store.set_meta("config", config)
    study.store.set_meta("plan", [u.id for u in study.units])
    page = write_report(study.dir).read_text()
    assert page.index('<h2 id="findings">Findings</h2>') < page.index("<h2>Units</h2>")
    data = json.loads((study.dir / "report" / "findings.json").read_text())
    assert [f["claim"] for f in data["findings"]] == ["C1a", "C1b", "C2", "C3", "C4", "C5", "C6"]
    assert data["thresholds"]["often"] == {
        "value": 0.6,
        "default": 0.5,
        "rationale": data["thresholds"]["often"]["rationale"],
    }
    verdicts = {f["claim"]: f["verdict"] for f in data["findings"]}
    assert verdicts["C1a"] == "supported" and verdicts["C1b"] == "not testable" and verdicts["C6"] == "supported"
    anchors = set(re.findall(r'id="([^"]+)"', page))
    links = [link for f in data["findings"] for link in f["links"]]
    assert links and any(link["title"].endswith("norm ratio (stitched / genuine)") for link in links)
    for link in links:
        assert link["anchor"].split("#")[1] in anchors, link
        assert (study.dir / "report" / link["file"]).is_file(), link
    assert "0.6" in page and "often" in page


def test_cli_findings_on_a_partly_finished_study(tmp_path, capsys):
    """The planned units of the tiny config, of which only the DM grid is finished (with a hand-made
    result); `--findings` gives C1a's verdict and says what the others wait for. Nothing is written."""
    out = tmp_path / "s"
    config = load_config(TINY)
    units = plan_study(config, out)
    with Store(out / "study.sqlite") as store:
        store.add_planned(units)
        dm = next(u for u in units if u.kind == "stitch" and u.params["method"] == "dm")
        rows = dm.params["front_layers"]
        store.mark_done(
            dm.id,
            {"metrics": {"matrices": {"DM accuracy": matrix(diagonal(0.9, 0.2, n=2), rows)}, "end_accuracy": 0.92}},
        )
    before = sorted(p.name for p in out.rglob("*"))
    assert main(["study", str(TINY), "--out", str(out), "--findings"]) == 0
    text = capsys.readouterr().out
    assert "C1a  DM reproduces" in text and "supported: 2 of 2 corresponding layers" in text
    assert (
        "C2 " in text
        and "not testable: TLM and DM grids of the same pair of different networks not computed yet" in text
    )
    assert "stitch tlm resnet18 s0→resnet18 s1: pending" in text and "thresholds" in text
    assert sorted(p.name for p in out.rglob("*")) == before


def test_cli_findings_before_a_study_ran(tmp_path, capsys):
    out = tmp_path / "never"
    assert main(["study", str(TINY), "--out", str(out), "--findings"]) == 0
    text = capsys.readouterr().out
    assert text.count("not testable") == 7 and not out.exists()
    # every claim waits for its units, except C4: the tiny config stitches no network into itself
    assert text.count("not computed yet") == 6 and "not testable: the study has no TLM self-pair grid" in text
    with pytest.raises(SystemExit) as info:
        main(["study", str(TINY), "--findings", "--status"])
    assert info.value.code == 2 and "not allowed with argument" in capsys.readouterr().err


def test_a_real_tiny_study_has_its_findings(tmp_path, capsys):
    """End to end on two tiny networks with self-pairs: every claim is computed from real unit records
    (no claim waits for a unit), the report leads with the section, and `--findings` prints it."""
    config = tmp_path / "tiny_findings.toml"
    text = TINY.read_text().replace('methods = ["dm", "tlm"]', 'methods = ["dm", "tlm"]\npairs = "reference_and_self"')
    config.write_text(
        text.replace("[similarity]", "[similarity]\nenabled = false")
        + textwrap.dedent("""
        [findings]
        match = 0.5
    """)
    )
    summary = run_study(config, tmp_path / "s", progress=False)
    assert summary.counts["failed"] == 0
    report = write_report(tmp_path / "s")
    page = report.read_text()
    assert '<h2 id="findings">Findings</h2>' in page
    data = json.loads((report.parent / "findings.json").read_text())
    assert data["thresholds"]["match"]["value"] == 0.5 and data["units"]["done"] == data["units"]["planned"]
    by_claim = {f["claim"]: f for f in data["findings"]}
    assert list(by_claim) == ["C1a", "C1b", "C2", "C3", "C4", "C5", "C6"]
    for f in by_claim.values():
        assert f["verdict"] in ("supported", "not supported", "not testable")
        assert "not computed yet" not in f["reason"] and "the study has no" not in f["reason"], f
        for link in f["links"]:
            assert (report.parent / link["file"]).is_file() and f'id="{link["anchor"].split("#")[1]}"' in page
    assert (
        by_claim["C1a"]["verdict"] != "not testable"
        and len(by_claim["C1a"]["numbers"]["relative accuracy a_dm[i, i]"]) == 2
    )
    assert by_claim["C4"]["units"] == ["stitch tlm resnet18 s0→resnet18 s0"]
    # the specificity test of the tiny config has no dm_residual; the sensitivity test's statistics were read
    assert "dm_residual is not among the specificity test's measures" in by_claim["C6"]["reason"]
    assert "dm_residual" in by_claim["C6"]["numbers"]["sensitivity"]["Spearman ρ and one-sided p (pooled)"]
    assert main(["study", str(config), "--out", str(tmp_path / "s"), "--findings"]) == 0
    printed = capsys.readouterr().out
    for claim, f in by_claim.items():
        assert f"{claim:<4} {f['statement']}" in printed and f"{f['verdict']}: {f['reason']}" in printed
        # each verdict's robustness, the same as the report's (the same resamples), or why it is not resampled
        if f["verdict"] != "not testable":
            assert (
                f"robustness {f['robustness']:.2f}" if f["robustness"] is not None else "robustness: not resampled"
            ) in printed, claim
