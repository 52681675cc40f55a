"""The layer-cutting mechanism: for every registered model family, prefix then suffix equals the full
forward at every stitchable layer, and nothing outside the requested range runs."""

import pytest
import torch
import torchvision
from torch import nn

from stitchkit.errors import StitchkitError
from stitchkit.models import get_model, list_models
from stitchkit.models.layers import layer_shapes, layered, stitchable_layers

TINY = [  # (name prefix, options that make the model small enough for a CPU test)
    ("repr_cls_resnet", {"width": 4}),
    ("repr_cls_vit", {"embed_dim": 16, "depth": 2, "num_heads": 2}),
    ("resnext", {"width": 16}),
    ("wide_resnet_", {"width_factor": 1}),
    ("wide_resnet", {"width": 4}),
    ("resnet", {"width": 4}),
    ("preact_resnet", {"width": 4}),
    ("liu2020_wrn", {"width_factor": 1}),
    ("small_cnn", {"width": 4}),
    ("vit_", {"embed_dim": 16, "depth": 2, "num_heads": 2}),
    ("tv_", {}),
]


def tiny_options(name):
    return next(opts for prefix, opts in TINY if name.startswith(prefix))


def build(name):
    """The model and an input batch of the shape it takes."""
    torch.manual_seed(0)
    if name.startswith("repr_cls_resnet"):
        model = get_model(name, num_classes=10, in_channels=6, input_size=16, **tiny_options(name))
        x = torch.rand(2, 6, 8, 8)
    elif name.startswith("repr_cls_vit"):
        model = get_model(name, num_classes=10, in_channels=12, input_size=32, **tiny_options(name))
        x = torch.rand(2, 5, 12)
    else:
        model = get_model(name, num_classes=10, in_channels=3, input_size=32, **tiny_options(name))
        x = torch.rand(2, 3, 32, 32)
    return model.eval(), x


def family_representatives():
    seen, names = set(), []
    for name in list_models():
        key = next(p for p, _ in TINY if name.startswith(p)) + (
            "_" + name.split("_")[-1] if name.startswith("vit_") else ""
        )
        key += "18" if "18" in name else ""
        if key not in seen:
            seen.add(key)
            names.append(name)
    return names


@pytest.mark.parametrize("name", family_representatives())
def test_prefix_then_suffix_equals_the_full_forward(name):
    model, x = build(name)
    lm = layered(model)
    assert lm.layers, f"{name} has no stitchable layers"
    with torch.no_grad():
        full = model(x)
        for layer in lm.layers:
            activation = lm.prefix(layer)(x)
            out = lm.suffix(layer)(activation)
            torch.testing.assert_close(out, full, rtol=1e-5, atol=1e-5, msg=f"{name} cut at {layer}")


def completion_order(model, x):
    """Module names in the order their forward finishes (a module called twice keeps both)."""
    order, handles = [], []
    for n, m in model.named_modules():
        if n:
            handles.append(m.register_forward_hook(lambda mod, inp, out, n=n: order.append(n)))
    with torch.no_grad():
        model(x)
    for h in handles:
        h.remove()
    return order, handles


def calls(module, x, model):
    seen, handles = set(), []
    for n, m in model.named_modules():
        if n:
            handles.append(m.register_forward_hook(lambda mod, inp, out, n=n: seen.add(n)))
    with torch.no_grad():
        out = module(x)
    for h in handles:
        h.remove()
    return seen, out


@pytest.mark.parametrize(
    "name",
    [
        "resnet18",
        "vit_tiny_patch4_32",
        "preact_resnet18",
        "liu2020_wrn",
        "small_cnn",
        "tv_resnet18",
        "wide_resnet_28_10",
    ],
)
def test_layers_outside_the_range_never_run(name):
    model, x = build(name)
    lm = layered(model)
    order, _ = completion_order(model, x)
    for layer in lm.layers:
        done_at = order.index(layer)
        before = set(order[: done_at + 1])
        after = set(order[done_at + 1 :])
        ancestors = {n for n in after if layer.startswith(n + ".")}
        shared = before & after
        only_after = after - ancestors - shared
        only_before = before - shared
        ran, activation = calls(lm.prefix(layer), x, model)
        assert not ran & only_after, f"prefix to {layer} ran {sorted(ran & only_after)}"
        ran, _ = calls(lm.suffix(layer), activation, model)
        assert not ran & only_before, f"suffix from {layer} ran {sorted(ran & only_before)}"


def test_extractor_gives_every_layer_in_one_pass():
    model, x = build("resnet18")
    lm = layered(model)
    counts = {}
    handles = [
        m.register_forward_hook(lambda mod, i, o, n=n: counts.__setitem__(n, counts.get(n, 0) + 1))
        for n, m in model.named_modules()
        if n
    ]
    with torch.no_grad():
        acts = lm.extractor(["layer1.1", "layer3.0"])(x)
    for h in handles:
        h.remove()
    assert list(acts) == ["layer1.1", "layer3.0"]
    assert counts["layer1.1"] == 1 and counts["layer3.0"] == 1 and "layer3.1" not in counts and "fc" not in counts
    torch.testing.assert_close(acts["layer3.0"], lm.prefix("layer3.0")(x))


def test_segment_composes_prefix_and_suffix():
    model, x = build("vit_tiny_patch4_32")
    lm = layered(model)
    with torch.no_grad():
        a = lm.prefix("blocks.0")(x)
        torch.testing.assert_close(lm.segment("blocks.0", "blocks.1")(a), lm.prefix("blocks.1")(x))
    with pytest.raises(StitchkitError, match="does not come after"):
        lm.segment("blocks.1", "blocks.0")


def test_cut_modules_share_the_models_parameters():
    model, _ = build("resnet18")
    prefix = layered(model).prefix("layer2.0")
    assert prefix.conv1.weight is model.conv1.weight
    assert (
        prefix.get_submodule("layer1.0.bn1") is model.layer1[0].bn1
    )  # shared, so .eval()/.train() of the model act on it


def test_resnet18_layer_names_and_shapes():
    model = get_model("resnet18", num_classes=10, in_channels=3, input_size=32)
    assert stitchable_layers(model) == [
        "layer1.0",
        "layer1.1",
        "layer2.0",
        "layer2.1",
        "layer3.0",
        "layer3.1",
        "layer4.0",
        "layer4.1",
    ]
    shapes = layer_shapes(model, (3, 32, 32))
    assert shapes["layer1.0"] == (64, 32, 32) and shapes["layer2.1"] == (128, 16, 16)
    assert shapes["layer3.0"] == (256, 8, 8) and shapes["layer4.1"] == (512, 4, 4)
    vit = get_model("vit_tiny_patch4_32", num_classes=10, in_channels=3, input_size=32, depth=2)
    assert layer_shapes(vit, (3, 32, 32)) == {"blocks.0": (65, 192), "blocks.1": (65, 192)}


def test_a_wrong_layer_name_lists_the_valid_ones():
    model, _ = build("resnet18")
    with pytest.raises(
        StitchkitError, match=r"'layer5\.0' is not a stitchable layer of resnet18; valid layers: layer1\.0, layer1\.1"
    ):
        layered(model).prefix("layer5.0")


def test_generic_models_get_block_layers():
    tv = torchvision.models.resnet18(num_classes=10)
    assert stitchable_layers(tv) == [f"layer{s}.{b}" for s in range(1, 5) for b in range(2)]
    # in-place ReLU after a conv must not overwrite the extracted conv output or the caller's tensor
    vgg = torchvision.models.vgg11(num_classes=10).eval()
    lm = layered(vgg)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        conv = vgg.features[0](x)
        acts = lm.extractor(["features.0", "features.1"])(x)
        torch.testing.assert_close(acts["features.0"], conv)
        assert (acts["features.0"] < 0).any()
        before = acts["features.0"].clone()
        lm.suffix("features.0")(acts["features.0"])
        torch.testing.assert_close(acts["features.0"], before)


def test_skip_connections_are_not_cuts():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.blocks = nn.ModuleList([nn.Linear(4, 4), nn.Linear(4, 4), nn.Linear(4, 4)])

        def forward(self, x):
            h = self.blocks[0](x)
            return self.blocks[2](self.blocks[1](h) + h)  # the skip spans blocks.1

    assert stitchable_layers(Net()) == ["blocks.0", "blocks.2"]


def test_untraceable_models_get_a_clear_error():
    class Branchy(nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = nn.ModuleList([nn.Linear(2, 2)])

        def forward(self, x):
            return self.layers[0](x) if x.sum() > 0 else x

    with pytest.raises(StitchkitError, match="cannot trace"):
        layered(Branchy())


class _TwoInputs(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(4, 3)

    def forward(self, x, mask):
        return self.fc(x) * mask


def test_a_model_whose_forward_needs_a_second_input_is_refused_by_name():
    from stitchkit.models.tracing import extra_forward_args

    with pytest.raises(StitchkitError, match="needs argument 'mask' besides the input"):
        extra_forward_args(_TwoInputs())
