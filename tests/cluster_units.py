"""Test-only unit kinds for the Ray cluster and full-disk tests (tests/test_cluster.py).

Ray workers import this module through the job's ``worker_process_setup_hook`` (:func:`setup_worker`,
or :func:`setup_worker_with_file_size_limit` for a worker whose disk is "full"), so the kinds are
registered there as in the driver. Each unit appends ``start``/``end`` lines (name, Ray node id, pid) to
the log file its parameters name, sleeps, writes ``nbytes`` bytes into its folder, and returns where it
ran: the tests see which node ran what, and when.
"""

from __future__ import annotations

import os
import resource
import signal
import time

from stitchkit.study.units import Unit, register_unit_kind

#: the file-size limit of a "full" worker (bytes): units writing more fail with EFBIG
FULL_DISK_LIMIT = 64 * 1024


def _node_id() -> str:
    import ray  # deferred: only Ray workers ask

    return ray.get_runtime_context().get_node_id() if ray.is_initialized() else ""


def _log(path: str, event: str, name: str) -> None:
    with open(path, "a") as f:  # one short append per line: lines of concurrent units do not mix
        f.write(f"{event} {name} {_node_id()} {os.getpid()}\n")


def _step(unit, ctx):
    p = unit.params
    _log(p["log"], "start", p["name"])
    time.sleep(p["seconds"])
    with open(ctx.out_dir / "data.bin", "wb") as f:
        f.write(b"\0" * p["nbytes"])
    _log(p["log"], "end", p["name"])
    import ray  # deferred: only Ray workers ask

    gpus = [str(g) for g in ray.get_gpu_ids()] if ray.is_initialized() else []
    return {"metrics": {"node": _node_id(), "gpu_ids": gpus}, "artifacts": {"data": ctx.out_dir / "data.bin"}}


register_unit_kind("cluster_step", "cluster tests: sleep, write bytes, say where it ran", uses_gpu=False)(_step)
register_unit_kind("cluster_gpu_step", "cluster tests: as cluster_step, of a kind that uses a GPU", uses_gpu=True)(
    _step
)


def step(name: str, log: str, seconds: float = 0.0, nbytes: int = 16, gpu: bool = False) -> Unit:
    return Unit(
        "cluster_gpu_step" if gpu else "cluster_step",
        {"name": name, "log": log, "seconds": seconds, "nbytes": nbytes},
        (),
        name,
    )


def setup_worker() -> None:
    """A Ray worker of a test job: importing this module registered the kinds."""


def setup_worker_with_file_size_limit() -> None:
    """A Ray worker whose writes stop at :data:`FULL_DISK_LIMIT` bytes per file, as on a full disk:
    SIGXFSZ is ignored, so a write beyond the limit raises OSError(EFBIG) instead of killing the worker."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (FULL_DISK_LIMIT, resource.RLIM_INFINITY))


def log_lines(path: str) -> list[list[str]]:
    try:
        with open(path) as f:
            return [line.split() for line in f if line.strip()]
    except FileNotFoundError:
        return []
