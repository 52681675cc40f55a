"""Executing a planned study's units: the plan recorded in the store (interrupted, failed and re-run units
set back to pending), then every unit that is not done handed to the executor in dependency order, each
result recorded as it arrives, with a progress bar that estimates the time left.
"""

from __future__ import annotations

import logging
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import __version__
from ..utils.progress import tqdm
from .executors import make_executor
from .store import Store
from .units import RESULT_FILE, Unit, resolve_artifacts, unit_dir


@dataclass
class StudyRun:
    """What one run of a study's units needs: the open store, the plan and how to execute it."""

    store: Store
    study_dir: Path
    config: dict[str, Any]
    units: list[Unit]
    rerun: set[str]
    executor: str
    workers: int
    address: str | None
    #: what every unit gets besides its parameters (device, data root, ...; :class:`~.units.UnitContext`)
    settings: dict[str, Any]
    progress: bool
    log: logging.Logger


def remove_partial_units(study_dir: Path) -> None:
    """The temporary folders of units whose process died mid-unit (a killed run, a lost Ray node).
    Only while no unit of this study runs: before a run starts, and after every unit has returned."""
    for stale in (study_dir / "units").glob(".tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)


def _record_plan(
    store: Store,
    study_dir: Path,
    config: dict[str, Any],
    units: list[Unit],
    by_id: dict[str, Unit],
    rerun: set[str],
    log: logging.Logger,
) -> dict[str, str]:
    """Store the config and the plan, set interrupted, failed and re-run units back to pending, and
    return every planned unit's status."""
    remove_partial_units(study_dir)
    store.set_meta("config", config)
    store.set_meta("stitchkit_version", __version__)
    store.set_meta("plan", [u.id for u in units])  # the report shows these; results of earlier configs stay stored
    store.add_planned(units)
    interrupted = store.reset_interrupted()
    if interrupted:
        log.info("%d unit(s) were interrupted in an earlier run and will run again", interrupted)
    for record in store.all():
        if record.id in by_id and (record.kind in rerun or record.status == "failed"):
            store.db.execute("UPDATE units SET status = 'pending' WHERE id = ?", (record.id,))
            # the finished folder would otherwise be adopted as this run's result
            (unit_dir(study_dir, by_id[record.id]) / RESULT_FILE).unlink(missing_ok=True)
    return {r.id: r.status for r in store.all() if r.id in by_id}


def _dependency_results(store: Store, study_dir: Path, unit: Unit) -> dict[str, dict[str, Any]]:
    """What a unit gets of each finished dependency (:attr:`~.units.UnitContext.deps`)."""
    deps = {}
    for d in unit.deps:
        rec = store.get(d)
        deps[d] = {
            "kind": rec.kind,
            "params": rec.config,
            "metrics": rec.metrics,
            "label": rec.label,
            "model_hashes": rec.model_hashes,
            "artifacts": resolve_artifacts(study_dir, d, rec.kind, rec.artifacts),
        }
    return deps


def _postfix(
    running: dict[str, float], by_id: dict[str, Unit], durations: dict[str, list[float]], unfinished: list[Unit]
) -> str:
    """The running units and the time left: each unfinished unit is expected to take as long as the
    finished units of its kind took on average (of all finished units while its kind has none)."""
    current = ", ".join(by_id[u].label for u in running) or "-"
    finished = [t for times in durations.values() for t in times]
    if not finished or not unfinished:
        return current
    overall = sum(finished) / len(finished)
    left = sum(
        sum(durations[u.kind]) / len(durations[u.kind]) if durations.get(u.kind) else overall for u in unfinished
    )
    return f"{current} | ~{left / 60:.0f} min left"


def run_units(run: StudyRun) -> tuple[int, dict[str, list[float]]]:
    """Record the plan, then run every unit that is not done, in dependency order; returns how many units
    ran and their wall times per unit kind."""
    # units and their dependencies' artifacts travel to workers whose working folder is not ours
    study_dir = run.study_dir.absolute()
    by_id = {u.id: u for u in run.units}
    status = _record_plan(run.store, study_dir, run.config, run.units, by_id, run.rerun, run.log)
    todo = [u for u in run.units if status[u.id] != "done"]
    run.log.info(
        "study %s: %d units, %d to run (stitchkit %s, executor %s)",
        run.config["study"]["name"],
        len(run.units),
        len(todo),
        __version__,
        run.executor,
    )
    loop = _Loop(run, study_dir, by_id, status, todo)
    try:
        while True:
            loop.skip_blocked()
            loop.submit_ready()
            if loop.ex.busy == 0:
                break
            loop.collect()
    except KeyboardInterrupt:
        loop.ex.shutdown(cancel=True)
        run.store.reset_interrupted()
        run.log.warning("interrupted; finished units are kept")
        loop.overall.close()
        raise
    loop.ex.shutdown()
    remove_partial_units(study_dir)  # e.g. of an attempt on a Ray node that was lost, run again elsewhere
    loop.overall.close()
    return loop.ran, loop.durations


class _Loop:
    """The state of :func:`run_units` while it runs: each planned unit's status, the executor, the units
    running now, the finished units' wall times and the progress bar."""

    def __init__(
        self, run: StudyRun, study_dir: Path, by_id: dict[str, Unit], status: dict[str, str], todo: list[Unit]
    ):
        self.run, self.study_dir, self.by_id, self.status, self.todo = run, study_dir, by_id, status, todo
        self.ex = make_executor(run.executor, workers=run.workers, address=run.address)
        self.overall = tqdm(
            total=len(run.units),
            initial=len(run.units) - len(todo),
            desc="study",
            unit="unit",
            disable=not run.progress,
            file=sys.stderr,
            dynamic_ncols=True,
            position=0,
            leave=True,
        )
        self.ran = 0
        self.running: dict[str, float] = {}
        self.durations: dict[str, list[float]] = {}  # per unit kind, for the time estimate and the summary

    def unfinished(self) -> list[Unit]:
        return [u for u in self.todo if self.status[u.id] not in ("done", "failed")]

    def show(self) -> None:
        self.overall.set_postfix_str(
            _postfix(self.running, self.by_id, self.durations, self.unfinished()), refresh=True
        )

    def skip_blocked(self) -> None:
        """Units whose dependencies failed cannot run: record why, once."""
        status = self.status
        for u in self.todo:
            if status[u.id] == "pending" and any(status.get(d) == "failed" for d in u.deps):
                failed = next(d for d in u.deps if status.get(d) == "failed")
                self.run.store.mark_failed(u.id, f"skipped: dependency {self.by_id[failed].label} failed")
                status[u.id] = "failed"
                self.overall.update(1)

    def submit_ready(self) -> None:
        """Hand the executor the units whose dependencies are done, while it has room."""
        status, ex, store = self.status, self.ex, self.run.store
        ready = [u for u in self.todo if status[u.id] == "pending" and all(status.get(d) == "done" for d in u.deps)]
        while ready and ex.busy < ex.capacity:
            unit = ready.pop(0)
            deps = _dependency_results(store, self.study_dir, unit)
            store.mark_running(unit.id, ex.name)
            status[unit.id] = "running"
            self.running[unit.id] = time.perf_counter()
            self.run.log.info("start %s (%s)", unit.label, unit.id)
            self.show()
            ex.submit(unit, str(self.study_dir), deps, self.run.settings)

    def collect(self) -> None:
        """Wait for units to return and record each result."""
        store, log = self.run.store, self.run.log
        for unit_id, result in self.ex.wait():
            unit = self.by_id[unit_id]
            self.running.pop(unit_id, None)
            self.ran += 1
            if result.get("ok"):
                store.mark_done(unit_id, result)
                self.status[unit_id] = "done"
                self.durations.setdefault(unit.kind, []).append(result.get("seconds") or 0.0)
                log.info("done %s in %.1fs", unit.label, result.get("seconds") or 0.0)
            else:
                store.mark_failed(
                    unit_id, result.get("error") or "unknown error", result.get("seconds"), result.get("worker")
                )
                self.status[unit_id] = "failed"
                log.error("failed %s: %s\n%s", unit.label, result.get("error"), result.get("traceback", ""))
                tqdm.write(f"stitchkit: unit {unit.label} failed: {result.get('error')}", file=sys.stderr)
            self.overall.update(1)
            self.show()
