"""Stitch options that name more than the data has: a rank above a front layer's channel count is
that layer's full rank (one warning, the rank used recorded, run names of valid ranks unchanged), and
``-pinv-samples 0`` is the documented "whole training split"."""

import json

import pytest
from stitch_support import QUICK, trained_resnet

from stitchkit.cli import main
from stitchkit.data import get_dataset
from stitchkit.models.checkpoint import save_checkpoint
from stitchkit.stitching import StitchSettings, stitch_grid
from stitchkit.stitching.donors import load_donor
from stitchkit.stitching.records import run_name


def _settings(**changes):
    base = dict(
        stitching_type="rc2c_pre", init="pinv", epochs=0, fit_samples=60, test_samples=60, batch_size=60, **QUICK
    )
    return StitchSettings(**{**base, **changes})


@pytest.fixture(scope="module")
def donors():
    return trained_resnet(0), trained_resnet(1)


def test_a_rank_above_the_channels_is_full_rank_warned_once_and_recorded(donors, capsys):
    front, end = donors
    # layer1.0 has 4 channels, layer4.1 32 (width 4): rank 8 is clamped at layer1.0 only
    ranked = stitch_grid(
        front, end, ["layer1.0", "layer4.1"], ["layer4.1"], _settings(front_stitch_rank=8, front_pinv_rank=8)
    )
    err = capsys.readouterr().err
    warnings = [line for line in err.splitlines() if line.startswith("stitchkit: warning:")]
    assert len(warnings) == 1 and "--front-stitch-rank and --front-pinv-rank" in warnings[0]
    assert "8 at layer1.0 (4 channels)" in warnings[0] and "layer4.1" not in warnings[0]
    by_layer = {r.front_layer: r for r in ranked}
    assert (
        by_layer["layer1.0"].options["front_stitch_rank_used"] == 4
        and by_layer["layer1.0"].options["front_pinv_rank_used"] == 4
    )
    assert (
        by_layer["layer4.1"].options["front_stitch_rank_used"] == 8
        and by_layer["layer4.1"].options["front_pinv_rank"] == 8
    )
    # the clamped rank is the layer's full rank: the same numbers as no truncation at all
    full = stitch_grid(front, end, ["layer1.0"], ["layer4.1"], _settings())[0]
    assert by_layer["layer1.0"].accuracy == full.accuracy
    assert by_layer["layer1.0"].residual == pytest.approx(full.residual, rel=1e-5)
    assert by_layer["layer1.0"].dm_fit_residual == pytest.approx(full.dm_fit_residual, rel=1e-5)
    assert "front_stitch_rank_used" not in full.options


def test_the_clamp_leaves_the_run_names_of_valid_ranks_alone(donors, capsys):
    front, end = donors
    settings = _settings(front_stitch_rank=2)
    [result] = stitch_grid(front, end, ["layer4.1"], ["layer4.1"], settings)
    assert "warning" not in capsys.readouterr().err
    f, e = load_donor(front), load_donor(end)
    assert result.run_name == run_name("layer4.1", "layer4.1", f, e, "digits", settings.validate())
    assert result.options["front_stitch_rank_used"] == 2 and set(settings.result_options()) == set(
        _settings().result_options()
    )


def test_different_ranks_warn_per_option(donors, capsys):
    front, end = donors
    stitch_grid(front, end, ["layer1.0"], ["layer1.0"], _settings(front_stitch_rank=6, front_pinv_rank=999))
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("stitchkit: warning:")]
    assert (
        len(warnings) == 2 and "--front-stitch-rank above" in warnings[0] and "--front-pinv-rank above" in warnings[1]
    )
    assert "999 at layer1.0 (4 channels)" in warnings[1]


def test_pinv_samples_0_fits_on_the_whole_training_split(tmp_path, capsys):
    ck = tmp_path / "ck"
    for seed in (0, 1):
        save_checkpoint(ck / f"s{seed}.pt", trained_resnet(seed), dataset="digits", input_shape=(1, 28, 28))
    args = (
        f"stitch {ck}/s0.pt {ck}/s1.pt - - layer4.1 layer4.1 c2c -e 0 -i pinv -pinv-samples 0 --test-samples 32 -d "
        f"digits -gpu -1 -workers 0 --no-progress --no-activation-cache --results-root {tmp_path}/r -dir x"
    ).split()
    assert main(args) == 0
    [path] = (tmp_path / "r" / "x").glob("*/result.json")
    result = json.loads(path.read_text())
    n_train = len(get_dataset("digits", "train", augment=False))
    assert (
        result["n_fit"] == n_train
        and result["options"]["fit_samples"] is None
        and result["n_fit_rows"] == n_train * 4 * 4
    )
