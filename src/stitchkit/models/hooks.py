"""Cutting a model that ``torch.fx`` cannot trace, with forward hooks.

Many models (most HuggingFace ``transformers`` vision models among them) have a forward that
``torch.fx`` cannot trace into a graph. :class:`HookedModel` offers the same interface as
:class:`~stitchkit.models.layers.LayeredModel` — ``layers``, ``prefix``, ``extractor``, ``suffix``,
``segment``, ``shapes`` — by running the model itself with forward hooks on named modules:

* **extraction** (``prefix``, ``extractor``): hooks keep the outputs of the requested modules, and the
  hook of the last one to run raises a private exception that ends the forward, so nothing after the
  last needed layer runs — one pass gives every requested layer (as on the fx path);
* **stitching** (``suffix``, ``segment``): a hook returns the given activation in place of the layer's
  output. A model cannot start in the middle, so **the whole network runs**: the layers before the cut
  run on a dummy input (zeros of the model's input shape) whose results are thrown away. The dummy is
  one sample where the check below shows that one is enough (the part before the cut then costs one
  sample's forward per batch, whatever the batch size), else a batch of the activation's size (then a
  stitched forward costs a whole forward of the end network; the fx path runs only the suffix). Either
  way the whole end network's code runs on every stitched batch, from cached front activations too.

The dummy input is correct only if nothing after the layer depends on the input other than through the
layer's output — a residual connection that skips over the layer would carry the dummy's values into
the result. Layers are therefore **checked when the model is cut**: the model runs once on an input A,
keeping every candidate's output, and then once per candidate on another input B with the candidate's
output replaced by A's; a candidate is a layer only if the logits equal A's (everything after it depends
on the input only through it). B is one sample while A is two; where that fails (a forward that reads
the input's batch size after the cut), B is two samples and the cut's dummy the batch's size. This is the hook path's
version of the fx path's "clean cut", checked on
numbers instead of a graph: a skip whose effect on the logits vanishes for both random inputs would go
unnoticed. Modules called more than once, or never, are not layers.

Which modules are candidates follows the fx path: the model's ``stitchable_layers`` if it declares them,
else the elements of plain containers (``vit.layers.0``, ``convnext.encoder.stages.1``), outer first, the
parts of a block that is already a layer left out. Outputs that are not one tensor (tuples, dicts,
``ModelOutput``) are read by the rule of :mod:`stitchkit.models.outputs`.

The input shape is needed to run the model: it is given, or read from the model (``stitchkit_spec`` of
a model built by stitchkit, or a ``transformers`` config's ``num_channels`` and ``image_size``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import Tensor, nn

from ..errors import StitchkitError
from .layer_kinds import FEATURE, layer_kind
from .layers import LOGITS, LayeredModel
from .outputs import activation_of, logits_of, replace_activation

#: the name of this way of cutting (``stitchkit.choices.CUT_METHODS``)
HOOKS = "hooks"
#: the model attribute holding the input shape given to ``layered(model, input_shape=...)`` (kept on the
#: model, so that its copies know it too)
INPUT_SHAPE_ATTRIBUTE = "stitchkit_input_shape"
#: how far the logits of the clean-cut check may differ, relative to their largest magnitude
CLEAN_CUT_TOLERANCE = 1e-5


class _Stop(Exception):
    """Raised by the hook of the last needed layer to end a forward early (never leaves this module)."""


def probe_input_shape(model: nn.Module) -> tuple[int, ...] | None:
    """The input shape (C, H, W) a model states: one given to ``layered`` before (:data:`INPUT_SHAPE_ATTRIBUTE`),
    stitchkit's ``stitchkit_spec``, else a ``transformers`` config's ``num_channels`` and ``image_size``;
    None if it states none."""
    given = getattr(model, INPUT_SHAPE_ATTRIBUTE, None)
    if given is not None:
        return tuple(given)
    spec = getattr(model, "stitchkit_spec", None)
    if isinstance(spec, dict) and spec.get("in_channels") and spec.get("input_size"):
        return (int(spec["in_channels"]), *(int(s) for s in spec["input_size"]))
    config = getattr(model, "config", None)
    channels, size = getattr(config, "num_channels", None), getattr(config, "image_size", None)
    if isinstance(size, int):
        size = (size, size)
    if isinstance(channels, int) and isinstance(size, (tuple, list)) and len(size) == 2:
        return (channels, int(size[0]), int(size[1]))
    return None


def _placement(model: nn.Module) -> tuple[torch.device, torch.dtype]:
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    dtype = param.dtype if param is not None and param.is_floating_point() else torch.float32
    return device, dtype


@contextmanager
def _hooks(
    model: nn.Module,
    capture: Sequence[str],
    stop: bool,
    replace: dict[str, Tensor] | None = None,
    calls: dict[str, int] | None = None,
) -> Iterator[dict[str, Tensor]]:
    """Forward hooks on ``model`` for the duration of the block: the outputs of the modules named in
    ``capture`` land in the yielded dict (read by :func:`activation_of`; with ``stop``, the forward ends
    by :class:`_Stop` once all are there); the modules named in ``replace`` return the given tensors
    instead of their output; ``calls`` counts the calls of every captured module."""
    modules = dict(model.named_modules())
    captured: dict[str, Tensor] = {}
    wanted = set(capture)
    handles = []

    def keeper(name: str):
        def hook(_module, _inputs, output):
            if calls is not None:
                calls[name] = calls.get(name, 0) + 1
            if name in captured and calls is None:
                raise StitchkitError(f"module {name!r} runs more than once in a forward; it is not a layer")
            activation = activation_of(output)
            if stop and wanted <= set(captured) | {name}:
                captured[name] = activation
                raise _Stop
            # a later in-place operation (ReLU(inplace=True), x += y) must not change what was kept
            captured[name] = activation.clone()

        return hook

    def replacer(new: Tensor):
        def hook(_module, _inputs, output):
            return replace_activation(output, new)

        return hook

    try:
        for name, new in (replace or {}).items():
            handles.append(modules[name].register_forward_hook(replacer(new)))
        for name in capture:
            handles.append(modules[name].register_forward_hook(keeper(name)))
        yield captured
    finally:
        for handle in handles:
            handle.remove()


def run_hooked(
    model: nn.Module,
    x: Tensor,
    capture: Sequence[str] = (),
    *,
    stop: bool = True,
    replace: dict[str, Tensor] | None = None,
) -> tuple[dict[str, Tensor], Tensor | None]:
    """Run ``model`` on ``x`` with the hooks of :func:`_hooks`: the captured activations, and the logits
    (None when the forward stopped after the last captured layer)."""
    with _hooks(model, capture, stop and bool(capture), replace) as captured:
        try:
            out = model(x)
        except _Stop:
            return dict(captured), None
    return dict(captured), logits_of(out)


class HookedForward(nn.Module):
    """One cut of a :class:`HookedModel` as a module (what ``prefix``/``extractor``/``suffix``/``segment``
    return). It holds the model as a submodule, so it shares its parameters and ``.to()``/``.eval()``
    act on them.

    ``replace``: the layer whose output is the module's input (then the model runs on a dummy input);
    ``capture``: the layers returned (a dict, or one tensor with ``single``); ``logits``: also return
    (or, with no ``capture``, only return) the model's logits, which runs it to the end.
    """

    def __init__(
        self,
        hooked: HookedModel,
        *,
        capture: Sequence[str] = (),
        replace: str | None = None,
        logits: bool = False,
        single: bool = False,
        label: str = "",
    ):
        super().__init__()
        self.model = hooked.model
        self.input_shape = hooked.input_shape
        self.dummy_batch = hooked.dummy_batch.get(replace) if replace is not None else None
        self.capture, self.replace, self.logits, self.single = list(capture), replace, logits, single
        self.label = label

    def forward(self, x: Tensor):
        replace = None
        if self.replace is not None:
            replace = {self.replace: x}
            x = torch.zeros(
                self.dummy_batch or x.shape[0], *self.input_shape, device=x.device, dtype=_placement(self.model)[1]
            )
        captured, logits = run_hooked(self.model, x, self.capture, stop=not self.logits, replace=replace)
        if self.single:
            return captured[self.capture[0]]
        if not self.capture:
            return logits
        outputs = {name: captured[name] for name in self.capture}
        if self.logits:
            outputs[LOGITS] = logits
        return outputs

    def extra_repr(self) -> str:
        return f"{self.label!r}, hooks: the whole model runs" if self.replace else f"{self.label!r}, hooks"


@torch.no_grad()
def intermediate_bytes(cut: HookedForward, x: Tensor) -> int:
    """Bytes (float32) of ``x`` and of the outputs of every leaf module that runs in ``cut(x)``: about
    what the batch keeps alive for a backward pass (the fx path counts the nodes of its graph instead;
    here functional operations between modules go uncounted)."""
    total = [x.numel()]

    def count(_module, _inputs, output):
        if isinstance(output, Tensor):
            total[0] += output.numel()

    handles = [m.register_forward_hook(count) for m in cut.model.modules() if next(m.children(), None) is None]
    try:
        cut(x)
    finally:
        for handle in handles:
            handle.remove()
    return 4 * total[0]


class HookedModel(LayeredModel):
    """A model cut with forward hooks (module docstring): the interface of ``LayeredModel``.

    Args:
        model: any ``nn.Module`` taking one input tensor; its output may be a tensor, a ``ModelOutput``,
            a tuple or a dict (:mod:`stitchkit.models.outputs`).
        input_shape: (C, H, W) of one input; by default read from the model (:func:`probe_input_shape`).
            The clean-cut check runs on inputs of this shape, and suffixes feed dummies of this shape.
    """

    cut_method = HOOKS

    def __init__(self, model: nn.Module, input_shape: Sequence[int] | None = None):
        self.model = model
        shape = tuple(int(s) for s in input_shape) if input_shape is not None else probe_input_shape(model)
        if shape is None:
            raise StitchkitError(
                f"cannot tell the input shape of {type(model).__name__}, which cutting with hooks needs; "
                "give it: stitchkit.models.layers.layered(model, cut='hooks', input_shape=(C, H, W))"
            )
        self.input_shape = shape
        modules = dict(model.named_modules())
        declared = getattr(model, "stitchable_layers", None)
        if declared is not None:
            missing = [n for n in declared if n not in modules]
            if missing:
                raise StitchkitError(f"model declares stitchable layers that it does not have: {', '.join(missing)}")
        candidates = list(declared) if declared is not None else self._candidate_names(modules)
        #: the batch size of the dummy input a cut at each layer runs on: 1 where one sample is enough (the
        #: layers before the cut then cost one sample's forward), None for the activation's own batch size
        self.dummy_batch: dict[str, int | None] = {}
        found = self._clean_cuts(candidates, nested_too=declared is not None)
        if declared is not None:
            bad = [n for n in declared if n not in found]
            if bad:
                raise StitchkitError(
                    f"declared stitchable layer {bad[0]!r} of {type(model).__name__} is not a clean cut of its forward"
                )
        self.layers: list[str] = sorted(found, key=found.get)
        self._cuts = {name: found[name] for name in self.layers}  # name -> position in the forward
        output_layer = self._output_layer() if declared is None else None
        #: each layer's kind and module class name, as on the fx path (:func:`layer_kind`)
        self.kinds: dict[str, str] = {
            name: FEATURE if declared is not None else layer_kind(modules[name], is_output=name == output_layer)
            for name in self.layers
        }
        self.module_types: dict[str, str] = {name: type(modules[name]).__name__ for name in self.layers}

    @torch.no_grad()
    def _output_layer(self) -> str | None:
        """The last layer, when its output is the model's logits themselves (the classifier head)."""
        if not self.layers:
            return None
        device, dtype = _placement(self.model)
        x = torch.randn(2, *self.input_shape, generator=torch.Generator().manual_seed(1)).to(device, dtype)
        outputs = self.extractor([self.layers[-1]], with_logits=True)(x)
        last, logits = outputs[self.layers[-1]], outputs[LOGITS]
        return self.layers[-1] if last.shape == logits.shape and torch.equal(last, logits) else None

    @torch.no_grad()
    def _clean_cuts(self, candidates: list[str], nested_too: bool) -> dict[str, int]:
        """The candidates that are clean cuts (module docstring), with their order in the forward."""
        model = self.model
        device, dtype = _placement(model)
        generator = torch.Generator().manual_seed(0)
        a, b, c = (torch.randn(n, *self.input_shape, generator=generator).to(device, dtype) for n in (2, 1, 2))
        was_training = model.training
        model.eval()
        try:
            calls: dict[str, int] = {}
            with _hooks(model, candidates, stop=False, calls=calls) as outputs:
                try:
                    reference = logits_of(model(a))
                except Exception as exc:  # the user's forward: one line, not its traceback
                    raise StitchkitError(
                        f"{type(model).__name__} cannot run on inputs of shape {self.input_shape}: "
                        f"{str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__}"
                    ) from None
                order = {name: i for i, name in enumerate(outputs)}  # dicts keep the order of the first calls
            scale = float(reference.abs().max()) + 1e-12
            found: dict[str, int] = {}
            for name in candidates:
                if calls.get(name) != 1 or (not nested_too and any(name.startswith(kept + ".") for kept in found)):
                    continue
                for dummy in (
                    b,
                    c,
                ):  # one dummy sample is enough unless the forward uses the input's batch size after the cut
                    if self._same_logits(name, outputs[name], dummy, reference, scale):
                        found[name] = order[name]
                        self.dummy_batch[name] = dummy.shape[0] if dummy is b else None
                        break
            return found
        finally:
            model.train(was_training)

    def _same_logits(self, name: str, activation: Tensor, dummy: Tensor, reference: Tensor, scale: float) -> bool:
        """Whether the model on ``dummy`` with ``name``'s output replaced by ``activation`` gives ``reference``."""
        try:
            _, logits = run_hooked(self.model, dummy, replace={name: activation})
        except Exception:  # a forward that cannot take the replaced batch fails in its own way: not this dummy
            return False
        return (
            logits.shape == reference.shape and float((logits - reference).abs().max()) <= CLEAN_CUT_TOLERANCE * scale
        )

    # -- the cuts (LayeredModel's interface) ---------------------------------------------------------
    def prefix(self, layer: str) -> HookedForward:
        """A module ``x -> activation at layer`` whose forward stops after the layer."""
        return HookedForward(self, capture=[self.check_layer(layer)], single=True, label=f"{self.model_name}[:{layer}]")

    def extractor(self, layers: Sequence[str], *, with_logits: bool = False) -> HookedForward:
        """A module ``x -> {layer: activation}`` for several layers in one forward, stopped after the last
        of them; with ``with_logits`` it runs to the end and adds the logits under ``LOGITS``."""
        names = [self.check_layer(layer) for layer in layers]
        if not names and not with_logits:
            raise StitchkitError("no layers requested for activation extraction")
        label = ",".join(names + ([LOGITS] if with_logits else []))
        return HookedForward(self, capture=names, logits=with_logits, label=f"{self.model_name}[:{label}]")

    def suffix(self, layer: str) -> HookedForward:
        """A module ``activation at layer -> logits``. It runs the **whole** model: the layers before
        ``layer`` on a dummy input (zeros of ``input_shape``), then the rest on the activation given."""
        return HookedForward(self, replace=self.check_layer(layer), logits=True, label=f"{self.model_name}[{layer}:]")

    def segment(self, start: str, end: str) -> HookedForward:
        """A module ``activation at start -> activation at end``; runs the model from its input (on a
        dummy) and stops after ``end``."""
        s, e = self.check_layer(start), self.check_layer(end)
        if self._cuts[e] <= self._cuts[s]:
            raise StitchkitError(f"layer {end!r} does not come after {start!r} in {self.model_name}")
        return HookedForward(self, replace=s, capture=[e], single=True, label=f"{self.model_name}[{start}:{end}]")

    @torch.no_grad()
    def shapes(
        self, input_shape: Sequence[int] | None = None, layers: Sequence[str] | None = None
    ) -> dict[str, tuple[int, ...]]:
        """Activation shape (without batch) of each layer for one input of ``input_shape`` (C, H, W;
        default the model's)."""
        layers = list(layers) if layers is not None else self.layers
        if not layers:
            return {}
        shape = tuple(input_shape) if input_shape is not None else self.input_shape
        device, dtype = _placement(self.model)
        was_training = self.model.training
        self.model.eval()
        try:
            try:
                out = self.extractor(layers)(torch.zeros(1, *shape, device=device, dtype=dtype))
            except RuntimeError as exc:
                raise StitchkitError(
                    f"{self.model_name} cannot take inputs of shape {tuple(shape)}: {str(exc).splitlines()[0]}"
                ) from None
        finally:
            self.model.train(was_training)
        return {name: tuple(value.shape[1:]) for name, value in out.items()}


__all__ = [
    "CLEAN_CUT_TOLERANCE",
    "HOOKS",
    "INPUT_SHAPE_ATTRIBUTE",
    "HookedForward",
    "HookedModel",
    "intermediate_bytes",
    "probe_input_shape",
    "run_hooked",
]
