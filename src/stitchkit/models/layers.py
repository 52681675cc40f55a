"""Naming a model's layers and cutting it into a prefix (input -> layer) and a suffix (layer -> logits).

This is the one mechanism every later stage relies on. A model is traced once with ``torch.fx`` into a
graph of operations; a *stitchable layer* is a module whose output node is a clean cut of that graph:
everything computed after it depends on the input only through that node. Cutting then means copying
the part of the graph before (or after) the node into a new ``GraphModule`` that shares the model's
parameters. Nothing outside the requested range is ever executed: unlike forward hooks, a prefix does
not run the layers after the cut and a suffix does not run the layers before it.

Which modules are layers:

* models of our own declare them in ``model.stitchable_layers`` (the original's names: ``layer{s}.{b}``
  for ResNets, ``blocks.{i}`` for ViTs) and are traced with those blocks as leaves;
* any other model (torchvision, timm, user modules) is traced through, and its layers are the modules
  that are elements of a container (their name ends with an index, like ``features.3`` or
  ``stages.1.blocks.0``), are not containers themselves, and whose output is a clean cut.

Each layer has a kind (:func:`layer_kind`): a feature, or a layer that is no feature of its own (an
activation alone, dropout, an identity, the logits). ``"all"`` asks for the feature layers, ``"every"``
for all of them (:data:`~stitchkit.choices.EVERY_LAYER`); a model's declared layers are all features.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import fx, nn

from ..choices import ALL_LAYERS, CUT_METHODS, EVERY_LAYER
from ..errors import StitchkitError, unknown_name, warn
from .input_check import INPUT_ERRORS, input_shape_error
from .layer_kinds import FEATURE, layer_kind
from .tracing import (
    CutModule,
    LayerTracer,
    drop_specialised_arguments,
    extra_forward_args,
    module_path,
    mutates_input,
    uses_timm,
)

_CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict)
#: Key of the model's output in the dict of ``extractor(layers, with_logits=True)`` (not a module name).
LOGITS = "<logits>"


@dataclass(frozen=True)
class _Cut:
    name: str
    node: fx.Node
    position: int


class TraceError(StitchkitError):
    """torch.fx could not trace the model (:func:`layered` then cuts it with hooks, unless told ``cut="fx"``)."""


class LayeredModel:
    """A model traced once, with its stitchable layers and the ability to cut it.

    Get one with :func:`layered` (cached per model object). The modules it returns share the model's
    parameters and buffers; ``model.eval()`` / ``.train()`` / ``.to()`` act on them too.
    """

    #: how this model is cut (one of ``stitchkit.choices.CUT_METHODS``; the hook path's subclass says ``hooks``)
    cut_method = "fx"

    def __init__(self, model: nn.Module):
        self.model = model
        declared = getattr(model, "stitchable_layers", None)
        modules = dict(model.named_modules())
        if declared is not None:
            missing = [n for n in declared if n not in modules]
            if missing:
                raise StitchkitError(f"model declares stitchable layers that it does not have: {', '.join(missing)}")
        tracer = LayerTracer(declared or (), timm_aware=uses_timm(model))
        try:
            self.graph = tracer.trace(model, concrete_args=extra_forward_args(model))
        except Exception as exc:  # tracing failures come from the model's code, explain them once
            raise TraceError(
                f"cannot trace {type(model).__name__} into a graph of layers ({type(exc).__name__}: {exc}); "
                "stitchkit cuts models with torch.fx, which needs a forward without data-dependent Python control flow"
            ) from None
        drop_specialised_arguments(self.graph)
        self.nodes = list(self.graph.nodes)
        self._position = {node: i for i, node in enumerate(self.nodes)}
        self.input_node = next(n for n in self.nodes if n.op == "placeholder")
        self.output_node = next(n for n in self.nodes if n.op == "output")
        names = list(declared) if declared is not None else self._candidate_names(modules)
        self._cuts: dict[str, _Cut] = {}
        for name in names:
            cut = self._find_cut(name)
            if cut is None:
                if declared is not None:
                    raise StitchkitError(
                        f"declared stitchable layer {name!r} of {type(model).__name__} is not a clean cut of its "
                        f"forward"
                    )
                continue
            if declared is None and any(name.startswith(kept + ".") for kept in self._cuts):
                continue  # inside a block that is already a layer: blocks, not their parts
            self._cuts[name] = cut
        ordered = sorted(self._cuts.values(), key=lambda c: c.position)
        self.layers: list[str] = [c.name for c in ordered]
        if declared is not None and self.layers != list(declared):
            raise StitchkitError(
                f"declared stitchable layers of {type(model).__name__} are not in forward order: {list(declared)}"
            )
        returned = self.output_node.args[0]
        #: each layer's kind (:func:`layer_kind`); a model's declared layers are its features
        self.kinds: dict[str, str] = {
            name: FEATURE
            if declared is not None
            else layer_kind(modules[name], is_output=self._cuts[name].node is returned)
            for name in self.layers
        }
        #: each layer's module class name (``Conv2dNormActivation``, ``Hardswish``)
        self.module_types: dict[str, str] = {name: type(modules[name]).__name__ for name in self.layers}

    # -- discovering layers -------------------------------------------------------------------------
    @staticmethod
    def _candidate_names(modules: dict[str, nn.Module]) -> list[str]:
        """Elements of plain containers (``features.3``, ``blocks.0``) that are not plain containers.

        Subclasses of ``nn.Sequential`` such as torchvision's ``Conv2dNormActivation`` count as one
        layer. Listed outer first, so that the outermost clean cut wins over the modules inside it.
        """
        names = []
        for name, module in modules.items():
            if not name or type(module) in _CONTAINERS:
                continue
            parent = modules[name.rsplit(".", 1)[0]] if "." in name else None
            if parent is not None and type(parent) in _CONTAINERS:
                names.append(name)
        return names

    def _find_cut(self, name: str) -> _Cut | None:
        inside = [
            i
            for i, node in enumerate(self.nodes)
            if name in module_path(node) or (node.op == "call_module" and node.target == name)
        ]
        if not inside:
            return None  # never called in forward
        first, last = inside[0], inside[-1]
        # Called exactly once, as one contiguous run of nodes (get_attr nodes may interleave).
        if any(self.nodes[i].op != "get_attr" and i not in set(inside) for i in range(first, last + 1)):
            return None
        out = self.nodes[last]
        if not self._is_clean_cut(out):
            return None
        return _Cut(name, out, last)

    def _is_clean_cut(self, cut: fx.Node) -> bool:
        position = self._position[cut]
        for node in self.nodes[position + 1 :]:
            for used in node.all_input_nodes:
                if used is cut or used.op == "get_attr":
                    continue
                if self._position[used] <= position:
                    return False
        return True

    # -- public API -----------------------------------------------------------------------------
    @property
    def feature_layers(self) -> list[str]:
        """The layers ``"all"`` gives: every stitchable layer that is a feature (:func:`layer_kind`)."""
        return [name for name in self.layers if self.kinds[name] == FEATURE]

    def is_feature(self, name: str) -> bool:
        return self.kinds[self.check_layer(name)] == FEATURE

    def check_layer(self, name: str, where: str | None = None) -> str:
        """``name`` if it is a stitchable layer; else an error listing the valid ones (``where``: the
        option that asked for it, e.g. "study config: layers.front")."""
        if name not in self._cuts:
            listing = ", ".join(self.layers) if self.layers else "(none found)"
            if where:
                raise StitchkitError(
                    f"{where} has {name!r}, which is not a stitchable layer of {self.model_name}; valid layers: "
                    f"{listing}"
                )
            raise StitchkitError(f"{name!r} is not a stitchable layer of {self.model_name}; valid layers: {listing}")
        return name

    def resolve(self, layers: str | Sequence[str] | None, where: str | None = None) -> list[str]:
        """A layer request → validated names, each once: ``"all"`` or None (every stitchable layer that
        is a feature, in forward order), ``"every"`` (every stitchable layer, also an activation alone,
        dropout and the logits), a comma-separated string, or a list (whose items may be comma lists
        too), in the order asked. ``where`` names the option in errors (:meth:`check_layer`)."""
        items = [] if layers is None else [layers] if isinstance(layers, str) else list(layers)
        names = [part.strip() for item in items for part in str(item).split(",") if part.strip()]
        if layers is None or names in ([ALL_LAYERS], [EVERY_LAYER]):
            if not self.layers:
                raise StitchkitError(
                    f"{self.model_name} has no stitchable layers (modules inside a container, like features.3, whose "
                    "output is a clean cut of the graph); wrap its blocks in an nn.Sequential"
                )
            if names == [EVERY_LAYER]:
                return list(self.layers)
            if not self.feature_layers:
                raise StitchkitError(
                    f"{self.model_name} has no stitchable layers that are features (its layers: {self._listing()}); "
                    f"ask for them by name or with {EVERY_LAYER!r}"
                )
            return self.feature_layers
        if not names:
            raise StitchkitError(f"no layers given for {self.model_name}; valid layers: {', '.join(self.layers)}")
        return list(dict.fromkeys(self.check_layer(name, where) for name in names))

    def _listing(self) -> str:
        return ", ".join(n if self.kinds[n] == FEATURE else f"{n} ({self.kinds[n]})" for n in self.layers)

    @property
    def model_name(self) -> str:
        spec = getattr(self.model, "stitchkit_spec", None)
        return spec["name"] if isinstance(spec, dict) and "name" in spec else type(self.model).__name__

    def index(self, name: str) -> int:
        return self.layers.index(self.check_layer(name))

    def prefix(self, layer: str) -> fx.GraphModule:
        """A module ``x -> activation at layer`` that runs nothing after the layer."""
        return self._build_prefix([self.check_layer(layer)], as_dict=False)

    def extractor(self, layers: Sequence[str], *, with_logits: bool = False) -> fx.GraphModule:
        """A module ``x -> {layer: activation}`` for several layers in one pass, stopping at the last;
        with ``with_logits`` it runs to the end and also returns the model's output under
        :data:`LOGITS` (a network's own accuracy from the same pass)."""
        names = [self.check_layer(layer) for layer in layers]
        if not names and not with_logits:
            raise StitchkitError("no layers requested for activation extraction")
        return self._build_prefix(names, as_dict=True, with_logits=with_logits)

    def suffix(self, layer: str) -> fx.GraphModule:
        """A module ``activation at layer -> logits`` that runs nothing before the layer."""
        cut = self._cuts[self.check_layer(layer)]
        graph = fx.Graph()
        activation = graph.placeholder("activation")
        env: dict[fx.Node, fx.Node] = {cut.node: activation}
        if any(mutates_input(user, self.model) for user in cut.node.users):
            env[cut.node] = graph.call_method("clone", (activation,))  # never write into the caller's tensor
        for node in self.nodes[cut.position + 1 :]:
            for used in node.all_input_nodes:
                if used not in env:  # get_attr nodes traced before the cut (parameters, buffers)
                    env[used] = graph.node_copy(used, lambda n: env[n])
            env[node] = graph.node_copy(node, lambda n: env[n])
        return self._graph_module(graph, f"{self.model_name}[{layer}:]")

    def segment(self, start: str, end: str) -> fx.GraphModule:
        """A module ``activation at start -> activation at end`` (start strictly before end)."""
        s, e = self._cuts[self.check_layer(start)], self._cuts[self.check_layer(end)]
        if e.position <= s.position:
            raise StitchkitError(f"layer {end!r} does not come after {start!r} in {self.model_name}")
        graph = fx.Graph()
        activation = graph.placeholder("activation")
        env: dict[fx.Node, fx.Node] = {s.node: activation}
        if any(mutates_input(user, self.model) for user in s.node.users):
            env[s.node] = graph.call_method("clone", (activation,))
        for node in self.nodes[s.position + 1 : e.position + 1]:
            for used in node.all_input_nodes:
                if used not in env:
                    env[used] = graph.node_copy(used, lambda n: env[n])
            env[node] = graph.node_copy(node, lambda n: env[n])
        graph.output(env[e.node])
        return self._graph_module(graph, f"{self.model_name}[{start}:{end}]")

    @torch.no_grad()
    def shapes(self, input_shape: Sequence[int], layers: Sequence[str] | None = None) -> dict[str, tuple[int, ...]]:
        """Activation shape (without batch) of each layer for one input of ``input_shape`` (C, H, W)."""
        layers = list(layers) if layers is not None else self.layers
        if not layers:
            return {}
        param = next(self.model.parameters(), None)
        device = param.device if param is not None else torch.device("cpu")
        dtype = param.dtype if param is not None and param.is_floating_point() else torch.float32
        was_training = self.model.training
        self.model.eval()
        try:
            x = torch.zeros(1, *input_shape, device=device, dtype=dtype)
            try:
                out = self.extractor(layers)(x)
            except INPUT_ERRORS as exc:
                raise input_shape_error(self.model, self.model_name, input_shape, exc) from None
        finally:
            self.model.train(was_training)
        return {name: tuple(value.shape[1:]) for name, value in out.items()}

    # -- internals ---------------------------------------------------------------------------------
    def _build_prefix(self, names: list[str], as_dict: bool, with_logits: bool = False) -> fx.GraphModule:
        cuts = [self._cuts[n] for n in names]
        targets = [c.node for c in cuts]
        returned = self.output_node.args[0]
        if with_logits:
            if not isinstance(returned, fx.Node):
                raise StitchkitError(f"{self.model_name} returns a {type(returned).__name__}, not one tensor of logits")
            targets.append(returned)
        last = max(self._position[node] for node in targets)
        needed = self._ancestors(targets)
        graph = fx.Graph()
        env: dict[fx.Node, fx.Node] = {}
        outputs: dict[str, fx.Node] = {}
        by_node = {c.node: c for c in cuts}
        for node in self.nodes[: last + 1]:
            if node not in needed:
                continue
            env[node] = graph.node_copy(node, lambda n: env[n])
            cut = by_node.get(node)
            if cut is not None:
                value = env[node]
                # A later in-place op inside the prefix (ReLU(inplace=True)) would overwrite this
                # activation before it is returned: keep a copy taken right here.
                if any(mutates_input(u, self.model) and u in needed for u in node.users):
                    value = graph.call_method("clone", (value,))
                outputs[cut.name] = value
        outputs = {name: outputs[name] for name in names}
        if with_logits:
            outputs[LOGITS] = env[returned]
        graph.output(outputs if as_dict else outputs[names[0]])
        label = ",".join(names + ([LOGITS] if with_logits else []))
        return self._graph_module(graph, f"{self.model_name}[:{label}]")

    def _ancestors(self, targets: list[fx.Node]) -> set[fx.Node]:
        seen: set[fx.Node] = set()
        stack = list(targets)
        while stack:
            node = stack.pop()
            if node in seen:
                continue
            seen.add(node)
            stack.extend(node.all_input_nodes)
        return seen

    def _graph_module(self, graph: fx.Graph, label: str) -> fx.GraphModule:
        module = CutModule(self.model, graph, class_name="CutModule")
        module.graph.eliminate_dead_code()
        module.graph.lint()
        module.recompile()
        module.label = label
        return module


_CACHE: weakref.WeakKeyDictionary[nn.Module, LayeredModel] = weakref.WeakKeyDictionary()


#: the model attribute that keeps a model's cut method chosen by ``layered(model, cut=...)``: an
#: attribute, so that it survives the copies stitchkit makes (folded donors, checkpoints reloaded in memory)
CUT_ATTRIBUTE = "stitchkit_cut"


def layered(model: nn.Module, cut: str | None = None, *, input_shape: Sequence[int] | None = None) -> LayeredModel:
    """The (cached) :class:`LayeredModel` of ``model``.

    ``cut`` (``stitchkit.choices.CUT_METHODS``): ``"auto"`` traces the model with torch.fx and, when
    tracing fails, cuts it with forward hooks instead (:class:`~stitchkit.models.hooks.HookedModel`,
    with a warning: there every stitched forward runs the whole end network); ``"fx"`` or ``"hooks"``
    forces one way. A ``cut`` given is kept on the model (:data:`CUT_ATTRIBUTE`), so calling
    ``layered(model, cut="hooks")`` once makes every later use of the model, and of its copies, take
    hooks; None uses the kept one, else ``"auto"``. ``input_shape`` (C, H, W) is for the hook path,
    which runs the model (default: read from the model; a given one is kept on it too).
    """
    if cut is not None:
        if cut not in CUT_METHODS:
            raise unknown_name("cut method", str(cut), CUT_METHODS)
        setattr(model, CUT_ATTRIBUTE, cut)
    from .hooks import (  # deferred: hooks.py subclasses LayeredModel (an import cycle at the top)
        INPUT_SHAPE_ATTRIBUTE,
        HookedModel,
    )

    if input_shape is not None:
        setattr(model, INPUT_SHAPE_ATTRIBUTE, tuple(int(s) for s in input_shape))
    wanted = getattr(model, CUT_ATTRIBUTE, "auto")
    cached = _CACHE.get(model)
    other_shape = input_shape is not None and getattr(cached, "input_shape", tuple(input_shape)) != tuple(input_shape)
    if cached is not None and wanted in ("auto", cached.cut_method) and not other_shape:
        return cached
    if wanted == "hooks":
        built = HookedModel(model)
    elif wanted == "fx":
        built = LayeredModel(model)
    else:
        try:
            built = LayeredModel(model)
        except TraceError as exc:
            try:
                built = HookedModel(model)
            except StitchkitError as hooks_exc:
                raise TraceError(f"{exc}; forward hooks cannot cut it either: {hooks_exc}") from None
            _warn_hooks(model, exc)
    _CACHE[model] = built
    return built


_WARNED: set[str] = set()


def _warn_hooks(model: nn.Module, reason: TraceError) -> None:
    """Say once per model class that it is cut with hooks, why, and what that costs."""
    name = type(model).__name__
    if name in _WARNED:
        return
    _WARNED.add(name)
    warn(
        f"{reason}; so {name} is cut with forward hooks instead: extraction stops after the last needed layer as "
        f"usual, but "
        "every stitched forward runs the whole end network, the layers before the cut on a dummy input (one sample "
        "where that is enough, else the whole batch) (layered(model, cut='hooks') chooses this without the warning)"
    )


def stitchable_layers(model: nn.Module) -> list[str]:
    """Names of the model's stitchable layers in forward order."""
    return list(layered(model).layers)


def layer_shapes(model: nn.Module, input_shape: Sequence[int]) -> dict[str, tuple[int, ...]]:
    return layered(model).shapes(input_shape)


def prefix(model: nn.Module, layer: str) -> fx.GraphModule:
    return layered(model).prefix(layer)


def suffix(model: nn.Module, layer: str) -> fx.GraphModule:
    return layered(model).suffix(layer)


def extractor(model: nn.Module, layers: Sequence[str], *, with_logits: bool = False) -> fx.GraphModule:
    return layered(model).extractor(layers, with_logits=with_logits)
