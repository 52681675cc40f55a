"""The detector registry: the original's meta.json schema, deterministic ids, lookup whatever the path
spelling, and no lost entries with concurrent writers."""

import json
import multiprocessing as mp
import os

import pytest
import torch

from stitchkit.errors import StitchkitError
from stitchkit.ood import DetectorRegistry, detector_id

ORIGINAL_KEYS = (
    "model_type",
    "source_model_type",
    "source_model_path",
    "source_layer",
    "id_dataset",
    "orig_input_shape",
    "required_input_shape",
    "training_loc",
)


def meta(layer="layer1.0", path="m.pt", source_hash="abc", **kw):
    base = dict(
        model_type="repr_cls_resnet18",
        source_model_type="resnet18",
        source_model_path=path,
        source_layer=layer,
        id_dataset="digits",
        orig_input_shape=[1, 28, 28],
        required_input_shape=[4, 28, 28],
        training_loc="x",
        source_model_hash=source_hash,
    )
    base.update(kw)
    return base


def _writer(root, worker, n, barrier):
    registry = DetectorRegistry(root)
    barrier.wait()
    for i in range(n):
        registry.register(
            {"w": torch.full((2,), float(i))},
            meta(layer=f"layer{worker}.{i}"),
            detector_id("abc", f"layer{worker}.{i}", {}),
        )


def test_two_concurrent_writers_lose_no_entries(tmp_path):
    ctx = mp.get_context("fork")
    barrier = ctx.Barrier(2)
    n = 25
    procs = [ctx.Process(target=_writer, args=(str(tmp_path), w, n, barrier)) for w in (1, 2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    entries = DetectorRegistry(tmp_path).entries()
    assert len(entries) == 2 * n
    assert {m["source_layer"] for m in entries.values()} == {f"layer{w}.{i}" for w in (1, 2) for i in range(n)}
    assert all((tmp_path / key).is_file() for key in entries)
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]  # no temporary files left behind


def test_ids_are_deterministic_and_keep_the_original_schema(tmp_path):
    a = detector_id("hash1", "layer2.0", {"epochs": 3, "lr": 1e-3})
    assert a == detector_id("hash1", "layer2.0", {"lr": 1e-3, "epochs": 3}) and len(a) == 32
    assert (
        a
        != detector_id("hash2", "layer2.0", {"epochs": 3, "lr": 1e-3})
        != detector_id("hash1", "layer2.0", {"epochs": 4, "lr": 1e-3})
    )
    registry = DetectorRegistry(tmp_path)
    key = registry.register({"w": torch.zeros(1)}, meta(), a)
    registry.register({"w": torch.ones(1)}, meta(), a)  # retraining replaces, never duplicates
    data = json.loads((tmp_path / "meta.json").read_text())
    assert list(data) == [key] == [f"{a}.pt"]
    assert all(k in data[key] for k in ORIGINAL_KEYS)
    assert torch.load(tmp_path / key, weights_only=True)["w"].item() == 1.0


def test_lookup_by_hash_or_any_path_spelling(tmp_path, monkeypatch):
    registry = DetectorRegistry(tmp_path / "fdir")
    model_dir = tmp_path / "models"
    model_dir.mkdir()
    monkeypatch.chdir(tmp_path)
    registry.register({"w": torch.zeros(1)}, meta(path="models/m.pt", source_hash="h1", created="2025-01-01"), "old")
    registry.register(
        {"w": torch.zeros(1)}, meta(path="./models/../models/m.pt", source_hash="h1", created="2025-02-01"), "new"
    )
    # an entry written by the original code: no hash, a relative path
    registry.update(
        "legacy.pt", {k: v for k, v in meta(path="models/m.pt", layer="layer2.0").items() if k != "source_model_hash"}
    )
    key, found = registry.lookup("layer1.0", source_hash="h1")
    assert key == "new.pt" and found["n_matches"] == 2  # newest of two
    assert registry.lookup("layer2.0", source_path=str(model_dir / "m.pt"))[0] == "legacy.pt"  # absolute vs relative
    assert registry.lookup("layer2.0", source_path="./models/m.pt")[0] == "legacy.pt"
    with pytest.raises(StitchkitError, match="no OOD detector .* layer 'layer3.0'"):
        registry.lookup("layer3.0", source_hash="h1")
    with pytest.raises(StitchkitError, match="exist for"):
        registry.lookup("layer1.0", source_hash="other")
    registry.remove("old")
    assert "old.pt" not in registry.entries() and not (tmp_path / "fdir" / "old.pt").exists()
