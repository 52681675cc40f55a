"""Where units run: in the driver process, in a local process pool, or on a Ray cluster.

All three take the same ``(unit, deps, settings)`` and give back the dict of
:func:`~stitchkit.study.units.execute_unit`; the driver stays the only writer to the store. One
registry, one entry per executor. On machines with GPUs, the pool and Ray place one unit per GPU.
"""

from __future__ import annotations

import concurrent.futures as cf
import importlib.util
import multiprocessing as mp
import os
import sys
from typing import Any

from ..errors import StitchkitError, unknown_name
from ..utils.process import exit_with_parent
from .units import Unit, execute_unit, unit_kind


class Executor:
    """``submit`` units up to ``capacity``; ``wait`` returns the ``(unit_id, result)`` pairs that finished."""

    name = "base"
    capacity = 1

    def submit(self, unit: Unit, study_dir: str, deps: dict[str, Any], settings: dict[str, Any]) -> None:
        raise NotImplementedError

    def wait(self) -> list[tuple[str, dict[str, Any]]]:
        raise NotImplementedError

    @property
    def busy(self) -> int:
        raise NotImplementedError

    def shutdown(self, cancel: bool = False) -> None:
        pass


class InlineExecutor(Executor):
    """Runs each unit in the driver process (progress bars of the unit show beneath the study's)."""

    name = "inline"

    def __init__(self, workers: int = 1, **_: Any):
        self.pending: list[tuple[Unit, str, dict[str, Any], dict[str, Any]]] = []

    def submit(self, unit, study_dir, deps, settings):
        self.pending.append((unit, study_dir, deps, settings))

    def wait(self):
        unit, study_dir, deps, settings = self.pending.pop(0)
        return [(unit.id, execute_unit(unit, study_dir, deps, settings))]

    @property
    def busy(self) -> int:
        return len(self.pending)


def _gpu_count() -> int:
    try:
        import torch  # deferred: the driver imports torch only to count GPUs

        return torch.cuda.device_count()
    except Exception:
        return 0


def _init_pool_worker(driver_pid: int, gpus: int, counter: Any) -> None:
    """In each pool process, before any unit runs: die with the driver (a ``kill -9``'d driver must not
    leave workers computing units nobody records), and take one GPU of its own (round robin over the
    workers, before torch initialises CUDA)."""
    exit_with_parent(driver_pid)
    if gpus and counter is not None:
        with counter.get_lock():
            index = counter.value
            counter.value += 1
        os.environ["CUDA_VISIBLE_DEVICES"] = str(index % gpus)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    if (
        "torch" in sys.modules and os.environ["OMP_NUM_THREADS"].isdigit()
    ):  # imported before the variable was set: tell it directly
        sys.modules["torch"].set_num_threads(max(1, int(os.environ["OMP_NUM_THREADS"])))


def _pool_task(unit: Unit, study_dir: str, deps: dict[str, Any], settings: dict[str, Any]) -> dict[str, Any]:
    return execute_unit(unit, study_dir, deps, settings)


class ProcessPoolExecutor(Executor):
    """A local pool of ``workers`` processes (spawned, so CUDA and threads start clean)."""

    name = "pool"

    def __init__(self, workers: int = 2, **_: Any):
        if workers < 1:
            raise StitchkitError(f"--workers must be at least 1, got {workers}")
        self.capacity = workers
        ctx = mp.get_context("spawn")
        gpus = _gpu_count()
        counter = (
            ctx.Value("i", 0) if gpus else None
        )  # a shared counter, not a Manager: no extra process to outlive the driver
        self.pool = cf.ProcessPoolExecutor(
            max_workers=workers, mp_context=ctx, initializer=_init_pool_worker, initargs=(os.getpid(), gpus, counter)
        )
        self.futures: dict[cf.Future, str] = {}

    def submit(self, unit, study_dir, deps, settings):
        self.futures[self.pool.submit(_pool_task, unit, study_dir, deps, {**settings, "progress": False})] = unit.id

    def wait(self):
        done, _ = cf.wait(list(self.futures), return_when=cf.FIRST_COMPLETED)
        out = []
        for future in done:
            unit_id = self.futures.pop(future)
            try:
                out.append((unit_id, future.result()))
            except Exception as exc:  # the worker process died (e.g. out of memory)
                out.append((unit_id, {"ok": False, "error": f"worker process failed: {exc}", "seconds": None}))
        return out

    @property
    def busy(self) -> int:
        return len(self.futures)

    def shutdown(self, cancel: bool = False) -> None:
        self.pool.shutdown(wait=not cancel, cancel_futures=cancel)


#: Ray runs a unit again this many times when its worker or node dies under it (a lost node); a unit's
#: own failure is returned, not raised, so it is never retried
RAY_RETRIES = 1


def _ray_task(unit: Unit, study_dir: str, deps: dict[str, Any], settings: dict[str, Any]) -> dict[str, Any]:
    """One unit on a Ray worker; its ``worker`` names the Ray node too (``host:pid node=<id>``), which
    the store records."""
    import ray  # deferred: runs on Ray workers only

    result = execute_unit(unit, study_dir, deps, settings)
    worker = result.get("worker") or ""
    if " node=" not in worker:  # a result adopted from a finished folder keeps the node that computed it
        result["worker"] = f"{worker} node={ray.get_runtime_context().get_node_id()[:12]}"
    return result


class RayExecutor(Executor):
    """Units as Ray tasks: ``--address`` joins a running cluster, none starts a local Ray instance.

    Artifacts are written under the study folder, which must be on a path every worker sees (a shared
    file system); results travel back to the driver, which alone writes the store. On a cluster as
    many units are in flight as it has CPUs (``--workers`` sizes a local Ray only); a unit of a kind
    that uses a GPU asks Ray for one whenever the cluster has GPUs and the study's device is not
    ``cpu``, so Ray places it on a node with a free GPU. A unit whose node is lost runs again
    elsewhere (:data:`RAY_RETRIES`)."""

    name = "ray"

    def __init__(self, workers: int | None = None, address: str | None = None, **_: Any):
        try:
            import ray  # deferred: Ray is optional and slow to import
        except ImportError:
            raise StitchkitError(
                "the ray executor needs Ray: pip install 'stitchkit[ray]' (or pip install ray)"
            ) from None
        self.ray = ray
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"ignore_reinit_error": True, "log_to_driver": False, "include_dashboard": False}
            if address:
                kwargs["address"] = address
            elif workers:
                kwargs["num_cpus"] = workers
            try:
                ray.init(**kwargs)
            except Exception as exc:
                raise StitchkitError(
                    f"could not start or join Ray{' at ' + address if address else ''}: {exc}"
                ) from None
        resources = ray.cluster_resources()
        self.gpus = int(resources.get("GPU", 0))
        cpus = max(1, int(resources.get("CPU", 1)))
        self.capacity = cpus if address else max(1, int(workers or cpus))
        self.remote = ray.remote(_ray_task)
        self.refs: dict[Any, str] = {}

    def options(self, unit: Unit, settings: dict[str, Any]) -> dict[str, Any]:
        """What a unit asks Ray for: a CPU, and a GPU of its own (one unit per GPU) when its kind uses
        one, the cluster has one and the study's device allows it."""
        options: dict[str, Any] = {"num_cpus": 1, "max_retries": RAY_RETRIES}
        if self.gpus and str(settings.get("device", "auto")) != "cpu" and unit_kind(unit.kind).uses_gpu:
            options["num_gpus"] = 1
        return options

    def submit(self, unit, study_dir, deps, settings):
        ref = self.remote.options(**self.options(unit, settings)).remote(
            unit, study_dir, deps, {**settings, "progress": False}
        )
        self.refs[ref] = unit.id

    def wait(self):
        ready, _ = self.ray.wait(list(self.refs), num_returns=1)
        out = []
        for ref in ready:
            unit_id = self.refs.pop(ref)
            try:
                out.append((unit_id, self.ray.get(ref)))
            except Exception as exc:
                out.append((unit_id, {"ok": False, "error": f"Ray task failed: {exc}", "seconds": None}))
        return out

    @property
    def busy(self) -> int:
        return len(self.refs)

    def shutdown(self, cancel: bool = False) -> None:
        if cancel:
            for ref in list(self.refs):
                try:
                    self.ray.cancel(ref, force=True)
                except Exception:
                    pass


EXECUTORS = {"inline": InlineExecutor, "pool": ProcessPoolExecutor, "ray": RayExecutor}


def check_executor(name: str, workers: int = 1, address: str | None = None) -> None:
    """The executor options, checked before a study writes anything (the executor itself starts later)."""
    if name not in EXECUTORS:
        raise unknown_name("executor", name, EXECUTORS)
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise StitchkitError(f"--workers must be at least 1, got {workers!r}")
    if address and name != "ray":
        raise StitchkitError("--address is for the ray executor (use --executor ray)")
    if name == "ray" and importlib.util.find_spec("ray") is None:
        raise StitchkitError("the ray executor needs Ray: pip install 'stitchkit[ray]' (or pip install ray)")


def make_executor(name: str, workers: int = 1, address: str | None = None) -> Executor:
    check_executor(name, workers, address)
    return EXECUTORS[name](workers=workers, address=address)
