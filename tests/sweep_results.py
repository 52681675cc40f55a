"""Grown bad-input cases of data provenance and honest results: see tests/grown_sweep.py for the contract
(build, CLI_CASES, API_CASES).

* provenance: networks trained on Fashion-MNIST (``{W}/fashion0``, ``{W}/fashion1``: the same shape and
  class count as ``digits``) run on ``digits``: said once, recorded in the result's conventions, refused
  by a study unless ``networks.allow_other_dataset``;
* honest: TLM with 0 epochs, counts above their split, non-finite hyperparameters, seeds that are not an
  integer in [0, 2**64).
"""

from __future__ import annotations

import math
from pathlib import Path

from bad_inputs import DETECTOR, NO_SECTIONS, PROBE, SENS, STITCH, TRAIN, Case, _c, _replace
from grown_sweep import ApiCase

SEED_TOO_BIG = str(2**64)
FINITE = "must be a finite number"
SEED_RANGE = "must be an integer from 0 to 2**64 - 1"
FASHION = "{W}/fashion0/final.pt {W}/fashion1/final.pt - -"
TLM = _replace(_replace(STITCH, "-e 0", "-e 1"), "-i pinv", "-i rand") + " --train-subset 32"


def build(world: Path) -> None:
    """Two networks that record Fashion-MNIST, and study configs that use them on digits."""
    import torch

    from stitchkit.models import get_model
    from stitchkit.models.checkpoint import save_checkpoint

    for i in range(2):
        torch.manual_seed(10 + i)
        model = get_model("resnet18", num_classes=10, in_channels=1, input_size=(28, 28), width=4)
        save_checkpoint(world / f"fashion{i}" / "final.pt", model, dataset="fashion", input_shape=(1, 28, 28))
    head = (
        '[study]\nname = "prov"\ndataset = "digits"\ndevice = "cpu"\n[networks]\n'
        f'checkpoints = ["{world}/fashion0/final.pt", "{world}/fashion1/final.pt"]\n'
    )
    cfg = world / "cfg"
    (cfg / "other_dataset.toml").write_text(head + NO_SECTIONS)
    (cfg / "other_dataset_alias.toml").write_text(
        head.replace('dataset = "digits"', 'dataset = "Digits"')
        .replace("fashion1", "ck1")
        .replace("fashion0", "ck0")
        .replace('ck1/final.pt"]', f'ck1/final.pt", "{world}/fashion1/final.pt"]')
        + NO_SECTIONS
    )
    (cfg / "other_dataset_allowed.toml").write_text(
        head.replace("[networks]\n", "[networks]\nallow_other_dataset = true\n") + NO_SECTIONS
    )
    (cfg / "own_dataset_mixed_spelling.toml").write_text(head.replace('"digits"', '"fashion-mnist"') + NO_SECTIONS)
    (cfg / "allow_not_bool.toml").write_text(
        head.replace("[networks]\n", '[networks]\nallow_other_dataset = "yes"\n') + NO_SECTIONS
    )


CLI_CASES: list[Case] = [
    # -- provenance: a study refuses networks of another dataset unless allowed ---------------------------------
    _c(
        "study/provenance",
        "study {W}/cfg/other_dataset.toml --out {O}/s --no-progress --no-report",
        "was trained on fashion, not on study.dataset 'digits'",
    ),
    _c(
        "study/provenance",
        "study {W}/cfg/other_dataset_alias.toml --out {O}/s --no-progress --no-report",
        "networks.checkpoints[2]",
    ),
    _c(
        "study/provenance",
        "study {W}/cfg/allow_not_bool.toml --out {O}/s --no-progress --no-report",
        "networks.allow_other_dataset",
    ),
    # -- honest: TLM that trains nothing --------------------------------------------------------------------------
    _c("cli/honest", _replace(STITCH, "-i pinv", "-i rand"), "would record an untrained stitching layer"),
    _c("cli/honest", _replace(STITCH, "-i pinv", "-i eye"), "init 'eye' would record an untrained stitching layer"),
    _c(
        "cli/honest",
        _replace(_replace(STITCH, "-i pinv", "-i rand"), "layer1.0 layer1.0", "layer2.0 layer3.0") + " -s 3",
        "untrained",
    ),
    # -- honest: non-finite hyperparameters (each command's float options) ---------------------------------------
    _c("cli/honest", TLM + " -wd nan", FINITE),
    _c("cli/honest", TLM + " -lr inf", FINITE),
    _c("cli/honest", TLM + " -l1 inf", FINITE),
    _c("cli/honest", TLM + " --grad-clip nan", FINITE),
    _c("cli/honest", TRAIN + " -wd nan", FINITE),
    _c("cli/honest", TRAIN + " -lr nan", FINITE),
    _c("cli/honest", TRAIN + " -o sgd --momentum inf", FINITE),
    _c("cli/honest", TRAIN + " --gamma -inf", FINITE),
    _c("cli/honest", TRAIN + " --schedule-unit step --warmup-fraction nan", FINITE),
    _c("cli/honest", DETECTOR + " -wd inf", FINITE),
    _c("cli/honest", DETECTOR + " -m-in nan", FINITE),
    _c("cli/honest", PROBE + " -lr nan", FINITE),
    _c("cli/honest", SENS + " --tlm-lr inf", FINITE),
    # -- honest: seeds the generators cannot take ---------------------------------------------------------------
    _c("cli/honest", STITCH + " -s " + SEED_TOO_BIG, SEED_RANGE),
    _c("cli/honest", TRAIN + " -s " + SEED_TOO_BIG, SEED_RANGE),
    _c("cli/honest", TRAIN + " -s -1", SEED_RANGE),
    _c("cli/honest", PROBE + " -s " + SEED_TOO_BIG, SEED_RANGE),
    _c("cli/honest", DETECTOR + " -s " + SEED_TOO_BIG, SEED_RANGE),
]


# -- API cases -------------------------------------------------------------------------------------------------

QUICK = dict(device="cpu", workers=0, batch_size=32)


def _fashion(world: Path, i: int = 0) -> str:
    return str(world / f"fashion{i}" / "final.pt")


def _dm_on_digits(world: Path, out: Path) -> None:
    import stitchkit

    r = stitchkit.direct_match(
        _fashion(world), _fashion(world, 1), "layer1.0", "layer1.0", "digits", fit_samples=32, test_samples=32, **QUICK
    )
    assert "fashion" in r.pair().conventions["data_provenance"], r.pair().conventions
    assert "data_provenance" in r.matrix().provenance.conventions


def _dm_own_data(world: Path, out: Path) -> None:
    import stitchkit

    r = stitchkit.direct_match(
        str(world / "ck0" / "final.pt"),
        str(world / "ck1" / "final.pt"),
        "layer1.0",
        "layer1.0",
        "digits",
        fit_samples=32,
        test_samples=32,
        **QUICK,
    )
    assert "data_provenance" not in r.pair().conventions, r.pair().conventions


def _dm_one_other(world: Path, out: Path) -> None:
    import stitchkit

    r = stitchkit.direct_match(
        str(world / "ck0" / "final.pt"),
        _fashion(world),
        "layer1.0",
        "layer1.0",
        "digits",
        fit_samples=32,
        test_samples=32,
        **QUICK,
    )
    text = r.pair().conventions["data_provenance"]
    assert "(end)" in text and "(front)" not in text, text


def _eval_on_digits(world: Path, out: Path) -> None:
    from stitchkit.training.base import evaluate_model
    from stitchkit.utils.run_options import RunOptions

    result = evaluate_model(_fashion(world), run=RunOptions(device="cpu", workers=0, progress=False), dataset="digits")
    assert (
        result["dataset"] == "digits"
        and result["trained_on"] == "fashion"
        and "data_provenance" in result["conventions"]
    ), result


def _eval_own(world: Path, out: Path) -> None:
    from stitchkit.training.base import evaluate_model
    from stitchkit.utils.run_options import RunOptions

    quiet = RunOptions(device="cpu", workers=0, progress=False)
    result = evaluate_model(str(world / "ck0" / "final.pt"), run=quiet, dataset="Digits")
    assert result["dataset"] == "digits" and "conventions" not in result, result


def _compare_on_digits(world: Path, out: Path) -> None:
    import stitchkit

    r = stitchkit.compare(
        _fashion(world), _fashion(world, 1), "layer3.1", "digits", measures=["cka"], n_samples=40, device="cpu"
    )
    assert "data_provenance" in r.matrix("cka").provenance.conventions


def _probe_on_digits(world: Path, out: Path) -> None:
    from stitchkit.probing.model import probe_checkpoint
    from stitchkit.probing.probe import ProbeConfig

    config = ProbeConfig(epochs=1, augment="none", device="cpu", workers=0)
    report = probe_checkpoint(_fashion(world), layers=["layer4.1"], dataset="digits", config=config)
    assert "data_provenance" in report.config["conventions"], report.config


def _study_allowed(world: Path, out: Path) -> None:
    from stitchkit.study.runner import prepare_study

    _, _, units = prepare_study(world / "cfg" / "other_dataset_allowed.toml", out / "s")
    assert units and not (out / "s").exists()


def _study_alias(world: Path, out: Path) -> None:
    from stitchkit.study.runner import prepare_study

    _, _, units = prepare_study(world / "cfg" / "own_dataset_mixed_spelling.toml", out / "s")
    assert units and not (out / "s").exists()


def _tlm(world: Path, out: Path, **options) -> None:
    import stitchkit

    stitchkit.task_loss_match(
        str(world / "ck0" / "final.pt"),
        str(world / "ck1" / "final.pt"),
        "layer1.0",
        "layer1.0",
        "digits",
        save_dir=str(out / "runs"),
        test_samples=32,
        train_samples=32,
        **{**QUICK, **options},
    )


def _k_above_split(world: Path, out: Path) -> None:
    import stitchkit

    r = stitchkit.direct_match(
        str(world / "ck0" / "final.pt"),
        str(world / "ck1" / "final.pt"),
        "layer1.0",
        "layer1.0",
        "digits",
        fit_samples=10**6,
        test_samples=32,
        **QUICK,
    )
    pair = r.pair()
    assert pair.n_fit < 10**6 and pair.options["fit_samples"] == pair.n_fit, (pair.n_fit, pair.options["fit_samples"])
    assert f"K={pair.n_fit}" in pair.run_name or str(10**6) not in pair.run_name


def _test_above_split(world: Path, out: Path) -> None:
    import stitchkit

    r = stitchkit.direct_match(
        str(world / "ck0" / "final.pt"),
        str(world / "ck1" / "final.pt"),
        "layer1.0",
        "layer1.0",
        "digits",
        fit_samples=32,
        test_samples=10**6,
        **QUICK,
    )
    pair = r.pair()
    assert pair.options["test_samples"] == pair.n_test < 10**6, (pair.options["test_samples"], pair.n_test)


def _check_counts_above_split(world: Path, out: Path) -> None:
    from stitchkit.models.loading import load_model
    from stitchkit.ood.evaluate import DetectorCheckSettings, check_detectors

    model, _ = load_model(str(world / "ck0" / "final.pt"))
    settings = DetectorCheckSettings(
        training_free=["knn"],
        training_free_options={"knn": {"k": 5}},
        fit_samples=32,
        id_samples=100_000,
        sanity_samples=32,
    )
    check = check_detectors(model, ["layer4.1"], settings, id_dataset="digits")
    assert check.metrics["layer4.1"]["knn"].n_id == 359  # the number used is what the metrics record


def _similarity_samples_above_split(world: Path, out: Path) -> None:
    from stitchkit.similarity.models import compare_checkpoints
    from stitchkit.similarity.settings import CheckpointOptions, SimilaritySettings

    report = compare_checkpoints(
        str(world / "ck0" / "final.pt"),
        str(world / "ck1" / "final.pt"),
        layers1=["layer3.1"],
        layers2=["layer3.1"],
        options=CheckpointOptions(dataset="digits"),
        settings=SimilaritySettings(n_samples=100_000, measures=["cka"], device="cpu"),
    )
    assert report.info["n_samples"] == 359, report.info


def _collect_label_k(world: Path, out: Path) -> None:
    from stitchkit.stitching.collect import collect_results
    from stitchkit.stitching.grid import stitch_grid
    from stitchkit.stitching.settings import StitchSettings

    s = StitchSettings(
        init="pinv",
        epochs=0,
        fit_samples=10**6,
        test_samples=32,
        dataset="digits",
        verbose=False,
        progress=False,
        **QUICK,
    )
    stitch_grid(
        str(world / "ck0" / "final.pt"),
        str(world / "ck1" / "final.pt"),
        "layer1.0",
        "layer1.0",
        s,
        save_dir=str(out / "runs"),
    )
    labels = [m.label for m in collect_results(out / "runs")]
    try:
        assert labels and all("K=1000000" not in label for label in labels), labels
    finally:
        import shutil

        shutil.rmtree(out / "runs")  # a finished run folder, not a leftover of an error


def _optim(**fields):
    def call(world: Path, out: Path) -> None:
        from stitchkit.training.optim import OptimConfig

        OptimConfig(**fields).validate()

    return call


def _settings(record: str, **fields):
    def call(world: Path, out: Path) -> None:
        if record == "stitch":
            from stitchkit.stitching.settings import StitchSettings as cls
        elif record == "probe":
            from stitchkit.probing.probe import ProbeConfig as cls
        else:
            from stitchkit.ood.train_config import DetectorTrainConfig

            cls = lambda **f: DetectorTrainConfig(save_dir=str(out / "d"), **f)  # noqa: E731 - only validated, nothing written
        cls(**fields).validate()

    return call


def _set_seed(seed):
    def call(world: Path, out: Path) -> None:
        from stitchkit.utils.seed import set_seed

        set_seed(seed)

    return call


def _compare_seed(world: Path, out: Path) -> None:
    import stitchkit

    stitchkit.compare(
        str(world / "ck0" / "final.pt"),
        str(world / "ck1" / "final.pt"),
        "layer3.1",
        "digits",
        measures=["cka"],
        n_samples=40,
        device="cpu",
        seed="1",
    )


def _dm_seed(world: Path, out: Path) -> None:
    import stitchkit

    stitchkit.direct_match(
        str(world / "ck0" / "final.pt"),
        str(world / "ck1" / "final.pt"),
        "layer1.0",
        "layer1.0",
        "digits",
        fit_samples=32,
        test_samples=32,
        seed="7",
        **QUICK,
    )


_P = "was trained on fashion"
API_CASES: list[ApiCase] = [
    # -- provenance ---------------------------------------------------------------------------------------------
    ApiCase("api", "provenance", "direct_match of Fashion-MNIST networks on digits", _dm_on_digits, _P, "warning"),
    ApiCase(
        "api", "provenance", "direct_match of digits networks on digits records nothing", _dm_own_data, expect="ok"
    ),
    ApiCase(
        "api",
        "provenance",
        "only the end network is of another dataset",
        _dm_one_other,
        "the end network was trained on fashion",
        "warning",
    ),
    ApiCase(
        "checkpoint",
        "provenance",
        "evaluate_model of a Fashion-MNIST checkpoint on digits",
        _eval_on_digits,
        _P,
        "warning",
    ),
    ApiCase(
        "checkpoint",
        "provenance",
        "evaluate_model on the checkpoint's own dataset records nothing",
        _eval_own,
        expect="ok",
    ),
    ApiCase(
        "api",
        "provenance",
        "compare of Fashion-MNIST networks on digits",
        _compare_on_digits,
        "the first network was trained on fashion",
        "warning",
    ),
    ApiCase(
        "checkpoint",
        "provenance",
        "probe_checkpoint of a Fashion-MNIST checkpoint on digits",
        _probe_on_digits,
        _P,
        "warning",
    ),
    ApiCase(
        "study",
        "provenance",
        "a study allowed to use networks of another dataset says so",
        _study_allowed,
        "networks.checkpoints[0]",
        "warning",
    ),
    ApiCase(
        "study", "provenance", "a study on its networks' dataset by an alias plans quietly", _study_alias, expect="ok"
    ),
    # -- honest -------------------------------------------------------------------------------------------------
    ApiCase(
        "api", "honest", "task_loss_match(epochs=0)", lambda w, o: _tlm(w, o, epochs=0), "epochs must be at least 1"
    ),
    ApiCase(
        "api",
        "honest",
        "task_loss_match(from_dm=True, epochs=0)",
        lambda w, o: _tlm(w, o, epochs=0, from_dm=True),
        "use direct_match",
    ),
    ApiCase(
        "api",
        "honest",
        "StitchSettings(epochs=0) with a random init",
        _settings("stitch", epochs=0, init="rand"),
        "untrained stitching layer",
    ),
    ApiCase(
        "api",
        "honest",
        "fit_samples above the training split",
        _k_above_split,
        "fewer than the 1000000 asked for; using all",
        "warning",
    ),
    ApiCase(
        "api",
        "honest",
        "test_samples above the test split",
        _test_above_split,
        "--test-samples (test_samples): the test split of digits",
        "warning",
    ),
    ApiCase(
        "api",
        "honest",
        "collect labels a clamped K with the K used",
        _collect_label_k,
        "-pinv-samples (fit_samples, K)",
        "warning",
    ),
    ApiCase(
        "api",
        "honest",
        "OptimConfig with a NaN weight decay",
        _optim(weight_decay=math.nan),
        "weight decay must be a finite number",
    ),
    ApiCase(
        "api",
        "honest",
        "OptimConfig with an infinite learning rate",
        _optim(lr=math.inf),
        "learning rate must be a finite number",
    ),
    ApiCase(
        "api",
        "honest",
        "OptimConfig with a string learning rate",
        _optim(lr="1e-3"),
        "learning rate must be a finite number",
    ),
    ApiCase(
        "api",
        "honest",
        "StitchSettings with an infinite L1 coefficient",
        _settings("stitch", l1=math.inf),
        "L1 coefficient (-l1) must be a finite",
    ),
    ApiCase(
        "api",
        "honest",
        "ProbeConfig with an infinite weight decay",
        _settings("probe", weight_decay=math.inf),
        "weight decay must be a finite",
    ),
    ApiCase(
        "api",
        "honest",
        "DetectorTrainConfig with a NaN energy margin",
        _settings("detector", m_out=math.nan),
        "energy margin m_out must be a finite",
    ),
    # -- api: seeds -------------------------------------------------------------------------------------------------
    ApiCase("api", "api", "set_seed with a string", _set_seed("3"), "seed must be an integer, got '3'"),
    ApiCase("api", "api", "set_seed of 2**64", _set_seed(2**64), SEED_RANGE),
    ApiCase("api", "api", "set_seed with a float", _set_seed(1.5), "seed must be an integer"),
    ApiCase(
        "api",
        "honest",
        "detector check with more ID test images than the split",
        _check_counts_above_split,
        "--id-samples: the test split of digits has only 359 images, fewer than the 100000 asked for",
        expect="warning",
    ),
    ApiCase(
        "api",
        "honest",
        "similarity with more samples than the test split",
        _similarity_samples_above_split,
        "--n-samples (n_samples): the data compared has only 359 images",
        expect="warning",
    ),
    ApiCase("api", "api", "compare with a string seed", _compare_seed, "seed must be an integer"),
    ApiCase("api", "api", "direct_match with a string seed", _dm_seed, "seed must be an integer"),
    ApiCase("api", "api", "StitchSettings with seed 2**64", _settings("stitch", seed=2**64), SEED_RANGE),
    ApiCase(
        "api", "api", "ProbeConfig with a bool seed", _settings("probe", seed=True), "probe seed must be an integer"
    ),
]
