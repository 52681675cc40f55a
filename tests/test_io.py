"""Atomic writers and JSON safety (stitchkit.utils.io)."""

import json
import math

import pytest

from stitchkit.utils.io import json_safe, write_csv_atomic, write_json_atomic


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
