"""The model zoo and registry (stitchkit.models.registry and the architecture files).

Models are built with tiny widths/depths where the options allow, so the file runs in seconds on a CPU.
"""

from __future__ import annotations

import json

import pytest
import torch
import torch.fx

from stitchkit.errors import StitchkitError, UnknownNameError
from stitchkit.models import (
    build_from_spec,
    describe_models,
    get_model,
    is_known_model,
    list_models,
    model_options,
)

# one small representative per family: name -> options
FAMILIES = {
    "resnet18": {"width": 8},
    "resnet50": {"width": 4},
    "resnet18_samewidth_samesize": {"width": 4},
    "wide_resnet50_2": {"width": 4},
    "resnext50_32x4d": {"width": 16},
    "preact_resnet18": {"width": 8},
    "wide_resnet_28_10": {"width_factor": 1},
    "liu2020_wrn": {"width_factor": 1},
    "small_cnn": {"width": 4},
    "vit_tiny_patch4_32": {"embed_dim": 16, "depth": 2, "num_heads": 2},
    "tv_resnet18": {},
    "torchvision:mobilenet_v3_small": {},
    "timm:resnet10t": {},
}
OWN_FAMILIES = [n for n in FAMILIES if not n.startswith(("torchvision:", "timm:"))]  # tv_resnet18 sets layers too

TINY_VIT = {"embed_dim": 12, "num_heads": 3}


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """The models are tiny: one thread is faster than several on a shared CPU."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _activations(model, names, x):
    """Outputs of the named modules for input x (forward hooks)."""
    out, handles = {}, []
    modules = dict(model.named_modules())
    for n in names:
        handles.append(modules[n].register_forward_hook(lambda m, i, o, n=n: out.__setitem__(n, o)))
    with torch.no_grad():
        model(x)
    for h in handles:
        h.remove()
    return out


# ---------------------------------------------------------------------------------------------- shapes


@pytest.mark.parametrize("name", list(FAMILIES))
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("size", [32, 28])
def test_output_shape(name, channels, size):
    model = get_model(name, num_classes=7, in_channels=channels, input_size=size, **FAMILIES[name]).eval()
    with torch.no_grad():
        y = model(torch.rand(2, channels, size, size))
    assert y.shape == (2, 7)
    assert torch.isfinite(y).all()


@pytest.mark.parametrize("name", list(FAMILIES))
def test_channels_last_gives_the_same_outputs_and_cuts(name):
    # grids run the donors in channels-last memory format (faster convolutions); every family must
    # accept it and compute the same function, through the prefix and suffix cuts too
    from stitchkit.models.layers import layered

    model = get_model(name, num_classes=7, in_channels=3, input_size=32, **FAMILIES[name]).eval()
    x = torch.rand(3, 3, 32, 32)
    lm = layered(model)
    middle = lm.layers[len(lm.layers) // 2]
    with torch.no_grad():
        expected, cut = model(x), lm.prefix(middle)(x)
        model.to(memory_format=torch.channels_last)
        xc = x.contiguous(memory_format=torch.channels_last)
        torch.testing.assert_close(model(xc), expected, atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(lm.suffix(middle)(lm.prefix(middle)(xc)), expected, atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(lm.prefix(middle)(xc), cut, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("name", list(FAMILIES))
def test_batchnorm_folding_keeps_the_function_the_layers_and_their_cuts(name):
    # grids compute with a copy of each donor whose BatchNorms are folded into the convolutions
    from stitchkit.models.folding import fold_batchnorm
    from stitchkit.models.layers import layered

    torch.manual_seed(0)
    model = get_model(name, num_classes=7, in_channels=3, input_size=32, **FAMILIES[name])
    model.train()
    with torch.no_grad():  # non-trivial running statistics
        model(torch.rand(8, 3, 32, 32) * 2)
    model.eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    folded = fold_batchnorm(model)
    x = torch.rand(3, 3, 32, 32)
    lm, lf = layered(model), layered(folded)
    assert lf.layers == lm.layers
    with torch.no_grad():
        torch.testing.assert_close(folded(x), model(x), atol=1e-4, rtol=1e-4)
        for layer in (lm.layers[0], lm.layers[len(lm.layers) // 2], lm.layers[-1]):
            torch.testing.assert_close(lf.prefix(layer)(x), lm.prefix(layer)(x), atol=1e-4, rtol=1e-4)
            torch.testing.assert_close(lf.suffix(layer)(lm.prefix(layer)(x)), model(x), atol=1e-4, rtol=1e-4)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())  # the model itself is untouched
    if any(isinstance(m, torch.nn.BatchNorm2d) for m in model.get_submodule(lm.layers[0]).modules()):
        assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules()) < sum(
            isinstance(m, torch.nn.BatchNorm2d) for m in model.modules()
        )


def test_every_registered_name_builds_with_small_options():
    for name in list_models():
        opts = model_options(name)
        kw = {}
        if "width" in opts:
            kw["width"] = 16 if "resnext" in name else 2
        if "width_factor" in opts:
            kw["width_factor"] = 1
        if "embed_dim" in opts:
            kw.update(embed_dim=4, depth=1, num_heads=1)
        if name.startswith("tv_"):  # the torchvision family is exercised elsewhere
            continue
        model = get_model(name, num_classes=3, in_channels=4, input_size=16, **kw)
        assert model.stitchkit_spec["name"] == name
        assert model.stitchable_layers


# ---------------------------------------------------------------------------------------------- layer names


def test_resnet18_stitchable_layers():
    model = get_model("resnet18", width=4)
    assert model.stitchable_layers == (
        "layer1.0",
        "layer1.1",
        "layer2.0",
        "layer2.1",
        "layer3.0",
        "layer3.1",
        "layer4.0",
        "layer4.1",
    )


@pytest.mark.parametrize(
    "name, counts",
    [
        ("resnet34", (3, 4, 6, 3)),
        ("resnet50", (3, 4, 6, 3)),
        ("resnet101", (3, 4, 23, 3)),
        ("resnet152", (3, 8, 36, 3)),
        ("repr_cls_resnet18", (2, 2, 2, 2)),
    ],
)
def test_resnet_stitchable_layers(name, counts):
    model = get_model(name, width=4)
    expected = tuple(f"layer{s}.{b}" for s, n in enumerate(counts, start=1) for b in range(n))
    assert model.stitchable_layers == expected
    assert len(expected) == {(2, 2, 2, 2): 8, (3, 4, 6, 3): 16, (3, 4, 23, 3): 33, (3, 8, 36, 3): 50}[counts]
    assert set(expected) <= dict(model.named_modules()).keys()


@pytest.mark.parametrize(
    "name, options, expected",
    [
        ("vit_tiny_patch4_32", TINY_VIT, tuple(f"blocks.{i}" for i in range(12))),
        (
            "vit_large_patch16_224",
            {"embed_dim": 16, "num_heads": 2, "depth": 24},
            tuple(f"blocks.{i}" for i in range(24)),
        ),
        ("preact_resnet18", {"width": 4}, tuple(f"layer_{s}.{b}" for s in range(4) for b in range(2))),
        (
            "preact_resnet34",
            {"width": 4},
            tuple(f"layer_{s}.{b}" for s, n in enumerate((3, 4, 6, 3)) for b in range(n)),
        ),
        ("wide_resnet_28_10", {"width_factor": 1}, tuple(f"layer.{g}.block.{i}" for g in range(3) for i in range(4))),
        ("wide_resnet_34_10", {"width_factor": 1}, tuple(f"layer.{g}.block.{i}" for g in range(3) for i in range(5))),
        ("liu2020_wrn", {"width_factor": 1}, tuple(f"block{g}.layer.{i}" for g in (1, 2, 3) for i in range(6))),
        ("small_cnn", {"width": 4}, ("relu1", "relu2", "relu3", "relu4")),
        ("repr_cls_vit_tiny", {"embed_dim": 12, "num_heads": 3, "depth": 3}, ("blocks.0", "blocks.1", "blocks.2")),
        ("tv_resnet18", {}, tuple(f"layer{s}.{b}" for s in (1, 2, 3, 4) for b in (0, 1))),
    ],
)
def test_stitchable_layer_names(name, options, expected):
    model = get_model(name, **options)
    assert model.stitchable_layers == expected
    assert set(expected) <= dict(model.named_modules()).keys()


def test_vit_default_depths_follow_the_size_word():
    depths = {"tiny": 12, "small": 12, "medium": 12, "base": 12, "large": 24, "huge": 32, "giant": 40, "gigantic": 48}
    dims = {
        "tiny": (192, 3),
        "small": (384, 6),
        "medium": (512, 8),
        "base": (768, 12),
        "large": (1024, 16),
        "huge": (1280, 16),
        "giant": (1408, 16),
        "gigantic": (1664, 16),
    }
    for size, depth in depths.items():
        for suffix, patch in (("patch4_32", 4), ("patch16_224", 16)):
            opts = model_options(f"vit_{size}_{suffix}")
            assert (opts["embed_dim"], opts["num_heads"]) == dims[size]
            assert opts["depth"] == depth and opts["patch_size"] == patch


# ---------------------------------------------------------------------------------------------- activations


def test_resnet18_activation_shapes():
    model = get_model("resnet18").eval()
    acts = _activations(model, model.stitchable_layers, torch.rand(2, 3, 32, 32))
    expected = {1: (64, 32, 32), 2: (128, 16, 16), 3: (256, 8, 8), 4: (512, 4, 4)}
    for name, a in acts.items():
        assert a.shape[1:] == expected[int(name[5])], name
        assert (a >= 0).all(), "block outputs are post-ReLU"


def test_resnet_activation_shapes_scale_with_width():
    model = get_model("resnet50", width=4).eval()
    acts = _activations(model, ["layer1.2", "layer2.3", "layer3.5", "layer4.2"], torch.rand(2, 3, 28, 28))
    assert [tuple(a.shape[1:]) for a in acts.values()] == [(16, 28, 28), (32, 14, 14), (64, 7, 7), (128, 4, 4)]


@pytest.mark.parametrize(
    "name, expected",
    [
        ("resnet18_samewidth", [(8, 32, 32), (8, 16, 16), (8, 8, 8), (8, 4, 4)]),
        ("resnet18_samesize", [(8, 32, 32), (16, 32, 32), (32, 32, 32), (64, 32, 32)]),
        ("resnet18_samewidth_samesize", [(8, 32, 32)] * 4),
        ("resnet18_samesize_samewidth", [(8, 32, 32)] * 4),
    ],
)
def test_samewidth_samesize_shapes(name, expected):
    model = get_model(name, width=8).eval()
    acts = _activations(model, ["layer1.1", "layer2.1", "layer3.1", "layer4.1"], torch.rand(2, 3, 32, 32))
    assert [tuple(a.shape[1:]) for a in acts.values()] == expected
    assert model.fc.in_features == expected[-1][0]


def test_other_families_activation_shapes():
    m = get_model("wide_resnet_28_10", width_factor=1).eval()
    acts = _activations(m, ["layer.0.block.3", "layer.1.block.0", "layer.2.block.3"], torch.rand(2, 3, 32, 32))
    assert [tuple(a.shape[1:]) for a in acts.values()] == [(16, 32, 32), (32, 16, 16), (64, 8, 8)]
    m = get_model("liu2020_wrn").eval()
    acts = _activations(m, ["block1.layer.5", "block2.layer.0", "block3.layer.5"], torch.rand(2, 3, 32, 32))
    assert [tuple(a.shape[1:]) for a in acts.values()] == [(32, 32, 32), (64, 16, 16), (128, 8, 8)]
    m = get_model("preact_resnet18", width=4).eval()
    acts = _activations(m, m.stitchable_layers, torch.rand(2, 3, 32, 32))
    assert [tuple(a.shape[1:]) for a in acts.values()][1::2] == [(4, 32, 32), (8, 16, 16), (16, 8, 8), (32, 4, 4)]
    m = get_model("small_cnn").eval()
    acts = _activations(m, m.stitchable_layers, torch.rand(2, 3, 32, 32))
    assert [tuple(a.shape[1:]) for a in acts.values()] == [(16, 32, 32), (32, 16, 16), (64, 8, 8), (128, 4, 4)]
    assert all((a >= 0).all() for a in acts.values())


@pytest.mark.parametrize(
    "name, size, patch, tokens",
    [
        ("vit_tiny_patch4_32", 32, 4, 65),
        ("vit_tiny_patch16_224", 224, 16, 197),
        ("vit_base_patch4_32", 28, 4, 50),
    ],
)
def test_vit_token_count(name, size, patch, tokens):
    model = get_model(
        name, in_channels=1 if size == 28 else 3, input_size=size, depth=1, embed_dim=8, num_heads=2
    ).eval()
    assert model.patch_embed.proj.kernel_size == (patch, patch) == model.patch_embed.proj.stride
    assert model.pos_embed.shape == (1, tokens, 8) and model.cls_token.shape == (1, 1, 8)
    acts = _activations(model, ["blocks.0"], torch.rand(2, model.stitchkit_spec["in_channels"], size, size))
    assert acts["blocks.0"].shape == (2, tokens, 8)


def test_vit_default_input_size_follows_the_name():
    assert get_model("vit_tiny_patch16_224", depth=1, embed_dim=8, num_heads=2).pos_embed.shape[1] == 197
    assert get_model("vit_tiny_patch4_32", depth=1, embed_dim=8, num_heads=2).pos_embed.shape[1] == 65


def test_vit_matches_timm_module_names_and_numerics():
    import timm

    ours = get_model("vit_tiny_patch4_32", depth=2, **TINY_VIT).eval()
    ref = timm.models.vision_transformer.VisionTransformer(
        img_size=32, patch_size=4, embed_dim=12, depth=2, num_heads=3, num_classes=10
    ).eval()
    ours.load_state_dict(ref.state_dict(), strict=True)
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), ref(x), atol=1e-5, rtol=1e-4)
    assert ours.norm.eps == 1e-6 and ours.blocks[0].norm1.eps == 1e-6


def test_cifar_resnet_parameter_names_match_torchvision():
    import torchvision

    for depth in (18, 50):
        ours = get_model(f"resnet{depth}", width=4)
        ref = getattr(torchvision.models, f"resnet{depth}")(num_classes=10)
        assert list(ours.state_dict()) == [k for k in ref.state_dict()]


def test_parameter_counts_match_the_published_architectures():
    def count(m):
        return sum(p.numel() for p in m.parameters())

    # well-known sizes of the CIFAR-10 versions (10 classes)
    assert count(get_model("resnet18")) == 11_173_962
    assert count(get_model("liu2020_wrn")) == 2_243_546  # WRN-40-2


def test_internal_normalisation():
    m3 = get_model("preact_resnet18", width=4)
    torch.testing.assert_close(m3.normalize.mean.flatten(), torch.tensor([0.4914, 0.4822, 0.4465]))
    m1 = get_model("wide_resnet_28_10", in_channels=1, width_factor=1)
    assert m1.normalize.mean.shape == (1, 1, 1, 1)
    assert m1.normalize.mean.item() == pytest.approx((0.4914 + 0.4822 + 0.4465) / 3, abs=1e-6)
    assert m1.normalize.std.item() == pytest.approx((0.2471 + 0.2435 + 0.2616) / 3, abs=1e-6)
    liu = get_model("liu2020_wrn", width_factor=1)
    assert liu.normalize.mean.flatten()[0].item() == pytest.approx(125.3 / 255)
    custom = get_model("liu2020_wrn", width_factor=1, input_mean=[0.5], input_std=[0.25])
    assert custom.normalize.std.flatten().tolist() == [0.25, 0.25, 0.25]
    assert "normalize.mean" not in m3.state_dict()  # not persisted: checkpoints stay like the original's


# ---------------------------------------------------------------------------------------------- torch.fx


class _LeafTracer(torch.fx.Tracer):
    def __init__(self, leaves):
        super().__init__()
        self.leaves = set(leaves)

    def is_leaf_module(self, m, qualname):
        return qualname in self.leaves or super().is_leaf_module(m, qualname)


@pytest.mark.parametrize("name", OWN_FAMILIES + ["repr_cls_resnet18", "repr_cls_vit_tiny"])
def test_fx_traceable_with_stitchable_leaves(name):
    opts = dict(FAMILIES.get(name, {}))
    if name == "repr_cls_resnet18":
        model, x = get_model(name, in_channels=6, input_size=16, width=4), torch.rand(2, 6, 4, 4)
    elif name == "repr_cls_vit_tiny":
        model, x = get_model(name, in_channels=10, depth=2, **TINY_VIT), torch.rand(2, 5, 10)
    else:
        model, x = get_model(name, **opts), torch.rand(2, 3, 32, 32)
    model.eval()
    for leaves in (model.stitchable_layers, ()):  # also fully traceable
        tracer = _LeafTracer(leaves)
        gm = torch.fx.GraphModule(model, tracer.trace(model))
        called = {n.target for n in gm.graph.nodes if n.op == "call_module"}
        assert set(leaves) <= called
        with torch.no_grad():
            torch.testing.assert_close(gm(x), model(x))


# ---------------------------------------------------------------------------------------------- repr_cls


def test_repr_cls_resnet_on_conv_activation():
    model = get_model("repr_cls_resnet18", num_classes=5, in_channels=32, input_size=(32, 32), width=4).eval()
    assert model.conv1.in_channels == 32
    x = torch.rand(2, 32, 8, 8)
    seen = {}
    model.conv1.register_forward_pre_hook(lambda m, args: seen.__setitem__("input", args[0]))
    with torch.no_grad():
        model(x)
    # the stem sees the activation resized like nn.Upsample(size, mode="bilinear", align_corners=False)
    torch.testing.assert_close(
        seen["input"], torch.nn.functional.interpolate(x, size=(32, 32), mode="bilinear", align_corners=False)
    )
    with torch.no_grad():
        assert model(torch.rand(2, 32, 8, 8)).shape == (2, 5)
        # adaptive pooling: a detector for an ImageNet-sized layer works too
        big = get_model("repr_cls_resnet50", num_classes=5, in_channels=8, input_size=(64, 48), width=4).eval()
        assert big(torch.rand(2, 8, 7, 7)).shape == (2, 5)


def test_repr_cls_vit_on_token_sequence():
    model = get_model("repr_cls_vit_tiny", num_classes=4, in_channels=24, depth=2, **TINY_VIT).eval()
    assert isinstance(model.dim_transform, torch.nn.Linear)
    assert (model.dim_transform.in_features, model.dim_transform.out_features) == (24, 12)
    assert not any("pos_embed" in n or "cls_token" in n or "patch_embed" in n for n, _ in model.named_parameters())
    tokens = torch.rand(2, 65, 24)
    with torch.no_grad():
        y = model(tokens)
        assert y.shape == (2, 4)
        # no positional embedding: any token count works
        assert model(torch.rand(2, 17, 24)).shape == (2, 4)
    same = get_model("repr_cls_vit_tiny", num_classes=4, in_channels=12, depth=1, **TINY_VIT)
    assert isinstance(same.dim_transform, torch.nn.Identity)


def test_repr_cls_vit_defaults_are_the_vit_sizes():
    assert model_options("repr_cls_vit_tiny") == {"embed_dim": 192, "depth": 12, "num_heads": 3, "mlp_ratio": 4.0}
    assert model_options("repr_cls_vit_large")["depth"] == 24


# ---------------------------------------------------------------------------------------------- errors


def test_unknown_model_lists_known_names():
    with pytest.raises(UnknownNameError) as e:
        get_model("resnet19")
    msg = str(e.value)
    assert isinstance(e.value, StitchkitError)
    for known in ("resnet18", "vit_tiny_patch4_32", "repr_cls_resnet18", "small_cnn", "torchvision:", "timm:"):
        assert known in msg
    assert "did you mean" in msg
    assert not is_known_model("resnet19")


def test_unknown_external_names_list_the_library_names():
    with pytest.raises(StitchkitError, match="mobilenet_v3_small"):
        get_model("torchvision:mobilenet_v9")
    with pytest.raises(StitchkitError, match="resnet10t"):
        get_model("timm:not_a_timm_model")
    with pytest.raises(StitchkitError, match="samewidth"):
        get_model("resnet18_bogus")
    with pytest.raises(StitchkitError, match="samewidth"):
        get_model("resnet18_samewidth_samewidth")


@pytest.mark.parametrize(
    "name, options, words",
    [
        ("resnet18", {"width": 0}, ["'width'", "≥ 1"]),
        ("resnet18", {"width": 2.5}, ["'width'", "integer"]),
        ("resnet18", {"width": True}, ["'width'"]),
        ("resnet18", {"depth": 3}, ["'depth'", "width"]),
        ("preact_resnet18", {"activation": "tanh"}, ["'activation'", "'swish'", "'relu'"]),
        ("vit_tiny_patch4_32", {"num_heads": 5}, ["embed_dim", "num_heads"]),
        ("vit_tiny_patch4_32", {"patch_size": 5}, ["patch size 5"]),
        ("liu2020_wrn", {"drop_rate": -0.1}, ["'drop_rate'", "≥ 0 and ≤ 1"]),
        ("liu2020_wrn", {"drop_rate": 1.5}, ["'drop_rate'"]),
        ("liu2020_wrn", {"input_std": [0.0]}, ["input_std"]),
        ("tv_resnet18", {"pretrained": "yes"}, ["'pretrained'", "true or false"]),
        ("resnext50_32x4d", {"width": 8}, ["width"]),
    ],
)
def test_bad_options(name, options, words):
    with pytest.raises(StitchkitError) as e:
        get_model(name, **options)
    for w in words:
        assert w in str(e.value)


def test_bad_basic_arguments():
    with pytest.raises(StitchkitError, match="num_classes"):
        get_model("resnet18", num_classes=0)
    with pytest.raises(StitchkitError, match="in_channels"):
        get_model("resnet18", in_channels=-1)
    with pytest.raises(StitchkitError, match="input_size"):
        get_model("resnet18", input_size=(32, 32, 3))


# ---------------------------------------------------------------------------------------------- registry


def test_list_models_has_the_original_names():
    names = list_models()
    expected = [
        *(f"resnet{d}" for d in (18, 34, 50, 101, 152)),
        "resnet18_samewidth",
        "resnet18_samesize",
        "preact_resnet18",
        "preact_resnet34",
        "wide_resnet_28_10",
        "wide_resnet_34_10",
        "wide_resnet50_2",
        "wide_resnet101_2",
        "resnext50_32x4d",
        "resnext101_32x8d",
        "liu2020_wrn",
        "small_cnn",
        *(
            f"vit_{s}_{p}"
            for s in ("tiny", "small", "medium", "base", "large", "huge", "giant", "gigantic")
            for p in ("patch4_32", "patch16_224")
        ),
        *(f"tv_resnet{d}" for d in (18, 34, 50, 101, 152)),
        *(f"repr_cls_resnet{d}" for d in (18, 34, 50, 101, 152)),
        *(f"repr_cls_vit_{s}" for s in ("tiny", "small", "medium", "base", "large", "huge", "giant", "gigantic")),
    ]
    assert set(expected) <= set(names)
    assert len(names) == len(set(names))
    assert all(is_known_model(n) for n in expected)
    assert is_known_model("resnet18_samesize_samewidth")
    assert is_known_model("torchvision:resnet18") and is_known_model("timm:resnet10t")
    assert is_known_model("vit_small_patch16_384")  # not ours: timm by name
    assert not is_known_model("torchvision:nope") and not is_known_model("vit_nonsense")
    text = describe_models()
    assert "torchvision:<name>" in text and "timm:<name>" in text and "resnet18" in text


def test_model_options():
    assert model_options("resnet18") == {"width": 64}
    assert model_options("resnet18_samewidth") == {"width": 64}
    assert model_options("tv_resnet18") == {"pretrained": False, "weights": None, "kwargs": {}}
    assert model_options("timm:resnet10t") == {"pretrained": False, "weights": None, "kwargs": {}}
    assert model_options("small_cnn") == {"width": 16}


@pytest.mark.parametrize(
    "name, kwargs",
    [
        ("resnet18_samesize_samewidth", {"width": 4, "num_classes": 3}),
        ("preact_resnet18", {"width": 4, "in_channels": 1, "activation": "relu", "input_mean": [0.5]}),
        ("vit_small_patch4_32", {"input_size": (28, 28), "in_channels": 1, **TINY_VIT, "depth": 2}),
        ("repr_cls_resnet34", {"in_channels": 16, "input_size": (24, 20), "width": 4}),
        ("repr_cls_vit_base", {"in_channels": 20, **TINY_VIT, "depth": 1}),
        ("liu2020_wrn", {"width_factor": 1}),
        ("tv_resnet18", {"in_channels": 1}),
        ("timm:resnet10t", {"num_classes": 4}),
    ],
)
def test_build_from_spec_reproduces_the_architecture(name, kwargs):
    model = get_model(name, **kwargs)
    spec = json.loads(json.dumps(model.stitchkit_spec))  # JSON round trip, as in a checkpoint
    assert set(spec) == {"name", "num_classes", "in_channels", "input_size", "options"}
    rebuilt = build_from_spec(spec)
    assert rebuilt.stitchkit_spec == model.stitchkit_spec
    rebuilt.load_state_dict(model.state_dict(), strict=True)
    assert [(k, v.shape) for k, v in rebuilt.state_dict().items()] == [
        (k, v.shape) for k, v in model.state_dict().items()
    ]
    assert getattr(rebuilt, "stitchable_layers", None) == getattr(model, "stitchable_layers", None)


def test_build_from_spec_rejects_bad_specs():
    with pytest.raises(StitchkitError, match="name"):
        build_from_spec({"num_classes": 10})
    with pytest.raises(StitchkitError, match="unknown key"):
        build_from_spec({"name": "resnet18", "colour": "red"})


def test_spec_records_resolved_options():
    spec = get_model("vit_tiny_patch4_32", input_size=28, in_channels=1, **TINY_VIT, depth=1).stitchkit_spec
    assert spec == {
        "name": "vit_tiny_patch4_32",
        "num_classes": 10,
        "in_channels": 1,
        "input_size": [28, 28],
        "options": {"embed_dim": 12, "depth": 1, "num_heads": 3, "patch_size": 4, "mlp_ratio": 4.0},
    }


# ---------------------------------------------------------------------------------------------- external


def test_tv_resnet18_one_channel():
    model = get_model("tv_resnet18", num_classes=10, in_channels=1).eval()
    assert model.conv1.in_channels == 1 and model.conv1.kernel_size == (7, 7) and model.conv1.stride == (2, 2)
    acts = _activations(model, ["layer1.1", "layer4.1"], torch.rand(2, 1, 64, 64))
    assert acts["layer1.1"].shape == (2, 64, 16, 16) and acts["layer4.1"].shape == (2, 512, 2, 2)
    assert model.fc.out_features == 10


def test_torchvision_and_timm_prefixes():
    tv = get_model("torchvision:mobilenet_v3_small", num_classes=5, in_channels=1)
    assert tv.stitchkit_spec["name"] == "torchvision:mobilenet_v3_small"
    assert tv.features[0][0].in_channels == 1
    assert not hasattr(tv, "stitchable_layers")
    tm = get_model("timm:resnet10t", num_classes=5, in_channels=2)
    assert not hasattr(tm, "stitchable_layers")
    with torch.no_grad():
        assert tv.eval()(torch.rand(2, 1, 32, 32)).shape == (2, 5)
        assert tm.eval()(torch.rand(2, 2, 32, 32)).shape == (2, 5)
    # a torchvision ResNet by prefix is recognised as one
    assert get_model("torchvision:resnet18").stitchable_layers[-1] == "layer4.1"
    # extra constructor arguments pass through and are recorded
    tm2 = get_model("timm:resnet10t", kwargs={"drop_rate": 0.1})
    assert tm2.stitchkit_spec["options"] == {"pretrained": False, "weights": None, "kwargs": {"drop_rate": 0.1}}
    with pytest.raises(StitchkitError, match="could not be built"):
        get_model("torchvision:resnet18", kwargs={"no_such_argument": 1})


def test_timm_vit_names_fall_back_to_timm():
    model = get_model("vit_small_patch16_384", num_classes=3, kwargs={"depth": 1, "embed_dim": 12, "num_heads": 3})
    assert type(model).__module__.startswith("timm")
    assert model.stitchkit_spec["name"] == "vit_small_patch16_384"


def test_adapt_first_conv_keeps_the_grey_response_of_pretrained_weights():
    import torchvision

    from stitchkit.models.external import adapt_first_conv

    model = torchvision.models.resnet18(num_classes=10).eval()
    old = model.conv1
    adapt_first_conv(model, 1, pretrained=True)
    assert model.conv1 is not old and model.conv1.in_channels == 1
    grey = torch.rand(2, 1, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(model.conv1(grey), old(grey.expand(-1, 3, -1, -1)), atol=1e-5, rtol=1e-4)


def test_pretrained_torchvision_without_download(monkeypatch):
    """pretrained=True asks torchvision for its default weights and resizes the head and stem; a
    rebuild from the spec does not ask again. (torchvision's loader is replaced: no network here.)"""
    import torchvision

    from stitchkit.models import external

    calls = []
    real = torchvision.models.get_model

    def fake_get_model(name, **config):
        calls.append(config.get("weights"))
        if config.get("weights") is not None:
            config = {k: v for k, v in config.items() if k != "weights"}
            return real(name, weights=None, **config)  # "pretrained": 1000 ImageNet classes
        return real(name, **config)

    monkeypatch.setattr(torchvision.models, "get_model", fake_get_model)
    monkeypatch.setattr(external, "unreachable", lambda url, timeout=None: None)  # as if the server answered
    model = get_model("tv_resnet18", num_classes=10, in_channels=1, pretrained=True)
    assert calls == ["DEFAULT"]
    assert model.fc.out_features == 10 and model.conv1.in_channels == 1
    assert model.stitchkit_spec["options"]["pretrained"] is True
    rebuilt = build_from_spec(model.stitchkit_spec)
    assert calls == ["DEFAULT", None]
    assert rebuilt.stitchkit_spec == model.stitchkit_spec
    rebuilt.load_state_dict(model.state_dict(), strict=True)


@pytest.mark.parametrize("mode", ["bilinear", "nearest"])
@pytest.mark.parametrize("size", [(28, 28), (7, 5), (4, 4)])
def test_resize_map_equals_interpolate_and_is_the_identity_at_the_same_size(mode, size):
    from stitchkit.models.resize import resize_map

    x = torch.randn(3, 6, 4, 4, requires_grad=True)
    kwargs = {"align_corners": False} if mode == "bilinear" else {}
    expected = torch.nn.functional.interpolate(x, size=size, mode=mode, **kwargs)
    got = resize_map(x, size, mode)
    torch.testing.assert_close(got, expected, rtol=0, atol=0)
    if size == (4, 4):
        assert got is x
    (g1,) = torch.autograd.grad(got.square().sum(), x)
    (g2,) = torch.autograd.grad(expected.square().sum(), x)
    torch.testing.assert_close(g1, g2)
