"""The hook-based path for models torch.fx cannot trace (stitchkit.models.hooks): equal to the fx path
on a model both can cut (activations, cuts, stitched logits, direct matching); residual skips and
repeated modules are not layers; the automatic fallback and its one warning; the output rule; and
HuggingFace ``transformers`` ViT and ConvNeXt models from small random configs (offline)."""

import copy
import json
import subprocess
import sys
import warnings

import pytest
import torch
from stitch_support import SHAPE, resnet, vit
from torch import fx, nn
from transformers import ConvNextConfig, ConvNextForImageClassification, ViTConfig, ViTForImageClassification
from transformers.modeling_outputs import BaseModelOutput, ImageClassifierOutput

import stitchkit
from stitchkit.errors import StitchkitError, StitchkitWarning
from stitchkit.models import layers as layers_module
from stitchkit.models.hooks import HookedForward, HookedModel
from stitchkit.models.layers import LOGITS, LayeredModel, layered
from stitchkit.models.outputs import activation_of, logits_of, replace_activation
from stitchkit.stitching.stitcher import Stitcher

QUICK = dict(device="cpu", workers=0, fit_samples=64, test_samples=64)


def _calls(model: nn.Module) -> tuple[dict[str, int], list]:
    """Counts of the calls of every named module of ``model``, and the hook handles to remove."""
    counts: dict[str, int] = {}
    handles = [
        m.register_forward_hook(lambda _m, _i, _o, n=name: counts.__setitem__(n, counts.get(n, 0) + 1))
        for name, m in model.named_modules()
        if name
    ]
    return counts, handles


# --- equal to the fx path on a model both can cut -----------------------------------------------------
@pytest.mark.parametrize("build, count", [(resnet, 8), (vit, 2)])
def test_hooks_equal_fx_for_every_cut(build, count):
    model = build(0)
    traced, hooks = LayeredModel(model), HookedModel(model, SHAPE)
    assert hooks.layers == traced.layers and len(traced.layers) == count
    assert hooks.shapes(SHAPE) == traced.shapes(SHAPE)
    x = torch.randn(3, *SHAPE)
    with torch.no_grad():
        a, b = traced.extractor(traced.layers, with_logits=True)(x), hooks.extractor(hooks.layers, with_logits=True)(x)
        assert list(b) == [*traced.layers, LOGITS]
        torch.testing.assert_close(b[LOGITS], model(x), rtol=0, atol=1e-6)
        for name in traced.layers:
            torch.testing.assert_close(b[name], a[name], rtol=0, atol=1e-6)
            torch.testing.assert_close(hooks.prefix(name)(x), a[name], rtol=0, atol=1e-6)
            torch.testing.assert_close(hooks.suffix(name)(a[name]), traced.suffix(name)(a[name]), rtol=0, atol=1e-6)
        first, last = traced.layers[0], traced.layers[-1]
        torch.testing.assert_close(hooks.segment(first, last)(a[first]), a[last], rtol=0, atol=1e-6)


def test_hook_extraction_stops_after_the_last_needed_layer():
    model = resnet(0)
    hooks = HookedModel(model, SHAPE)
    counts, handles = _calls(model)
    try:
        with torch.no_grad():
            hooks.extractor(["layer1.1", "layer2.0"])(torch.randn(2, *SHAPE))
    finally:
        for h in handles:
            h.remove()
    assert counts["layer2.0"] == 1 and counts["layer1.0"] == 1
    assert not any(name.startswith(("layer2.1", "layer3", "layer4", "linear", "fc")) for name in counts)


def test_hooks_equal_fx_when_stitching_with_a_given_layer_and_by_direct_matching():
    fronts, ends = resnet(0), resnet(1)
    hook_front, hook_end = copy.deepcopy(fronts), copy.deepcopy(ends)
    layered(fronts, cut="fx"), layered(ends, cut="fx")
    assert layered(hook_front, cut="hooks").cut_method == layered(hook_end, cut="hooks").cut_method == "hooks"
    assert layered(hook_front).cut_method == "hooks"  # the choice sticks to the model
    torch.manual_seed(0)
    by_fx = Stitcher(fronts, ends, "layer2.0", "layer3.0", input_shape=SHAPE)
    by_hooks = Stitcher(hook_front, hook_end, "layer2.0", "layer3.0", input_shape=SHAPE)
    by_hooks.layer.load_state_dict(by_fx.layer.state_dict())
    x = torch.randn(4, *SHAPE)
    with torch.no_grad():
        torch.testing.assert_close(by_hooks(x), by_fx(x), rtol=0, atol=1e-6)
        front = by_fx.front(x)
        torch.testing.assert_close(by_hooks.from_front(front), by_fx.from_front(front), rtol=0, atol=1e-6)
    dm_fx = stitchkit.direct_match(fronts, ends, "layer2.0", "layer3.0", "digits", **QUICK)
    dm_hooks = stitchkit.direct_match(hook_front, hook_end, "layer2.0", "layer3.0", "digits", **QUICK)
    p, q = dm_fx.pair(), dm_hooks.pair()
    assert (q.accuracy, q.front_accuracy, q.end_accuracy) == (p.accuracy, p.front_accuracy, p.end_accuracy)
    assert q.residual == pytest.approx(p.residual, rel=1e-5)
    assert isinstance(dm_hooks.stitcher().end, HookedForward) and isinstance(
        dm_fx.stitcher().end, fx.GraphModule
    )  # kept through copies
    with torch.no_grad():
        torch.testing.assert_close(dm_hooks.stitcher()(x), dm_fx.stitcher()(x), rtol=0, atol=1e-5)


# --- what is a layer ------------------------------------------------------------------------------------
class _Skip(nn.Module):
    def __init__(self):
        super().__init__()
        self.blocks = nn.ModuleList([nn.Linear(4, 4), nn.Linear(4, 4), nn.Linear(4, 4), nn.Linear(4, 3)])

    def forward(self, x):
        h = self.blocks[0](x)
        h = self.blocks[2](self.blocks[1](h) + h)  # the skip spans blocks.1
        return self.blocks[3](self.blocks[2](torch.relu(h)))  # blocks.2 runs twice


def test_skips_over_a_layer_and_repeated_modules_are_not_layers_as_on_the_fx_path():
    model = _Skip()
    assert HookedModel(model, (4,)).layers == LayeredModel(model).layers == ["blocks.0", "blocks.3"]


class _DataDependent(nn.Module):
    """A forward with data-dependent control flow: torch.fx cannot trace it, hooks can cut it."""

    def __init__(self):
        super().__init__()
        self.blocks = nn.Sequential(nn.Linear(3, 5), nn.Tanh(), nn.Linear(5, 2))

    def forward(self, x):
        return self.blocks(x) if x.sum() > -1e9 else -self.blocks(x)


def test_auto_falls_back_to_hooks_with_one_warning_and_fx_can_be_forced():
    with pytest.raises(StitchkitError, match="cannot trace .*hooks cannot cut it either.*input_shape"):
        layered(_DataDependent())  # no input shape to run it on
    with pytest.raises(StitchkitError, match="cannot trace"):
        layered(_DataDependent(), cut="fx")
    with pytest.raises(StitchkitError, match="unknown cut method 'graph'"):
        layered(_DataDependent(), cut="graph")
    with pytest.warns(StitchkitWarning, match="forward hooks instead.*runs the whole end network"):
        first = layered(_DataDependent(), input_shape=(3,))
    assert isinstance(first, HookedModel) and first.layers == ["blocks.0", "blocks.1", "blocks.2"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once per model class
        layered(_DataDependent(), input_shape=(3,))
        layered(_DataDependent(), cut="hooks", input_shape=(3,))


# --- the output rule --------------------------------------------------------------------------------------
def test_the_output_rule_reads_and_replaces_tensors_in_any_container():
    t, u = torch.ones(2, 3), torch.zeros(2, 3)
    logits = torch.full((2, 10), 2.0)
    assert logits_of(ImageClassifierOutput(loss=None, logits=logits)) is logits
    assert logits_of({"hidden": t, "logits": logits}) is logits
    assert logits_of((logits, t)) is logits and logits_of([logits]) is logits
    hidden = BaseModelOutput(last_hidden_state=t)
    assert activation_of(hidden) is t and activation_of((t, None)) is t
    assert activation_of(replace_activation(hidden, u)) is u and isinstance(
        replace_activation(hidden, u), BaseModelOutput
    )
    replaced = replace_activation((t, "attention"), u)
    assert type(replaced) is tuple and replaced[0] is u and replaced[1] == "attention"
    assert replace_activation(t, u) is u
    with pytest.raises(StitchkitError, match="no tensor"):
        logits_of(("no", "tensor"))


def test_importing_stitchkit_and_its_cuts_does_not_import_transformers():
    code = (
        "import sys, stitchkit, stitchkit.models.layers, stitchkit.models.hooks; print('transformers' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# --- HuggingFace transformers models from small random configs -------------------------------------------
def hf_vit(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    config = ViTConfig(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        image_size=28,
        patch_size=4,
        num_channels=1,
        num_labels=10,
    )
    return ViTForImageClassification(config).eval()


def hf_convnext(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    config = ConvNextConfig(
        num_channels=1, hidden_sizes=[8, 16], depths=[1, 1], num_stages=2, image_size=28, num_labels=10
    )
    return ConvNextForImageClassification(config).eval()


@pytest.mark.parametrize("build", [hf_vit, hf_convnext])
def test_transformers_models_list_layers_and_extract_what_their_hidden_states_say(build):
    model = build(0)
    layers_module._WARNED.discard(type(model).__name__)  # the warning is once per class and process
    with pytest.warns(StitchkitWarning, match="forward hooks"):
        lm = layered(model)
    assert isinstance(lm, HookedModel) and len(lm.layers) == 2 and lm.input_shape == SHAPE
    assert set(lm.dummy_batch.values()) == {1}  # the layers before a cut cost one sample
    x = torch.randn(3, *SHAPE)
    with torch.no_grad():
        reference = model(x, output_hidden_states=True)
        acts = lm.extractor(lm.layers, with_logits=True)(x)
    torch.testing.assert_close(acts[LOGITS], reference.logits, rtol=0, atol=1e-6)
    for i, name in enumerate(lm.layers):  # hidden_states[0] is the embedding, [i + 1] block i's output
        torch.testing.assert_close(acts[name], reference.hidden_states[i + 1], rtol=0, atol=1e-6)
    counts, handles = _calls(model)
    try:
        with torch.no_grad():
            lm.prefix(lm.layers[0])(x)
    finally:
        for h in handles:
            h.remove()
    assert counts[lm.layers[0]] == 1 and lm.layers[1] not in counts and "classifier" not in counts  # stopped there
    shapes = lm.shapes()
    if build is hf_vit:  # tokens (B, N, D): 7 × 7 patches and the CLS token, width 32
        assert shapes == {name: (50, 32) for name in lm.layers}
    else:
        assert list(shapes.values()) == [(8, 7, 7), (16, 3, 3)]


@pytest.mark.parametrize("build, kind", [(hf_vit, "t2t"), (hf_convnext, "c2c")])
def test_identity_stitching_of_a_transformers_model_into_itself_reproduces_its_logits(build, kind):
    model = build(0)
    lm = layered(model, cut="hooks")
    x = torch.randn(4, *SHAPE)
    with torch.no_grad():
        expected = model(x).logits
        for name in lm.layers:
            stitcher = Stitcher(model, model, name, name, kind, input_shape=SHAPE, init="eye")
            torch.testing.assert_close(stitcher(x), expected, rtol=0, atol=1e-5)


def test_gradients_reach_the_stitching_layer_through_a_hooked_end_network():
    front, end = hf_vit(0), hf_convnext(1)
    layered(front, cut="hooks"), layered(end, cut="hooks")
    stitcher = Stitcher(front, end, layered(front).layers[-1], layered(end).layers[0], input_shape=SHAPE)
    assert stitcher.kind == "t2c"
    loss = nn.functional.cross_entropy(stitcher(torch.randn(4, *SHAPE)), torch.tensor([0, 1, 2, 3]))
    loss.backward()
    grads = [p.grad for p in stitcher.trainable_parameters()]
    assert (
        grads
        and all(g is not None and torch.isfinite(g).all() for g in grads)
        and any(g.abs().sum() > 0 for g in grads)
    )
    assert all(p.grad is None for p in end.parameters())  # the donors stay frozen


def test_direct_matching_between_two_transformers_models_gives_finite_accuracies():
    front, end = hf_vit(0), hf_vit(1)
    layered(front, cut="hooks"), layered(end, cut="hooks")
    grid = stitchkit.direct_match(front, end, "all", "all", "digits", **QUICK)
    assert len(grid.pairs) == 4
    for pair in grid.pairs:
        for value in (pair.accuracy, pair.front_accuracy, pair.end_accuracy, pair.residual):
            assert value == value and abs(value) != float("inf")
        assert 0.0 <= pair.accuracy <= 1.0
    own = stitchkit.direct_match(end, end, layered(end).layers[-1], layered(end).layers[-1], "digits", **QUICK).pair()
    assert own.accuracy == pytest.approx(own.end_accuracy, abs=1 / 64)  # itself at the same layer: its own accuracy


# --- the option, declared once ------------------------------------------------------------------------------
def test_the_cut_methods_are_the_ones_declared_and_the_layers_command_takes_them(capsys):
    from stitchkit.choices import CUT_METHODS
    from stitchkit.cli import main
    from stitchkit.models.hooks import HOOKS

    assert set(CUT_METHODS) == {"auto", LayeredModel.cut_method, HOOKS}
    listings = {}
    for cut in ("fx", "hooks"):
        assert main(["layers", "resnet18", "-d", "digits", "--width", "4", "--cut", cut, "--json"]) == 0
        listings[cut] = json.loads(capsys.readouterr().out)
    assert [listings[c]["cut"] for c in ("fx", "hooks")] == ["fx", "hooks"]
    assert listings["hooks"]["layers"] == listings["fx"]["layers"] and len(listings["fx"]["layers"]) == 8


class _ReadsBatchSize(nn.Module):
    """Reads the input's batch size after the cut at blocks.0: one dummy sample is not enough there."""

    def __init__(self):
        super().__init__()
        self.blocks = nn.ModuleList([nn.Conv2d(1, 2, 3, padding=1), nn.Conv2d(2, 2, 3, padding=1)])
        self.head = nn.Linear(2 * 4 * 4, 3)

    def forward(self, x):
        h = self.blocks[1](torch.relu(self.blocks[0](x)))
        return self.head(h.reshape(x.shape[0], -1))


def test_the_dummy_before_a_cut_is_one_sample_only_where_that_is_enough():
    torch.manual_seed(0)
    model = _ReadsBatchSize().eval()
    hooks, resnet_hooks = HookedModel(model, (1, 4, 4)), HookedModel(resnet(0), SHAPE)
    assert hooks.layers == ["blocks.0", "blocks.1"] and hooks.dummy_batch == {"blocks.0": None, "blocks.1": None}
    assert set(resnet_hooks.dummy_batch.values()) == {1}
    x = torch.randn(5, 1, 4, 4)
    with torch.no_grad():
        for name in hooks.layers:
            torch.testing.assert_close(hooks.suffix(name)(hooks.prefix(name)(x)), model(x), rtol=0, atol=1e-6)


def test_task_loss_matching_trains_through_a_hooked_end_network():
    front, end = hf_vit(0), hf_convnext(1)
    layered(front, cut="hooks"), layered(end, cut="hooks")
    last, first = layered(front).layers[-1], layered(end).layers[0]
    grid = stitchkit.task_loss_match(
        front, end, last, first, "digits", epochs=1, train_samples=64, test_samples=64, device="cpu", workers=0
    )
    pair = grid.pair()
    assert pair.stitching_type == "t2c" and 0.0 <= pair.accuracy <= 1.0 and pair.loss == pair.loss
    assert len(pair.train_history) == 1 and all(v == v for v in pair.train_history[0].values() if isinstance(v, float))


def test_hooks_give_each_layer_the_kind_and_module_type_the_fx_path_gives():
    """A user model with an activation alone, a dropout and a classifier head: both cuts classify alike."""

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(
                nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4)),
                nn.ReLU(),
                nn.Dropout(0.5),
                nn.Flatten(),
                nn.Linear(4 * 6 * 6, 10),
            )

        def forward(self, x):
            return self.body(x)

    model = Net().eval()
    fx_cut, hook_cut = layered(model, "fx", input_shape=(1, 8, 8)), layered(model, "hooks", input_shape=(1, 8, 8))
    assert hook_cut.layers == fx_cut.layers
    assert hook_cut.kinds == fx_cut.kinds and hook_cut.module_types == fx_cut.module_types
    kinds = {name.removeprefix("body."): kind for name, kind in hook_cut.kinds.items()}
    assert (
        kinds["0.0"] == "feature" and kinds["1"] == "activation" and kinds["2"] == "dropout" and kinds["4"] == "logits"
    )
    assert hook_cut.feature_layers == fx_cut.feature_layers
