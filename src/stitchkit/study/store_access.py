"""Access to a study's store: one driver per study folder at a time (a lock file), the store checked
(and rebuilt from the finished units' result files when damaged) and upgraded before anything uses it,
and the store opened for reading by ``--status``, ``--findings`` and the report.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import sys
import time
from pathlib import Path

from ..errors import StitchkitError
from ..utils.progress import tqdm
from .integrity import rebuild_store, store_problem
from .migrate import upgrade_store
from .store import STORE_VERSION, Store
from .units import Unit

STORE_NAME = "study.sqlite"
LOCK_NAME = ".driver.lock"


def open_checked_store(study_dir: Path, units: list[Unit], log: logging.Logger) -> None:
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


def upgrade_if_earlier(study_dir: Path, store: Store, log: logging.Logger | None = None) -> None:
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
        with exclusive(Path(study_dir)), Store(path) as store:
            upgrade_if_earlier(Path(study_dir), store)
    with Store(path, readonly=True) as store:
        yield store


@contextlib.contextmanager
def exclusive(study_dir: Path, wait: float = 2.0):
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
