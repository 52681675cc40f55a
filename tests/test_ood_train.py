"""Detector training on a frozen source (one pass for several layers), the registry entries it writes,
and the OOD test of stitched activations: a layer stitched to itself is in-distribution (AUROC ½)."""

import csv
import json

import pytest
import torch

from stitchkit.activations import model_fingerprint, sample_subset
from stitchkit.data import get_dataset
from stitchkit.errors import StitchkitError
from stitchkit.models import get_model
from stitchkit.models.checkpoint import save_checkpoint
from stitchkit.models.layers import layered
from stitchkit.ood import (
    DetectorCheckSettings,
    DetectorRegistry,
    DetectorTrainConfig,
    OODMatrices,
    PassOptions,
    check_detectors,
    detector_id,
    evaluate_stitched,
    fit_training_free,
    genuine_scores,
    stitched_batches,
    train_detectors,
    train_detectors_for_checkpoint,
)
from stitchkit.stitching import direct_match, make_stitching_layer

LAYERS = ["layer1.0", "layer4.1"]


def tiny_config(tmp, **kw):
    base = dict(
        save_dir=str(tmp / "det"),
        model_type="repr_cls_resnet18",
        model_options={"width": 4},
        dataset="digits",
        epochs=1,
        batch_size=32,
        ft_epochs=1,
        ft_ood_dataset="natural_patches_gray",
        train_subset=64,
        ft_samples=32,
        val_subset=32,
        final_save_dir=str(tmp / "fdir"),
        device="cpu",
        progress=False,
        verbose=False,
    )
    base.update(kw)
    return DetectorTrainConfig(**base)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ood")
    torch.manual_seed(0)
    source = get_model("resnet18", num_classes=10, in_channels=1, input_size=28, width=4).eval()
    path = save_checkpoint(tmp / "source.pt", source, dataset="digits", input_shape=(1, 28, 28))
    calls = []
    handle = source.conv1.register_forward_hook(lambda *a: calls.append(1))
    config = tiny_config(tmp)
    results = train_detectors(source, LAYERS, config, source_path=str(path), source_type="resnet18")
    handle.remove()
    return dict(tmp=tmp, source=source, path=path, config=config, results=results, stem_calls=len(calls))


def test_one_source_pass_per_batch_for_all_layers(trained):
    # 1 shape probe + pre-training (2 train batches + 1 validation batch) + fine-tuning (32 ID + 32
    # outliers in batches of 16 + 16: 2 batches, + 1 validation batch): 7 passes for two detectors.
    assert trained["stem_calls"] == 7


def test_outputs_logs_and_registry_entries(trained):
    tmp, results = trained["tmp"], trained["results"]
    for r in results:
        d = tmp / "det" / r.layer
        for name in (
            "training_logs.csv",
            "ft_logs.csv",
            "model_1.pt",
            "ft_model_1.pt",
            "config.txt",
            "config.json",
            "detector.json",
        ):
            assert (d / name).is_file(), name
        with open(d / "training_logs.csv") as f:
            assert next(csv.reader(f))[:4] == ["train_acc", "train_loss", "val_acc", "val_loss"]
        with open(d / "ft_logs.csv") as f:
            rows = list(csv.DictReader(f))
        assert list(rows[0])[:5] == ["ft_loss", "ce_loss", "train_acc", "val_ce_loss", "val_acc"]
        # the logged CE is the mean over ID samples: ft_loss = CE + 0.1·reg exactly (equal weights per batch)
        row = {k: float(v) for k, v in rows[0].items()}
        assert row["ft_loss"] == pytest.approx(row["ce_loss"] + 0.1 * row["reg_loss"], rel=1e-4)
        assert r.detector_id == detector_id(model_fingerprint(trained["source"]), r.layer, r.meta["training_config"])
        assert r.meta["training_config"]["ft_id_dataset"] == "digits"  # defaults resolved before hashing
    entries = DetectorRegistry(tmp / "fdir").entries()
    assert sorted(entries) == sorted(f"{r.detector_id}.pt" for r in results)
    meta = entries[f"{results[1].detector_id}.pt"]
    assert meta["source_layer"] == "layer4.1" and meta["required_input_shape"] == [32, 4, 4]
    assert (
        meta["orig_input_shape"] == [1, 28, 28]
        and meta["id_dataset"] == "digits"
        and meta["ood_dataset"] == "natural_patches_gray"
    )
    assert (
        meta["source_model_hash"] == model_fingerprint(trained["source"])
        and meta["model_spec"]["options"]["width"] == 4
    )
    assert "energy" in meta["conventions"]["score"] and meta["stitchkit_version"]


def test_seed_is_honoured(tmp_path):
    source = get_model("resnet18", num_classes=10, in_channels=1, input_size=28, width=4).eval()

    def weights(seed, name):
        cfg = tiny_config(
            tmp_path,
            save_dir=str(tmp_path / name),
            ft_epochs=0,
            train_subset=32,
            val_subset=0,
            seed=seed,
            register=False,
        )
        return train_detectors(source, ["layer2.0"], cfg)[0].model.state_dict()

    a, b, c = weights(0, "a"), weights(0, "b"), weights(1, "c")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_layer_stitched_to_itself_is_in_distribution(trained):
    """Identity and direct-matching stitches of a layer to itself: the detectors cannot tell the stitched
    activations from the genuine ones (AUROC ½); a random stitch is flagged."""
    source, layer = trained["source"], "layer4.1"
    registry = DetectorRegistry(trained["tmp"] / "fdir")
    # found by content hash, and by the path spelled differently
    energy = registry.lookup_and_load(layer, model=source)
    relative = str(trained["path"]).replace(str(trained["tmp"]), str(trained["tmp"]) + "/.")
    assert registry.lookup(layer, source_path=relative)[0] == f"{energy.meta['id']}.pt"
    test = sample_subset(get_dataset("digits", "test"), 96)
    detectors = {
        "energy": energy,
        **fit_training_free(
            source,
            [layer],
            sample_subset(get_dataset("digits", "train", augment=False), 200, seed=0),
            options={"knn": {"k": 5}},
        )[layer],
    }
    id_scores = genuine_scores(source, {layer: detectors}, test, PassOptions(batch_size=32))[layer]
    shape = layered(source).shapes((1, 28, 28), [layer])[layer]
    own_acc = float(
        (
            torch.cat([source(x).argmax(1) for x, _ in torch.utils.data.DataLoader(test, 32)])
            == torch.tensor([y for _, y in test])
        )
        .float()
        .mean()
    )

    eye = make_stitching_layer("c2c", shape, shape, init="eye")
    res = evaluate_stitched(
        source,
        layer,
        detectors,
        stitched_batches(source, layer, eye, test, batch_size=32),
        id_scores=id_scores,
        front_layer=layer,
    )
    assert res.accuracy == pytest.approx(own_acc)
    for name, m in res.metrics.items():
        assert m.auroc == pytest.approx(0.5, abs=1e-6), name

    fit_set = sample_subset(get_dataset("digits", "train", augment=False), 100, seed=0)
    prefix = layered(source).prefix(layer)
    dm = make_stitching_layer("c2c", shape, shape)
    with torch.no_grad():
        direct_match(dm, [(prefix(x), prefix(x)) for x, _ in torch.utils.data.DataLoader(fit_set, 50)])
    res = evaluate_stitched(
        source, layer, detectors, stitched_batches(source, layer, dm, test, batch_size=32), id_scores=id_scores
    )
    for name, m in res.metrics.items():
        assert abs(m.auroc - 0.5) < 0.05, name

    torch.manual_seed(0)
    rand = make_stitching_layer("c2c", shape, shape, init="rand")
    res = evaluate_stitched(
        source, layer, detectors, stitched_batches(source, layer, rand, test, batch_size=32), id_scores=id_scores
    )
    assert res.metrics["mahalanobis"].auroc > 0.9 and res.metrics["knn"].auroc > 0.9

    matrices = OODMatrices(["layer1.0", layer], [layer])
    matrices.add(layer, layer, res)
    paths = matrices.save(trained["tmp"] / "matrices")
    data = json.loads((trained["tmp"] / "matrices" / "ood_matrices.json").read_text())
    assert data["detectors"]["energy"]["auroc"][0] == [None] and data["accuracy"][1][0] == pytest.approx(res.accuracy)
    assert (trained["tmp"] / "matrices" / "auroc_knn.csv") in paths
    assert "STITCHING OOD Detection AUROC (mahalanobis)" in matrices.format()


def test_check_detectors_and_errors(trained):
    registry = DetectorRegistry(trained["tmp"] / "fdir")
    settings = DetectorCheckSettings(
        sanity_dataset="noise", training_free=("mahalanobis",), fit_samples=100, id_samples=64, sanity_samples=64
    )
    report = check_detectors(trained["source"], LAYERS, settings, id_dataset="digits", registry=registry)
    assert set(report.metrics["layer1.0"]) == {"energy", "mahalanobis"}
    assert report.metrics["layer1.0"]["mahalanobis"].auroc > 0.9  # uniform noise is far from digits at the first block
    assert "layer4.1" in report.table() and report.detector_ids["layer1.0"] == trained["results"][0].detector_id
    with pytest.raises(StitchkitError, match="no OOD detector"):
        check_detectors(trained["source"], ["layer2.0"], id_dataset="digits", registry=registry)
    with pytest.raises(StitchkitError, match="not a stitchable layer"):
        train_detectors(trained["source"], ["fc"], tiny_config(trained["tmp"]))
    with pytest.raises(StitchkitError, match="fine-tuning epochs"):
        train_detectors(trained["source"], LAYERS, tiny_config(trained["tmp"], ft_epochs=-1))
    with pytest.raises(StitchkitError, match="takes \\(T, D\\) token sequences"):
        train_detectors(trained["source"], ["layer1.0"], tiny_config(trained["tmp"], model_type="repr_cls_vit_tiny"))


def test_vit_detector_on_tokens(tmp_path):
    source = get_model(
        "vit_tiny_patch4_32",
        num_classes=10,
        in_channels=1,
        input_size=28,
        patch_size=7,
        embed_dim=16,
        depth=2,
        num_heads=2,
    ).eval()
    cfg = tiny_config(
        tmp_path,
        model_type=None,
        model_options={"embed_dim": 16, "depth": 1, "num_heads": 2},
        train_subset=32,
        ft_samples=16,
        val_subset=16,
        batch_size=16,
    )
    (result,) = train_detectors_for_checkpoint(
        str(save_checkpoint(tmp_path / "vit.pt", source, dataset="digits", input_shape=(1, 28, 28))),
        None,
        "blocks.1",
        cfg,
    )
    assert result.meta["model_type"] == "repr_cls_vit_tiny" and result.meta["required_input_shape"] == [17, 16]
    det = DetectorRegistry(tmp_path / "fdir").load(result.detector_id)
    assert det.predict(torch.randn(3, 17, 16)).shape == (3,)


@pytest.mark.parametrize("per_batch,expected", [(False, [1e-3, 1e-4]), (True, [1e-4, 1e-4])])
def test_finetuning_lr_decay_per_epoch_or_per_batch(tmp_path, per_batch, expected):
    """MultiStepLR([fe//2]) with fe = 2: per epoch, epoch 1 runs at lr and epoch 2 at lr/10; the
    original's per-batch stepping drops the LR after fe//2 = 1 *batch*."""
    source = get_model("resnet18", num_classes=10, in_channels=1, input_size=28, width=4).eval()
    cfg = tiny_config(
        tmp_path,
        epochs=0,
        ft_epochs=2,
        ft_samples=32,
        batch_size=16,
        val_subset=0,
        register=False,
        ft_lr_per_batch=per_batch,
    )
    (result,) = train_detectors(source, ["layer1.0"], cfg)
    assert [row["lr"] for row in result.finetune_log] == pytest.approx(expected)
