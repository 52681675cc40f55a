"""Library models (timm, torchvision) and models of your own: on data they were not built for, one
sentence with the fixes and never torch.fx's traceback; their layers' kinds, and "all" without the
layers that are no features of their own; pretrained weights without internet fail at once and
point to local weights."""

import json
import socket

import pytest
import timm
import torch
import torchvision
from torch import nn

from stitchkit.cli import main
from stitchkit.errors import StitchkitError
from stitchkit.models import get_model
from stitchkit.models.external import CONNECT_TIMEOUT
from stitchkit.models.layer_kinds import layer_kind
from stitchkit.models.layers import layered
from stitchkit.stitching.donors import resolve_layers

#: a timm ViT for 224-pixel inputs, one block wide enough to be quick (pretrained=False: nothing downloaded)
TINY_VIT = ["timm:vit_tiny_patch16_224", "--model-option", 'kwargs={"depth": 1, "embed_dim": 12, "num_heads": 3}']
TINY_VIT_KWARGS = {"depth": 1, "embed_dim": 12, "num_heads": 3}


def _one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.mark.parametrize(
    "command",
    [
        ["layers", *TINY_VIT, "-d", "digits"],
        ["train", *TINY_VIT, "-d", "digits", "-e", "1", "-gpu", "-1", "--no-progress"],
    ],
)
def test_a_timm_vit_on_28_pixel_data_is_one_line_with_the_fixes(command, capsys, tmp_path):
    if command[0] == "train":
        command += ["-dir", str(tmp_path / "run")]
    assert main(command) == 2
    out, err = capsys.readouterr()
    line = _one_error_line(err)
    assert line.startswith(
        "stitchkit: error: timm:vit_tiny_patch16_224 (built for 224x224 inputs) cannot take inputs of shape 1x28x28"
    )
    assert "NAME@224x224" in line and "cifar10_large" in line and "kwargs" in line and '"img_size": 28' in line
    assert not (tmp_path / "run").exists()


def test_the_fixes_it_names_work(capsys):
    assert main(["layers", *TINY_VIT, "-d", "digits@3x224x224"]) == 0
    assert "blocks.0  Block  197 x 12" in capsys.readouterr().out
    kwargs = 'kwargs={"depth": 1, "embed_dim": 12, "num_heads": 3, "img_size": 28, "patch_size": 4}'
    assert main(["layers", "timm:vit_tiny_patch16_224", "--model-option", kwargs, "-d", "digits"]) == 0
    assert "blocks.0  Block  50 x 12" in capsys.readouterr().out  # 7×7 patches and the class token


def test_a_cut_module_raises_without_printing_fx_code(capsys):
    model = get_model(
        "timm:vit_tiny_patch16_224", num_classes=10, in_channels=1, input_size=224, kwargs=TINY_VIT_KWARGS
    ).eval()
    capsys.readouterr()
    prefix = layered(model).prefix("blocks.0")
    with pytest.raises(RuntimeError, match="must match the size"):
        prefix(torch.zeros(1, 1, 32, 32))  # fx's wrapper would print the generated code to stderr first
    assert capsys.readouterr().err == ""
    with pytest.raises(StitchkitError, match=r"cannot take inputs of shape 1x28x28 .*NAME@224x224.*img_size"):
        layered(model).shapes((1, 28, 28))
    assert capsys.readouterr().err == ""
    assert layered(model).shapes((1, 224, 224)) == {"blocks.0": (197, 12)}


def test_an_unsized_timm_model_is_built_for_its_own_size():
    model = get_model("timm:vit_small_patch16_384", num_classes=3, kwargs={"depth": 1, "embed_dim": 12, "num_heads": 3})
    assert model.stitchkit_spec["input_size"] == [384, 384]


# --------------------------------------------------------------------------------------------------
# layer kinds: "all" leaves out what is no feature of its own, "every" keeps it


@pytest.mark.parametrize(
    "module,kind",
    [
        (nn.ReLU(), "activation"),
        (nn.Hardswish(), "activation"),
        (nn.GELU(), "activation"),
        (nn.Softmax(dim=1), "activation"),
        (nn.Dropout(0.2), "dropout"),
        (nn.Dropout2d(), "dropout"),
        (nn.Identity(), "identity"),
        (nn.Conv2d(1, 2, 3), "feature"),
        (nn.Linear(2, 2), "feature"),
        (nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU()), "feature"),
        (nn.MultiheadAttention(4, 2), "feature"),
        (nn.MaxPool2d(2), "feature"),
    ],
)
def test_layer_kind_of_modules(module, kind):
    assert layer_kind(module) == kind
    assert layer_kind(module, is_output=True) == "logits"


class _Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Conv2d(4, 4, 3), nn.GELU(), nn.Identity())
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(0.5), nn.Linear(4 * 4 * 4, 3))

    def forward(self, x):
        return self.head(self.features(x))


def test_all_leaves_out_activations_dropout_and_logits_and_every_keeps_them():
    lm = layered(_Net())
    every = ["features.0", "features.1", "features.2", "features.3", "features.4", "head.0", "head.1", "head.2"]
    assert lm.layers == every and lm.resolve("every") == every and lm.resolve(["every"]) == every
    assert lm.resolve("all") == lm.resolve(None) == lm.feature_layers == ["features.0", "features.2", "head.0"]
    assert lm.kinds == {
        "features.0": "feature",
        "features.1": "activation",
        "features.2": "feature",
        "features.3": "activation",
        "features.4": "identity",
        "head.0": "feature",
        "head.1": "dropout",
        "head.2": "logits",
    }
    assert lm.module_types["features.3"] == "GELU" and lm.module_types["head.2"] == "Linear"
    assert lm.resolve("head.2,features.1") == ["head.2", "features.1"]  # asked for by name: allowed
    assert not lm.is_feature("head.1") and lm.is_feature("features.2")
    assert resolve_layers(_Net(), "all") == ["features.0", "features.2", "head.0"]  # the stitching grid's resolution


def test_declared_layers_are_features_even_when_they_are_activations():
    model = get_model("small_cnn", num_classes=10, in_channels=1, width=4)
    lm = layered(model)
    assert lm.resolve("all") == lm.resolve("every") == ["relu1", "relu2", "relu3", "relu4"]
    assert set(lm.kinds.values()) == {"feature"} and lm.module_types["relu1"] == "ReLU"


def test_mobilenet_lists_module_types_and_marks_non_features(capsys):
    assert main(["layers", "torchvision:mobilenet_v3_small", "-d", "digits"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "17 stitchable layers; 'all' leaves out the 3 marked *" in lines[0] and "'every'" in lines[0]
    rows = {line.split()[1]: line.split() for line in lines[1:]}
    assert rows["features.0"][2] == "Conv2dNormActivation" and "*" not in rows["features.0"]
    assert rows["classifier.0"][2:] == ["Linear", "1024"]
    assert rows["classifier.1"][2] == "Hardswish" and rows["classifier.1"][-2:] == ["*", "activation"]
    assert rows["classifier.2"][-2:] == ["*", "dropout"] and rows["classifier.3"][-2:] == ["*", "logits"]
    assert main(["layers", "torchvision:mobilenet_v3_small", "-d", "digits", "--json"]) == 0
    records = {r["name"]: r for r in json.loads(capsys.readouterr().out)["layers"]}
    assert records["classifier.1"]["module_type"] == "Hardswish" and records["classifier.1"]["is_feature"] is False
    assert records["features.12"]["is_feature"] is True and records["classifier.3"]["kind"] == "logits"
    lm = layered(get_model("torchvision:mobilenet_v3_small", num_classes=10, in_channels=1, input_size=28))
    assert lm.resolve("all") == [f"features.{i}" for i in range(13)] + ["classifier.0"]


# --------------------------------------------------------------------------------------------------
# pretrained weights without internet: one connection attempt, then an error that names --weights


class _NoNetwork:
    """socket.create_connection on a machine without internet: every attempt fails, and is counted."""

    def __init__(self):
        self.calls = []

    def __call__(self, address, timeout=None, *args, **kwargs):
        self.calls.append((address, timeout))
        raise socket.gaierror(-2, "Name or service not known")


@pytest.fixture
def offline(monkeypatch, tmp_path):
    import huggingface_hub

    no_network = _NoNetwork()
    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))  # an empty download cache
    monkeypatch.setattr(huggingface_hub, "try_to_load_from_cache", lambda *a, **k: None)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("https_proxy", raising=False)
    monkeypatch.delenv("HTTPS_PROXY", raising=False)

    def no_download(*args, **kwargs):
        raise AssertionError("the library's download (with its minute of retries) was started")

    monkeypatch.setattr(timm, "create_model", lambda *a, pretrained=False, **k: no_download() if pretrained else None)
    monkeypatch.setattr(
        torchvision.models, "get_model", lambda *a, weights=None, **k: no_download() if weights else None
    )
    return no_network


@pytest.mark.parametrize(
    "name,host", [("timm:resnet10t", "huggingface.co"), ("torchvision:resnet18", "download.pytorch.org")]
)
def test_pretrained_offline_fails_at_once_and_names_the_local_weights(offline, name, host):
    with pytest.raises(StitchkitError) as info:
        get_model(name, num_classes=10, pretrained=True)
    text = str(info.value)
    assert f"could not download the pretrained weights of {name}: {host} is not reachable" in text
    assert "--weights PATH" in text and "weights=PATH" in text and 'weights = "PATH" under [networks]' in text
    assert 'model_options={"weights": PATH}' in text
    assert offline.calls == [((host, 443), CONNECT_TIMEOUT)]  # one attempt, with a short timeout


def test_pretrained_offline_cli_is_one_line(offline, capsys):
    assert main(["layers", "timm:resnet10t", "--model-option", "pretrained=true", "-d", "digits"]) == 2
    assert "--weights PATH" in _one_error_line(capsys.readouterr().err)


def test_hub_offline_mode_needs_no_connection_attempt(offline, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(
        StitchkitError, match=r"HF_HUB_OFFLINE is set and they are not in the local cache; .*--weights PATH"
    ):
        get_model("timm:resnet10t", num_classes=10, pretrained=True)
    assert offline.calls == []


def test_cached_weights_are_used_without_a_connection_attempt(offline, tmp_path):
    url = torchvision.models.get_model_weights("resnet18").DEFAULT.url
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    (tmp_path / "hub" / "checkpoints" / url.rsplit("/", 1)[1]).write_bytes(b"cached")
    with pytest.raises(AssertionError, match="download"):  # the library is called: it reads its cache
        get_model("torchvision:resnet18", num_classes=10, pretrained=True)
    assert offline.calls == []


def test_a_model_of_the_zoo_on_too_small_images_is_one_line(capsys, tmp_path):
    assert (
        main(["train", "small_cnn", "-d", "digits@3x32", "-e", "1", "-gpu", "-1", "-dir", str(tmp_path / "run")]) == 2
    )
    line = _one_error_line(capsys.readouterr().err)
    assert line.startswith("stitchkit: error: small_cnn cannot take inputs of shape 1x3x32 (RuntimeError: ")
    assert "dataset NAME@CxHxW" in line and "kwargs" not in line  # the zoo's models have no constructor kwargs option
