"""``--dm-solver original``: the original's float32 pinv with torch's default cutoff (seed spec 1.3.1),
checked against independent float32 pseudo-inverses (numpy's and torch's own) on the same rows, and on
a real layer pair against stitchkit's least squares (which it can never beat in-sample)."""

import json
import textwrap

import numpy as np
import pytest
import torch
from stitch_support import QUICK, trained_resnet
from torch.utils.data import DataLoader

from stitchkit.activations.extract import sample_subset
from stitchkit.cli import main
from stitchkit.data import get_dataset
from stitchkit.errors import StitchkitError
from stitchkit.stitching import Stitcher, StitchSettings, stitch_pair
from stitchkit.stitching.direct_match import direct_match
from stitchkit.stitching.matching import fit_direct_match, image_pairs
from stitchkit.stitching.original_solver import EPS32, solve_original
from stitchkit.stitching.records import StitchResult
from stitchkit.study import Store, run_study, validate
from stitchkit.study.plan import plan_study


def _numpy_original(x: np.ndarray, y: np.ndarray):
    """The original's solve, independently: numpy's float32 pinv with torch's default relative cutoff."""
    x1 = np.hstack([x, np.ones((x.shape[0], 1), np.float32)]).astype(np.float32)
    rcond = EPS32 * max(x1.shape)
    a = np.linalg.pinv(x1, rcond=rcond) @ y.astype(np.float32)
    s = np.linalg.svd(x1, compute_uv=False)
    return a[:-1].T, a[-1], int((s <= rcond * s[0]).sum()), s / (rcond * s[0])


def _spread_rows(m=6000, p=24, q=5, seed=0):
    """Rows with a mean and singular values from 1 down to 1e-6, some of them below the default cutoff."""
    g = np.random.default_rng(seed)
    u, _ = np.linalg.qr(g.normal(size=(m, p)))
    v, _ = np.linalg.qr(g.normal(size=(p, p)))
    s = np.logspace(0, -6, p) * np.sqrt(m)
    x = (u * s) @ v.T + g.normal(size=p) * 0.3
    y = x @ g.normal(size=(p, q)) + g.normal(size=q) + 0.01 * g.normal(size=(m, q))
    return x.astype(np.float32), y.astype(np.float32)


def _close(a, b, tol=2e-4):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return np.linalg.norm(a - b) <= tol * max(np.linalg.norm(b), 1e-12)


def test_the_original_solve_equals_numpy_and_torch_float32_pinv_on_the_same_rows():
    x, y = _spread_rows()
    w_np, b_np, dropped_np, ratios = _numpy_original(x, y)
    assert np.abs(ratios - 1).min() > 0.05  # no singular value sits at the cutoff, so the count is unambiguous
    solve = solve_original(torch.from_numpy(x), torch.from_numpy(y))
    assert solve.dropped == dropped_np and 0 < dropped_np < x.shape[1]
    assert solve.columns == x.shape[1] + 1 and solve.rtol == pytest.approx(EPS32 * x.shape[0])
    assert _close(solve.weight, w_np) and _close(solve.bias, b_np)
    # torch.linalg.pinv with its default cutoff: what the original called
    x1 = torch.cat([torch.from_numpy(x), torch.ones(x.shape[0], 1)], 1)
    a = torch.linalg.pinv(x1) @ torch.from_numpy(y)
    assert _close(solve.weight, a[:-1].T) and _close(solve.bias, a[-1])
    # the reported residual comes from the exact pinv (atol = rtol = 0): the least-squares minimum
    exact = np.linalg.lstsq(
        np.hstack([x, np.ones((x.shape[0], 1))]).astype(np.float64), y.astype(np.float64), rcond=None
    )[0]
    x1d = np.hstack([x, np.ones((x.shape[0], 1))]).astype(np.float64)
    best = np.linalg.norm(x1d @ exact - y) ** 2 / np.linalg.norm(y.astype(np.float64)) ** 2
    installed = np.linalg.norm(x1d @ np.vstack([w_np.T, b_np]) - y) ** 2 / np.linalg.norm(y.astype(np.float64)) ** 2
    assert solve.reported_residual == pytest.approx(best, rel=1e-3) and installed > best


def _hooked_rows(model, layer, images):
    """Rows (N·H·W, C) of a layer's output, taken with a forward hook (not the stitcher's prefix)."""
    grabbed = {}
    handle = dict(model.named_modules())[layer].register_forward_hook(
        lambda m, i, o: grabbed.setdefault("out", o.detach())
    )
    with torch.no_grad():
        model(images)
    handle.remove()
    out = grabbed["out"]
    return out.permute(0, 2, 3, 1).reshape(-1, out.shape[1]).numpy()


def test_the_original_solver_on_a_real_pair_over_several_batches_equals_numpy_pinv_of_the_hooked_rows():
    front, end = trained_resnet(0), trained_resnet(1)
    fit = sample_subset(get_dataset("digits", "train", augment=False), 120, seed=3)
    images = torch.stack([fit[i][0] for i in range(len(fit))])
    stitcher = Stitcher(front, end, "layer3.0", "layer3.0", "c2c", input_shape=(1, 28, 28), init="pinv")
    dm = fit_direct_match(stitcher, image_pairs(stitcher, DataLoader(fit, batch_size=50), "cpu"), solver="original")
    w_np, b_np, dropped, _ = _numpy_original(
        _hooked_rows(front, "layer3.0", images), _hooked_rows(end, "layer3.0", images)
    )
    weight, bias = stitcher.layer.affine()
    assert _close(weight, w_np) and _close(bias, b_np)
    assert dm.dropped == dropped and dm.rank == stitcher.layer.in_features - dropped and dm.n_rows == 120 * 7 * 7


def test_unknown_solver_and_empty_input_are_refused():
    layer = Stitcher(trained_resnet(0), trained_resnet(1), "layer4.1", "layer4.1", "c2c", input_shape=(1, 28, 28)).layer
    with pytest.raises(StitchkitError, match="unknown direct-matching solver 'pinv'"):
        direct_match(layer, [], solver="pinv")
    with pytest.raises(StitchkitError, match="at least one row"):
        direct_match(layer, [], solver="original")


@pytest.fixture(scope="module")
def real_pair():
    """layer4.1 → layer1.0 (rc2c_pre) of two trained networks from K = 1000 images: 784,000 rows, so the
    default cutoff eps32 · 784,000 ≈ 9e-2 of the largest singular value drops many directions."""
    front, end = trained_resnet(0), trained_resnet(1)
    out = {}
    for solver in ("stitchkit", "original"):
        settings = StitchSettings(
            stitching_type="rc2c_pre",
            init="pinv",
            epochs=0,
            fit_samples=1000,
            test_samples=200,
            batch_size=250,
            dm_solver=solver,
            **QUICK,
        )
        out[solver] = stitch_pair(front, end, "layer4.1", "layer1.0", settings)
    return out


def test_on_a_real_pair_the_original_cutoff_drops_directions_and_fits_worse_in_sample(real_pair):
    ours, orig = real_pair["stitchkit"], real_pair["original"]
    p = 32  # layer4.1's channels at width 4
    assert ours.dm_dropped == 0 and ours.dm_rank == p and ours.dm_reported_residual is None
    assert 0 < orig.dm_dropped < p + 1 and orig.dm_rank == p - orig.dm_dropped
    # stitchkit's solution is the least-squares minimum in-sample: the truncated one is worse
    assert orig.dm_fit_residual > ours.dm_fit_residual * (1 + 1e-3)
    # the original *reported* the exact pinv's residual, i.e. (up to float32) stitchkit's minimum, not its own map's
    assert orig.dm_reported_residual == pytest.approx(ours.dm_fit_residual, rel=1e-4)
    assert orig.residual != ours.residual and np.isfinite(orig.residual)


def test_the_solver_is_recorded_and_names_the_run_only_when_not_the_default(real_pair):
    ours, orig = real_pair["stitchkit"], real_pair["original"]
    assert "dm_solver" not in ours.options and orig.options["dm_solver"] == "original"
    assert ours.run_name != orig.run_name and ours.config_key != orig.config_key
    assert (
        "float32" in orig.conventions["direct_matching"]
        and "atol = rtol = 0" in orig.conventions["dm_reported_residual"]
    )
    assert "float64" in ours.conventions["direct_matching"] and "dm_reported_residual" not in ours.conventions
    assert "dm_dropped" in ours.conventions
    # the options that name a run are those of earlier versions (existing runs keep their names)
    assert set(StitchSettings().result_options()) == {
        "stitching_type",
        "init",
        "epochs",
        "batch_size",
        "optim",
        "seed",
        "fit_samples",
        "test_samples",
        "train_samples",
        "l1",
        "grad_clip",
        "upsample_mode",
        "c2t_cls",
        "t2c_cls",
        "front_stitch_rank",
        "front_pinv_rank",
        "low_rank_mode",
        "rcond",
    }
    again = StitchResult.from_dict(json.loads(json.dumps(orig.to_dict())))
    assert again.dm_dropped == orig.dm_dropped and again.dm_reported_residual == orig.dm_reported_residual


@pytest.mark.parametrize(
    "changes,message",
    [
        (dict(init="rand"), "--dm-solver original only applies to direct matching"),
        (dict(fit_samples=None), "give their number with -pinv-samples K"),
        (dict(rcond=1e-6), "rcond is the cutoff of stitchkit's solver"),
        (dict(dm_solver="lstsq"), "unknown direct-matching solver (--dm-solver) 'lstsq'"),
    ],
)
def test_settings_that_cannot_go_with_the_original_solver_are_refused(changes, message):
    settings = StitchSettings(init="pinv", epochs=0, dm_solver="original")
    for key, value in changes.items():
        setattr(settings, key, value)
    with pytest.raises(StitchkitError) as info:
        settings.validate()
    assert message in str(info.value)


def test_the_cli_flag_reaches_the_result(tmp_path, capsys):
    ck = tmp_path / "ck"
    from stitchkit.models.checkpoint import save_checkpoint

    for seed in (0, 1):
        save_checkpoint(ck / f"s{seed}.pt", trained_resnet(seed), dataset="digits", input_shape=(1, 28, 28))
    common = (
        f"stitch {ck}/s0.pt {ck}/s1.pt - - layer4.1 layer4.1 c2c -e 0 -i pinv -pinv-samples 40 --test-samples 40 -d "
        f"digits -gpu -1 -workers 0 --no-progress --no-activation-cache --results-root {tmp_path}/r -dir x"
    ).split()
    assert main(common + ["--dm-solver", "original"]) == 0
    assert main(common) == 0
    results = [json.loads(p.read_text()) for p in sorted((tmp_path / "r" / "x").glob("*/result.json"))]
    assert len(results) == 2
    solvers = sorted(r["options"].get("dm_solver", "default") for r in results)
    assert solvers == ["default", "original"] and all(r["dm_dropped"] is not None for r in results)
    command = next(p for p in (tmp_path / "r" / "x").glob("*/summary.txt") if "--dm-solver original" in p.read_text())
    assert command
    assert "--dm-solver {stitchkit,original}" in _help(capsys)


def _help(capsys) -> str:
    with pytest.raises(SystemExit):
        main(["stitch", "--help"])
    return capsys.readouterr().out


def _study_config(tmp_path, solver: str | None):
    extra = f'dm_solver = "{solver}"\n' if solver else ""
    path = tmp_path / f"study_{solver}.toml"
    path.write_text(
        textwrap.dedent("""
        [study]
        dataset = "digits"
        device = "cpu"
        [networks]
        options = { width = 4 }
        seeds = [0, 1]
        epochs = 1
        batch_size = 64
        train_subset = 160
        augment = false
        [layers]
        front = ["layer4.1"]
        end = ["layer4.1"]
        [stitching]
        methods = ["dm"]
        fit_samples = 40
        eval_samples = 40
    """)
        + extra
        + "\n".join(f"[{s}]\nenabled = false" for s in ("similarity", "ood", "probes", "sensitivity", "specificity"))
        + "\n"
    )
    return path


def test_study_key_names_only_the_units_that_use_direct_matching(tmp_path):
    raw = {
        "study": {"dataset": "digits"},
        "networks": {"options": {"width": 4}, "seeds": [0, 1]},
        "stitching": {"methods": ["dm", "tlm", "tlm_from_dm"]},
        **{s: {"enabled": False} for s in ("similarity", "ood", "probes", "sensitivity", "specificity")},
    }
    default = {u.label: u for u in plan_study(validate(raw), tmp_path) if u.kind == "stitch"}
    raw["stitching"]["dm_solver"] = "original"
    original = {u.label: u for u in plan_study(validate(raw), tmp_path) if u.kind == "stitch"}
    assert all("dm_solver" not in u.params for u in default.values())
    for label, unit in original.items():
        if unit.params["method"] == "tlm":
            assert unit.id == default[label].id and "dm_solver" not in unit.params
        else:
            assert unit.id != default[label].id and unit.params["dm_solver"] == "original"
    with pytest.raises(StitchkitError, match="stitching.dm_solver has 'pinv'"):
        validate({"networks": {"seeds": [0, 1]}, "stitching": {"dm_solver": "pinv"}})


def test_a_study_with_the_original_solver_records_it_in_its_runs(tmp_path):
    summary = run_study(_study_config(tmp_path, "original"), tmp_path / "s", progress=False)
    assert summary.counts["done"] == 3 and summary.counts["failed"] == 0
    results = [json.loads(p.read_text()) for p in (tmp_path / "s").rglob("runs/*/result.json")]
    assert (
        len(results) == 1 and results[0]["options"]["dm_solver"] == "original" and results[0]["dm_dropped"] is not None
    )
    with Store(tmp_path / "s" / "study.sqlite") as store:
        stitch = next(r for r in store.all() if r.kind == "stitch")
    assert stitch.config["dm_solver"] == "original"
