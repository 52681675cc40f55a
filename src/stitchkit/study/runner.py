"""Running a study: plan, then execute what is not done yet, in dependency order, recording every
result in the store as it arrives.

Interrupting a study (Ctrl-C, ``kill -9``, a crash) and running it again continues where it stopped:
finished units are never repeated, units that were running are run again, and a unit that fails is
recorded with its error while the units that do not depend on it go on.

Everything is checked before anything is written: the config, the plan, the executor options, the
kinds to rerun, and the store itself (:mod:`.integrity`). A damaged store is kept aside and rebuilt
from the finished units' own result files before the study goes on.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import shutil
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import __version__
from ..declarations import names
from ..errors import StitchkitError
from ..utils.io import check_writable_dir, ensure_writable_dir, write_json_atomic, write_text_atomic
from ..utils.progress import tqdm
from .config import load_config
from .executors import check_executor, make_executor
from .integrity import rebuild_store, store_problem
from .migrate import upgrade_store
from .plan import plan_study
from .store import STORE_VERSION, Store
from .units import RESULT_FILE, Unit, resolve_artifacts, unit_dir, unit_kind

STORE_NAME = "study.sqlite"
LOCK_NAME = ".driver.lock"
#: names the study folder uses itself (a config file of that name is copied under another)
RESERVED_NAMES = ("config.json", STORE_NAME, "study.log", LOCK_NAME, "units", "cache", "report")


@dataclass
class StudySummary:
    study_dir: Path
    counts: dict[str, int]
    seconds: float
    ran: int
    #: wall time of the units that ran now, summed per unit kind
    seconds_by_kind: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "study_dir": str(self.study_dir),
            "counts": self.counts,
            "seconds": self.seconds,
            "ran": self.ran,
            "seconds_by_kind": self.seconds_by_kind,
        }


def default_study_dir(config: dict[str, Any]) -> Path:
    return Path("runs") / f"study-{config['study']['name']}"


def _logger(study_dir: Path) -> logging.Logger:
    log = logging.getLogger(f"stitchkit.study.{study_dir.resolve()}")
    if not log.handlers:
        handler = logging.FileHandler(study_dir / "study.log")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False
    return log


def _settings(config: dict[str, Any], progress: bool) -> dict[str, Any]:
    study, sure = config["study"], config.get("uncertainty") or {}
    # the sensitivity and specificity tests keep their indices' values on the first similarity_bootstrap of the
    # verdicts' resamples (each resample refits every index: the same budget as the similarity units'), for C6's
    # robustness; not part of any unit's identity (a test stored with none of them says so in C6's robustness)
    return {
        "device": study["device"],
        "data_root": study["data_root"],
        "workers": study["workers"],
        "progress": progress,
        "data_path": study["data_path"],
        "group_size": study["group_size"],
        "ranking_resamples": min(sure.get("verdict_resamples", 0), sure.get("similarity_bootstrap", 0)),
        "uncertainty_seed": sure.get("seed", 0),
    }


def prepare_study(
    config_path: str | Path, study_dir: str | Path | None = None
) -> tuple[dict[str, Any], Path, list[Unit]]:
    """Read and plan a study; nothing is created or written (the folder only has to be creatable)."""
    config = load_config(config_path)
    study_dir = Path(study_dir) if study_dir else default_study_dir(config)
    check_writable_dir(study_dir, "study folder")
    units = plan_study(config, study_dir)
    return config, study_dir, units


def check_rerun(kinds: Iterable[str]) -> set[str]:
    """The unit kinds of ``--rerun``, each a known kind."""
    out = set()
    for kind in kinds:
        try:
            unit_kind(kind)
        except StitchkitError:
            raise StitchkitError(
                f"--rerun {kind!r} is not a unit kind; valid kinds: {', '.join(sorted(names('unit_kind')))}"
            ) from None
        out.add(kind)
    return out


def _open_checked_store(study_dir: Path, units: list[Unit], log: logging.Logger) -> None:
    """Check the store before anything uses it; a damaged one is kept aside and rebuilt from the
    finished units' result files (said on stderr and in the log)."""
    path = study_dir / STORE_NAME
    problem = store_problem(path)
    if problem is None:
        return
    rebuilt = rebuild_store(study_dir, STORE_NAME, units)
    message = rebuilt.message(study_dir, problem)
    log.warning(message)
    tqdm.write(f"stitchkit: {message}", file=sys.stderr)


def _upgrade(study_dir: Path, store: Store, log: logging.Logger | None = None) -> None:
    """Bring a store written by an earlier stitchkit to the current version (said on stderr and in the log)."""
    upgraded = upgrade_store(study_dir, store)
    if upgraded is not None:
        message = upgraded.message()
        if log is not None:
            log.warning(message)
        tqdm.write(f"stitchkit: {message}", file=sys.stderr)


@contextlib.contextmanager
def read_store(study_dir: str | Path):
    """The study's store for reading (``--status``, ``--findings``, the report), or None when there is
    none yet: checked first, and upgraded when an earlier stitchkit wrote it (the one write these make;
    refused while a driver runs the study)."""
    path = Path(study_dir) / STORE_NAME
    if not path.exists():
        yield None
        return
    problem = store_problem(path)
    if problem is not None:
        raise StitchkitError(
            f"the study store {str(path)!r} is damaged: {problem}; run the study again (the same command without "
            "--status or --findings) to keep the damaged file aside and rebuild the store from the finished units' "
            "unit_result.json files"
        )
    with Store(path, readonly=True) as store:
        current = store.version >= STORE_VERSION
    if not current:
        if driver_running(study_dir):
            raise StitchkitError(
                f"the study store {str(path)!r} was written by an earlier stitchkit and a driver is running the study "
                f"now; "
                "wait for it to finish, then ask again"
            )
        with _exclusive(Path(study_dir)), Store(path) as store:
            _upgrade(Path(study_dir), store)
    with Store(path, readonly=True) as store:
        yield store


def _keep_config(study_dir: Path, config: dict[str, Any], config_path: str | Path) -> None:
    """The resolved config and a copy of the file the study was run with."""
    write_json_atomic(study_dir / "config.json", config)
    source = Path(config_path)
    name = source.name if source.name not in RESERVED_NAMES else f"study-config-{source.name}"
    copy = study_dir / name
    if source.resolve() != copy.resolve():
        write_text_atomic(copy, source.read_text())


def run_study(
    config_path: str | Path,
    study_dir: str | Path | None = None,
    *,
    executor: str = "inline",
    workers: int = 1,
    address: str | None = None,
    rerun: Iterable[str] = (),
    progress: bool = True,
) -> StudySummary:
    config, study_dir, units = prepare_study(config_path, study_dir)
    check_executor(executor, workers, address)
    rerun = check_rerun(rerun)
    by_id = {u.id: u for u in units}
    ensure_writable_dir(study_dir)
    settings = _settings(config, progress and executor == "inline")
    started = time.perf_counter()
    ran = 0
    with _exclusive(study_dir):
        log = _logger(study_dir)
        _open_checked_store(study_dir, units, log)
        _keep_config(study_dir, config, config_path)
        with Store(study_dir / STORE_NAME) as store:
            _upgrade(study_dir, store, log)
            ran, durations = _run_units(
                store, study_dir, config, units, by_id, rerun, executor, workers, address, settings, progress, log
            )
            counts = store.counts()
    elapsed = time.perf_counter() - started
    log.info("finished: %s in %.1fs", counts, elapsed)
    return StudySummary(study_dir, counts, elapsed, ran, {kind: sum(v) for kind, v in durations.items()})


def _remove_partial_units(study_dir: Path) -> None:
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
    _remove_partial_units(study_dir)
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


def _run_units(
    store: Store,
    study_dir: Path,
    config: dict[str, Any],
    units: list[Unit],
    by_id: dict[str, Unit],
    rerun: set[str],
    executor: str,
    workers: int,
    address: str | None,
    settings: dict[str, Any],
    progress: bool,
    log: logging.Logger,
) -> tuple[int, dict[str, list[float]]]:
    """Record the plan, then run every unit that is not done, in dependency order."""
    study_dir = (
        study_dir.absolute()
    )  # units and their dependencies' artifacts travel to workers whose working folder is not ours
    ran = 0
    status = _record_plan(store, study_dir, config, units, by_id, rerun, log)
    todo = [u for u in units if status[u.id] != "done"]
    log.info(
        "study %s: %d units, %d to run (stitchkit %s, executor %s)",
        config["study"]["name"],
        len(units),
        len(todo),
        __version__,
        executor,
    )
    ex = make_executor(executor, workers=workers, address=address)
    overall = tqdm(
        total=len(units),
        initial=len(units) - len(todo),
        desc="study",
        unit="unit",
        disable=not progress,
        file=sys.stderr,
        dynamic_ncols=True,
        position=0,
        leave=True,
    )
    running: dict[str, float] = {}
    durations: dict[str, list[float]] = {}  # per unit kind, for the time estimate and the summary

    def unfinished() -> list[Unit]:
        return [u for u in todo if status[u.id] not in ("done", "failed")]

    try:
        while True:
            # units whose dependencies failed cannot run: record why, once
            for u in todo:
                if status[u.id] == "pending" and any(status.get(d) == "failed" for d in u.deps):
                    failed = next(d for d in u.deps if status.get(d) == "failed")
                    store.mark_failed(u.id, f"skipped: dependency {by_id[failed].label} failed")
                    status[u.id] = "failed"
                    overall.update(1)
            ready = [u for u in todo if status[u.id] == "pending" and all(status.get(d) == "done" for d in u.deps)]
            while ready and ex.busy < ex.capacity:
                unit = ready.pop(0)
                deps = _dependency_results(store, study_dir, unit)
                store.mark_running(unit.id, ex.name)
                status[unit.id] = "running"
                running[unit.id] = time.perf_counter()
                log.info("start %s (%s)", unit.label, unit.id)
                overall.set_postfix_str(_postfix(running, by_id, durations, unfinished()), refresh=True)
                ex.submit(unit, str(study_dir), deps, settings)
            if ex.busy == 0:
                break
            for unit_id, result in ex.wait():
                unit = by_id[unit_id]
                running.pop(unit_id, None)
                ran += 1
                if result.get("ok"):
                    store.mark_done(unit_id, result)
                    status[unit_id] = "done"
                    durations.setdefault(unit.kind, []).append(result.get("seconds") or 0.0)
                    log.info("done %s in %.1fs", unit.label, result.get("seconds") or 0.0)
                else:
                    store.mark_failed(
                        unit_id, result.get("error") or "unknown error", result.get("seconds"), result.get("worker")
                    )
                    status[unit_id] = "failed"
                    log.error("failed %s: %s\n%s", unit.label, result.get("error"), result.get("traceback", ""))
                    tqdm.write(f"stitchkit: unit {unit.label} failed: {result.get('error')}", file=sys.stderr)
                overall.update(1)
                overall.set_postfix_str(_postfix(running, by_id, durations, unfinished()), refresh=True)
    except KeyboardInterrupt:
        ex.shutdown(cancel=True)
        store.reset_interrupted()
        log.warning("interrupted; finished units are kept")
        overall.close()
        raise
    ex.shutdown()
    _remove_partial_units(study_dir)  # e.g. of an attempt on a Ray node that was lost, run again elsewhere
    overall.close()
    return ran, durations


@contextlib.contextmanager
def _exclusive(study_dir: Path, wait: float = 2.0):
    """One driver per study folder at a time (it is the store's only writer). ``--status`` takes the
    lock shared for an instant to learn whether a driver is alive, so a starting driver retries for
    ``wait`` seconds before it concludes that another one holds it."""
    handle = open(study_dir / LOCK_NAME, "a+")
    deadline = time.monotonic() + wait
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() >= deadline:
                handle.close()
                raise StitchkitError(
                    f"study {str(study_dir)!r} is already being run by another stitchkit process"
                ) from None
            time.sleep(0.05)
    try:
        yield
    finally:
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


def driver_running(study_dir: str | Path) -> bool:
    """Whether a driver holds the study folder's lock now (the lock dies with its process, so a
    driver killed with ``kill -9`` holds none)."""
    path = Path(study_dir) / LOCK_NAME
    if not path.is_file():
        return False
    with open(path) as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
        return False


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


def study_status(config_path: str | Path, study_dir: str | Path | None = None) -> dict[str, Any]:
    """What is done, running, interrupted, failed and left, per unit kind (reads the store, runs and
    writes nothing). A unit recorded as running while no driver holds the folder's lock was
    interrupted: its driver died (it runs again when the study is run again)."""
    config, study_dir, units = prepare_study(config_path, study_dir)
    records = {}
    alive = driver_running(study_dir)
    with read_store(study_dir) as store:
        if store is not None:
            records = {r.id: r for r in store.all()}
    states = ("done", "running", "interrupted", "failed", "pending")
    kinds: dict[str, dict[str, int]] = {}
    failed = []
    for u in units:
        rec = records.get(u.id)
        state = rec.status if rec else "pending"
        if state == "running" and not alive:
            state = "interrupted"
        kinds.setdefault(u.kind, dict.fromkeys(states, 0))[state] += 1
        if state == "failed":
            failed.append({"unit": u.label, "error": rec.error})
    totals = {s: sum(k[s] for k in kinds.values()) for s in states}
    return {
        "study_dir": str(study_dir),
        "units": len(units),
        "by_kind": kinds,
        "totals": totals,
        "failed": failed,
        "driver_running": alive,
    }
