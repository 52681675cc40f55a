"""Running a study: plan, then execute what is not done yet, in dependency order, recording every
result in the store as it arrives.

Interrupting a study (Ctrl-C, ``kill -9``, a crash) and running it again continues where it stopped:
finished units are never repeated, units that were running are run again, and a unit that fails is
recorded with its error while the units that do not depend on it go on.

Everything is checked before anything is written: the config, the plan, the executor options, the
kinds to rerun, and the store itself (:mod:`.integrity`). A damaged store is kept aside and rebuilt
from the finished units' own result files before the study goes on (:mod:`.store_access`); the units
themselves run in :mod:`.execution`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..declarations import names
from ..errors import StitchkitError
from ..utils.io import check_writable_dir, ensure_writable_dir, write_json_atomic, write_text_atomic
from .config import load_config
from .execution import StudyRun, run_units
from .executors import check_executor
from .plan import plan_study
from .store import Store
from .store_access import (
    LOCK_NAME,
    STORE_NAME,
    driver_running,
    exclusive,
    open_checked_store,
    read_store,
    upgrade_if_earlier,
)
from .units import Unit, unit_kind

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
    ensure_writable_dir(study_dir)
    settings = _settings(config, progress and executor == "inline")
    started = time.perf_counter()
    with exclusive(study_dir):
        log = _logger(study_dir)
        open_checked_store(study_dir, units, log)
        _keep_config(study_dir, config, config_path)
        with Store(study_dir / STORE_NAME) as store:
            upgrade_if_earlier(study_dir, store, log)
            run = StudyRun(
                store=store,
                study_dir=study_dir,
                config=config,
                units=units,
                rerun=rerun,
                executor=executor,
                workers=workers,
                address=address,
                settings=settings,
                progress=progress,
                log=log,
            )
            ran, durations = run_units(run)
            counts = store.counts()
    elapsed = time.perf_counter() - started
    log.info("finished: %s in %.1fs", counts, elapsed)
    return StudySummary(study_dir, counts, elapsed, ran, {kind: sum(v) for kind, v in durations.items()})


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
