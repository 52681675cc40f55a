"""Is a study's store sound, and rebuilding it when it is not.

``study.sqlite`` can be damaged by things a study cannot prevent: a disk that fills up, a copy cut
short, a file system that lost pages. :func:`store_problem` checks a store before anything uses it —
SQLite's ``PRAGMA integrity_check``, the tables and columns a study needs, and that every row decodes
— and says in one phrase what is wrong. :func:`rebuild_store` then keeps the damaged file under a new
name and builds a fresh store from what every finished unit leaves in its own folder,
``units/<kind>-<id>/unit_result.json`` (its kind, parameters, dependencies and full result), so no
finished unit is computed again; units without one simply run again.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .store import STATUSES, Store, dump_json
from .units import RESULT_FILE, Unit

#: columns of ``units`` that a study reads (a store missing one is not a study store of this version)
REQUIRED_COLUMNS = (
    "id",
    "kind",
    "label",
    "config",
    "deps",
    "status",
    "conventions",
    "model_hashes",
    "code_version",
    "seed",
    "metrics",
    "artifacts",
    "error",
    "attempts",
    "started",
    "finished",
    "seconds",
    "worker",
)
JSON_COLUMNS = ("config", "deps", "conventions", "model_hashes", "metrics", "artifacts")


def store_problem(path: str | os.PathLike) -> str | None:
    """What is wrong with the store at ``path``, in one phrase, or None when it is sound (or absent)."""
    path = Path(path)
    if not path.exists():
        return None
    if not path.is_file():
        return "it is not a file"
    try:
        db = sqlite3.connect(path, timeout=60, isolation_level=None)
    except sqlite3.Error as exc:
        return f"SQLite cannot open it ({exc})"
    try:
        return _problem(db)
    except sqlite3.DatabaseError as exc:  # "file is not a database", "database disk image is malformed", …
        return f"SQLite cannot read it ({exc})"
    finally:
        db.close()


def _problem(db: sqlite3.Connection) -> str | None:
    rows = [r[0] for r in db.execute("PRAGMA integrity_check").fetchall()]
    if rows != ["ok"]:
        more = f" and {len(rows) - 1} more" if len(rows) > 1 else ""
        return f"it fails SQLite's integrity check ({rows[0]}{more})"
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if "units" not in tables or "meta" not in tables:
        return "it has no units table, so it is not a study store (an empty or foreign database)"
    columns = {r[1] for r in db.execute("PRAGMA table_info(units)")}
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        return f"its units table lacks the column(s) {', '.join(missing)}"
    for row in db.execute(f"SELECT id, status, {', '.join(JSON_COLUMNS)} FROM units"):
        unit_id, status = row[0], row[1]
        if status not in STATUSES:
            return f"unit {unit_id!r} has the unknown status {status!r}"
        for column, value in zip(JSON_COLUMNS, row[2:]):
            if value is None:
                continue
            try:
                json.loads(value)
            except (ValueError, TypeError):
                return f"the {column} of unit {unit_id!r} is not readable JSON"
    for (value,) in db.execute("SELECT value FROM meta"):
        try:
            json.loads(value)
        except (ValueError, TypeError):
            return "its meta table holds unreadable JSON"
    return None


@dataclass
class Rebuilt:
    """What :func:`rebuild_store` did."""

    kept_as: Path
    units: int  # finished units recovered from their unit_result.json
    unreadable: int  # unit folders whose unit_result.json could not be used (they run again)

    def message(self, study_dir: Path, problem: str) -> str:
        skipped = (
            f"; {self.unreadable} unit folder(s) without a usable result will run again" if self.unreadable else ""
        )
        return (
            f"the study store {str(study_dir / 'study.sqlite')!r} is damaged: {problem}. It was kept as "
            f"{self.kept_as.name!r} and "
            f"rebuilt from the unit_result.json files of {self.units} finished unit(s){skipped}"
        )


def rebuild_store(study_dir: str | os.PathLike, store_name: str, planned: Iterable[Unit] = ()) -> Rebuilt:
    """Move the damaged store (and its WAL files) aside, then fill a new one with the finished units
    found under ``units/``. ``planned`` gives the labels of the units of the current config (a unit
    of an earlier config gets the label its result file recorded, or ``"<kind> <id>"``)."""
    study_dir = Path(study_dir)
    path = study_dir / store_name
    stamp = _dt.datetime.now(_dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
    kept = path.with_name(f"{store_name}.damaged-{stamp}")
    for suffix in ("-wal", "-shm"):  # SQLite would otherwise replay the old WAL into the new file
        side = path.with_name(path.name + suffix)
        if side.exists():
            os.replace(side, kept.with_name(kept.name + suffix))
    os.replace(path, kept)
    labels = {u.id: u.label for u in planned}
    recovered, unreadable = [], 0
    units_dir = study_dir / "units"
    for folder in sorted(units_dir.iterdir()) if units_dir.is_dir() else []:
        if not folder.is_dir() or folder.name.startswith("."):
            continue
        record = _recovered(folder, labels)
        if record is None:
            unreadable += 1
        else:
            recovered.append(record)
    with Store(path) as store, store.transaction():
        for r in recovered:
            store.db.execute(
                "INSERT OR REPLACE INTO units(id, kind, label, config, deps, status, conventions, model_hashes, "
                "code_version, seed, metrics, "
                "artifacts, error, attempts, started, finished, seconds, worker) VALUES (?, ?, ?, ?, ?, 'done', ?, ?, "
                "?, ?, ?, ?, NULL, 1, NULL, ?, ?, ?)",
                r,
            )
    return Rebuilt(kept, len(recovered), unreadable)


def _recovered(folder: Path, labels: dict[str, str]) -> tuple[Any, ...] | None:
    """The store row of a finished unit's folder, or None when its result file is missing or unusable."""
    marker = folder / RESULT_FILE
    try:
        data = json.loads(marker.read_text())
        spec = data["unit"]
        unit = Unit(spec["kind"], dict(spec["params"]), tuple(spec["deps"]), spec.get("label", ""))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not data.get("ok") or folder.name != unit.folder_name:  # not a finished unit, or not this folder's
        return None
    label = labels.get(unit.id) or unit.label or f"{unit.kind} {unit.id}"
    return (
        unit.id,
        unit.kind,
        label,
        dump_json(unit.params),
        dump_json(list(unit.deps)),
        dump_json(data.get("conventions", {})),
        dump_json(data.get("model_hashes", {})),
        data.get("code_version"),
        unit.params.get("seed"),
        dump_json(data.get("metrics", {})),
        dump_json(data.get("artifacts", {})),
        marker.stat().st_mtime,
        data.get("seconds"),
        data.get("worker"),
    )
