"""Atomic writers and JSON safety (stitchkit.utils.io)."""

import json
import math
import multiprocessing
from pathlib import Path

import pytest

from stitchkit.ood.registry import DetectorRegistry
from stitchkit.probing.cache import ProbeCache
from stitchkit.utils.io import json_safe, lock_file, write_csv_atomic, write_json_atomic


def test_json_safe_replaces_non_finite_floats_at_any_depth():
    data = {"a": math.nan, "b": [1.0, math.inf, {"c": -math.inf, "d": 2}], "e": (0.5, "x")}
    assert json_safe(data) == {"a": None, "b": [1.0, None, {"c": None, "d": 2}], "e": [0.5, "x"]}
    json.dumps(json_safe(data), allow_nan=False)  # strict JSON


def test_atomic_writers_leave_no_temporary_files(tmp_path):
    write_json_atomic(tmp_path / "x.json", {"v": 1})
    write_csv_atomic(tmp_path / "x.csv", [{"a": 1, "b": 2.5}])
    assert json.loads((tmp_path / "x.json").read_text()) == {"v": 1}
    assert (tmp_path / "x.csv").read_text().splitlines()[0] == "a,b"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.csv", "x.json"]


def test_an_interrupted_write_keeps_the_old_file(tmp_path):
    write_json_atomic(tmp_path / "x.json", {"v": 1})
    with pytest.raises(TypeError):
        write_json_atomic(tmp_path / "x.json", {"v": object()})  # fails half-way through serialising
    assert json.loads((tmp_path / "x.json").read_text()) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]


def _count_under_lock(lock: str, counter: str, times: int) -> None:
    """A child process: read-increment-write a counter under the lock, ``times`` times."""
    for _ in range(times):
        with lock_file(lock):
            value = int(Path(counter).read_text())
            Path(counter).write_text(str(value + 1))


def test_a_lock_file_excludes_other_processes_and_is_removed_after_use(tmp_path):
    lock, counter = tmp_path / "x.lock", tmp_path / "counter"
    counter.write_text("0")
    with lock_file(lock):
        assert lock.is_file()
    assert not lock.exists()
    # the lock file is removed by each holder while others wait on it: none of the 4 × 50 increments is lost
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_count_under_lock, args=(str(lock), str(counter), 50)) for _ in range(4)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
    assert [w.exitcode for w in workers] == [0] * 4 and counter.read_text() == "200" and not lock.exists()


def test_the_probe_cache_and_the_detector_registry_leave_no_lock_files(tmp_path):
    cache = ProbeCache(tmp_path / "probes.json")
    cache.put("k", {"val_acc": 0.5})
    cache.save()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["probes.json"] and ProbeCache(tmp_path / "probes.json").get("k") == 0.5
    registry = DetectorRegistry(tmp_path / "fdir")
    registry.update("a.pt", {"source_layer": "layer1.0"})
    assert sorted(p.name for p in (tmp_path / "fdir").iterdir()) == ["meta.json"] and list(registry.entries()) == ["a.pt"]
