"""Naming the cause of a write that failed because the disk is full (or a quota or file-size limit).

A full disk rarely says so plainly: Python raises ``OSError(ENOSPC)``, but NumPy reports a short
write as ``OSError('N requested and M written')`` with no errno, and ``torch.save`` as a
``RuntimeError`` from its zip writer ("unexpected pos …"). :func:`disk_full_cause` looks for the
errno first and, for the errno-less forms, checks the file system and the process's file-size limit
after the fact, so that a unit that failed for want of space says so and names where it was writing.
"""

from __future__ import annotations

import errno
import os
import resource
from pathlib import Path

#: errno -> what ran out
_CAUSES = {
    errno.ENOSPC: "no space left on the device",
    errno.EFBIG: "the file size limit (ulimit -f) was reached",
    errno.EDQUOT: "the disk quota was exceeded",
}
#: how torch.save's zip writer words a write that came up short
_TORCH_WRITER = ("inline_container", "PytorchStreamWriter")
#: below this many free bytes a file system counts as full when a write failed without an errno
_NEARLY_FULL = 1 << 20


def _chain(exc: BaseException):
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def _short_write(exc: BaseException) -> bool:
    """A write that failed without an errno: NumPy's short write, or torch.save's zip writer."""
    if isinstance(exc, OSError):
        return exc.errno is None
    return isinstance(exc, RuntimeError) and any(word in str(exc) for word in _TORCH_WRITER)


def _probed_cause(folder: Path) -> str | None:
    """What ran out where ``folder`` lives, checked after a write failed without saying why."""
    soft, _ = resource.getrlimit(resource.RLIMIT_FSIZE)
    if soft != resource.RLIM_INFINITY:
        return f"{_CAUSES[errno.EFBIG]} ({soft} bytes)"
    probe = folder
    while not probe.exists() and probe != probe.parent:  # the unit's own folder may be gone already
        probe = probe.parent
    try:
        stat = os.statvfs(probe)
    except OSError:
        return None
    if stat.f_bavail * stat.f_frsize < _NEARLY_FULL:
        return _CAUSES[errno.ENOSPC]
    return None


def disk_full_cause(exc: BaseException, folder: str | os.PathLike) -> str | None:
    """``"<what ran out> while writing <path>"`` when ``exc`` is a write that failed for want of space
    (disk, quota, file-size limit) somewhere under ``folder``, else None. The path is the file the
    error names, or ``folder`` when it names none."""
    folder = Path(folder)
    for link in _chain(exc):
        if isinstance(link, OSError) and link.errno in _CAUSES:
            return f"{_CAUSES[link.errno]} while writing {link.filename or folder}"
    if any(_short_write(link) for link in _chain(exc)):
        cause = _probed_cause(folder)
        if cause:
            return f"{cause} while writing {folder}"
    return None
