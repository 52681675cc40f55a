"""Writes that fail for want of space name the cause, whatever the writer: Python's OSError(EFBIG),
NumPy's short write (no errno) and torch.save's zip writer (a RuntimeError). Each runs in a child
process with a file-size limit (``ulimit -f``) and SIGXFSZ ignored, as on a full disk; the study-level
test (a unit failing, the store and other units intact, a rerun completing) is in tests/test_cluster.py."""

import errno
import json
import subprocess
import sys
import textwrap

import pytest

from stitchkit.utils.write_errors import disk_full_cause

pytestmark = pytest.mark.cluster

CHILD = textwrap.dedent("""
    import json, resource, signal, sys
    import numpy as np, torch
    from stitchkit.utils.write_errors import disk_full_cause
    folder = sys.argv[1]
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (50_000, resource.RLIM_INFINITY))
    writers = {
        "python": lambda: open(folder + "/a.bin", "wb").write(bytes(200_000)),
        "numpy": lambda: np.save(folder + "/b.npy", np.zeros(100_000)),
        "torch": lambda: torch.save(torch.zeros(100_000), folder + "/c.pt"),
    }
    out = {}
    for name, write in writers.items():
        try:
            write()
            out[name] = None
        except Exception as exc:
            out[name] = [type(exc).__name__, disk_full_cause(exc, folder)]
    print(json.dumps(out))
""")


def test_every_writer_out_of_space_is_named(tmp_path):
    proc = subprocess.run([sys.executable, "-c", CHILD, str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.splitlines()[-1])
    assert out["python"] == ["OSError", f"the file size limit (ulimit -f) was reached while writing {tmp_path}"]
    for writer in ("numpy", "torch"):  # no errno: the limit is found after the fact
        kind, cause = out[writer]
        assert cause == f"the file size limit (ulimit -f) was reached (50000 bytes) while writing {tmp_path}", (
            writer,
            kind,
        )


def test_other_failures_are_not_called_a_full_disk(tmp_path):
    assert disk_full_cause(ValueError("shapes differ"), tmp_path) is None
    assert disk_full_cause(RuntimeError("mat1 and mat2 shapes cannot be multiplied"), tmp_path) is None
    assert disk_full_cause(PermissionError(errno.EACCES, "Permission denied", str(tmp_path / "x")), tmp_path) is None
    full = OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "w.pt"))
    assert disk_full_cause(full, tmp_path) == f"no space left on the device while writing {tmp_path / 'w.pt'}"
    quota = RuntimeError("saving failed")
    quota.__cause__ = OSError(errno.EDQUOT, "Disk quota exceeded")
    assert disk_full_cause(quota, tmp_path) == f"the disk quota was exceeded while writing {tmp_path}"
