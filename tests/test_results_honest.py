"""Data provenance (stitchkit.data.provenance) and honest results: the comparison itself, and the places
that use it or the new checks, on tiny inputs. The grown sweep (tests/sweep_results.py) runs the same
mistakes end to end through the CLI and the API."""

import math
import warnings

import pytest

from stitchkit.data.provenance import CONVENTION, note_provenance, other_datasets, provenance_message, same_dataset
from stitchkit.errors import StitchkitError, StitchkitWarning
from stitchkit.utils.numbers import check_finite, check_seed


def test_datasets_are_compared_by_canonical_name_and_custom_data_by_path(tmp_path, monkeypatch):
    assert same_dataset("fashion", "Fashion-MNIST") and same_dataset(None, "digits") and same_dataset("", "digits")
    assert not same_dataset("fashion", "digits")
    monkeypatch.chdir(tmp_path)
    assert same_dataset("npz:data.npz", f"npz:{tmp_path}/data.npz") and not same_dataset(
        "npz:data.npz", "npz:other.npz"
    )
    assert not same_dataset("npz:data.npz@16x16", "npz:data.npz")


def test_other_datasets_names_only_the_networks_that_differ():
    assert other_datasets({"front": "digits", "end": "fashion"}, "digits") == {"end": "fashion"}
    assert other_datasets({"front": "fashion"}, None) == {}  # data in memory: nothing to compare


def test_the_message_names_both_datasets_in_one_sentence():
    one = provenance_message({"": "fashion"}, "digits")
    two = provenance_message({"front": "fashion", "end": "cifar10"}, "digits")
    assert one.startswith("the network was trained on fashion") and "digits" in one and "\n" not in one
    assert (
        "the front network was trained on fashion and the end network on cifar10" in two and "they run on digits" in two
    )


def test_note_provenance_warns_once_and_returns_the_convention():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        entry = note_provenance({"front": "fashion", "end": "fashion"}, "digits")
        assert note_provenance({"": "digits"}, "digits") == {}
    assert [issubclass(w.category, StitchkitWarning) for w in caught] == [True]
    assert entry == {CONVENTION: "trained on fashion (front), fashion (end) as the checkpoints record; used digits"}


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, "1e-3", True])
def test_check_finite_refuses_what_is_not_a_finite_number(value):
    with pytest.raises(StitchkitError, match="learning rate must be a finite number"):
        check_finite({"learning rate": value})
    check_finite({"learning rate": 1e-3, "grad clip": None})


@pytest.mark.parametrize(
    "seed, words",
    [
        ("3", "must be an integer, got '3'"),
        (1.0, "must be an integer"),
        (True, "must be an integer"),
        (2**64, "from 0 to 2**64 - 1"),
        (-1, "from 0 to 2**64 - 1"),
    ],
)
def test_check_seed_refuses_what_the_generators_cannot_take(seed, words):
    with pytest.raises(StitchkitError, match=words.replace("*", r"\*")):
        check_seed(seed)
    assert check_seed(2**64 - 1) == 2**64 - 1


def test_the_optimisation_refuses_non_finite_hyperparameters():
    from stitchkit.training.optim import OptimConfig

    for field in ("lr", "weight_decay", "momentum", "gamma"):
        with pytest.raises(StitchkitError, match="must be a finite number"):
            OptimConfig(**{field: math.nan}).validate()


def test_the_cli_float_options_refuse_nan_and_infinity():
    import argparse

    from stitchkit.cli.common import finite_float

    assert finite_float("1e-3") == 1e-3
    for text in ("nan", "inf", "-inf", "NaN"):
        with pytest.raises(argparse.ArgumentTypeError, match="finite"):
            finite_float(text)


def test_a_study_config_declares_allow_other_dataset_off_by_default():
    from stitchkit.study.config import SCHEMA

    key = SCHEMA["networks"]["allow_other_dataset"]
    assert key.type is bool and key.default is False


def test_tlm_with_no_epochs_is_refused_and_dm_with_none_is_fine():
    from stitchkit.stitching.settings import StitchSettings

    with pytest.raises(StitchkitError, match="untrained stitching layer"):
        StitchSettings(epochs=0, init="rand").validate()
    StitchSettings(epochs=0, init="pinv").validate()
    with pytest.raises(StitchkitError, match="init 'eye' would record an untrained stitching layer"):
        StitchSettings(epochs=0, init="eye").validate()


def test_a_clamped_count_warns_and_gives_the_number_used():
    from stitchkit.data.loading import clamped_count

    with pytest.warns(StitchkitWarning, match="has only 10 images, fewer than the 50 asked for; using all 10"):
        assert clamped_count(50, 10, "-pinv-samples (K): the training split of x") == 10
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert clamped_count(5, 10, "x") == 5 and clamped_count(None, 10, "x") is None


def test_eval_says_its_dataset_and_warns_when_the_checkpoint_records_another(tmp_path, capsys):
    import torch

    from stitchkit.cli import main
    from stitchkit.models import get_model
    from stitchkit.models.checkpoint import save_checkpoint

    torch.manual_seed(0)
    model = get_model("resnet18", num_classes=10, in_channels=1, input_size=(28, 28), width=4)
    save_checkpoint(tmp_path / "final.pt", model, dataset="fashion", input_shape=(1, 28, 28))
    assert (
        main(
            [
                "eval",
                str(tmp_path / "final.pt"),
                "-d",
                "digits",
                "-gpu",
                "-1",
                "-workers",
                "0",
                "--no-progress",
                "--json",
                str(tmp_path / "e.json"),
            ]
        )
        == 0
    )
    out, err = capsys.readouterr()
    assert out.startswith(f"resnet18 ({tmp_path / 'final.pt'}) on digits test (359 images): accuracy ")
    assert err.count("stitchkit: warning: the network was trained on fashion") == 1
    import json

    assert "fashion" in json.loads((tmp_path / "e.json").read_text())["conventions"][CONVENTION]
