"""What kind of layer a stitchable layer is: a feature (a representation of its own), or a layer that is
no feature of its own (an activation alone, dropout, an identity, the logits), which ``"all"`` leaves out
(:data:`~stitchkit.choices.ALL_LAYERS`; ``"every"`` keeps them). Both ways of cutting a model
(:mod:`stitchkit.models.layers`, :mod:`stitchkit.models.hooks`) classify their layers here."""

from __future__ import annotations

from torch import nn

#: the kind of a layer whose output is a representation of its own
FEATURE = "feature"
#: the kinds of layer that are no feature of their own, and why (left out of "all")
NON_FEATURE_KINDS = {
    "activation": "an activation alone (the layer before it holds the same information)",
    "dropout": "dropout (the identity at evaluation)",
    "identity": "an identity (the layer before it, again)",
    "logits": "the model's output (the logits)",
}
_DROPOUT = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.FeatureAlphaDropout)
#: timm's stochastic-depth modules (by name: timm is optional and slow to import)
_TIMM_DROPOUT = ("DropPath", "DropBlock2d")
#: the modules that define activations (torch's MultiheadAttention lives there too, and is no activation)
_ACTIVATION_MODULES = ("torch.nn.modules.activation", "timm.layers.activations", "timm.layers.activations_me")


def layer_kind(module: nn.Module, *, is_output: bool = False) -> str:
    """What a stitchable layer is: :data:`FEATURE`, or one of :data:`NON_FEATURE_KINDS` (``is_output``:
    its output is the model's output). The one place that decides which layers ``"all"`` leaves out."""
    if is_output:
        return "logits"
    if isinstance(module, _DROPOUT) or type(module).__name__ in _TIMM_DROPOUT:
        return "dropout"
    if isinstance(module, nn.Identity):
        return "identity"
    if type(module).__module__ in _ACTIVATION_MODULES and not isinstance(module, nn.MultiheadAttention):
        return "activation"
    return FEATURE
