"""Grouped grids equal pair-by-pair grids: task loss matching of all pairs at once (one front pass per
batch, one end-suffix pass per group) gives the same stitching weights, training logs and evaluation
as training each pair alone from the same seed; grouped evaluation equals the per-pair evaluation;
an interrupted grouped training continues from its per-epoch checkpoint to the same weights; and the
persistent cache of donors' accuracies and end activations changes no number."""

import pytest
import torch
from stitch_support import QUICK, SHAPE, interrupt_grouped_training, trained_resnet, write_tiny_cifar10

from stitchkit.models import get_model
from stitchkit.models.layers import LOGITS, layered
from stitchkit.stitching import StitchSettings, grouped, stitch_grid
from stitchkit.stitching.grouped import GridPair, auto_group_size, plan_groups
from stitchkit.stitching.records import WEIGHTS_FILE
from stitchkit.training.optim import OptimConfig

FRONT_LAYERS = ["layer1.0", "layer2.1", "layer4.1"]
END_LAYERS = ["layer1.1", "layer3.0"]


def _weights(result):
    return torch.load(f"{result.run_dir}/{WEIGHTS_FILE}", weights_only=True)


def _assert_same_runs(reference, ours, atol=2e-5):
    assert [(r.front_layer, r.end_layer) for r in reference] == [(r.front_layer, r.end_layer) for r in ours]
    for a, b in zip(reference, ours):
        assert a.run_name == b.run_name  # the grouping does not change what is computed, so not the name either
        wa, wb = _weights(a), _weights(b)
        for key in wa:
            torch.testing.assert_close(wb[key], wa[key], atol=atol, rtol=1e-4)
        assert b.accuracy == pytest.approx(a.accuracy, abs=1e-9)
        for field in ("loss", "residual", "residual_batch_mean", "fit_residual"):
            assert getattr(b, field) == pytest.approx(getattr(a, field), rel=1e-4, abs=1e-6), field
        assert (b.front_accuracy, b.end_accuracy) == (a.front_accuracy, a.end_accuracy)
        assert len(a.train_history) == len(b.train_history)
        for ra, rb in zip(a.train_history, b.train_history):
            for key in ("train_acc", "val_acc", "epoch", "lr"):
                assert rb[key] == pytest.approx(ra[key], abs=1e-9), key
            for key in ("train_loss", "val_loss"):
                assert rb[key] == pytest.approx(ra[key], rel=1e-4), key
        assert a.execution["grouping"] == "per-pair" and b.execution["grouping"] == "grouped"


@pytest.mark.parametrize("group_size", [1, 2, None])
def test_grouped_task_loss_matching_equals_training_each_pair_alone(tmp_path, group_size):
    front, end = trained_resnet(0), trained_resnet(1)
    common = dict(
        QUICK,
        epochs=2,
        init="rand",
        batch_size=32,
        train_samples=96,
        test_samples=70,
        l1=1e-4,
        grad_clip=0.5,
        optim=OptimConfig(lr=1e-2, scheduler="step", step_size=1, gamma=0.5),
    )
    reference = stitch_grid(
        front, end, FRONT_LAYERS, END_LAYERS, StitchSettings(**common, grouping="per-pair"), save_dir=tmp_path / "per"
    )
    ours = stitch_grid(
        front, end, FRONT_LAYERS, END_LAYERS, StitchSettings(**common, group_size=group_size), save_dir=tmp_path / "grp"
    )
    _assert_same_runs(reference, ours)
    assert ours[0].execution["group_size"] == (
        group_size or 3
    )  # auto: 3 pairs of 32 samples, the pairs of an end layer
    assert any(r.accuracy > 0.3 for r in ours)  # they did learn something


def test_grouped_tlm_from_dm_with_a_self_stitch_and_low_rank(tmp_path):
    model = trained_resnet(0)
    common = dict(
        QUICK,
        epochs=1,
        init="pinv",
        batch_size=40,
        train_samples=80,
        test_samples=60,
        front_stitch_rank=3,
        optim=OptimConfig(lr=1e-3),
    )
    layers = ["layer2.0", "layer3.1"]
    reference = stitch_grid(
        model, model, layers, layers, StitchSettings(**common, grouping="per-pair"), save_dir=tmp_path / "per"
    )
    ours = stitch_grid(model, model, layers, layers, StitchSettings(**common, group_size=1), save_dir=tmp_path / "grp")
    _assert_same_runs(reference, ours)


def test_grouped_direct_matching_grid_equals_the_per_pair_grid(tmp_path):
    front, end = trained_resnet(0), trained_resnet(1)
    common = dict(QUICK, epochs=0, init="pinv", batch_size=25, test_samples=90)
    reference = stitch_grid(
        front, end, FRONT_LAYERS, END_LAYERS, StitchSettings(**common, grouping="per-pair"), save_dir=tmp_path / "per"
    )
    ours = stitch_grid(front, end, FRONT_LAYERS, END_LAYERS, StitchSettings(**common), save_dir=tmp_path / "grp")
    _assert_same_runs(reference, ours, atol=1e-6)


def test_grouped_training_on_an_augmented_array_set_uses_the_device_path_and_equals_the_loader(tmp_path):
    write_tiny_cifar10(tmp_path / "data", n_per_batch=12, n_test=20)
    models = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        models.append(get_model("resnet18", num_classes=10, in_channels=3, input_size=(32, 32), width=4).eval())
    common = dict(
        QUICK,
        dataset="cifar10",
        data_root=str(tmp_path / "data"),
        download=False,
        epochs=1,
        init="rand",
        batch_size=16,
        optim=OptimConfig(lr=1e-2),
    )
    today = dict(
        grouping="per-pair", data_path="loader", channels_last=False, fold_batchnorm=False
    )  # the path before grouping
    reference = stitch_grid(
        *models, ["layer1.0", "layer3.0"], ["layer2.0"], StitchSettings(**common, **today), save_dir=tmp_path / "per"
    )
    ours = stitch_grid(
        *models, ["layer1.0", "layer3.0"], ["layer2.0"], StitchSettings(**common), save_dir=tmp_path / "grp"
    )
    assert ours[0].execution["data_path"].startswith("device") and reference[0].execution["data_path"].startswith(
        "loader"
    )
    _assert_same_runs(reference, ours)


def test_an_interrupted_grouped_training_continues_from_its_checkpoint(tmp_path, monkeypatch):
    front, end = trained_resnet(0), trained_resnet(1)
    settings = StitchSettings(
        **QUICK, epochs=3, init="rand", batch_size=32, train_samples=64, test_samples=40, optim=OptimConfig(lr=1e-2)
    )
    straight = stitch_grid(front, end, FRONT_LAYERS[:2], END_LAYERS[:1], settings, save_dir=tmp_path / "straight")
    interrupt_grouped_training(
        monkeypatch,
        2,
        lambda: stitch_grid(front, end, FRONT_LAYERS[:2], END_LAYERS[:1], settings, save_dir=tmp_path / "resumed"),
    )
    checkpoints = list((tmp_path / "resumed").glob(".grouped-training-*.pt"))
    assert len(checkpoints) == 1 and not any(
        p.is_dir() and not p.name.startswith(".") for p in (tmp_path / "resumed").iterdir()
    )
    seen = []
    monkeypatch.setattr(grouped, "_train_step", lambda *a, _real=grouped._train_step: seen.append(1) or _real(*a))
    resumed = stitch_grid(front, end, FRONT_LAYERS[:2], END_LAYERS[:1], settings, save_dir=tmp_path / "resumed")
    assert len(seen) == 2  # only the third epoch (64 images, batch 32) was trained again
    assert not list((tmp_path / "resumed").glob(".grouped-training-*.pt"))  # removed once the runs are written
    for a, b in zip(straight, resumed):
        for key, value in _weights(a).items():
            torch.testing.assert_close(_weights(b)[key], value)
        assert [r["train_loss"] for r in a.train_history] == pytest.approx([r["train_loss"] for r in b.train_history])


def test_the_persistent_cache_skips_both_networks_and_the_donors_without_changing_numbers(tmp_path):
    front, end = trained_resnet(0), trained_resnet(1)
    samples = {"front": [], "end": []}
    front.conv1.register_forward_hook(lambda module, inputs, output: samples["front"].append(inputs[0].shape[0]))
    end.conv1.register_forward_hook(lambda module, inputs, output: samples["end"].append(inputs[0].shape[0]))
    settings = StitchSettings(
        **QUICK, epochs=0, init="pinv", test_samples=80, activation_cache=str(tmp_path / "cache"), fold_batchnorm=False
    )  # compute with the hooked models themselves, not folded copies
    counted = lambda: {k: sum(v) for k, v in samples.items()}  # noqa: E731
    first = stitch_grid(front, end, ["layer4.0"], ["layer2.1"], settings)[0]
    after_first = counted()
    # another pair of the same networks: every layer of both was cached by the first run
    second = stitch_grid(front, end, ["layer1.1"], ["layer3.0"], settings)[0]
    after_second = counted()
    # the first run sends the 100 fit images and the 80 test images through both networks; the second only
    # the fit images (and single-image shape probes): the test activations and the accuracies are cached
    assert after_first["front"] >= 180 and after_first["end"] >= 180
    for net in ("front", "end"):
        assert 100 <= after_second[net] - after_first[net] < 110, net
    plain = {
        pair: stitch_grid(
            front, end, [pair[0]], [pair[1]], StitchSettings(**QUICK, epochs=0, init="pinv", test_samples=80)
        )[0]
        for pair in (("layer4.0", "layer2.1"), ("layer1.1", "layer3.0"))
    }
    for result in (first, second):
        reference = plain[(result.front_layer, result.end_layer)]
        assert result.accuracy == reference.accuracy
        assert (result.front_accuracy, result.end_accuracy) == (reference.front_accuracy, reference.end_accuracy)
        assert result.residual == pytest.approx(reference.residual, rel=1e-5)
        assert result.residual_batch_mean == pytest.approx(reference.residual_batch_mean, rel=1e-5)


def test_a_self_stitch_reads_the_cache_for_both_sides(tmp_path):
    model = trained_resnet(0)
    settings = StitchSettings(**QUICK, epochs=0, init="pinv", test_samples=50, activation_cache=str(tmp_path / "cache"))
    first = stitch_grid(model, model, ["layer3.0"], ["layer2.0"], settings)[0]
    second = stitch_grid(model, model, ["layer3.0"], ["layer2.0"], settings)[0]
    assert (first.accuracy, first.end_accuracy) == (second.accuracy, second.end_accuracy)
    assert second.residual == pytest.approx(first.residual, rel=1e-6)


def test_the_cache_limit_is_respected(tmp_path):
    front, end = trained_resnet(0), trained_resnet(1)
    settings = StitchSettings(
        **QUICK, epochs=0, init="pinv", test_samples=40, activation_cache=str(tmp_path / "cache"), cache_limit_gb=1e-6
    )
    stitch_grid(front, end, ["layer4.0"], ["layer1.0"], settings)  # 40 × 4·28·28 floats > 1 kB: not cached
    assert not list((tmp_path / "cache").rglob("*.npy"))
    assert list((tmp_path / "cache").rglob("accuracy.json"))  # the accuracies are small and kept


def test_groups_and_the_automatic_group_size(monkeypatch):
    model = trained_resnet(0)
    from stitchkit.stitching.stitcher import Stitcher

    pairs = [
        GridPair(f, e, Stitcher(model, model, f, e, "rc2c_pre", input_shape=SHAPE))
        for f in FRONT_LAYERS
        for e in END_LAYERS
    ]
    groups = plan_groups(pairs, 2)
    assert [[p.label for p in g] for g in groups] == [
        ["layer1.0->layer1.1", "layer2.1->layer1.1"],
        ["layer4.1->layer1.1"],
        ["layer1.0->layer3.0", "layer2.1->layer3.0"],
        ["layer4.1->layer3.0"],
    ]
    monkeypatch.setattr(grouped, "memory_budget", lambda device: 10**12)
    assert auto_group_size(pairs, 64, "cpu") == 3  # capped at the pairs sharing an end layer
    per_input = 4 * 4 * 28 * 28  # a 4-channel 28×28 map (layer1.1) is the largest suffix input
    assert (
        auto_group_size(pairs, grouped.CPU_BYTES_PER_PASS // (2 * per_input), "cpu") == 2
    )  # a CPU pass is fastest at about 16 MiB
    assert auto_group_size(pairs, grouped.CPU_BYTES_PER_PASS // per_input, "cpu") == 1
    per_sample = grouped.suffix_bytes_per_sample(model, "layer1.1", (4, 28, 28))
    assert per_sample > 4 * 4 * 28 * 28  # at least the suffix input itself
    monkeypatch.setattr(grouped, "memory_budget", lambda device: 2 * 64 * per_sample)
    assert auto_group_size(pairs, 64, "cpu") == 2
    monkeypatch.setattr(grouped, "memory_budget", lambda device: 1)
    assert auto_group_size(pairs, 64, "cpu") == 1


def test_the_extractor_with_logits_is_the_full_forward():
    model = trained_resnet(0)
    x = torch.rand(5, *SHAPE)
    out = layered(model).extractor(["layer2.0"], with_logits=True)(x)
    with torch.no_grad():
        torch.testing.assert_close(out[LOGITS], model(x))
        torch.testing.assert_close(out["layer2.0"], layered(model).prefix("layer2.0")(x))


def test_a_diverging_pair_is_named(tmp_path):
    from stitchkit.errors import StitchkitError

    front, end = trained_resnet(0), trained_resnet(1)
    settings = StitchSettings(
        **QUICK, epochs=1, init="rand", batch_size=32, train_samples=96, test_samples=32, optim=OptimConfig(lr=1e30)
    )
    with pytest.raises(StitchkitError, match=r"the loss of layer\d\.\d->layer\d\.\d became"):
        stitch_grid(front, end, FRONT_LAYERS, END_LAYERS, settings, save_dir=tmp_path / "d")
