"""The stitched network: front prefix → (optional low rank) → stitching layer → end suffix (spec 4.1).

The original wrapped deep copies of both networks in forward hooks and ran **both networks in full**
on every batch: the front model past its source layer (logits thrown away) and the end model up to its
target layer (output replaced). :class:`Stitcher` uses the layer-cutting mechanism of
:mod:`stitchkit.models.layers` instead, so a stitched forward runs exactly

    front input → front_layer   (the front model's prefix, under no_grad: nothing upstream trains)
    stitching layer             (the only trainable part)
    end_layer → logits          (the end model's suffix)

and nothing else. The prefix and suffix share the donor models' parameters and buffers (no copies).

The donors are frozen **in place** (``requires_grad=False``) and stay in eval mode whatever
``train()`` is called with: only the stitching layer changes mode, so BatchNorm statistics and dropout
of the donors never change. This is what the paper did (``--mod-only-stitch``); the original's other
behaviour (BatchNorm drift in the "frozen" networks) is not offered.

The same model object may be both front and end (a layer stitched to a layer of its own network).
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import Tensor, nn

from ..activations.low_rank import LowRankBasis, low_rank
from ..models.layers import layered
from ..ranks import check_rank, low_rank_mode
from .layers import StitchingLayer, make_stitching_layer

_CUTS: weakref.WeakKeyDictionary[nn.Module, dict] = weakref.WeakKeyDictionary()


def model_cut(model: nn.Module, what: str, layer: str, input_shape: tuple[int, ...] | None = None):
    """The model's prefix/suffix module or activation shape at ``layer``, built once per model (a grid
    builds many stitchers over the same two networks; the cut modules are stateless views)."""
    cache = _CUTS.setdefault(model, {})
    key = (what, layer, input_shape)
    if key not in cache:
        lm = layered(model)
        if what == "shape":
            cache.update({("shape", name, input_shape): shape for name, shape in lm.shapes(input_shape).items()})
        else:
            cache[key] = lm.prefix(layer) if what == "prefix" else lm.suffix(layer)
    return cache[key]


def _has_cls_token(model: nn.Module) -> bool | None:
    """Whether a token-producing model prepends a CLS token (our ViT and timm's expose ``cls_token``)."""
    if hasattr(model, "cls_token"):
        return model.cls_token is not None
    return None


class SourceReducer(nn.Module):
    """The low-rank approximation of a front activation (spec 1.9, references.md section 3).

    ``mode="fixed"`` (default): a :class:`~stitchkit.activations.LowRankBasis` estimated once on reference
    activations (:meth:`update` per batch, then :meth:`finalize`) and applied identically to every batch.
    ``mode="per_batch"``: the original's centred truncated SVD recomputed on every tensor passed in
    (the kept subspace then depends on the batch). ``rank=None`` is the identity.
    """

    def __init__(self, rank: int | None, mode: str = "fixed"):
        super().__init__()
        self.rank = check_rank(rank, "rank", full=True)
        self.mode = low_rank_mode(mode)
        self.basis = LowRankBasis(rank) if rank is not None and mode == "fixed" else None

    @property
    def needs_fit(self) -> bool:
        return self.basis is not None and not self.basis.fitted

    def update(self, front: Tensor) -> None:
        if self.basis is not None:
            self.basis.update(front)

    def finalize(self) -> None:
        if self.basis is not None:
            self.basis.finalize()

    def forward(self, front: Tensor) -> Tensor:
        if self.rank is None:
            return front
        if self.basis is None:
            return low_rank(front, self.rank)
        return self.basis(front)

    def extra_repr(self) -> str:
        return f"rank={self.rank}, mode={self.mode!r}"


@dataclass(frozen=True, kw_only=True)
class StitcherOptions:
    """How a :class:`Stitcher` builds its stitching layer and low-rank step, each option declared once
    (checked where it is used: :func:`~stitchkit.stitching.make_stitching_layer` and :class:`SourceReducer`)."""

    init: str = "rand"  # "rand", "eye" or "pinv" (left at rand here; fit it by direct matching)
    upsample_mode: str = "bilinear"
    c2t_cls: str | None = None
    t2c_cls: str | None = None
    front_has_cls: bool | None = None  # None: ask the front model whether it has a cls_token
    front_rank: int | None = None  # --front-stitch-rank: low-rank approximation of the front activation
    low_rank_mode: str = "fixed"

    @classmethod
    def of(cls, settings: Any, **options: Any) -> StitcherOptions:
        """The options a :class:`~stitchkit.stitching.settings.StitchSettings` gives a stitcher (its
        ``init`` only where ``options`` name it)."""
        return cls(
            upsample_mode=settings.upsample_mode,
            c2t_cls=settings.c2t_cls,
            t2c_cls=settings.t2c_cls,
            front_rank=settings.front_stitch_rank,
            low_rank_mode=settings.low_rank_mode,
            **options,
        )


class Stitcher(nn.Module):
    """``end_suffix(layer(reduce(front_prefix(x))))`` for two (possibly identical) models.

    Args:
        front, end: the donor models (frozen in place and put in eval mode).
        front_layer, end_layer: stitchable layer names (``stitchkit layers MODEL`` lists them; a wrong
            name raises a :class:`StitchkitError` that lists the valid ones).
        kind: stitching-layer type (:func:`~stitchkit.stitching.list_stitching_layers`), ``"auto"`` picks it
            from the two activation shapes.
        input_shape: ``(C, H, W)`` of one input, used to infer the activation shapes.
        options: a :class:`StitcherOptions`, with ``**given`` (its field names, e.g. ``init="eye"``) applied:
            ``init``: ``"rand"``, ``"eye"`` or ``"pinv"`` (left at rand here; fit it by direct matching).
            ``front_rank``: rank of the low-rank approximation of the front activation applied in every forward
            (``--front-stitch-rank``); ``low_rank_mode`` ``"fixed"`` needs :meth:`fit_low_rank` before use.
            ``upsample_mode``, ``c2t_cls``, ``t2c_cls``, ``front_has_cls``: passed to
            :func:`~stitchkit.stitching.make_stitching_layer` (``front_has_cls=None`` asks the front model
            whether it has a ``cls_token``, else uses the original's perfect-square heuristic).

    Attributes: ``front`` (prefix module), ``layer`` (the :class:`StitchingLayer`), ``end`` (suffix
    module), ``end_prefix`` (the end model up to ``end_layer``, for the real end activation),
    ``reduce`` (:class:`SourceReducer`), ``source_shape``/``target_shape``.
    """

    def __init__(
        self,
        front: nn.Module,
        end: nn.Module,
        front_layer: str,
        end_layer: str,
        kind: str = "auto",
        *,
        input_shape: Sequence[int],
        options: StitcherOptions | None = None,
        **given: Any,
    ):
        super().__init__()
        o = replace(options or StitcherOptions(), **given)  # (an unknown name: a TypeError naming it)
        front_has_cls = o.front_has_cls
        lf, le = layered(front), layered(end)
        lf.check_layer(front_layer)
        le.check_layer(end_layer)
        for model in (front, end):
            model.requires_grad_(False)
            model.eval()
        self.front_layer, self.end_layer = front_layer, end_layer
        self.input_shape = tuple(int(s) for s in input_shape)
        self.source_shape = model_cut(front, "shape", front_layer, self.input_shape)
        self.target_shape = model_cut(end, "shape", end_layer, self.input_shape)
        if front_has_cls is None and len(self.source_shape) == 2:
            front_has_cls = _has_cls_token(front)
        # The donors are registered so that .to()/.cuda() move all of them, including the parts the
        # prefix and suffix do not use (needed for the donors' own accuracies); the cut modules share
        # their parameters and buffers.
        self.front_model = front
        self.end_model = end
        self.front = model_cut(front, "prefix", front_layer)
        self.end = model_cut(end, "suffix", end_layer)
        self.end_prefix = model_cut(end, "prefix", end_layer)
        param = next(front.parameters(), None)
        self.layer: StitchingLayer = make_stitching_layer(
            kind,
            self.source_shape,
            self.target_shape,
            init=o.init,
            upsample_mode=o.upsample_mode,
            c2t_cls=o.c2t_cls,
            t2c_cls=o.t2c_cls,
            front_has_cls=front_has_cls,
        )
        if param is not None:
            self.layer.to(param.device)
        self.reduce = SourceReducer(check_rank(o.front_rank, "front_rank", full=True), o.low_rank_mode)
        self.init = o.init
        self.train(False)

    # --- modes ------------------------------------------------------------------------------------
    def train(self, mode: bool = True) -> Stitcher:
        """Only the stitching layer changes mode; the donors stay in eval mode."""
        self.training = mode
        self.layer.train(mode)
        for module in (self.front_model, self.end_model, self.front, self.end, self.end_prefix, self.reduce):
            if module.training:  # (cheap: the donors are put in eval mode once and only checked afterwards)
                module.eval()
        return self

    @property
    def kind(self) -> str:
        return self.layer.kind

    def trainable_parameters(self) -> list[nn.Parameter]:
        """The stitching layer's parameters (the only ones TLM trains)."""
        return [p for p in self.layer.parameters() if p.requires_grad]

    def stitching_state_dict(self) -> dict[str, Tensor]:
        """The stitching layer's state_dict (what ``final_model.pt`` holds), on the CPU."""
        return {k: v.detach().cpu() for k, v in self.layer.state_dict().items()}

    # --- the low-rank source ----------------------------------------------------------------------
    @torch.no_grad()
    def fit_low_rank(self, front_batches) -> None:
        """Estimate the fixed low-rank basis from front activations (an iterable of ``(B, *source_shape)``)."""
        if self.reduce.basis is None:
            return
        for front in front_batches:
            self.reduce.update(front)
        self.reduce.finalize()

    # --- forward ----------------------------------------------------------------------------------
    def stitch(self, front_activation: Tensor) -> Tensor:
        """The stitched activation that replaces the end layer's output: ``layer(reduce(front))``."""
        with torch.no_grad():
            source = self.reduce(front_activation)
        return self.layer(source)

    def from_front(self, front_activation: Tensor) -> Tensor:
        """Logits from a front activation (e.g. a cached one): only the layer and the end suffix run."""
        return self.end(self.stitch(front_activation))

    def forward(self, x: Tensor, return_activations: bool = False):
        """Logits of the stitched network; with ``return_activations`` also
        ``{"front", "stitched", "end"}`` (``end`` is the end model's own activation at ``end_layer``,
        which needs the end model's prefix as well)."""
        with torch.no_grad():
            front = self.front(x)
        stitched = self.stitch(front)
        logits = self.end(stitched)
        if not return_activations:
            return logits
        with torch.no_grad():
            end = self.end_prefix(x)
        return logits, {"front": front, "stitched": stitched, "end": end}

    def extra_repr(self) -> str:
        return (
            f"front_layer={self.front_layer!r}, end_layer={self.end_layer!r}, source_shape={self.source_shape}, "
            f"target_shape={self.target_shape}"
        )


def l1_penalty(stitcher: Stitcher) -> Tensor:
    """‖W‖₁ + ‖b‖₁ of the stitching layer's transform (the original's ``-l1`` term)."""
    t = stitcher.layer.transform
    return t.weight.abs().sum() + t.bias.abs().sum()


def naive_hooked_forward(front: nn.Module, end: nn.Module, front_layer: str, end_layer: str, layer: nn.Module):
    """The original's wiring, for benchmarks and cross-checks only: both networks run in full, a forward
    hook stores the front layer's output and another replaces the end layer's output by
    ``layer(front_activation)``. Returns ``forward(x) -> logits`` and a function that removes the hooks."""
    store: dict[str, Tensor] = {}
    front_module = dict(front.named_modules())[front_layer]
    end_module = dict(end.named_modules())[end_layer]

    def keep(_module, _inputs, output):
        store["front"] = output[0] if isinstance(output, tuple) else output

    def replace(_module, _inputs, _output):
        return layer(store["front"])

    handles = [front_module.register_forward_hook(keep), end_module.register_forward_hook(replace)]

    def forward(x: Tensor) -> Tensor:
        front(x)  # logits thrown away, as in the original
        return end(x)

    def remove() -> None:
        for h in handles:
            h.remove()

    return forward, remove
