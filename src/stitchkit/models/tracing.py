"""Tracing a model with torch.fx for :class:`~stitchkit.models.layers.LayeredModel`: the tracer (declared
blocks and timm's untraceable modules as leaves), the forward arguments it must fix, the graph clean-ups
after tracing, the node tests a clean cut needs, and the module a cut becomes."""

from __future__ import annotations

import inspect
import operator
from collections.abc import Iterable

from torch import fx, nn

from ..errors import StitchkitError


def _timm_leaf_types() -> tuple[type, ...]:
    try:
        from timm.layers import get_notrace_modules  # deferred: timm is optional and slow to import
    except Exception:  # timm missing or too old: nothing to add
        return ()
    return tuple(get_notrace_modules())


def _timm_autowrap_functions() -> tuple:
    try:
        from timm.layers import get_notrace_functions  # deferred: timm is optional and slow to import
    except Exception:
        return ()
    return tuple(get_notrace_functions())


def uses_timm(model: nn.Module) -> bool:
    """Whether any module of ``model`` comes from timm (only then is timm, slow to import, needed)."""
    return any(type(m).__module__.split(".")[0] == "timm" for m in model.modules())


class LayerTracer(fx.Tracer):
    def __init__(self, leaf_names: Iterable[str], timm_aware: bool = True):
        super().__init__(autowrap_functions=_timm_autowrap_functions() if timm_aware else ())
        self.leaf_names = set(leaf_names)
        self.leaf_types = _timm_leaf_types() if timm_aware else ()

    def is_leaf_module(self, module: nn.Module, qualname: str) -> bool:
        if qualname in self.leaf_names:
            return True
        if self.leaf_types and isinstance(module, self.leaf_types):
            return True
        return super().is_leaf_module(module, qualname)


def extra_forward_args(model: nn.Module) -> dict | None:
    """Fix every forward argument after the input to its default (timm's ``attn_mask=None`` etc.)."""
    params = list(inspect.signature(model.forward).parameters.values())[1:]
    extra = {}
    for p in params:
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        if p.default is inspect.Parameter.empty:
            raise StitchkitError(
                f"{type(model).__name__}.forward needs argument {p.name!r} besides the input; stitchkit cuts "
                f"single-input models"
            )
        extra[p.name] = p.default
    return extra or None


def drop_specialised_arguments(graph: fx.Graph) -> None:
    """Remove the placeholders of arguments fixed by ``concrete_args`` and the checks fx adds for them."""
    extra = [n for n in graph.nodes if n.op == "placeholder"][1:]
    for placeholder in reversed(extra):
        doomed, stack = [], [placeholder]
        while stack:
            node = stack.pop()
            doomed.append(node)
            stack.extend(node.users)
        for node in sorted(set(doomed), key=lambda n: -list(graph.nodes).index(n)):
            if any(user not in doomed for user in node.users):
                raise StitchkitError(
                    "the model's forward uses arguments besides the input; stitchkit cuts single-input models"
                )
            graph.erase_node(node)


def module_path(node: fx.Node) -> list[str]:
    return [name for name, _ in node.meta.get("nn_module_stack", {}).values()]


_INPLACE_FUNCTIONS = {operator.iadd, operator.isub, operator.imul, operator.itruediv, operator.iand, operator.ior}


def mutates_input(node: fx.Node, root: nn.Module) -> bool:
    """Whether ``node`` may write into its first argument in place (ReLU(inplace=True), ``x += y``)."""
    if node.op == "call_module":
        return bool(getattr(root.get_submodule(node.target), "inplace", False))
    if node.op == "call_method":
        return str(node.target).endswith("_") and not str(node.target).startswith("__")
    if node.op == "call_function":
        return node.target in _INPLACE_FUNCTIONS or bool(node.kwargs.get("inplace", False))
    return False


class CutModule(fx.GraphModule):
    """A cut of a model: a ``GraphModule`` whose errors propagate like any module's. torch.fx's own call
    wrapper prints a traceback and the generated code to stderr before re-raising, which would put 25
    lines in front of the one-line error a user gets for, say, an input of the wrong size."""

    def recompile(self):
        code = super().recompile()
        type(self).__call__ = _call_quietly  # recompile installs fx's printing wrapper on every call
        return code


def _call_quietly(self: nn.Module, *args, **kwargs):
    # looked up at call time (not nn.Module.__call__ kept in a variable), so that fx's patching of
    # Module.__call__ while tracing still applies
    return super(fx.GraphModule, self).__call__(*args, **kwargs)
