"""``auto``: not a layer of its own but the choice of one from the activation shapes."""

from __future__ import annotations

from ...declarations import catalogue, declare
from ...errors import StitchkitError
from .base import fmt_shape


@declare(
    "stitching_layer",
    "auto",
    order=7,
    picks=True,
    help="any of the others: picks the type from the activation shapes (the one declared for their dimensions)",
)
def auto_stitching_type(source_shape: tuple, target_shape: tuple) -> str:
    """The type ``auto`` picks from the activation shapes (without batch): the one declared with
    ``auto_for=(source dims, target dims)``. (C,H,W)→(C,H,W): ``rc2c_pre`` (the paper's layer for every
    conv pair, also at equal sizes, where the bilinear resize is the identity); (T,D)→(T,D): ``t2t``;
    (C,H,W)→(T,D): ``c2t``; (T,D)→(C,H,W): ``t2c``; (D,)→(D,): ``v2v``.
    """
    declared = catalogue("stitching_layer").items()
    rules = {tuple(decl.get("auto_for")): name for name, decl in declared if decl.get("auto_for")}
    key = (len(source_shape), len(target_shape))
    if key not in rules:
        raise StitchkitError(
            f"no stitching layer maps source shape {fmt_shape(source_shape)} to target shape "
            f"{fmt_shape(target_shape)}; "
            "shapes without the batch must be (C, H, W), (T, D) or (D,) (vectors only to vectors)"
        )
    return rules[key]
