"""Augmentation follows the networks: what trains on images fed through a trained network (task loss
matching, detector pre-training and the fine-tuning's ID half, probes) gets, by default, the
augmentation that network was trained with, as its checkpoint records. The tests look at the images
themselves (bitwise), not only at the recorded fields; tiny untrained networks on a few Fashion-MNIST
images (flip + crop) suffice, since only the data path is under test."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from stitch_support import RESNET, SHAPE, resnet

from stitchkit.api import task_loss_match
from stitchkit.cli import build_parser
from stitchkit.cli.stitch import settings_from_args
from stitchkit.data import dataset_augments, get_dataset
from stitchkit.data.augmentation import choice_for, recorded_augment, resolve_augmentation
from stitchkit.data.loading import make_batches, sample_subset
from stitchkit.errors import StitchkitError
from stitchkit.models.checkpoint import load_checkpoint, save_checkpoint, save_state_dict
from stitchkit.models.loading import load_model, recorded_augmentation
from stitchkit.ood.bank import DetectorBank
from stitchkit.ood.train import DetectorTrainConfig
from stitchkit.probing import model as probing_model
from stitchkit.probing.probe import ProbeConfig
from stitchkit.sensitivity import run as grounding
from stitchkit.sensitivity.settings import GroundingSettings
from stitchkit.stitching.donors import load_donor
from stitchkit.stitching.grid import stitch_grid
from stitchkit.stitching.session import GridSession
from stitchkit.stitching.settings import StitchSettings

N, BATCH, SEED = 16, 8, 3
FAST = dict(dataset="fashion", workers=0, progress=False, verbose=False, device="cpu")


def _checkpoint(path: Path, seed: int, augment: bool | None) -> str:
    """A tiny network's checkpoint whose training record says ``augment`` (None: it records nothing)."""
    save_checkpoint(
        path,
        resnet(seed),
        dataset="fashion",
        input_shape=SHAPE,
        training=None if augment is None else {"augment": augment},
    )
    return str(path)


@pytest.fixture(scope="module")
def nets(tmp_path_factory) -> dict[str, str]:
    folder = tmp_path_factory.mktemp("nets")
    paths = {
        "plain": _checkpoint(folder / "plain.pt", 0, False),
        "augmented": _checkpoint(folder / "augmented.pt", 1, True),
        "unrecorded": _checkpoint(folder / "unrecorded.pt", 2, None),
    }
    save_state_dict(folder / "bare.pt", resnet(3))  # the original's plain state_dict: no record at all
    paths["bare"] = str(folder / "bare.pt")
    return paths


def _donor(path: str):
    return load_donor(
        path,
        "resnet18" if path.endswith("bare.pt") else None,
        dataset="fashion",
        model_options=RESNET if path.endswith("bare.pt") else None,
    )


def _split_images(augment: bool) -> torch.Tensor:
    """The training batches a session would make of the plain or the augmented split, in its order."""
    subset = sample_subset(get_dataset("fashion", "train", augment=augment), N, SEED)
    torch.manual_seed(0)
    return torch.cat([x for x, _ in make_batches(subset, BATCH, shuffle=True, device="cpu")])


def _tlm_images(front: str, end: str, **options) -> tuple[torch.Tensor, GridSession, list[str]]:
    """The images of TLM's training batches (the session's own batches, after seeding as above)."""
    settings = StitchSettings(
        **{**dict(epochs=1, batch_size=BATCH, seed=SEED, train_samples=N, test_samples=8), **FAST, **options}
    ).validate()
    lines: list[str] = []
    session = GridSession(_donor(front), _donor(end), settings, log=lines.append)
    try:
        torch.manual_seed(0)
        return torch.cat([x for x, _ in session.train_batches]), session, lines
    finally:
        session.close()


# --- the resolution ---------------------------------------------------------------------------------


def test_the_choice_is_resolved_by_the_record_and_an_explicit_choice_overrides_it():
    assert [resolve_augmentation("network", r).augment for r in (True, False, None)] == [True, False, True]
    assert [resolve_augmentation(c, False).augment for c in ("dataset", "none")] == [True, False]
    assert [resolve_augmentation(c, True).name for c in ("dataset", "none")] == ["dataset", "none"]
    assert "records augment: false" in resolve_augmentation("network", False, "the end network").describe()
    with pytest.raises(
        StitchkitError, match="unknown augmentation 'flip' \\(augment\\); choose one of: network, dataset, none"
    ):
        resolve_augmentation("flip", True)
    assert [choice_for(f) for f in ([True, True], [False, False], [True, False])] == ["dataset", "none", "network"]
    # sets whose augmented split is the plain one (CIFAR-5M, noise, your own data: read no files to say so)
    assert [dataset_augments(n) for n in ("fashion", "digits", "cifar5m", "noise", "folder:/nowhere")] == [
        True,
        True,
        False,
        False,
        False,
    ]


def test_the_record_is_read_from_checkpoints_run_configs_and_travels_with_the_model(nets, tmp_path):
    assert [load_checkpoint(nets[k]).augment for k in ("plain", "augmented", "unrecorded", "bare")] == [
        False,
        True,
        None,
        None,
    ]
    # a bare model_<e>.pt of `stitchkit train` is described by the run's config.json (settings nested)
    model = resnet(4)
    save_state_dict(tmp_path / "model_1.pt", model)
    (tmp_path / "config.json").write_text(
        json.dumps(
            {
                "model_spec": model.stitchkit_spec,
                "dataset": "fashion",
                "input_shape": list(SHAPE),
                "settings": {"augment": False},
            }
        )
    )
    assert load_checkpoint(tmp_path / "model_1.pt").augment is False
    assert recorded_augmentation(load_model(tmp_path / "model_1.pt")[0]) is False
    assert recorded_augmentation(load_model(nets["augmented"])[0]) is True and recorded_augmentation(resnet(0)) is None
    assert recorded_augment({"augment": "yes"}) is None  # only a real boolean counts


# --- task loss matching ------------------------------------------------------------------------------


def test_tlm_follows_the_end_network(nets):
    plain, augmented = _split_images(False), _split_images(True)
    assert not torch.equal(plain, augmented)  # flip + crop changes the images
    images, session, _ = _tlm_images(nets["augmented"], nets["plain"])
    assert torch.equal(images, plain)  # bitwise the plain split, in the sampled order
    images, _, _ = _tlm_images(nets["plain"], nets["augmented"])
    assert torch.equal(images, augmented)  # the augmented split under the same seed
    for unrecorded in ("unrecorded", "bare"):  # no record: the dataset's default, as the original
        assert torch.equal(_tlm_images(nets["plain"], nets[unrecorded])[0], augmented)


def test_an_explicit_choice_overrides_the_networks(nets):
    assert torch.equal(_tlm_images(nets["plain"], nets["plain"], augment="dataset")[0], _split_images(True))
    assert torch.equal(_tlm_images(nets["augmented"], nets["augmented"], augment="none")[0], _split_images(False))


def test_front_and_end_trained_differently_is_said_and_recorded(nets):
    _, session, lines = _tlm_images(nets["augmented"], nets["plain"], verbose=True)
    assert lines == [
        "note: the front network was trained with augmentation, the end network without: task loss matching follows "
        "the end network, whose task loss it optimises"
    ]
    assert session.augmentation.describe().startswith(
        "none (augment = network: the end network's checkpoint records augment: false); "
        "the front network was trained with"
    )
    assert _tlm_images(nets["plain"], nets["unrecorded"], verbose=True)[2]  # no record = the dataset's: they differ
    assert _tlm_images(nets["plain"], nets["plain"], verbose=True)[2] == []
    assert (
        _tlm_images(nets["augmented"], nets["plain"], augment="none", verbose=True)[2] == []
    )  # asked for: nothing to follow


def _grid(front: str, end: str, **options):
    base = dict(epochs=1, batch_size=BATCH, seed=SEED, train_samples=N, test_samples=8, fit_samples=8)
    settings = StitchSettings(**{**base, **FAST, **options})
    return stitch_grid(front, end, ["layer1.0"], ["layer1.0"], settings)[0]


def test_results_record_the_augmentation_and_names_change_only_where_the_images_do(nets):
    followed = _grid(nets["augmented"], nets["plain"])
    assert followed.options["augment"] == "none" and followed.conventions["augmentation"].startswith(
        "none (augment = network"
    )
    assert "task loss matching follows the end network" in followed.conventions["augmentation"]
    asked = _grid(nets["augmented"], nets["plain"], augment="none")
    assert asked.run_name == followed.run_name  # the same images, the same run
    old = _grid(nets["augmented"], nets["plain"], augment="dataset")  # what every run trained on before
    assert old.run_name != followed.run_name and "augment" not in old.options
    augmented = _grid(nets["plain"], nets["augmented"])
    assert "augment" not in augmented.options  # augmented networks: the same options, so the same name, as before
    assert augmented.run_name == _grid(nets["plain"], nets["augmented"], augment="dataset").run_name
    dm = _grid(nets["augmented"], nets["plain"], epochs=0, init="pinv")
    assert "augment" not in dm.options and dm.conventions["augmentation"] == "n/a (nothing trained)"


def test_data_in_memory_without_an_augmented_split_names_none_like_dataset():
    """With nothing to leave out (no train_augmented), "none" trains on the same images as "dataset"."""
    g = torch.Generator().manual_seed(0)
    data = torch.utils.data.TensorDataset(torch.rand(24, *SHAPE, generator=g), torch.arange(24) % 10)
    front, end = resnet(0), resnet(1)
    runs = {
        c: task_loss_match(
            front, end, "layer1.0", "layer1.0", data, epochs=1, batch_size=8, augment=c, device="cpu"
        ).pair()
        for c in ("dataset", "none")
    }
    assert runs["dataset"].config_key == runs["none"].config_key and "augment" not in runs["none"].options
    given = {
        "train": data,
        "train_augmented": torch.utils.data.TensorDataset(torch.rand(24, *SHAPE, generator=g), torch.arange(24) % 10),
    }
    with_split = task_loss_match(
        front, end, "layer1.0", "layer1.0", given, epochs=1, batch_size=8, augment="none", device="cpu"
    ).pair()
    assert with_split.options["augment"] == "none"
    with pytest.raises(StitchkitError, match="unknown augmentation 'flip'"):
        task_loss_match(front, end, "layer1.0", "layer1.0", data, epochs=1, augment="flip")


# --- detectors -----------------------------------------------------------------------------------------


def _items(dataset, n: int | None = None) -> torch.Tensor:
    torch.manual_seed(0)
    return torch.stack([dataset[i][0] for i in range(n or len(dataset))])


def _bank(path: str, tmp_path: Path, **options) -> DetectorBank:
    source, _ = load_model(path)
    config = DetectorTrainConfig(
        save_dir=str(tmp_path / "det"),
        model_options={"width": 4},
        dataset="fashion",
        epochs=1,
        ft_epochs=1,
        batch_size=8,
        train_subset=N,
        ft_samples=8,
        val_subset=0,
        ft_ood_dataset="natural_patches_gray",
        register=False,
        device="cpu",
        progress=False,
        verbose=False,
        **options,
    )
    return DetectorBank(source, ["layer1.0"], config)


def _train_split(augment: bool) -> torch.Tensor:
    return _items(sample_subset(get_dataset("fashion", "train", augment=augment), N, 0))


def test_detector_pretraining_and_the_finetuning_id_half_follow_the_source(nets, tmp_path):
    plain, augmented = _train_split(False), _train_split(True)
    full = {flag: _items(get_dataset("fashion", "train", augment=flag), 8) for flag in (False, True)}
    bank = _bank(nets["plain"], tmp_path / "a")
    assert torch.equal(_items(bank.data.train), plain) and torch.equal(_items(bank.data.ft_id, 8), full[False])
    bank = _bank(nets["augmented"], tmp_path / "b")
    assert torch.equal(_items(bank.data.train), augmented) and torch.equal(_items(bank.data.ft_id, 8), full[True])
    assert not torch.equal(plain, augmented)
    bank = _bank(nets["plain"], tmp_path / "c", augment="dataset", ft_id_augment=False)  # explicit choices win
    assert torch.equal(_items(bank.data.train), augmented) and torch.equal(_items(bank.data.ft_id, 8), full[False])
    assert torch.equal(_items(_bank(nets["unrecorded"], tmp_path / "d").data.train), augmented)


def test_detector_ids_change_exactly_where_the_images_do(nets, tmp_path):
    """Before: pre-training on the dataset's augmentation, the ID half as ft_id_augment said (default
    False); the id (the hash of training_config) has those exactly when the images are those."""

    def identity(path, sub, **options):
        bank = _bank(path, tmp_path / sub, **options)
        return bank.augmentation.identity(bank.config, "fashion", "fashion"), bank

    assert identity(nets["augmented"], "a", augment="dataset", ft_id_augment=False)[0] == {
        "ft_id_augment": False
    }  # the old default
    assert identity(nets["augmented"], "b")[0] == {
        "ft_id_augment": True
    }  # the ID half now augmented, as --ft-id-augment did
    assert identity(nets["plain"], "c")[0] == {"ft_id_augment": False, "augment": False}  # pre-training un-augmented
    ids, bank = identity(nets["plain"], "d")
    bank.pretrain()
    bank.finetune()
    meta = bank.publish()[0].meta
    assert {k: meta["training_config"][k] for k in ids} == ids and "ft_id_augment" in meta["training_config"]
    assert meta["conventions"]["pretrain_augmentation"].startswith(
        "none (augment = network: the source network's checkpoint records augment: false"
    )
    assert meta["conventions"]["finetune_id_augmentation"].startswith("none")
    assert json.loads((tmp_path / "d" / "det" / "config.json").read_text())["conventions"][
        "pretrain_augmentation"
    ].startswith("none")


# --- probes --------------------------------------------------------------------------------------------


def _probe_inputs(path: str, monkeypatch, **config) -> dict:
    """What probe_checkpoint hands the probes (the model-level function is not run)."""
    seen: dict = {}

    def capture(model, layers, data, **kwargs):
        seen.update(train=data["train"], augmented=data.get("train_augmented"), config=kwargs["config"])
        raise KeyboardInterrupt  # stop here: the inputs are what is under test

    monkeypatch.setattr(probing_model, "probe_model", capture)
    with pytest.raises(KeyboardInterrupt):
        probing_model.probe_checkpoint(path, layers=["layer1.0"], config=ProbeConfig(**config, device="cpu", workers=0))
    return seen


def test_probes_train_on_the_networks_augmentation(nets, monkeypatch):
    seen = _probe_inputs(nets["plain"], monkeypatch)
    assert seen["augmented"] is None and seen["config"].augment == "none"
    seen = _probe_inputs(nets["augmented"], monkeypatch)
    assert seen["config"].augment == "dataset"
    assert torch.equal(_items(seen["augmented"], 8), _items(get_dataset("fashion", "train", augment=True), 8))
    assert not torch.equal(_items(seen["augmented"], 8), _items(seen["train"], 8))
    assert (
        _probe_inputs(nets["augmented"], monkeypatch, augment=False)["augmented"] is None
    )  # --no-augment's old spelling
    assert _probe_inputs(nets["unrecorded"], monkeypatch)["augmented"] is not None


def test_a_probe_report_records_the_resolved_augmentation(nets):
    config = ProbeConfig(epochs=1, train_subset=32, device="cpu", workers=0)
    report = probing_model.probe_checkpoint(nets["plain"], layers=["layer1.0"], config=config)
    assert (
        report.config["augment"] == "none"
        and report.info["augmented"] is False
        and report.info["path"] == "features once"
    )
    assert report.info["augmentation"].startswith(
        "none (augment = network: the probed network's checkpoint records augment: false"
    )
    assert ProbeConfig(augment="none").key() == ProbeConfig(augment=False).key() != ProbeConfig(augment="dataset").key()


def test_the_tests_probes_follow_each_network(nets, monkeypatch):
    given: dict = {}
    real = grounding.probe_model

    def spy(model, layers, data, **kwargs):
        given[recorded_augmentation(model)] = data.get("train_augmented")
        return real(model, layers, data, **kwargs)

    monkeypatch.setattr(grounding, "probe_model", spy)
    models = {name: load_model(nets[name])[0] for name in ("plain", "augmented")}
    settings = GroundingSettings(
        measures=["cka"],
        n_samples=20,
        probe=ProbeConfig(epochs=1, train_subset=16),
        device="cpu",
        workers=0,
        verbose=False,
    )
    report = grounding.run_grounding_test("specificity", models, "fashion", layers=["layer1.0"], settings=settings)
    assert given[False] is None and given[True] is not None
    assert torch.equal(_items(given[True], 4), _items(get_dataset("fashion", "train", augment=True), 4))
    assert report.info["probe_augmentation"]["plain"].startswith("none") and report.info["probe_augmentation"][
        "augmented"
    ].startswith("dataset")


# --- the command line ------------------------------------------------------------------------------------


def test_the_commands_take_augment_and_keep_their_old_flags():
    parse = build_parser().parse_args
    assert parse(["stitch", "a.pt", "b.pt", "-", "-", "l", "l", "auto"]).augment == "network"
    assert (
        settings_from_args(parse(["stitch", "a.pt", "b.pt", "-", "-", "l", "l", "auto", "--augment", "none"])).augment
        == "none"
    )
    assert parse(["probe", "a.pt", "--no-augment"]).augment == "none"
    assert parse(["sensitivity", "a.pt", "b.pt", "-l", "x", "-ranks", "1", "--no-augment"]).augment == "none"
    train = ["detector", "train", "a.pt", "-", "layer1.0", "-dir", "d"]
    assert (parse(train).augment, parse(train).ft_id_augment) == ("network", None)
    assert parse(train + ["--augment", "dataset", "--ft-id-augment"]).ft_id_augment is True
    assert parse(train + ["--augment", "dataset", "--no-ft-id-augment"]).ft_id_augment is False
    with pytest.raises(SystemExit):
        parse(["probe", "a.pt", "--augment", "flip"])
