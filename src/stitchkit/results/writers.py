"""The shared writers (and readers) of result records: CSV, JSON and Parquet, each written whole or
not at all (a temporary file beside the target, then a rename; :mod:`stitchkit.utils.io`).

CSV has no types: cells are written as text (floats by ``repr``, so they read back exactly; ``None``
and NaN as an empty cell; lists and dicts as their JSON text) and read back as numbers where they
look like numbers, ``True``/``False`` as booleans, JSON lists/dicts as such and empty cells as
``None``. Parquet keeps the column types; a column mixing types is stored as text. Parquet needs
pyarrow (the ``parquet`` extra); without it :func:`write_parquet` raises a
:class:`~stitchkit.errors.StitchkitError` saying so.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ..errors import StitchkitError
from ..utils.io import atomic_path, write_text_atomic

PARQUET_HINT = "Parquet files need pyarrow: pip install 'stitchkit[parquet]' (or pyarrow); CSV and JSON need nothing extra"


def json_ready(obj: Any) -> Any:
    """``obj`` as plain JSON data: NaN and infinities become None (JSON has neither), numpy values
    Python ones, tuples and sets lists, paths strings, mapping keys strings."""
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, np.ndarray):
        return json_ready(obj.tolist())
    if isinstance(obj, Mapping):
        return {str(k): json_ready(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set)):
        return [json_ready(v) for v in obj]
    if isinstance(obj, os.PathLike):
        return str(obj)
    return obj


def write_json(path: str | os.PathLike, obj: Any) -> None:
    write_text_atomic(path, json.dumps(json_ready(obj), indent=2) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise StitchkitError(f"cannot read {str(path)!r}: {exc}") from None


def _cell(value: Any) -> str:
    value = json_ready(value)
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return str(value)


def _parse(text: str) -> Any:
    if text == "":
        return None
    if text in ("True", "False"):
        return text == "True"
    for number in (int, float):
        try:
            return number(text)
        except ValueError:
            pass
    if text[:1] in "[{":
        try:
            return json.loads(text)
        except ValueError:
            pass
    return text


def csv_text(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    """``rows`` under the header ``columns`` as CSV text (a key missing from a row is an empty cell)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(list(columns))
    for row in rows:
        writer.writerow([_cell(row.get(c)) for c in columns])
    return buffer.getvalue()


def write_csv(path: str | os.PathLike, rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> None:
    """:func:`csv_text`, written whole or not at all."""
    write_text_atomic(path, csv_text(rows, columns))


def read_csv(path: str | os.PathLike) -> tuple[list[str], list[dict[str, Any]]]:
    """``(columns, rows)`` of a file :func:`write_csv` wrote, with the cells parsed back (module docstring)."""
    try:
        with open(path, newline="") as handle:
            lines = list(csv.reader(handle))
    except OSError as exc:
        raise StitchkitError(f"cannot read {str(path)!r}: {exc.strerror}") from None
    if not lines:
        raise StitchkitError(f"{str(path)!r} is empty: a result CSV starts with its header")
    columns = lines[0]
    return columns, [{c: _parse(v) for c, v in zip(columns, line)} for line in lines[1:]]


def _pyarrow():
    try:  # deferred: pyarrow is an optional extra
        import pyarrow
        import pyarrow.parquet
    except ImportError:
        raise StitchkitError(PARQUET_HINT) from None
    return pyarrow, pyarrow.parquet


def _parquet_column(values: list[Any]) -> list[Any]:
    """A column pyarrow can type: lists/dicts as JSON text; a column mixing kinds of values as text."""
    values = [json.dumps(json_ready(v)) if isinstance(v, (list, tuple, dict)) else v.item() if isinstance(v, np.generic) else v
              for v in values]
    kinds = {"bool" if isinstance(v, bool) else "number" if isinstance(v, (int, float)) else "text" for v in values if v is not None}
    if len(kinds) > 1:
        return [None if v is None else str(v) for v in values]
    return values


def write_parquet(path: str | os.PathLike, rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> None:
    """``rows`` as a Parquet table with ``columns`` in order (needs pyarrow: module docstring)."""
    pa, pq = _pyarrow()
    table = pa.table({c: _parquet_column([row.get(c) for row in rows]) for c in columns})
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def read_parquet(path: str | os.PathLike) -> tuple[list[str], list[dict[str, Any]]]:
    """``(columns, rows)`` of a Parquet file (NaN cells come back as NaN, nulls as None)."""
    _, pq = _pyarrow()
    try:
        table = pq.read_table(path)
    except (OSError, ValueError) as exc:
        raise StitchkitError(f"cannot read {str(path)!r}: {exc}") from None
    return list(table.column_names), table.to_pylist()


__all__ = ["PARQUET_HINT", "csv_text", "json_ready", "read_csv", "read_json", "read_parquet", "write_csv", "write_json", "write_parquet"]
