"""Stitching layers: the affine map placed between a front layer and an end layer (spec section 4).

Every stitching layer is ``post_transform(transform(pre_transform(x)))`` where ``transform`` is a single
affine module (a 1×1 :class:`~torch.nn.Conv2d` or a :class:`~torch.nn.Linear`, always with a bias) and
the two other steps hold everything that is not fitted: resizing, CLS-token handling and reshaping
between the conv layout ``(B, C, H, W)`` and the token layout ``(B, T, D)``.

The split is what direct matching needs (spec 1.3.1): its *source* is the transform's input,
``pre_transform(front_activation)``, and its *target* is the end activation brought into the transform's
output layout, ``transform_target(end_activation)``. Direct matching then fits ``transform`` alone
(:mod:`stitchkit.stitching.direct_match`).

Types (one module each in :mod:`stitchkit.stitching.layer_types`, declared there; :func:`list_stitching_layers`):

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

import torch

from ..choices import C2T_CLS_MODES, INITS, T2C_CLS_MODES, UPSAMPLE_MODES
from ..declarations import catalogue, declaration, implementation
from ..errors import StitchkitError, unknown_name
from .layer_types.auto import auto_stitching_type
from .layer_types.base import StitchingLayer, shape_error

__all__ = [
    "C2T_CLS_MODES",
    "INITS",
    "T2C_CLS_MODES",
    "UPSAMPLE_MODES",
    "StitchingLayer",
    "auto_stitching_type",
    "list_stitching_layers",
    "make_stitching_layer",
]


def list_stitching_layers() -> list[str]:
    """Every valid ``kind`` for :func:`make_stitching_layer` (the declared types, ``auto`` among them), sorted."""
    return sorted(catalogue("stitching_layer"))


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
    if out_f != in_f and not layer.rectangular_eye:
        raise shape_error(
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
    if kind not in catalogue("stitching_layer"):
        raise unknown_name("stitching layer", kind, list_stitching_layers())
    if declaration("stitching_layer", kind).get("picks"):  # auto: a type chosen from the shapes
        kind = implementation("stitching_layer", kind)(source_shape, target_shape)
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
    layer = implementation("stitching_layer", kind).build(source_shape, target_shape, options)
    if init == "eye":
        _init_eye(layer)
    return layer
