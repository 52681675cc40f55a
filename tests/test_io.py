"""Atomic writers and JSON safety (stitchkit.utils.io)."""

import json
import math
import multiprocessing
from pathlib import Path

import numpy as np
import pytest

from stitchkit.ood.registry import DetectorRegistry
from stitchkit.probing.cache import ProbeCache
from stitchkit.utils.io import (
    csv_text,
    json_safe,
    lock_file,
    read_csv,
    read_json,
    read_parquet,
    write_csv_atomic,
    write_json_atomic,
    write_parquet_atomic,
)


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
    assert (
        sorted(p.name for p in tmp_path.iterdir()) == ["probes.json"]
        and ProbeCache(tmp_path / "probes.json").get("k") == 0.5
    )
    registry = DetectorRegistry(tmp_path / "fdir")
    registry.update("a.pt", {"source_layer": "layer1.0"})
    assert sorted(p.name for p in (tmp_path / "fdir").iterdir()) == ["meta.json"] and list(registry.entries()) == [
        "a.pt"
    ]


def test_one_cell_encoding_for_csv_json_and_parquet(tmp_path):
    """Every file goes through utils.io with the same values: lists as JSON, NaN empty or null, floats exact."""
    rows = [{"a": 1, "b": ["x", 2], "c": math.nan, "d": np.float64(0.1) + np.float64(0.2)}, {"e": None, "a": True}]
    text = csv_text(rows)
    assert text == 'a,b,c,d,e\n1,"[""x"", 2]",,0.30000000000000004,\nTrue,,,,\n'
    write_csv_atomic(tmp_path / "t.csv", rows)
    columns, back = read_csv(tmp_path / "t.csv")
    assert columns == ["a", "b", "c", "d", "e"]
    assert back[0] == {"a": 1, "b": ["x", 2], "c": None, "d": 0.1 + 0.2, "e": None}
    write_json_atomic(tmp_path / "t.json", {"rows": rows, "n": np.int64(2)})
    json.loads((tmp_path / "t.json").read_text(), parse_constant=lambda c: pytest.fail(f"non-strict JSON {c}"))
    assert read_json(tmp_path / "t.json")["rows"][0] == {"a": 1, "b": ["x", 2], "c": None, "d": 0.1 + 0.2}
    write_parquet_atomic(tmp_path / "t.parquet", rows)
    columns, back = read_parquet(tmp_path / "t.parquet")
    assert columns == ["a", "b", "c", "d", "e"] and back[0]["b"] == '["x", 2]'
    assert back[1]["a"] == "True"  # a column mixing numbers and booleans is text


def test_csv_files_written_before_one_writer_stack_still_read(tmp_path):
    """The earlier writer put CRLF line ends, Python lists and ``nan`` in cells: they read back as text and a float."""
    (tmp_path / "old.csv").write_bytes(b"layer,ranks,loss\r\nlayer1.0,\"['a', 'b']\",nan\r\n")
    columns, rows = read_csv(tmp_path / "old.csv")
    assert columns == ["layer", "ranks", "loss"]
    assert rows[0]["ranks"] == "['a', 'b']" and math.isnan(rows[0]["loss"])
