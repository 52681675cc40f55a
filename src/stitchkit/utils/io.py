"""Files are written whole or not at all: write to a temporary file beside the target, then rename.

Files and folders get the permissions the umask allows (as ``open``/``mkdir`` would give them), so
workers and colleagues sharing a study folder can read each other's artifacts. Output folders are
checked before any work starts (:func:`check_writable_dir`) but created only when the first file
goes into them, so a refused command leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import fcntl
import io
import json
import math
import os
import secrets
import zipfile
from pathlib import Path
from typing import Any, Iterator, Mapping

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


def write_csv_atomic(target: str | os.PathLike, rows: list[dict[str, Any]]) -> None:
    """Rows of dicts as CSV; the columns are every key seen, in first-seen order."""
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomic(target, buffer.getvalue())


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


def write_json_atomic(target: str | os.PathLike, obj: Any) -> None:
    write_text_atomic(target, json.dumps(obj, indent=4, sort_keys=False, default=_json_default) + "\n")


def json_safe(obj: Any) -> Any:
    """``obj`` with every non-finite float replaced by None (JSON has no NaN or infinity)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Mapping):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj


def _json_default(obj: Any) -> Any:
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, (set, tuple)):
        return list(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


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
