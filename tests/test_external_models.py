"""Library models (timm, torchvision) on data they were not built for: one sentence with the fixes, never
torch.fx's traceback."""

import pytest
import torch

from stitchkit.cli import main
from stitchkit.errors import StitchkitError
from stitchkit.models import get_model
from stitchkit.models.layers import layered

#: a timm ViT for 224-pixel inputs, one block wide enough to be quick (pretrained=False: nothing downloaded)
TINY_VIT = ["timm:vit_tiny_patch16_224", "--model-option", 'kwargs={"depth": 1, "embed_dim": 12, "num_heads": 3}']
TINY_VIT_KWARGS = {"depth": 1, "embed_dim": 12, "num_heads": 3}


def _one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.mark.parametrize("command", [["layers", *TINY_VIT, "-d", "digits"],
                                     ["train", *TINY_VIT, "-d", "digits", "-e", "1", "-gpu", "-1", "--no-progress"]])
def test_a_timm_vit_on_28_pixel_data_is_one_line_with_the_fixes(command, capsys, tmp_path):
    if command[0] == "train":
        command += ["-dir", str(tmp_path / "run")]
    assert main(command) == 2
    out, err = capsys.readouterr()
    line = _one_error_line(err)
    assert line.startswith("stitchkit: error: timm:vit_tiny_patch16_224 (built for 224x224 inputs) cannot take inputs of shape 1x28x28")
    assert "NAME@224x224" in line and "cifar10_large" in line and "kwargs" in line and '"img_size": 28' in line
    assert not (tmp_path / "run").exists()


def test_the_fixes_it_names_work(capsys):
    assert main(["layers", *TINY_VIT, "-d", "digits@3x224x224"]) == 0
    assert "blocks.0  197 x 12" in capsys.readouterr().out
    kwargs = 'kwargs={"depth": 1, "embed_dim": 12, "num_heads": 3, "img_size": 28, "patch_size": 4}'
    assert main(["layers", "timm:vit_tiny_patch16_224", "--model-option", kwargs, "-d", "digits"]) == 0
    assert "blocks.0  50 x 12" in capsys.readouterr().out  # 7×7 patches and the class token


def test_a_cut_module_raises_without_printing_fx_code(capsys):
    model = get_model("timm:vit_tiny_patch16_224", num_classes=10, in_channels=1, input_size=224, kwargs=TINY_VIT_KWARGS).eval()
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
