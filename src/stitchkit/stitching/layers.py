"""Stitching layers: the affine map placed between a front layer and an end layer (spec section 4).

Every stitching layer is ``post_transform(transform(pre_transform(x)))`` where ``transform`` is a single
affine module (a 1×1 :class:`~torch.nn.Conv2d` or a :class:`~torch.nn.Linear`, always with a bias) and
the two other steps hold everything that is not fitted: resizing, CLS-token handling and reshaping
between the conv layout ``(B, C, H, W)`` and the token layout ``(B, T, D)``.

The split is what direct matching needs (spec 1.3.1): its *source* is the transform's input,
``pre_transform(front_activation)``, and its *target* is the end activation brought into the transform's
output layout, ``transform_target(end_activation)``. Direct matching then fits ``transform`` alone
(:mod:`stitchkit.stitching.direct_match`).

Types (one registry entry each; :func:`list_stitching_layers`):

========== ===================== ======================================================================
type       shapes (no batch)     forward
========== ===================== ======================================================================
c2c        (C,H,W) → (C',H,W)    1×1 conv; the spatial sizes must be equal
rc2c_pre   (C,H,W) → (C',H',W')  resize to (H',W') (bilinear, align_corners=False, or nearest), 1×1 conv
rc2c_post  (C,H,W) → (C',H',W')  1×1 conv, then resize
t2t        (T,D) → (T,D')        Linear on the last dimension, every token including CLS; equal T
c2t        (C,H,W) → (T,D)       1×1 conv, flatten to H·W tokens, optionally prepend a CLS token
t2c        (T,D) → (C,H,W)       CLS drop/add/only, tokens → √N×√N grid, resize to (H,W), 1×1 conv
v2v        (D,) → (D',)          Linear (flat vectors; not in the original)
auto       any of the above      picks the type from the shapes, see :func:`auto_stitching_type`
========== ===================== ======================================================================

Differences from the original (all deliberate, spec sections 6.1 and 7):

* ``init="eye"`` works for every type whose channel counts allow an identity (the original silently
  ignored it for rc2c, c2t and t2c) and raises otherwise.
* Incompatible shapes raise :class:`~stitchkit.errors.StitchkitError` at construction, naming both shapes,
  instead of failing later inside the end model.
* t2c takes an explicit ``front_has_cls``; ``None`` keeps the original's heuristic (the token count is
  not a perfect square).
* The unreachable ``norm``/``act_fn`` options of the original are not reproduced.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import Tensor, nn

from ..choices import C2T_CLS_MODES, INITS, T2C_CLS_MODES, UPSAMPLE_MODES
from ..errors import StitchkitError, unknown_name
from ..models.resize import resize_map



def _fmt(shape) -> str:
    return str(tuple(int(s) for s in shape))


def _shape_error(kind: str, source_shape, target_shape, why: str) -> StitchkitError:
    return StitchkitError(
        f"stitching layer {kind!r} cannot map source shape {_fmt(source_shape)} to target shape "
        f"{_fmt(target_shape)}: {why}"
    )


class StitchingLayer(nn.Module):
    """Base class: ``forward(x) = post_transform(transform(pre_transform(x)))``.

    Attributes:
        kind: the registry name of the type.
        source_shape, target_shape: activation shapes without the batch dimension.
        transform: the affine module (``nn.Conv2d`` 1×1 or ``nn.Linear``, with bias) that direct
            matching fits.
    """

    kind: str = ""

    def __init__(self, source_shape: tuple, target_shape: tuple, transform: nn.Conv2d | nn.Linear):
        super().__init__()
        self.source_shape = tuple(int(s) for s in source_shape)
        self.target_shape = tuple(int(s) for s in target_shape)
        self.transform = transform

    # --- the three stages -------------------------------------------------------------------------
    def pre_transform(self, x: Tensor) -> Tensor:
        """Everything before ``transform``; its output is the direct-matching source."""
        return x

    def post_transform(self, y: Tensor) -> Tensor:
        """Everything after ``transform``."""
        return y

    def transform_target(self, y: Tensor) -> Tensor:
        """Bring an end-layer activation ``(B, *target_shape)`` into the layout of ``transform``'s output.

        This undoes ``post_transform`` where that is possible and is the direct-matching target. Types
        whose ``post_transform`` cannot be undone raise :class:`StitchkitError`.
        """
        return y

    def forward(self, x: Tensor) -> Tensor:
        return self.post_transform(self.transform(self.pre_transform(x)))

    # --- the affine map ---------------------------------------------------------------------------
    @property
    def in_features(self) -> int:
        t = self.transform
        return t.in_channels if isinstance(t, nn.Conv2d) else t.in_features

    @property
    def out_features(self) -> int:
        t = self.transform
        return t.out_channels if isinstance(t, nn.Conv2d) else t.out_features

    def affine(self) -> tuple[Tensor, Tensor]:
        """The current map as a detached ``(out, in)`` weight and ``(out,)`` bias (copies)."""
        w = self.transform.weight.detach().reshape(self.out_features, self.in_features).clone()
        return w, self.transform.bias.detach().clone()

    @torch.no_grad()
    def set_affine(self, weight: Tensor, bias: Tensor) -> None:
        """Install an ``(out, in)`` weight and ``(out,)`` bias into ``transform``.

        The values are copied into the existing parameters, which stay the same ``nn.Parameter``
        objects (an optimizer built earlier keeps working); dtype and device follow the layer.
        """
        weight = torch.as_tensor(weight)
        bias = torch.as_tensor(bias)
        want_w, want_b = (self.out_features, self.in_features), (self.out_features,)
        if tuple(weight.shape) != want_w or tuple(bias.shape) != want_b:
            raise StitchkitError(
                f"stitching layer {self.kind!r} needs a weight of shape {_fmt(want_w)} and a bias of shape "
                f"{_fmt(want_b)}, got {_fmt(weight.shape)} and {_fmt(bias.shape)}"
            )
        p_w, p_b = self.transform.weight, self.transform.bias
        p_w.copy_(weight.reshape(p_w.shape).to(device=p_w.device, dtype=p_w.dtype))
        p_b.copy_(bias.to(device=p_b.device, dtype=p_b.dtype))

    def extra_repr(self) -> str:
        return f"kind={self.kind!r}, source_shape={self.source_shape}, target_shape={self.target_shape}"


def _conv(c_in: int, c_out: int) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, kernel_size=1, stride=1, bias=True)


def _need_rank(kind: str, source_shape, target_shape, src_dims: int, tgt_dims: int) -> None:
    names = {1: "(D,)", 2: "(T, D)", 3: "(C, H, W)"}
    if len(source_shape) != src_dims or len(target_shape) != tgt_dims:
        raise _shape_error(
            kind,
            source_shape,
            target_shape,
            f"it needs a {names[src_dims]} source and a {names[tgt_dims]} target (shapes without the batch)",
        )


# --- conv -> conv ---------------------------------------------------------------------------------
class ConvToConv(StitchingLayer):
    """``c2c``: a 1×1 conv with bias; the spatial sizes must be equal."""

    kind = "c2c"

    def __init__(self, source_shape, target_shape):
        _need_rank(self.kind, source_shape, target_shape, 3, 3)
        if tuple(source_shape[1:]) != tuple(target_shape[1:]):
            raise _shape_error(
                self.kind, source_shape, target_shape, "the spatial sizes differ; use 'rc2c_pre' to resize"
            )
        super().__init__(source_shape, target_shape, _conv(source_shape[0], target_shape[0]))


class ResizedConvToConv(StitchingLayer):
    """``rc2c_pre`` (resize, then 1×1 conv; the paper's layer for every conv pair) and ``rc2c_post``
    (1×1 conv, then resize). The resize always runs, also at equal sizes (bilinear is then exact).
    Both orders give the same function (see :meth:`forward`); they differ in what direct matching fits
    on: the resized source (rc2c_pre) or the source at its own size (rc2c_post, equal sizes only)."""

    def __init__(self, source_shape, target_shape, *, pre_resize: bool = True, upsample_mode: str = "bilinear"):
        kind = "rc2c_pre" if pre_resize else "rc2c_post"
        _need_rank(kind, source_shape, target_shape, 3, 3)
        super().__init__(source_shape, target_shape, _conv(source_shape[0], target_shape[0]))
        self.kind = kind
        self.pre_resize = pre_resize
        self.upsample_mode = upsample_mode
        self.size = (self.target_shape[1], self.target_shape[2])

    def pre_transform(self, x: Tensor) -> Tensor:
        return resize_map(x, self.size, self.upsample_mode) if self.pre_resize else x

    def post_transform(self, y: Tensor) -> Tensor:
        return y if self.pre_resize else resize_map(y, self.size, self.upsample_mode)

    def forward(self, x: Tensor) -> Tensor:
        # The resize (bilinear or nearest) acts on each channel with weights that sum to one, the 1×1
        # conv on the channels of each position: the two commute exactly (bias included), so rc2c_pre
        # and rc2c_post compute the same function. Run the cheaper order: conv first when it shrinks
        # the channels of a map that is then enlarged (e.g. layer4 → layer1), resize first otherwise.
        # Direct matching still fits on pre_transform(x), the resized source, as the original did.
        h_s, w_s = x.shape[-2:]
        h_t, w_t = self.size
        resize_first = h_t * w_t * self.in_features * (self.out_features + 4)
        conv_first = h_s * w_s * self.in_features * self.out_features + h_t * w_t * self.out_features * 4
        if conv_first < resize_first:
            return resize_map(self.transform(x), self.size, self.upsample_mode)
        return self.transform(resize_map(x, self.size, self.upsample_mode))

    def transform_target(self, y: Tensor) -> Tensor:
        if self.pre_resize or tuple(self.source_shape[1:]) == self.size:
            return y  # an equal-size resize is the identity
        raise StitchkitError(
            f"direct matching cannot fit 'rc2c_post' from {_fmt(self.source_shape)} to "
            f"{_fmt(self.target_shape)} because the resize follows the transform; use 'rc2c_pre'"
        )

    def extra_repr(self) -> str:
        return super().extra_repr() + f", upsample_mode={self.upsample_mode!r}"


# --- tokens -> tokens, vectors -> vectors ---------------------------------------------------------
class TransToTrans(StitchingLayer):
    """``t2t``: a Linear on the last dimension, applied to every token including CLS."""

    kind = "t2t"

    def __init__(self, source_shape, target_shape):
        _need_rank(self.kind, source_shape, target_shape, 2, 2)
        if source_shape[0] != target_shape[0]:
            raise _shape_error(self.kind, source_shape, target_shape, "the token counts differ")
        super().__init__(source_shape, target_shape, nn.Linear(source_shape[1], target_shape[1]))


class VecToVec(StitchingLayer):
    """``v2v``: a Linear between flat ``(D,)`` activations (not in the original)."""

    kind = "v2v"

    def __init__(self, source_shape, target_shape):
        _need_rank(self.kind, source_shape, target_shape, 1, 1)
        super().__init__(source_shape, target_shape, nn.Linear(source_shape[0], target_shape[0]))


# --- conv -> tokens -------------------------------------------------------------------------------
class ConvToTrans(StitchingLayer):
    """``c2t``: 1×1 conv to the token width, flatten ``(B, D, H, W) -> (B, H·W, D)`` (row-major positions),
    then the CLS option: ``None`` adds nothing, ``"pool"`` prepends the mean of the tokens, ``"learn"``
    prepends a learned token initialised N(0, 1e-6). No resizing: H·W (+1 with CLS) must equal the
    target token count.

    Direct matching fits the patch tokens only (the CLS token of the target is dropped in
    :meth:`transform_target`), which fixes the original's row-count failure with a CLS target.
    """

    kind = "c2t"

    def __init__(self, source_shape, target_shape, *, cls: str | None = None):
        _need_rank(self.kind, source_shape, target_shape, 3, 2)
        c, h, w = source_shape
        n_tokens, _ = target_shape
        extra = 0 if cls is None else 1
        if h * w + extra != n_tokens:
            if cls is None and h * w + 1 == n_tokens:
                why = "the target has one more token than H·W; pass c2t_cls='pool' or 'learn' to add a CLS token"
            else:
                why = f"H·W{' + 1 (CLS)' if extra else ''} = {h * w + extra} differs from the target token count {n_tokens}"
            raise _shape_error(self.kind, source_shape, target_shape, why)
        super().__init__(source_shape, target_shape, _conv(c, target_shape[1]))
        self.cls = cls
        if cls == "learn":
            self.cls_token = nn.Parameter(torch.randn(1, 1, target_shape[1]) * 1e-6)

    def post_transform(self, y: Tensor) -> Tensor:
        tokens = y.flatten(2).transpose(1, 2)  # (B, H·W, D)
        if self.cls == "pool":
            return torch.cat([tokens.mean(dim=1, keepdim=True), tokens], dim=1)
        if self.cls == "learn":
            return torch.cat([self.cls_token.expand(tokens.shape[0], -1, -1), tokens], dim=1)
        return tokens

    def transform_target(self, y: Tensor) -> Tensor:
        if self.cls is not None:
            y = y[:, 1:]
        _, h, w = self.source_shape
        return y.transpose(1, 2).reshape(y.shape[0], y.shape[2], h, w)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", cls={self.cls!r}"


# --- tokens -> conv -------------------------------------------------------------------------------
def _is_square(n: int) -> bool:
    return n >= 0 and math.isqrt(n) ** 2 == n


class TransToConv(StitchingLayer):
    """``t2c``: CLS handling, tokens ``(B, N, D)`` → grid ``(B, D, √N, √N)`` (row-major), resize to the
    target (H, W), 1×1 conv.

    CLS handling, only when the front has a CLS token (token 0): ``"drop"`` (default) discards it,
    ``"add"`` adds ``w·CLS`` to every patch token with a learned scalar ``w`` (init 0.1), ``"only"`` repeats
    the CLS token over all patch positions. Whether the front has a CLS token comes from
    ``front_has_cls``; ``None`` infers it like the original (the token count is not a perfect square).
    """

    kind = "t2c"

    def __init__(
        self,
        source_shape,
        target_shape,
        *,
        cls: str | None = None,
        front_has_cls: bool | None = None,
        upsample_mode: str = "bilinear",
    ):
        _need_rank(self.kind, source_shape, target_shape, 2, 3)
        n_tokens, d = source_shape
        if front_has_cls is None:
            front_has_cls = not _is_square(n_tokens)
        n_patches = n_tokens - 1 if front_has_cls else n_tokens
        if n_patches < 1 or not _is_square(n_patches):
            raise _shape_error(
                self.kind,
                source_shape,
                target_shape,
                f"{n_patches} patch tokens ({'with' if front_has_cls else 'without'} a CLS token) do not form "
                "a square grid; set front_has_cls to match the front model",
            )
        if not front_has_cls and cls in ("add", "only"):
            raise _shape_error(
                self.kind, source_shape, target_shape, f"t2c_cls={cls!r} needs a front CLS token, but there is none"
            )
        super().__init__(source_shape, target_shape, _conv(d, target_shape[0]))
        self.front_has_cls = bool(front_has_cls)
        self.cls = (cls or "drop") if front_has_cls else None
        self.grid = math.isqrt(n_patches)
        self.upsample_mode = upsample_mode
        self.size = (self.target_shape[1], self.target_shape[2])
        if self.cls == "add":
            self.cls_token_weight = nn.Parameter(torch.tensor(0.1))

    def pre_transform(self, x: Tensor) -> Tensor:
        if self.front_has_cls:
            cls_tok, patches = x[:, :1], x[:, 1:]
            if self.cls == "add":
                x = patches + self.cls_token_weight * cls_tok
            elif self.cls == "only":
                x = cls_tok.expand(-1, patches.shape[1], -1)
            else:
                x = patches
        b, _, d = x.shape
        grid = x.reshape(b, self.grid, self.grid, d).permute(0, 3, 1, 2)
        return resize_map(grid, self.size, self.upsample_mode)

    def extra_repr(self) -> str:
        return (
            super().extra_repr()
            + f", front_has_cls={self.front_has_cls}, cls={self.cls!r}, upsample_mode={self.upsample_mode!r}"
        )


# --- registry -------------------------------------------------------------------------------------
def auto_stitching_type(source_shape: tuple, target_shape: tuple) -> str:
    """The type ``auto`` picks from the activation shapes (without batch).

    (C,H,W)→(C,H,W): ``rc2c_pre`` (the paper's layer for every conv pair, also at equal sizes, where the
    bilinear resize is the identity); (T,D)→(T,D): ``t2t``; (C,H,W)→(T,D): ``c2t``; (T,D)→(C,H,W):
    ``t2c``; (D,)→(D,): ``v2v``.
    """
    rules = {(3, 3): "rc2c_pre", (2, 2): "t2t", (3, 2): "c2t", (2, 3): "t2c", (1, 1): "v2v"}
    key = (len(source_shape), len(target_shape))
    if key not in rules:
        raise StitchkitError(
            f"no stitching layer maps source shape {_fmt(source_shape)} to target shape {_fmt(target_shape)}; "
            "shapes without the batch must be (C, H, W), (T, D) or (D,) (vectors only to vectors)"
        )
    return rules[key]


_Builder = Callable[..., StitchingLayer]

_REGISTRY: dict[str, _Builder] = {
    "c2c": lambda s, t, o: ConvToConv(s, t),
    "rc2c_pre": lambda s, t, o: ResizedConvToConv(s, t, pre_resize=True, upsample_mode=o["upsample_mode"]),
    "rc2c_post": lambda s, t, o: ResizedConvToConv(s, t, pre_resize=False, upsample_mode=o["upsample_mode"]),
    "t2t": lambda s, t, o: TransToTrans(s, t),
    "c2t": lambda s, t, o: ConvToTrans(s, t, cls=o["c2t_cls"]),
    "t2c": lambda s, t, o: TransToConv(
        s, t, cls=o["t2c_cls"], front_has_cls=o["front_has_cls"], upsample_mode=o["upsample_mode"]
    ),
    "v2v": lambda s, t, o: VecToVec(s, t),
}


def list_stitching_layers() -> list[str]:
    """Every valid ``kind`` for :func:`make_stitching_layer`, including ``auto``."""
    return sorted([*_REGISTRY, "auto"])


def _as_shape(name: str, shape) -> tuple[int, ...]:
    try:
        dims = tuple(shape)
        ok = all(not isinstance(s, bool) and int(s) == s and s > 0 for s in dims)
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise StitchkitError(f"the {name} shape must be a tuple of positive integers without the batch, got {shape!r}")
    return tuple(int(s) for s in dims)


@torch.no_grad()
def _init_eye(layer: StitchingLayer) -> None:
    out_f, in_f = layer.out_features, layer.in_features
    rectangular = isinstance(layer, (TransToTrans, VecToVec))  # the original's eye(D_tgt, D_src) for t2t
    if out_f != in_f and not rectangular:
        raise _shape_error(
            layer.kind,
            layer.source_shape,
            layer.target_shape,
            f"init='eye' needs equal channel counts, got {in_f} and {out_f}",
        )
    layer.set_affine(torch.eye(out_f, in_f), torch.zeros(out_f))


def make_stitching_layer(
    kind: str,
    source_shape: tuple,
    target_shape: tuple,
    *,
    init: str = "rand",
    upsample_mode: str = "bilinear",
    c2t_cls: str | None = None,
    t2c_cls: str | None = None,
    front_has_cls: bool | None = None,
) -> StitchingLayer:
    """Build a stitching layer of type ``kind`` mapping ``source_shape`` to ``target_shape`` (no batch).

    Args:
        kind: a name from :func:`list_stitching_layers`; ``"auto"`` picks one by
            :func:`auto_stitching_type`.
        init: ``"rand"`` (PyTorch's default init), ``"eye"`` (identity; rectangular ``eye(D_tgt, D_src)``
            for t2t/v2v, otherwise equal channel counts are required) or ``"pinv"`` (left at rand; fit it
            with :func:`stitchkit.stitching.direct_match.direct_match`).
        upsample_mode: ``"bilinear"`` or ``"nearest"``; used by rc2c_pre, rc2c_post and t2c.
        c2t_cls: ``None``, ``"pool"`` or ``"learn"``; used by c2t.
        t2c_cls: ``None`` (= ``"drop"``), ``"drop"``, ``"add"`` or ``"only"``; used by t2c.
        front_has_cls: whether the t2c source has a CLS token at position 0; ``None`` infers it (the
            token count is not a perfect square).

    Options that a type does not use are ignored. Shape problems raise :class:`StitchkitError`.
    """
    source_shape = _as_shape("source", source_shape)
    target_shape = _as_shape("target", target_shape)
    if kind == "auto":
        kind = auto_stitching_type(source_shape, target_shape)
    if kind not in _REGISTRY:
        raise unknown_name("stitching layer", kind, list_stitching_layers())
    if init not in INITS:
        raise unknown_name("init", init, INITS)
    if upsample_mode not in UPSAMPLE_MODES:
        raise unknown_name("upsample mode", upsample_mode, UPSAMPLE_MODES)
    if c2t_cls == "none":
        c2t_cls = None
    if c2t_cls not in C2T_CLS_MODES:
        raise unknown_name("c2t CLS mode", str(c2t_cls), ["none", "pool", "learn"])
    if t2c_cls not in T2C_CLS_MODES:
        raise unknown_name("t2c CLS mode", str(t2c_cls), ["drop", "add", "only"])
    options = {"upsample_mode": upsample_mode, "c2t_cls": c2t_cls, "t2c_cls": t2c_cls, "front_has_cls": front_has_cls}
    layer = _REGISTRY[kind](source_shape, target_shape, options)
    if init == "eye":
        _init_eye(layer)
    return layer
