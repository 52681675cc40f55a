"""Linear probes (seed spec 1.6): separable toy sets, every activation layout, the low-rank modes, the
original's schedule, the equivalence of the two training paths, and the ``stitchkit probe`` command."""

import json

import pytest
import torch

from stitchkit.activations import LowRankBasis, low_rank
from stitchkit.cli import main
from stitchkit.data import get_dataset
from stitchkit.errors import StitchkitError
from stitchkit.models import get_model
from stitchkit.models.checkpoint import save_checkpoint
from stitchkit.probing import (
    ProbeBank,
    ProbeConfig,
    ProbeSpec,
    check_ranks,
    default_milestones,
    pool_activation,
    probe_activations,
    probe_model,
)
from stitchkit.training import build_optimizer, build_scheduler

FAST = dict(epochs=6, lr=0.05, batch_size=64)


def test_where_probes_run_is_neither_recorded_nor_part_of_their_key():
    g = torch.Generator().manual_seed(1)
    (xtr, ytr), (xte, yte) = separable(128, "vector", g), separable(64, "vector", g)
    here = ProbeConfig(**FAST, device="cpu", workers=2, prefetch=3, data_root="/nowhere")
    report = probe_activations({"a": xtr}, ytr, {"a": xte}, yte, config=here)
    assert not {"device", "workers", "prefetch", "data_root"} & set(report.config)
    assert here.key() == ProbeConfig(**FAST).key() and here.recorded() == ProbeConfig(**FAST).recorded()
    with pytest.raises(StitchkitError, match="loader workers must be non-negative"):
        ProbeConfig(workers=-1).validate()


def separable(n, layout, generator, k=4):
    """Class k's mean is 4·e_k in feature space; small noise; laid out as conv maps, tokens or vectors."""
    y = torch.randint(0, k, (n,), generator=generator)
    centres = 4.0 * torch.eye(8)[:k]
    if layout == "conv":
        x = centres[y][:, :, None, None] + 0.3 * torch.randn(n, 8, 3, 3, generator=generator)
    elif layout == "tokens":
        x = 0.3 * torch.randn(n, 5, 8, generator=generator)
        x[:, 0] += centres[y]  # the class is in the CLS token only
    else:
        x = centres[y] + 0.3 * torch.randn(n, 8, generator=generator)
    return x, y


@pytest.mark.parametrize("layout", ["conv", "tokens", "vector"])
def test_a_probe_on_a_linearly_separable_set_reaches_100_percent(layout):
    g = torch.Generator().manual_seed(0)
    (xtr, ytr), (xte, yte) = separable(512, layout, g), separable(256, layout, g)
    report = probe_activations({"a": xtr}, ytr, {"a": xte}, yte, config=ProbeConfig(**FAST))
    (result,) = report.results
    assert result.val_acc >= 0.99 and result.train_acc >= 0.99
    assert result.in_features == 8 and result.rank is None
    assert report.info["num_classes"] == 4


def test_tokens_use_the_cls_token_and_mean_pooling_is_an_option():
    x = torch.arange(2 * 3 * 4, dtype=torch.float32).reshape(2, 3, 4)
    assert torch.equal(pool_activation(x), x[:, 0])
    assert torch.equal(pool_activation(x, "mean"), x.mean(1))
    assert torch.equal(pool_activation(x.reshape(2, 4, 3, 1)), x.reshape(2, 4, 3, 1).mean((2, 3)))
    with pytest.raises(StitchkitError, match="probe reads activations"):
        pool_activation(torch.zeros(2, 3, 4, 5, 6))


def test_all_layouts_and_ranks_train_together_with_the_results_of_separate_runs():
    g = torch.Generator().manual_seed(1)
    train, test = {}, {}
    for layout in ("conv", "tokens", "vector"):
        (train[layout], ytr), (test[layout], yte) = (
            separable(256, layout, torch.Generator().manual_seed(2)),
            separable(128, layout, g),
        )
    config = ProbeConfig(epochs=2, lr=0.02)
    together = probe_activations(train, ytr, test, yte, ranks=[2, None], config=config)
    assert [(r.layer, r.rank) for r in together.results] == [(layer, rank) for layer in train for rank in (None, 2)]
    alone = probe_activations(
        {"tokens": train["tokens"]}, ytr, {"tokens": test["tokens"]}, yte, ranks=[2], config=config
    )
    assert alone.results[0].val_acc == together.accuracy("tokens", 2)
    assert alone.results[0].val_loss == pytest.approx(together.results[3].val_loss, rel=1e-5)
    # rank 2 keeps two of the four class directions: about half the classes are lost
    assert together.accuracy("vector", None) > together.accuracy("vector", 2) + 0.2


def test_fixed_basis_is_estimated_once_and_commutes_with_pooling():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(40, 6, 3, 3, generator=g) * torch.tensor([5.0, 4, 3, 2, 1, 0.5])[None, :, None, None]
    basis = LowRankBasis(6).fit(x)  # all directions; the rank-r basis is the first r
    spec = ProbeSpec("a", 2, (6, 3, 3))
    raw = ProbeBank([spec], 3, bases={"a": basis})
    pooled = ProbeBank([spec], 3, bases={"a": basis}, pooled_input=True)
    reference = pool_activation(LowRankBasis(2).fit(x)(x))  # project every position, then pool
    assert torch.allclose(raw._features(spec, x), reference, atol=1e-5)
    assert torch.allclose(pooled._features(spec, pool_activation(x)), reference, atol=1e-5)
    # the same basis for every batch: a batch's features do not depend on the rest of the batch
    assert torch.allclose(raw._features(spec, x[:5]), reference[:5], atol=1e-5)


def test_per_batch_mode_is_the_originals_svd_of_each_batch():
    g = torch.Generator().manual_seed(4)
    x = torch.randn(16, 6, 2, 2, generator=g)
    spec = ProbeSpec("a", 2, (6, 2, 2))
    bank = ProbeBank([spec], 3, low_rank_mode="per_batch")
    assert torch.allclose(bank._features(spec, x), pool_activation(low_rank(x, 2)), atol=1e-6)
    half = bank._features(spec, x[:8])
    assert not torch.allclose(half, bank._features(spec, x)[:8], atol=1e-3)  # the subspace depends on the batch
    with pytest.raises(StitchkitError, match="raw activations"):
        ProbeBank([spec], 3, low_rank_mode="per_batch", pooled_input=True)
    with pytest.raises(StitchkitError, match="fitted low-rank basis"):
        ProbeBank([spec], 3, low_rank_mode="fixed")


def test_per_batch_and_fixed_modes_from_arrays():
    g = torch.Generator().manual_seed(5)
    (xtr, ytr), (xte, yte) = separable(256, "conv", g), separable(128, "conv", g)
    for mode in ("fixed", "per_batch"):
        report = probe_activations(
            {"c": xtr}, ytr, {"c": xte}, yte, ranks=[None, 4], config=ProbeConfig(low_rank_mode=mode, **FAST)
        )
        assert report.accuracy("c", None) >= 0.99 and report.accuracy("c", 4) >= 0.95
        assert report.config["low_rank_mode"] == mode


def test_the_originals_schedule_decays_at_e_minus_5_only_when_that_is_meaningful():
    assert default_milestones(10) == [5] and default_milestones(6) == [1]
    assert default_milestones(5) == [] and default_milestones(1) == []  # the original decayed at construction / never
    config = ProbeConfig()
    assert (config.epochs, config.batch_size, config.lr, config.weight_decay) == (10, 64, 1e-3, 0.0)
    optimizer = build_optimizer([torch.nn.Parameter(torch.zeros(1))], config.optim())
    scheduler = build_scheduler(optimizer, config.optim(), config.epochs)
    lrs = []
    for _ in range(config.epochs):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert lrs[:5] == [1e-3] * 5 and lrs[5:] == pytest.approx([1e-4] * 5)
    assert type(optimizer).__name__ == "Adam"


def test_ranks_are_checked_and_ordered_like_the_original():
    assert check_ranks([2, None, 8, 2]) == [None, 8, 2]
    assert check_ranks(None) == [None]
    for bad in ([0], [-1], [1.5], [True]):
        with pytest.raises(StitchkitError, match="positive integers"):
            check_ranks(bad)
    with pytest.raises(StitchkitError, match="epochs"):
        probe_activations(
            {"a": torch.zeros(4, 2)},
            torch.zeros(4),
            {"a": torch.zeros(4, 2)},
            torch.zeros(4),
            config=ProbeConfig(epochs=0),
        )


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    torch.manual_seed(0)
    model = get_model("resnet18", num_classes=10, in_channels=1, input_size=28, width=4)
    path = tmp_path_factory.mktemp("probe") / "final.pt"
    save_checkpoint(path, model, dataset="digits", input_shape=(1, 28, 28))
    return model, path


def test_features_once_and_prefix_per_batch_train_the_same_probes(tiny):
    model, _ = tiny
    train, test = get_dataset("digits", "train", augment=False), get_dataset("digits", "test")
    config = ProbeConfig(epochs=1, batch_size=128, lr=0.01, device="cpu")
    once = probe_model(model, ["layer2.1", "layer4.1"], {"train": train, "test": test}, ranks=[None, 4], config=config)
    # the per-batch path, fed the same un-augmented images, sees the same batches in the same order
    per_batch = probe_model(
        model,
        ["layer2.1", "layer4.1"],
        {"train": train, "test": test, "train_augmented": train},
        ranks=[None, 4],
        config=config,
    )
    assert once.info["path"] == "features once" and per_batch.info["path"] == "prefix per batch"
    for a, b in zip(once.results, per_batch.results):
        assert (a.layer, a.rank) == (b.layer, b.rank)
        assert a.val_acc == pytest.approx(b.val_acc, abs=2 / len(test))
        assert a.train_loss == pytest.approx(b.train_loss, rel=1e-3)
    assert once.results[0].activation_shape == (8, 14, 14) and once.results[0].in_features == 8
    with pytest.raises(StitchkitError, match="not a stitchable layer"):
        probe_model(model, ["layer9"], {"train": train, "test": test}, config=ProbeConfig(device="cpu"))
    with pytest.raises(StitchkitError, match="keys 'train', 'test' and optionally 'train_augmented'; got train, tset"):
        probe_model(model, ["layer2.1"], {"train": train, "tset": test}, config=ProbeConfig(device="cpu"))


def test_train_subset_probes_on_the_seeded_subset(tiny):
    from stitchkit.activations import sample_subset

    model, _ = tiny
    train, test = get_dataset("digits", "train", augment=False), get_dataset("digits", "test")
    config = ProbeConfig(epochs=1, batch_size=64, lr=0.01, seed=3, train_subset=200, device="cpu")
    subset = probe_model(model, ["layer3.1"], {"train": train, "test": test}, ranks=[None], config=config)
    by_hand = probe_model(
        model,
        ["layer3.1"],
        {"train": sample_subset(train, 200, seed=3), "test": test},
        ranks=[None],
        config=ProbeConfig(epochs=1, batch_size=64, lr=0.01, seed=3, device="cpu"),
    )
    assert subset.results[0].val_acc == by_hand.results[0].val_acc
    assert subset.results[0].train_loss == pytest.approx(by_hand.results[0].train_loss, rel=1e-6)
    assert config.key() != ProbeConfig(epochs=1, batch_size=64, lr=0.01, seed=3).key()
    with pytest.raises(StitchkitError, match="training subset"):
        ProbeConfig(train_subset=0).validate()


def test_probe_command_prints_a_table_or_the_originals_format_and_writes_files(tiny, tmp_path, capsys):
    _, path = tiny
    out_dir = tmp_path / "out"
    args = [
        "probe",
        str(path),
        "-l",
        "layer3.1",
        "-ranks",
        "full",
        "4",
        "-e",
        "1",
        "-b",
        "128",
        "--no-augment",
        "-gpu",
        "-1",
        "-workers",
        "0",
        "--no-progress",
    ]
    code = main(args + ["-o", str(out_dir)])
    out = capsys.readouterr().out
    assert code == 0
    lines = out.splitlines()
    accuracy = {r["rank"]: r["val_acc"] for r in json.loads((out_dir / "probes.json").read_text())["results"]}
    assert lines[:3] == [
        f"probe test accuracy of {path}",
        f"{'layer':<10}{'rank full':>11}{'rank 4':>11}",
        f"{'layer3.1':<10}{accuracy[None]:>11.4f}{accuracy[4]:>11.4f}",
    ]
    assert "None" not in out and lines[-1] == f"wrote {out_dir / 'probes.json'}, {out_dir / 'probes.csv'}"
    code = main(args + ["--original-output"])
    out = capsys.readouterr().out
    assert code == 0
    lines = out.splitlines()
    start = lines.index(f"{path} -- layer3.1")
    assert (
        lines[start + 1].startswith("Rank None: ")
        and lines[start + 2].startswith("Rank 4: ")
        and lines[start + 3] == ""
    )
    assert float(lines[start + 4]) == float(lines[start + 1].split(": ")[1])
    data = json.loads((out_dir / "probes.json").read_text())
    assert [r["rank"] for r in data["results"]] == [None, 4] and data["config"]["milestones"] == []
    # --no-augment is --augment none, said in the output and recorded
    assert "augmentation none (augment = none: asked for" in out and data["config"]["augment"] == "none"
    assert data["info"]["augmentation"].startswith("none (augment = none") and data["info"]["path"] == "features once"
    assert (out_dir / "probes.csv").read_text().startswith("layer,rank,val_acc")


@pytest.mark.parametrize(
    "extra,message",
    [
        (["-l", "layer9.9"], "not a stitchable layer"),
        (["-l", "layer3.1", "-ranks", "zero"], "-ranks takes positive integers"),
        (["-l", "layer3.1", "-e", "0"], "epochs must be at least 1"),
        (["-l", "layer3.1", "-d", "cifar10"], "3 channels"),
    ],
)
def test_probe_command_bad_input_is_one_line_with_exit_code_2(tiny, extra, message, capsys):
    _, path = tiny
    code = main(["probe", str(path), "-gpu", "-1", "-workers", "0", "--no-progress"] + extra)
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1
