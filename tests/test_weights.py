"""Local weights for torchvision and timm models (`--weights PATH`, the `weights` model option and the
study key): read weights-only, unwrapped, prefixes stripped, adapted like downloaded weights, and
refused with the mismatched keys named."""

import json
import os

import numpy as np
import pytest
import timm
import torch
import torchvision

from stitchkit.cli import main
from stitchkit.errors import StitchkitError
from stitchkit.models import build_from_spec, get_model
from stitchkit.models.checkpoint import save_checkpoint
from stitchkit.models.loading import load_model
from stitchkit.study import validate


@pytest.fixture(scope="module")
def imagenet_resnet18():
    torch.manual_seed(0)
    return torchvision.models.get_model(
        "resnet18", weights=None
    )  # 1000 classes, 3 channels, like the published weights


def _equal_except(a: dict, b: dict, skip: tuple[str, ...]) -> bool:
    return all(torch.equal(a[k], b[k]) for k in a if not k.startswith(skip))


@pytest.mark.parametrize("wrap", ["plain", "state_dict", "model", "module."])
def test_torchvision_weights_load_and_adapt_like_downloaded_ones(tmp_path, imagenet_resnet18, wrap):
    state = imagenet_resnet18.state_dict()
    payload = {
        "plain": state,
        "state_dict": {"state_dict": state, "epoch": 3},
        "model": {"model": state},
        "module.": {f"module.{k}": v for k, v in state.items()},
    }[wrap]
    torch.save(payload, tmp_path / "w.pth")
    model = get_model(
        "torchvision:resnet18", num_classes=10, in_channels=1, input_size=32, weights=str(tmp_path / "w.pth")
    )
    got = model.state_dict()
    assert _equal_except(got, state, ("conv1.", "fc."))
    # a fresh head for 10 classes; the first convolution's RGB kernel summed for one grey channel (= the
    # response of the same grey RGB image)
    assert model.fc.out_features == 10 and got["conv1.weight"].shape == (64, 1, 7, 7)
    assert torch.allclose(got["conv1.weight"][:, 0], state["conv1.weight"].sum(dim=1), atol=1e-6)
    grey = torch.rand(2, 1, 32, 32)
    with torch.no_grad():
        imagenet_resnet18.eval(), model.eval()
        features = torch.nn.Sequential(*list(model.children())[:-1])(grey)
        reference = torch.nn.Sequential(*list(imagenet_resnet18.children())[:-1])(grey.expand(-1, 3, -1, -1))
    assert torch.allclose(features, reference, atol=1e-4)
    assert model.stitchkit_spec["options"]["weights"] == str(tmp_path / "w.pth")


def test_weights_of_the_same_shape_load_whole(tmp_path):
    torch.manual_seed(1)
    tuned = get_model("torchvision:resnet18", num_classes=5, in_channels=3, input_size=32)
    torch.save({"model": tuned.state_dict()}, tmp_path / "tuned.pt")
    again = get_model("torchvision:resnet18", num_classes=5, input_size=32, weights=str(tmp_path / "tuned.pt"))
    assert _equal_except(again.state_dict(), tuned.state_dict(), ())


def test_timm_weights(tmp_path):
    torch.manual_seed(2)
    source = timm.create_model("resnet10t", pretrained=False, num_classes=1000)
    torch.save(source.state_dict(), tmp_path / "r10t.pth")
    model = get_model("timm:resnet10t", num_classes=7, in_channels=3, input_size=32, weights=str(tmp_path / "r10t.pth"))
    assert model.get_classifier().out_features == 7
    assert _equal_except(model.state_dict(), source.state_dict(), ("fc.",))


def test_a_checkpoint_of_such_a_model_does_not_need_the_weights_file(tmp_path, imagenet_resnet18):
    torch.save(imagenet_resnet18.state_dict(), tmp_path / "w.pth")
    model = get_model("torchvision:resnet18", num_classes=10, input_size=32, weights=str(tmp_path / "w.pth"))
    save_checkpoint(tmp_path / "final.pt", model, dataset="cifar10", input_shape=(3, 32, 32))
    os.remove(tmp_path / "w.pth")
    loaded, ckpt = load_model(tmp_path / "final.pt")
    assert _equal_except(loaded.state_dict(), model.state_dict(), ())
    assert loaded.stitchkit_spec == model.stitchkit_spec
    assert build_from_spec(model.stitchkit_spec).fc.out_features == 10


@pytest.mark.parametrize(
    "make,message",
    [
        (
            lambda sd: {k: v for k, v in sd.items() if not k.startswith("layer4.1.")},
            "missing keys: layer4.1.conv1.weight",
        ),
        (lambda sd: {**sd, "extra.weight": torch.zeros(1)}, "unexpected keys: extra.weight"),
        (
            lambda sd: {**sd, "layer1.0.conv1.weight": torch.zeros(64, 64, 1, 1)},
            "shape mismatches (file vs model): layer1.0.conv1.weight (64, 64, 1, 1) vs (64, 64, 3, 3)",
        ),
        (lambda sd: {"epoch": 3, "note": "no tensors"}, "holds no state_dict"),
        (lambda sd: [1, 2, 3], "holds no state_dict"),
    ],
)
def test_weights_that_do_not_fit_name_the_keys(tmp_path, imagenet_resnet18, make, message):
    torch.save(make(imagenet_resnet18.state_dict()), tmp_path / "bad.pth")
    with pytest.raises(StitchkitError) as info:
        get_model("torchvision:resnet18", num_classes=10, input_size=32, weights=str(tmp_path / "bad.pth"))
    assert message in str(info.value) and "bad.pth" in str(info.value)


def test_weights_errors(tmp_path, imagenet_resnet18):
    torch.save(imagenet_resnet18.state_dict(), tmp_path / "w.pth")
    with pytest.raises(StitchkitError, match="does not exist"):
        get_model("torchvision:resnet18", weights=str(tmp_path / "nope.pth"))
    with pytest.raises(StitchkitError, match="pretrained=true .* or weights=PATH .*, not both"):
        get_model("torchvision:resnet18", weights=str(tmp_path / "w.pth"), pretrained=True)
    with pytest.raises(StitchkitError, match="does not fit model"):
        get_model("torchvision:mobilenet_v3_small", weights=str(tmp_path / "w.pth"))
    with pytest.raises(StitchkitError, match="has no option 'weights' .*torchvision: and timm:"):
        get_model("resnet18", weights=str(tmp_path / "w.pth"))
    # weights-only reading: a file that would run code when unpickled is refused, and nothing runs
    torch.save({"state_dict": imagenet_resnet18.state_dict(), "hook": np.random.default_rng}, tmp_path / "code.pth")
    with pytest.raises(StitchkitError, match="refusing to load"):
        get_model("torchvision:resnet18", weights=str(tmp_path / "code.pth"))


def test_train_weights_on_the_command_line(tmp_path, imagenet_resnet18, capsys):
    rng = np.random.default_rng(0)
    np.savez(
        tmp_path / "d.npz",
        x_train=rng.integers(0, 256, (16, 16, 16, 3), dtype=np.uint8),
        y_train=np.arange(16) % 4,
        x_test=rng.integers(0, 256, (8, 16, 16, 3), dtype=np.uint8),
        y_test=np.arange(8) % 4,
    )
    torch.save(imagenet_resnet18.state_dict(), tmp_path / "w.pth")
    code = main(
        [
            "train",
            "torchvision:resnet18",
            "--weights",
            str(tmp_path / "w.pth"),
            "-d",
            f"npz:{tmp_path / 'd.npz'}",
            "-e",
            "1",
            "-b",
            "8",
            "-lr",
            "1e-12",
            "-dir",
            str(tmp_path / "run"),
            "-gpu",
            "-1",
            "-workers",
            "0",
            "--no-progress",
        ]
    )
    assert code == 0, capsys.readouterr().err
    model, ckpt = load_model(tmp_path / "run" / "final.pt")
    assert ckpt.model_spec["options"]["weights"] == str(tmp_path / "w.pth") and model.fc.out_features == 4
    trained, start = model.state_dict(), imagenet_resnet18.state_dict()
    # training started from the file's weights (a learning rate of 1e-12 moves them by at most ~1e-11)
    for key in ("conv1.weight", "layer2.0.conv1.weight", "layer4.1.conv2.weight"):
        assert torch.allclose(trained[key], start[key], atol=1e-8)
    assert json.loads((tmp_path / "run" / "config.json").read_text())["model_spec"]["options"]["weights"] == str(
        tmp_path / "w.pth"
    )
    assert json.loads((tmp_path / "run" / "config.txt").read_text())["weights"] == str(tmp_path / "w.pth")


def test_the_study_key(tmp_path, monkeypatch):
    (tmp_path / "w.pth").write_bytes(b"")
    config = validate({"networks": {"model": "torchvision:resnet18", "seeds": [0], "weights": str(tmp_path / "w.pth")}})
    assert config["networks"]["options"]["weights"] == str(tmp_path / "w.pth")
    monkeypatch.chdir(tmp_path)  # a relative path is the working folder's, recorded absolute
    assert validate({"networks": {"model": "timm:resnet10t", "seeds": [0], "weights": "w.pth"}})["networks"][
        "weights"
    ] == str(tmp_path / "w.pth")
    for networks, message in [
        ({"seeds": [0], "weights": str(tmp_path / "missing.pth")}, "networks.weights .* is not a file"),
        ({"checkpoints": ["a.pt"], "weights": str(tmp_path / "w.pth")}, "networks.weights is for networks to train"),
        ({"seeds": [0], "weights": str(tmp_path / "w.pth"), "options": {"weights": "other.pth"}}, "differ; give one"),
    ]:
        with pytest.raises(StitchkitError, match=message):
            validate({"networks": networks})
