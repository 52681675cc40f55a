"""Stitching layers (spec section 4): shapes, inits, CLS handling, errors, the registry and ``auto``."""

import random

import pytest
import torch
import torch.nn.functional as F

from stitchkit.errors import StitchkitError
from stitchkit.stitching import auto_stitching_type, list_stitching_layers, make_stitching_layer

KINDS = ["c2c", "rc2c_pre", "rc2c_post", "t2t", "c2t", "t2c", "v2v"]


def _random_shapes(kind: str, rng: random.Random):
    """A random compatible (source, target, options) triple for ``kind``."""
    c_in, c_out = rng.randint(1, 7), rng.randint(1, 7)
    if kind == "c2c":
        h, w = rng.randint(1, 6), rng.randint(1, 6)
        return (c_in, h, w), (c_out, h, w), {}
    if kind in ("rc2c_pre", "rc2c_post"):
        return (c_in, rng.randint(1, 9), rng.randint(1, 9)), (c_out, rng.randint(1, 9), rng.randint(1, 9)), {}
    if kind == "t2t":
        t = rng.randint(1, 10)
        return (t, c_in), (t, c_out), {}
    if kind == "c2t":
        h, w = rng.randint(1, 5), rng.randint(1, 5)
        cls = rng.choice([None, "pool", "learn"])
        return (c_in, h, w), (h * w + (cls is not None), c_out), {"c2t_cls": cls}
    if kind == "t2c":
        g = rng.randint(1, 5)
        has_cls = rng.random() < 0.5
        opts = {"front_has_cls": has_cls, "t2c_cls": rng.choice(["drop", "add", "only"]) if has_cls else None}
        return (g * g + has_cls, c_in), (c_out, rng.randint(1, 8), rng.randint(1, 8)), opts
    if kind == "v2v":
        return (c_in,), (c_out,), {}
    raise AssertionError(kind)


def test_registry_lists_every_type():
    assert list_stitching_layers() == sorted(KINDS + ["auto"])


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("mode", ["bilinear", "nearest"])
def test_every_type_maps_source_shape_to_target_shape(kind, mode):
    rng = random.Random(10 * KINDS.index(kind) + len(mode))
    for _ in range(5):
        src, tgt, opts = _random_shapes(kind, rng)
        layer = make_stitching_layer(kind, src, tgt, upsample_mode=mode, **opts)
        out = layer(torch.randn(3, *src))
        assert tuple(out.shape) == (3, *tgt), (kind, src, tgt, opts)
        assert layer.source_shape == src and layer.target_shape == tgt
        # forward is post(transform(pre(x)))
        x = torch.randn(2, *src)
        torch.testing.assert_close(layer(x), layer.post_transform(layer.transform(layer.pre_transform(x))))


def test_rc2c_pre_equal_size_eye_is_exact_identity():
    x = torch.randn(4, 5, 7, 6)
    for mode in ("bilinear", "nearest"):
        layer = make_stitching_layer("rc2c_pre", (5, 7, 6), (5, 7, 6), init="eye", upsample_mode=mode)
        assert torch.equal(layer(x), x)
    layer = make_stitching_layer("c2c", (5, 7, 6), (5, 7, 6), init="eye")
    assert torch.equal(layer(x), x)


def test_rc2c_bilinear_halving_averages_2x2_blocks():
    # align_corners=False, no antialiasing: output pixel i samples source coordinate 2i + 0.5, the mean of a 2×2 block.
    x = torch.randn(2, 3, 8, 6)
    layer = make_stitching_layer("rc2c_pre", (3, 8, 6), (3, 4, 3), init="eye")
    expected = x.reshape(2, 3, 4, 2, 3, 2).mean(dim=(3, 5))
    torch.testing.assert_close(layer(x), expected)


def test_rc2c_post_resizes_after_the_conv():
    x = torch.randn(2, 3, 5, 5)
    pre = make_stitching_layer("rc2c_pre", (3, 5, 5), (4, 9, 9))
    post = make_stitching_layer("rc2c_post", (3, 5, 5), (4, 9, 9))
    post.set_affine(*pre.affine())
    conv = post.transform
    torch.testing.assert_close(post(x), F.interpolate(conv(x), size=(9, 9), mode="bilinear", align_corners=False))
    torch.testing.assert_close(pre(x), conv(F.interpolate(x, size=(9, 9), mode="bilinear", align_corners=False)))


def test_t2t_eye_is_identity_and_rectangular_like_the_original():
    x = torch.randn(3, 5, 8)
    assert torch.equal(make_stitching_layer("t2t", (5, 8), (5, 8), init="eye")(x), x)
    wide = make_stitching_layer("t2t", (5, 8), (5, 11), init="eye")
    w, b = wide.affine()
    assert torch.equal(w, torch.eye(11, 8)) and torch.equal(b, torch.zeros(11))
    assert torch.equal(wide(x)[..., :8], x) and torch.equal(wide(x)[..., 8:], torch.zeros(3, 5, 3))


def test_t2t_applies_to_every_token_including_cls():
    layer = make_stitching_layer("t2t", (5, 4), (5, 3))
    x = torch.randn(2, 5, 4)
    w, b = layer.affine()
    torch.testing.assert_close(layer(x), x @ w.T + b)


def test_eye_needs_equal_channels_for_conv_types():
    for kind, src, tgt in [
        ("c2c", (3, 4, 4), (5, 4, 4)),
        ("rc2c_pre", (3, 4, 4), (5, 2, 2)),
        ("c2t", (3, 2, 2), (4, 5)),
        ("t2c", (4, 3), (5, 2, 2)),
    ]:
        with pytest.raises(StitchkitError) as e:
            make_stitching_layer(kind, src, tgt, init="eye")
        msg = str(e.value)
        assert str(src) in msg and str(tgt) in msg and "eye" in msg


def test_eye_works_for_c2t_and_t2c_when_channels_match():
    x = torch.randn(2, 6, 3, 3)
    c2t = make_stitching_layer("c2t", (6, 3, 3), (9, 6), init="eye")
    torch.testing.assert_close(c2t(x), x.flatten(2).transpose(1, 2))
    tokens = torch.randn(2, 9, 6)
    t2c = make_stitching_layer("t2c", (9, 6), (6, 3, 3), init="eye")
    torch.testing.assert_close(t2c(tokens), tokens.reshape(2, 3, 3, 6).permute(0, 3, 1, 2))


def test_c2t_token_order_and_cls_modes():
    x = torch.randn(2, 4, 2, 3)
    plain = make_stitching_layer("c2t", (4, 2, 3), (6, 5))
    conv_out = plain.transform(x)  # (2, 5, 2, 3)
    out = plain(x)
    for h in range(2):
        for w in range(3):
            torch.testing.assert_close(out[:, h * 3 + w], conv_out[:, :, h, w])

    pool = make_stitching_layer("c2t", (4, 2, 3), (7, 5), c2t_cls="pool")
    out = pool(x)
    torch.testing.assert_close(out[:, 0], out[:, 1:].mean(dim=1))

    torch.manual_seed(0)
    learn = make_stitching_layer("c2t", (4, 2, 3), (7, 5), c2t_cls="learn")
    assert learn.cls_token.shape == (1, 1, 5) and learn.cls_token.requires_grad
    assert 0 < learn.cls_token.abs().max() < 1e-5  # N(0, 1e-6)
    out = learn(x)
    torch.testing.assert_close(out[:, 0], learn.cls_token[0].expand(2, 5))
    assert "cls_token" in dict(learn.named_parameters())


def test_c2t_token_count_must_match():
    with pytest.raises(StitchkitError, match=r"c2t_cls='pool' or 'learn'") as e:
        make_stitching_layer("c2t", (4, 2, 3), (7, 5))
    assert "(4, 2, 3)" in str(e.value) and "(7, 5)" in str(e.value)
    with pytest.raises(StitchkitError, match=r"\(4, 2, 3\).*\(6, 5\)"):
        make_stitching_layer("c2t", (4, 2, 3), (6, 5), c2t_cls="learn")


def test_t2c_cls_modes():
    torch.manual_seed(1)
    x = torch.randn(2, 17, 6)  # CLS + 4×4 patches, inferred (17 is not a square)
    cls, patches = x[:, :1], x[:, 1:]

    def grid(t):
        return t.reshape(2, 4, 4, 6).permute(0, 3, 1, 2)

    drop = make_stitching_layer("t2c", (17, 6), (6, 4, 4), init="eye")
    assert drop.front_has_cls and drop.cls == "drop"
    torch.testing.assert_close(drop(x), grid(patches))

    add = make_stitching_layer("t2c", (17, 6), (6, 4, 4), init="eye", t2c_cls="add")
    assert add.cls_token_weight.item() == pytest.approx(0.1) and add.cls_token_weight.requires_grad
    torch.testing.assert_close(add(x), grid(patches + 0.1 * cls))

    only = make_stitching_layer("t2c", (17, 6), (6, 4, 4), init="eye", t2c_cls="only")
    torch.testing.assert_close(only(x), grid(cls.expand(-1, 16, -1)))


def test_t2c_front_has_cls_explicit_and_inferred():
    # 16 tokens is a square: inferred as no CLS.
    layer = make_stitching_layer("t2c", (16, 3), (3, 4, 4), init="eye")
    assert not layer.front_has_cls
    x = torch.randn(2, 16, 3)
    torch.testing.assert_close(layer(x), x.reshape(2, 4, 4, 3).permute(0, 3, 1, 2))
    # 10 tokens = CLS + 3×3; explicit True agrees with inference, explicit False cannot form a grid.
    assert make_stitching_layer("t2c", (10, 3), (3, 3, 3), front_has_cls=True).front_has_cls
    with pytest.raises(StitchkitError, match=r"\(10, 3\).*\(3, 3, 3\)"):
        make_stitching_layer("t2c", (10, 3), (3, 3, 3), front_has_cls=False)
    # 1 + 1 tokens, explicitly with CLS: one patch.
    assert make_stitching_layer("t2c", (2, 3), (3, 2, 2), front_has_cls=True)(torch.randn(1, 2, 3)).shape == (
        1,
        3,
        2,
        2,
    )
    with pytest.raises(StitchkitError, match="needs a front CLS token"):
        make_stitching_layer("t2c", (16, 3), (3, 4, 4), t2c_cls="add")


@pytest.mark.parametrize(
    "kind,src,tgt",
    [
        ("t2t", (65, 192), (64, 192)),
        ("c2c", (64, 32, 32), (64, 16, 16)),
        ("c2t", (64, 8, 8), (65, 192)),
        ("t2c", (66, 192), (64, 8, 8)),
        ("c2c", (65, 192), (64, 8, 8)),
        ("v2v", (10,), (3, 4, 4)),
    ],
)
def test_incompatible_shapes_name_both_shapes(kind, src, tgt):
    with pytest.raises(StitchkitError) as e:
        make_stitching_layer(kind, src, tgt)
    assert str(src) in str(e.value)
    assert str(tgt) in str(e.value)


def test_unknown_names_list_the_known_ones():
    with pytest.raises(StitchkitError) as e:
        make_stitching_layer("conv", (3, 4, 4), (3, 4, 4))
    for kind in KINDS + ["auto"]:
        assert kind in str(e.value)
    with pytest.raises(StitchkitError, match="rand, eye, pinv|eye, pinv, rand"):
        make_stitching_layer("c2c", (3, 4, 4), (3, 4, 4), init="zeros")
    with pytest.raises(StitchkitError, match="bilinear"):
        make_stitching_layer("rc2c_pre", (3, 4, 4), (3, 4, 4), upsample_mode="bicubic")
    with pytest.raises(StitchkitError, match="learn"):
        make_stitching_layer("c2t", (3, 2, 2), (5, 4), c2t_cls="first")
    with pytest.raises(StitchkitError, match="positive integers"):
        make_stitching_layer("c2c", (3, 0, 4), (3, 4, 4))


def test_auto_picks_the_documented_type():
    cases = {
        ((64, 32, 32), (128, 16, 16)): "rc2c_pre",
        ((64, 8, 8), (64, 8, 8)): "rc2c_pre",  # also at equal sizes, like the paper
        ((65, 192), (65, 384)): "t2t",
        ((64, 8, 8), (64, 192)): "c2t",
        ((65, 192), (64, 8, 8)): "t2c",
        ((10,), (20,)): "v2v",
    }
    for (src, tgt), kind in cases.items():
        assert auto_stitching_type(src, tgt) == kind
        assert make_stitching_layer("auto", src, tgt).kind == kind
    with pytest.raises(StitchkitError, match=r"\(10,\).*\(3, 4, 4\)"):
        make_stitching_layer("auto", (10,), (3, 4, 4))


def test_pinv_init_leaves_default_init_and_set_affine_keeps_parameters():
    torch.manual_seed(0)
    layer = make_stitching_layer("rc2c_pre", (3, 4, 4), (5, 2, 2), init="pinv")
    weight_param, bias_param = layer.transform.weight, layer.transform.bias
    w = torch.randn(5, 3, dtype=torch.float64)
    b = torch.randn(5, dtype=torch.float64)
    layer.set_affine(w, b)
    assert layer.transform.weight is weight_param and layer.transform.bias is bias_param
    assert isinstance(layer.transform.weight, torch.nn.Parameter) and layer.transform.weight.requires_grad
    assert layer.transform.weight.dtype == torch.float32 and layer.transform.weight.shape == (5, 3, 1, 1)
    got_w, got_b = layer.affine()
    torch.testing.assert_close(got_w, w.float())
    torch.testing.assert_close(got_b, b.float())
    with pytest.raises(StitchkitError, match=r"\(5, 3\).*\(3, 5\)"):
        layer.set_affine(w.T, b)


def test_rc2c_post_cannot_be_direct_matched_across_sizes():
    layer = make_stitching_layer("rc2c_post", (3, 4, 4), (5, 2, 2))
    with pytest.raises(StitchkitError, match="rc2c_pre"):
        layer.transform_target(torch.randn(1, 5, 2, 2))
    same = make_stitching_layer("rc2c_post", (3, 4, 4), (5, 4, 4))
    y = torch.randn(1, 5, 4, 4)
    assert same.transform_target(y) is y
