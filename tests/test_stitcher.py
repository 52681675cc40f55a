"""The stitched network (spec 4.1): shapes of every layer type inside a Stitcher, only the needed parts
of the donors run, the donors stay frozen and in eval mode, and the result equals the original's
hook-based wiring."""

import pytest
import torch
from stitch_support import SHAPE, resnet, trained_resnet, vit

from stitchkit.errors import StitchkitError
from stitchkit.stitching.matching import evaluate_stitcher, task_loss_match
from stitchkit.stitching.stitcher import Stitcher, naive_hooked_forward
from stitchkit.training import LoopSettings

X = torch.rand(3, *SHAPE, generator=torch.Generator().manual_seed(0))

# (front kind, end kind, front layer, end layer, stitching type, options)
CASES = [
    ("resnet", "resnet", "layer1.0", "layer1.1", "c2c", {}),
    ("resnet", "resnet", "layer4.1", "layer1.0", "rc2c_pre", {}),
    ("resnet", "resnet", "layer1.0", "layer3.1", "rc2c_pre", {"upsample_mode": "nearest"}),
    ("resnet", "resnet", "layer2.0", "layer4.0", "rc2c_post", {}),
    ("vit", "vit", "blocks.0", "blocks.1", "t2t", {}),
    ("resnet", "vit", "layer3.0", "blocks.1", "c2t", {"c2t_cls": "pool"}),
    ("resnet", "vit", "layer3.1", "blocks.0", "c2t", {"c2t_cls": "learn"}),
    ("vit", "resnet", "blocks.1", "layer2.0", "t2c", {"t2c_cls": "add"}),
    ("vit", "resnet", "blocks.0", "layer4.1", "t2c", {"t2c_cls": "only"}),
    ("resnet", "resnet", "layer3.0", "layer1.1", "auto", {}),
    ("vit", "resnet", "blocks.0", "layer1.0", "auto", {}),
]


def _model(kind, seed):
    return resnet(seed) if kind == "resnet" else vit(seed)


@pytest.mark.parametrize("front_kind,end_kind,front_layer,end_layer,kind,options", CASES)
def test_every_type_maps_the_source_to_the_target_shape(front_kind, end_kind, front_layer, end_layer, kind, options):
    stitcher = Stitcher(
        _model(front_kind, 0), _model(end_kind, 1), front_layer, end_layer, kind, input_shape=SHAPE, **options
    )
    logits, acts = stitcher(X, return_activations=True)
    assert logits.shape == (3, 10)
    assert acts["stitched"].shape == acts["end"].shape == (3, *stitcher.target_shape)
    assert acts["front"].shape == (3, *stitcher.source_shape)
    if kind == "auto":
        assert stitcher.kind == ("rc2c_pre" if front_kind == "resnet" else "t2c")
    if front_kind == "vit" and stitcher.kind == "t2c":
        assert stitcher.layer.front_has_cls  # asked the ViT, not guessed from the token count


@pytest.mark.parametrize("which", ["front", "end"])
def test_a_wrong_layer_name_lists_the_valid_ones(which):
    layers = {"front": "layer9.9", "end": "layer1.0"} if which == "front" else {"front": "layer1.0", "end": "blocks.7"}
    with pytest.raises(
        StitchkitError, match=r"not a stitchable layer.*valid layers: layer1\.0, layer1\.1, .*layer4\.1"
    ):
        Stitcher(resnet(0), resnet(1), layers["front"], layers["end"], input_shape=SHAPE)


def test_incompatible_shapes_name_both_shapes():
    with pytest.raises(StitchkitError, match=r"\(4, 28, 28\).*\(8, 14, 14\)"):
        Stitcher(resnet(0), resnet(1), "layer1.0", "layer2.0", "c2c", input_shape=SHAPE)


def test_only_the_front_prefix_and_the_end_suffix_run():
    front, end = resnet(0), resnet(1)
    calls = []
    front.layer3[0].register_forward_hook(lambda *a: calls.append("front after the cut"))
    end.layer1[1].register_forward_hook(lambda *a: calls.append("end before the cut"))
    stitcher = Stitcher(front, end, "layer2.1", "layer2.0", input_shape=SHAPE)
    calls.clear()
    stitcher(X)
    assert calls == []


def test_equals_the_originals_hook_wiring():
    front, end = trained_resnet(0), trained_resnet(1)
    stitcher = Stitcher(front, end, "layer3.0", "layer1.1", "rc2c_pre", input_shape=SHAPE)
    forward, remove = naive_hooked_forward(front, end, "layer3.0", "layer1.1", stitcher.layer)
    with torch.no_grad():
        torch.testing.assert_close(stitcher(X), forward(X))
    remove()


def test_one_model_can_be_front_and_end():
    model = trained_resnet(0)
    stitcher = Stitcher(model, model, "layer2.0", "layer2.0", "rc2c_pre", input_shape=SHAPE, init="eye")
    with torch.no_grad():
        torch.testing.assert_close(stitcher(X), model(X))


def test_train_mode_reaches_only_the_stitching_layer():
    front, end = resnet(0), resnet(1)
    stitcher = Stitcher(front, end, "layer2.0", "layer3.0", input_shape=SHAPE)
    stitcher.train()
    assert stitcher.layer.training
    assert not any(m.training for m in list(front.modules()) + list(end.modules()))
    assert [p for p in stitcher.parameters() if p.requires_grad] == stitcher.trainable_parameters()
    assert len(stitcher.trainable_parameters()) == 2


def test_task_loss_matching_lowers_the_loss_and_leaves_the_donors_unchanged():
    front, end = trained_resnet(0), trained_resnet(1)
    before = {name: {k: v.clone() for k, v in m.state_dict().items()} for name, m in (("front", front), ("end", end))}
    stitcher = Stitcher(front, end, "layer3.1", "layer2.1", "rc2c_pre", input_shape=SHAPE)
    x = torch.rand(96, *SHAPE, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        y = end(x).argmax(-1)  # labels the end network can reach
    loader = list(zip(x.split(32), y.split(32)))

    def loss():
        with torch.no_grad():
            return float(torch.nn.functional.cross_entropy(stitcher(x), y))

    start = loss()
    loop = LoopSettings(epochs=4, device="cpu", seed=0, progress=False, verbose=False)
    logs = task_loss_match(stitcher, loader, loop)
    assert len(logs) == 4 and logs[-1].train["loss"] < logs[0].train["loss"]
    assert loss() < start
    for name, model in (("front", front), ("end", end)):
        after = model.state_dict()
        for key, value in before[name].items():  # weights and BatchNorm running statistics alike
            assert torch.equal(after[key], value), f"{name} {key} changed"
        assert not any(m.training for m in model.modules())


def test_evaluating_one_stitcher_as_a_grid_of_one_equals_a_direct_computation():
    front, end = trained_resnet(0), trained_resnet(1)
    stitcher = Stitcher(front, end, "layer3.1", "layer2.1", "rc2c_pre", input_shape=SHAPE).eval()
    x = torch.rand(40, *SHAPE, generator=torch.Generator().manual_seed(5))
    y = torch.randint(0, 10, (40,), generator=torch.Generator().manual_seed(6))
    batches = list(zip(x.split(16), y.split(16), strict=True))
    ev = evaluate_stitcher(stitcher, batches, "cpu", donors=True, keep_samples=True)
    with torch.no_grad():
        logits = stitcher(x)
        stitched, target = stitcher.stitch(stitcher.front(x)), stitcher.end_prefix(x)
        hits = logits.argmax(-1) == y
        assert ev.n == 40 and ev.accuracy == pytest.approx(hits.double().mean().item(), abs=1e-12)
        assert ev.loss == pytest.approx(torch.nn.functional.cross_entropy(logits, y).item(), rel=1e-5)
        residual = ((stitched - target) ** 2).sum().item() / (target**2).sum().item()
        assert ev.residual == pytest.approx(residual, rel=1e-5)
        assert ev.end_accuracy == pytest.approx((end(x).argmax(-1) == y).double().mean().item(), abs=1e-12)
        assert ev.front_accuracy == pytest.approx((front(x).argmax(-1) == y).double().mean().item(), abs=1e-12)
    assert ev.per_image["hits"].tolist() == hits.to(torch.uint8).tolist()


def test_l1_penalty_and_gradients_reach_only_the_layer():
    front, end = resnet(0), resnet(1)
    stitcher = Stitcher(front, end, "layer2.0", "layer2.1", input_shape=SHAPE)
    stitcher.train()
    stitcher(X).sum().backward()
    assert all(p.grad is None for p in list(front.parameters()) + list(end.parameters()))
    assert all(p.grad is not None for p in stitcher.trainable_parameters())


def test_fixed_low_rank_needs_a_basis_and_per_batch_does_not():
    stitcher = Stitcher(resnet(0), resnet(1), "layer2.0", "layer2.1", input_shape=SHAPE, front_rank=2)
    with pytest.raises(StitchkitError, match="before it was fitted"):
        stitcher(X)
    stitcher.fit_low_rank([stitcher.front(X)])
    assert stitcher(X).shape == (3, 10)
    per_batch = Stitcher(
        resnet(0), resnet(1), "layer2.0", "layer2.1", input_shape=SHAPE, front_rank=2, low_rank_mode="per_batch"
    )
    assert per_batch(X).shape == (3, 10)
    with pytest.raises(StitchkitError, match="unknown low-rank mode"):
        Stitcher(
            resnet(0), resnet(1), "layer2.0", "layer2.1", input_shape=SHAPE, front_rank=2, low_rank_mode="sometimes"
        )
