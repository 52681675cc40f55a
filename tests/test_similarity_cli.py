"""``stitchkit similarity`` and the library under it: many measures on many layer and rank pairs from
activations extracted once per network (:mod:`stitchkit.similarity.pairs`, :mod:`.models`)."""

import csv
import io
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from stitchkit.activations import low_rank
from stitchkit.cli import main
from stitchkit.data import get_dataset
from stitchkit.errors import StitchkitError
from stitchkit.models import get_model
from stitchkit.models.checkpoint import save_checkpoint
from stitchkit.similarity import (
    Rep,
    RepresentationBank,
    SimilaritySettings,
    compare_models,
    compute,
    describe_mixed,
    mixed_policies,
    pairwise_matrix,
    result_matrix,
    similarity_table,
)
from stitchkit.uncertainty.similarity import UncertaintyPlan


def acts(seed, shapes):
    g = torch.Generator().manual_seed(seed)
    return {name: torch.randn(24, *shape, generator=g) for name, shape in shapes.items()}


SHAPES = {"a": (4, 3, 3), "b": (6, 3, 3), "c": (8, 2, 2)}


def test_table_equals_compute_pair_by_pair_and_prepares_each_layer_once():
    x, y = acts(0, SHAPES), acts(1, SHAPES)
    results = similarity_table(
        ["cka", "pwcca", "procrustes"],
        x,
        y,
        settings=SimilaritySettings(ranks_x=[None, 2], ranks_y=[3], all_pairs=True),
    )
    assert len(results) == 2 * 1 * 3 * 9
    for r in results[::7]:
        expected = compute(
            r.result.measure, x[r.x.layer], y[r.y.layer], rank_x=r.x.rank, rank_y=r.y.rank, policy="pool"
        )
        assert r.value == pytest.approx(expected.value, rel=1e-9, abs=1e-12)
        assert (
            r.result.resolved_policy == expected.resolved_policy
            and r.result.rank_x == r.x.rank
            and r.result.low_rank_mode == "fixed"
        )
    matrix, rows, cols = result_matrix(results, "cka", rank_x=None, rank_y=3)
    expected, _, _ = pairwise_matrix("cka", x, y, rank_b=3)
    assert rows == cols == list(SHAPES) and np.allclose(matrix, expected)
    bank = RepresentationBank({"x": x, "y": y})
    for lx in SHAPES:
        for ly in SHAPES:
            bank.compare("cka", Rep("x", lx), Rep("y", ly, 2))
    assert bank.counts == {"truncations": 3, "preparations": 6, "comparisons": 9}  # L per side, not L²


def test_a_network_with_itself_mirrors_symmetric_measures():
    x = acts(2, SHAPES)
    results = similarity_table(["cka", "pwcca"], x, settings=SimilaritySettings(all_pairs=True))
    cka, _, _ = result_matrix(results, "cka")
    assert np.allclose(cka, cka.T) and np.allclose(np.diag(cka), 1.0)
    pwcca, _, _ = result_matrix(results, "pwcca")  # not symmetric: every pair is computed
    expected, _, _ = pairwise_matrix("pwcca", x)
    assert np.allclose(pwcca, expected)
    matching = similarity_table(["cka"], x, settings=SimilaritySettings(all_pairs=False))
    assert [(r.x.layer, r.y.layer) for r in matching] == [("a", "a"), ("b", "b"), ("c", "c")]


def test_similarity_settings_check_each_option_once():
    for options, message in (
        ({"batch_size": 0}, "batch size must be at least 1"),
        ({"n_samples": 1}, "at least 2 samples"),
        ({"bootstrap": -1}, "bootstrap resamples must be a non-negative integer"),
        ({"level": 1.5}, "confidence level must be a number between 0 and 1"),
    ):
        with pytest.raises(StitchkitError, match=message):
            SimilaritySettings(**options)
    # the table reads the uncertainty from the record: the same resampled images as a plan made by hand
    x = acts(0, {"a": (6,), "b": (5,)})
    table = similarity_table(
        ["cka"], x, settings=SimilaritySettings(all_pairs=True, bootstrap=30, permutations=9, uncertainty_seed=3)
    )
    bank = RepresentationBank({"model1": x})
    by_hand = bank.compare(
        "cka",
        Rep("model1", "a"),
        Rep("model1", "b"),
        policy="pool",
        uncertainty=UncertaintyPlan(bootstrap=30, permutations=9, seed=3),
    )
    (ab,) = [r for r in table if (r.x.layer, r.y.layer) == ("a", "b")]
    sure = ab.result.uncertainty
    assert sure == by_hand.uncertainty and sure["lower"] <= ab.value <= sure["upper"]


def test_direct_matching_across_spatial_sizes_resizes_the_source_like_the_stitching_layer():
    x = acts(3, {"small": (4, 2, 2)})["small"]
    y = acts(4, {"big": (5, 3, 3)})["big"]
    bank = RepresentationBank({"x": {"small": x}, "y": {"big": y}})
    result = bank.compare("dm_residual", Rep("x", "small", 3), Rep("y", "big"))
    expected = compute(
        "dm_residual", F.interpolate(low_rank(x.double(), 3), size=(3, 3), mode="bilinear", align_corners=False), y
    )
    assert result.resolved_policy == "positions+resize" and result.value == pytest.approx(expected.value, rel=1e-9)
    with pytest.raises(StitchkitError, match="positions"):
        bank.compare("dm_residual", Rep("x", "small"), Rep("y", "big"), policy="positions")
    with pytest.raises(StitchkitError, match="two models"):
        bank.compare("dm_accuracy", Rep("x", "small"), Rep("y", "big"))


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp("sim")
    paths = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        model = get_model("resnet18", num_classes=10, in_channels=1, input_size=28, width=4)
        paths.append(save_checkpoint(root / f"s{seed}.pt", model, dataset="digits", input_shape=(1, 28, 28)))
    return paths


def test_compare_models_extracts_each_network_once(checkpoints):
    from stitchkit.models.loading import load_model

    model = load_model(checkpoints[0])[0]
    data = get_dataset("digits", "test")
    report = compare_models(
        model,
        model,
        ["layer1.0", "layer4.1"],
        None,
        data,
        SimilaritySettings(n_samples=40, all_pairs=True, device="cpu", measures=["cka"]),
    )
    assert report.info["same_network"] and report.info["n_samples"] == 40
    assert report.info["model2"]["layers"][0] == "layer1.0" and len(report.info["model2"]["layers"]) == 8
    assert len(report.results) == 2 * 8
    with pytest.raises(StitchkitError, match="at least 2 samples"):
        compare_models(model, model, None, None, data, SimilaritySettings(n_samples=1))


def test_similarity_command_prints_each_number_once_with_full_ranks_named(checkpoints, tmp_path, capsys):
    a, b = map(str, checkpoints)
    code = main(
        [
            "similarity",
            a,
            b,
            "resnet18",
            "-",
            "layer3.1",
            "layer3.1",
            "-m1r",
            "full",
            "2",
            "-m2r",
            "4",
            "--n-samples",
            "40",
            "-gpu",
            "-1",
            "-workers",
            "0",
            "--no-progress",
            "-o",
            str(tmp_path / "out"),
        ]
    )
    out = capsys.readouterr().out.splitlines()
    assert code == 0 and out[0].split() == ["layer", "pair", "rank", "1", "rank", "2", "cka", "pwcca", "procrustes"]
    assert out[1].split()[:5] == ["layer3.1", "--", "layer3.1", "full", "4"] and out[2].split()[:5] == [
        "layer3.1",
        "--",
        "layer3.1",
        "2",
        "4",
    ]
    data = json.loads((tmp_path / "out" / "similarity.json").read_text())
    values = {(r["rank_x"], r["measure"]): r["value"] for r in data["results"]}
    assert [float(v) for v in out[1].split()[5:]] == pytest.approx(
        [values[(None, m)] for m in ("cka", "pwcca", "procrustes")], abs=5e-5
    )
    assert (
        "None" not in "\n".join(out)
        and "policy pool" in out[3]
        and out[-1] == f"wrote {tmp_path / 'out' / 'similarity.json'}, {tmp_path / 'out' / 'similarity.csv'}"
    )
    assert {r["policy"] for r in data["results"]} == {"pool"} and data["info"]["mixed_policies"] == {}


def test_similarity_command_prints_the_originals_format(checkpoints, tmp_path, capsys):
    a, b = map(str, checkpoints)
    code = main(
        [
            "similarity",
            a,
            b,
            "resnet18",
            "-",
            "layer3.1",
            "layer3.1",
            "-m1r",
            "full",
            "2",
            "-m2r",
            "4",
            "--n-samples",
            "40",
            "-gpu",
            "-1",
            "-workers",
            "0",
            "--no-progress",
            "-o",
            str(tmp_path / "out"),
            "--policy",
            "auto_original",
            "--original-output",
        ]
    )
    out = capsys.readouterr().out.splitlines()
    assert code == 0
    assert out[:5] == [f"{a} -- {b}", "layer3.1 -- layer3.1", "CKA:", "Model1 rank None:", out[4]] and out[
        4
    ].startswith("\tModel2 rank 4: ")
    assert out[5] == "" and float(out[6]) == float(out[4].split(": ")[1]) and out[7] == "CCA:" and "Orth. Procr:" in out
    assert "Model1 rank 2:" in out
    data = json.loads((tmp_path / "out" / "similarity.json").read_text())
    first = data["results"][0]
    assert (first["policy"], first["resolved_policy"], first["rank_x"], first["rank_y"], first["low_rank_mode"]) == (
        "auto_original",
        "flatten",
        None,
        4,
        "fixed",
    )
    rows = list(csv.DictReader(io.StringIO((tmp_path / "out" / "similarity.csv").read_text())))
    assert len(rows) == 2 * 3 and {r["measure"] for r in rows} == {"cka", "pwcca", "procrustes"}


def test_similarity_command_all_pairs_prints_matrices(checkpoints, capsys):
    a, b = map(str, checkpoints)
    code = main(
        [
            "similarity",
            a,
            b,
            "-",
            "-",
            "all",
            "all",
            "--measures",
            "cka",
            "dm_residual",
            "--policy",
            "auto_original",
            "--n-samples",
            "32",
            "-gpu",
            "-1",
            "-workers",
            "0",
            "--no-progress",
        ]
    )
    out = capsys.readouterr().out
    assert (
        code == 0
        and "cka (similarity; policy auto_original), model 1 rank full (rows) vs model 2 rank full (columns)" in out
    )
    header = [line for line in out.splitlines() if "layer1.0" in line and "layer4.1" in line][0]
    assert header.split() == [
        "layer1.0",
        "layer1.1",
        "layer2.0",
        "layer2.1",
        "layer3.0",
        "layer3.1",
        "layer4.0",
        "layer4.1",
    ]
    assert "dm_residual (distance; policy auto_original)" in out


@pytest.mark.parametrize(
    "extra,message",
    [
        (["layer3.1", "layer9"], "not a stitchable layer"),
        (["layer3.1", "layer3.1", "-m1r", "0"], "-m1r takes positive integers"),
        ([], "give model1_layer and model2_layer"),
        (["layer3.1", "layer3.1", "--n-samples", "1"], "--n-samples must be at least 2"),
        (["layer3.1,layer2.1", "layer3.1"], "pair them one to one"),
        (["layer3.1", "layer3.1", "--policy", "cls"], "policy 'cls'"),
    ],
)
def test_similarity_command_bad_input_is_one_line_with_exit_code_2(checkpoints, extra, message, capsys):
    a, b = map(str, checkpoints)
    n = [] if "--n-samples" in extra else ["--n-samples", "16"]
    code = main(["similarity", a, b, "-", "-", *extra, *n, "-gpu", "-1", "-workers", "0", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1


def test_missing_checkpoint_and_unknown_measure(tmp_path, capsys):
    code = main(["similarity", str(tmp_path / "x.pt"), str(tmp_path / "x.pt"), "-", "-", "all", "all"])
    assert code == 2 and "does not exist" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        main(["similarity", "a.pt", "b.pt", "-", "-", "all", "all", "--measures", "nope"])
    assert info.value.code == 2


@pytest.mark.parametrize("command", ["similarity", "probe", "sensitivity", "specificity"])
def test_every_new_command_has_help_with_examples(command, capsys):
    with pytest.raises(SystemExit) as info:
        main([command, "--help"])
    out = capsys.readouterr().out
    assert info.value.code == 0 and "examples:" in out and f"stitchkit {command}" in out


def test_a_default_matrix_is_computed_one_way_and_the_originals_mixed_policy_is_marked():
    x, y = acts(5, SHAPES), acts(6, {**SHAPES, "a": (4, 3, 3)})
    uniform = similarity_table(["cka", "pwcca", "dm_residual"], x, y, settings=SimilaritySettings(all_pairs=True))
    assert {r.result.policy for r in uniform} == {"pool"} and {r.result.resolved_policy for r in uniform} == {"pool"}
    assert mixed_policies(uniform) == {}
    # the original's choice: PWCCA over positions where the shapes agree (the diagonal), pooled elsewhere
    original = similarity_table(
        ["cka", "pwcca", "dm_residual"], x, y, settings=SimilaritySettings(all_pairs=True, policy="auto_original")
    )
    resolved = {(r.result.measure, r.x.layer, r.y.layer): r.result.resolved_policy for r in original}
    assert resolved["pwcca", "a", "a"] == "positions" and resolved["pwcca", "a", "b"] == "pool"
    assert mixed_policies(original) == {
        "pwcca": ["pool", "positions"]
    }  # CKA flattens every cell; DM uses positions throughout
    assert "pwcca: pool and positions" in describe_mixed(mixed_policies(original), "auto_original")


def test_the_command_marks_a_mixed_matrix_in_print_csv_json_and_the_api(checkpoints, tmp_path, capsys):
    a, b = map(str, checkpoints)
    layers = "layer1.0,layer2.0"
    code = main(
        [
            "similarity",
            a,
            b,
            "-",
            "-",
            layers,
            layers,
            "--all-pairs",
            "--measures",
            "cka",
            "pwcca",
            "--policy",
            "auto_original",
            "--n-samples",
            "24",
            "-gpu",
            "-1",
            "-workers",
            "0",
            "--no-progress",
            "-o",
            str(tmp_path / "mixed"),
        ]
    )
    out, err = capsys.readouterr()
    assert (
        code == 0
        and "pwcca (distance; MIXED policies: pool and positions)" in out
        and "cka (similarity; policy auto_original)" in out
    )
    assert (
        "stitchkit: warning: policy 'auto_original' computes the cells of one matrix in different ways (pwcca: pool "
        "and positions)" in err
    )
    rows = list(csv.DictReader(io.StringIO((tmp_path / "mixed" / "similarity.csv").read_text())))
    assert {(r["measure"], r["policy_mixed"]) for r in rows} == {("cka", "False"), ("pwcca", "True")}
    info = json.loads((tmp_path / "mixed" / "similarity.json").read_text())["info"]
    assert info["mixed_policies"] == {"pwcca": ["pool", "positions"]}
    code = main(
        [
            "similarity",
            a,
            b,
            "-",
            "-",
            layers,
            layers,
            "--all-pairs",
            "--measures",
            "pwcca",
            "--n-samples",
            "24",
            "-gpu",
            "-1",
            "-workers",
            "0",
            "--no-progress",
            "-o",
            str(tmp_path / "uniform"),
        ]
    )
    out, err = capsys.readouterr()
    assert code == 0 and "pwcca (distance; policy pool)" in out and "warning" not in err
    rows = list(csv.DictReader(io.StringIO((tmp_path / "uniform" / "similarity.csv").read_text())))
    assert {(r["resolved_policy"], r["policy_mixed"]) for r in rows} == {("pool", "False")}
    # the API: the same mark on the result and in the matrix's name
    import stitchkit
    from stitchkit.models.loading import load_model

    model_a, model_b = load_model(checkpoints[0])[0], load_model(checkpoints[1])[0]
    with pytest.warns(UserWarning, match="different ways"):
        mixed = stitchkit.compare(
            model_a, model_b, layers, "digits", measures=["pwcca"], n_samples=24, policy="auto_original", device="cpu"
        )
    assert (
        mixed.mixed_policies == {"pwcca": ["pool", "positions"]}
        and "mixed: pool and positions" in mixed.matrix("pwcca").name
    )
    uniform = stitchkit.compare(model_a, model_b, layers, "digits", measures=["pwcca"], n_samples=24, device="cpu")
    assert uniform.mixed_policies == {} and uniform.report.info["policy"] == "pool"
