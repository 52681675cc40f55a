"""Files are written whole or not at all: write to a temporary file beside the target, then rename.

Files and folders get the permissions the umask allows (as ``open``/``mkdir`` would give them), so
workers and colleagues sharing a study folder can read each other's artifacts. Output folders are
checked before any work starts (:func:`check_writable_dir`) but created only when the first file
goes into them, so a refused command leaves nothing behind.

This is the one writer stack of the package: every CSV, JSON and Parquet file goes through it, with
one encoding of the values (:func:`json_safe`): NaN and infinities become None (JSON has neither), numpy
values Python ones, tuples and sets lists, paths strings, mapping keys strings. CSV has no types: cells
are written as text (floats by ``repr``, so they read back exactly; ``None`` and NaN as an empty cell;
lists and dicts as their JSON text) and read back (:func:`read_csv`) as numbers where they look like
numbers, ``True``/``False`` as booleans, JSON lists/dicts as such and empty cells as ``None``. Parquet
keeps the column types; lists and dicts are their JSON text and a column mixing kinds of values is
stored as text. Parquet needs pyarrow (the ``parquet`` extra); without it :func:`write_parquet_atomic`
raises a :class:`~stitchkit.errors.StitchkitError` saying so.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import fcntl
import importlib.util
import io
import json
import math
import os
import secrets
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import StitchkitError


def check_writable_dir(path: str | os.PathLike, what: str = "output folder") -> Path:
    """Check, without creating anything, that ``path`` is a writable folder or could be created as one.

    Raises a :class:`StitchkitError` naming the problem: a file where the folder should be (or where
    one of its parents should be), or a folder that cannot be written.
    """
    path = Path(path)
    absolute = Path(os.path.abspath(path))
    for probe in (absolute, *absolute.parents):
        if not probe.exists():
            continue
        own = probe == absolute
        if not probe.is_dir():
            if own:
                raise StitchkitError(f"{what} {str(path)!r} exists and is not a folder")
            raise StitchkitError(f"cannot create {what} {str(path)!r}: {str(probe)!r} is a file, not a folder")
        if not os.access(probe, os.W_OK | os.X_OK):
            if own:
                raise StitchkitError(f"{what} {str(path)!r} is not writable")
            raise StitchkitError(f"cannot create {what} {str(path)!r}: {str(probe)!r} is not writable")
        break
    return path


def ensure_writable_dir(path: str | os.PathLike) -> Path:
    """Create ``path`` (and parents) and check that files can be written in it."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StitchkitError(f"cannot create output folder {str(path)!r}: {exc.strerror}") from None
    if not path.is_dir():
        raise StitchkitError(f"output path {str(path)!r} exists and is not a folder")
    if not os.access(path, os.W_OK | os.X_OK):
        raise StitchkitError(f"output folder {str(path)!r} is not writable")
    return path


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; on success it replaces ``target`` atomically."""
    target = Path(target)
    if target.is_dir():
        raise StitchkitError(f"cannot write {str(target)!r}: it is a folder; give a file name")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError:
        check_writable_dir(target.parent, "folder")  # names the file in the way
        raise
    tmp_path = _create_temporary(target)
    try:
        yield tmp_path
        os.replace(tmp_path, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


def _create_temporary(target: Path) -> Path:
    """A new, empty file beside ``target``, created with mode 0666 so that the umask decides its
    permissions (``tempfile.mkstemp`` would make it 0600 whatever the umask)."""
    for _ in range(100):
        candidate = target.parent / f".{target.name}.{secrets.token_hex(4)}.tmp"
        try:
            fd = os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        os.close(fd)
        return candidate
    raise FileExistsError(errno.EEXIST, "no free temporary name", str(target.parent))


def write_text_atomic(target: str | os.PathLike, text: str) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(text)


def write_npz_atomic(target: str | os.PathLike, arrays: Mapping[str, Any]) -> None:
    """Named arrays as an uncompressed ``.npz`` archive (``np.savez``), written whole or not at all."""
    with atomic_path(target) as tmp, open(tmp, "wb") as handle:  # a file object: np.savez would append ".npz" to a name
        np.savez(handle, **{str(k): np.asarray(v) for k, v in arrays.items()})


def read_npz(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Every array of an ``.npz`` file, loaded (the file is closed afterwards); a damaged file is a
    :class:`~stitchkit.errors.StitchkitError` naming it."""
    try:
        with np.load(path, allow_pickle=False) as data:
            return {key: data[key] for key in data.files}
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise StitchkitError(f"cannot read the per-sample statistics {str(path)!r}: {exc}") from None


PARQUET_HINT = (
    "Parquet files need pyarrow: pip install 'stitchkit[parquet]' (or pyarrow); CSV and JSON need nothing extra"
)


def json_safe(obj: Any) -> Any:
    """``obj`` as plain JSON data: NaN and infinities become None (JSON has neither), numpy values (and
    anything with ``tolist``, such as tensors) Python ones, tuples and sets lists, paths strings, mapping
    keys strings. Anything else is left as it is (:func:`json.dumps` then refuses it)."""
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, Mapping):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, os.PathLike):
        return str(obj)
    if hasattr(obj, "tolist"):
        return json_safe(obj.tolist())
    return obj


def write_json_atomic(target: str | os.PathLike, obj: Any) -> None:
    """``obj`` (through :func:`json_safe`) as indented JSON, written whole or not at all."""
    write_text_atomic(target, json.dumps(json_safe(obj), indent=4) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise StitchkitError(f"cannot read {str(path)!r}: {exc}") from None


def _cell(value: Any) -> str:
    value = json_safe(value)
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


def _columns(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None) -> list[str]:
    """``columns``, or (None) every key of ``rows`` in first-seen order."""
    if columns is not None:
        return list(columns)
    seen: dict[str, None] = {}
    for row in rows:
        seen.update(dict.fromkeys(row))
    return list(seen)


def csv_text(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None) -> str:
    """``rows`` under the header ``columns`` (default: every key, first seen first) as CSV text; a key
    missing from a row is an empty cell, a key not among the columns is left out."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    columns = _columns(rows, columns)
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_cell(row.get(c)) for c in columns])
    return buffer.getvalue()


def write_csv_atomic(
    target: str | os.PathLike, rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None
) -> None:
    """:func:`csv_text`, written whole or not at all."""
    write_text_atomic(target, csv_text(rows, columns))


def read_csv(path: str | os.PathLike) -> tuple[list[str], list[dict[str, Any]]]:
    """``(columns, rows)`` of a CSV file with a header, the cells parsed back (module docstring)."""
    try:
        with open(path, newline="") as handle:
            lines = list(csv.reader(handle))
    except OSError as exc:
        raise StitchkitError(f"cannot read {str(path)!r}: {exc.strerror}") from None
    if not lines:
        raise StitchkitError(f"{str(path)!r} is empty: a result CSV starts with its header")
    columns = lines[0]
    return columns, [{c: _parse(v) for c, v in zip(columns, line, strict=False)} for line in lines[1:]]


def parquet_available() -> bool:
    """Whether pyarrow is installed (Parquet files can be written and read)."""
    return importlib.util.find_spec("pyarrow") is not None


def _pyarrow():
    try:  # deferred: pyarrow is an optional extra
        import pyarrow
        import pyarrow.parquet
    except ImportError:
        raise StitchkitError(PARQUET_HINT) from None
    return pyarrow, pyarrow.parquet


def _parquet_column(values: list[Any]) -> list[Any]:
    """A column pyarrow can type: lists/dicts as JSON text; a column mixing kinds of values as text."""
    values = [
        json.dumps(json_safe(v)) if isinstance(v, (list, tuple, dict)) else v.item() if isinstance(v, np.generic) else v
        for v in values
    ]
    kinds = {
        "bool" if isinstance(v, bool) else "number" if isinstance(v, (int, float)) else "text"
        for v in values
        if v is not None
    }
    if len(kinds) > 1:
        return [None if v is None else str(v) for v in values]
    return values


def write_parquet_atomic(
    target: str | os.PathLike, rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None
) -> None:
    """``rows`` as a Parquet table with ``columns`` (default: every key, first seen first) in order,
    written whole or not at all (needs pyarrow: module docstring)."""
    pa, pq = _pyarrow()
    table = pa.table({c: _parquet_column([row.get(c) for row in rows]) for c in _columns(rows, columns)})
    with atomic_path(target) as tmp:
        pq.write_table(table, tmp)


def read_parquet(path: str | os.PathLike) -> tuple[list[str], list[dict[str, Any]]]:
    """``(columns, rows)`` of a Parquet file (NaN cells come back as NaN, nulls as None)."""
    _, pq = _pyarrow()
    try:
        table = pq.read_table(path)
    except (OSError, ValueError) as exc:
        raise StitchkitError(f"cannot read {str(path)!r}: {exc}") from None
    return list(table.column_names), table.to_pylist()


def torch_save_atomic(obj: Any, target: str | os.PathLike) -> None:
    import torch  # deferred: the CLI reads this module before any command needs torch

    with atomic_path(target) as tmp:
        torch.save(obj, tmp)


@contextlib.contextmanager
def lock_file(path: str | os.PathLike) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (a lock file made for it) and remove the file afterwards.

    The file is removed while the lock is still held; a process that opened it before and was waiting
    then finds that ``path`` no longer names the file it locked, and opens it anew, so two processes
    never both hold the lock (one on the removed file, one on a new one)."""
    path = Path(path)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                current = os.stat(path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                current = False
        except BaseException:
            os.close(fd)
            raise
        if current:
            break
        os.close(fd)  # locked a lock file its holder had removed: try again
    try:
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        os.close(fd)  # releases the lock
