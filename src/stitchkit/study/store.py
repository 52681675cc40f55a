"""The embedded store of a study: one SQLite database (WAL mode) in the study folder.

Every unit of work is one row: its id (a hash of everything that determines its result), kind, full
configuration, conventions, content hashes of the networks involved, code version, seed, metrics,
artifact paths, timings, status and error. Only the driver writes (workers return their results to
it), so there is one writer; WAL mode lets ``stitchkit study --status`` and the report read while a
study runs. Each state change is its own transaction, so a killed study loses at most the units that
were running, never a finished one.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS units (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    label TEXT NOT NULL,
    config TEXT NOT NULL,
    deps TEXT NOT NULL,
    status TEXT NOT NULL,          -- pending | running | done | failed
    conventions TEXT,
    model_hashes TEXT,
    code_version TEXT,
    seed INTEGER,
    metrics TEXT,
    artifacts TEXT,
    error TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    started REAL,
    finished REAL,
    seconds REAL,
    worker TEXT
);
CREATE INDEX IF NOT EXISTS units_kind ON units(kind);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""

STATUSES = ("pending", "running", "done", "failed")

#: the version of the store's contents, in ``meta`` under :data:`VERSION_KEY` (a store without one is
#: version 1). 2: unit ids keep the order (role) of their dependencies and identify a given network by
#: content, not path; :mod:`.migrate` upgrades a version-1 store.
STORE_VERSION = 2
VERSION_KEY = "store_version"


@dataclass
class UnitRecord:
    """One row of the store, decoded."""

    id: str
    kind: str
    label: str
    config: dict[str, Any]
    deps: list[str]
    status: str
    conventions: dict[str, Any] = field(default_factory=dict)
    model_hashes: dict[str, Any] = field(default_factory=dict)
    code_version: str | None = None
    seed: int | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    artifacts: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    attempts: int = 0
    started: float | None = None
    finished: float | None = None
    seconds: float | None = None
    worker: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def dump_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


class Store:
    """The study database. Use as a context manager or call :meth:`close`."""

    def __init__(self, path: str | Path, readonly: bool = False):
        """``readonly``: only read an existing store (``--status``, the report): nothing is created or
        set up. Otherwise the file and its tables are created when missing."""
        self.path = Path(path)
        if readonly:
            if not self.path.is_file():
                raise FileNotFoundError(self.path)
            self.db = sqlite3.connect(self.path, timeout=60, isolation_level=None)
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.path, timeout=60, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(SCHEMA)
        if self.get_meta(VERSION_KEY) is None and self.db.execute("SELECT 1 FROM units LIMIT 1").fetchone() is None:
            self.set_meta(VERSION_KEY, STORE_VERSION)  # a new store (one with units and no version is an older one)

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- meta --------------------------------------------------------------------------------
    def set_meta(self, key: str, value: Any) -> None:
        self.db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, dump_json(value)))

    def get_meta(self, key: str, default: Any = None) -> Any:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else default

    @property
    def version(self) -> int:
        return int(self.get_meta(VERSION_KEY, 1))

    # -- units -------------------------------------------------------------------------------
    def add_planned(self, units: Iterable[Any]) -> int:
        """Insert planned units that are not in the store yet; returns how many were new. A unit
        already stored takes the current plan's label (labels name, they do not identify)."""
        new = 0
        with self.transaction():
            for u in units:
                known = self.db.execute("SELECT 1 FROM units WHERE id = ?", (u.id,)).fetchone()
                if known:
                    self.db.execute("UPDATE units SET label = ? WHERE id = ?", (u.label, u.id))
                    continue
                self.db.execute(
                    "INSERT INTO units(id, kind, label, config, deps, status, seed) VALUES (?, ?, ?, ?, ?, 'pending', "
                    "?)",
                    (u.id, u.kind, u.label, dump_json(u.params), dump_json(list(u.deps)), u.params.get("seed")),
                )
                new += 1
        return new

    def reset_interrupted(self) -> int:
        """Units left 'running' by a killed driver go back to 'pending'."""
        cur = self.db.execute("UPDATE units SET status = 'pending', worker = NULL WHERE status = 'running'")
        return cur.rowcount

    def mark_running(self, unit_id: str, worker: str) -> None:
        self.db.execute(
            "UPDATE units SET status = 'running', started = ?, worker = ?, attempts = attempts + 1, error = NULL "
            "WHERE id = ?",
            (time.time(), worker, unit_id),
        )

    def mark_done(self, unit_id: str, result: dict[str, Any]) -> None:
        """A finished unit; ``worker`` becomes where it ran (``host:pid``, on Ray ``host:pid node=<id>``)
        when the result says, in place of the executor's name set by :meth:`mark_running`."""
        self.db.execute(
            "UPDATE units SET status = 'done', finished = ?, seconds = ?, metrics = ?, artifacts = ?, conventions = ?, "
            "model_hashes = ?, code_version = ?, error = NULL, worker = COALESCE(?, worker) WHERE id = ?",
            (
                time.time(),
                result.get("seconds"),
                dump_json(result.get("metrics", {})),
                dump_json(result.get("artifacts", {})),
                dump_json(result.get("conventions", {})),
                dump_json(result.get("model_hashes", {})),
                result.get("code_version"),
                result.get("worker"),
                unit_id,
            ),
        )

    def mark_failed(self, unit_id: str, error: str, seconds: float | None = None, worker: str | None = None) -> None:
        self.db.execute(
            "UPDATE units SET status = 'failed', finished = ?, seconds = ?, error = ?, worker = COALESCE(?, worker) "
            "WHERE id = ?",
            (time.time(), seconds, error, worker, unit_id),
        )

    def get(self, unit_id: str) -> UnitRecord | None:
        row = self.db.execute("SELECT * FROM units WHERE id = ?", (unit_id,)).fetchone()
        return self._decode(row) if row else None

    def all(self, kind: str | None = None, status: str | None = None) -> list[UnitRecord]:
        query, args = "SELECT * FROM units", []
        clauses = []
        if kind:
            clauses.append("kind = ?")
            args.append(kind)
        if status:
            clauses.append("status = ?")
            args.append(status)
        if clauses:
            query += " WHERE " + " AND ".join(clauses)
        return [self._decode(r) for r in self.db.execute(query + " ORDER BY rowid", args).fetchall()]

    def counts(self) -> dict[str, int]:
        out = {s: 0 for s in STATUSES}
        for status, n in self.db.execute("SELECT status, COUNT(*) FROM units GROUP BY status"):
            out[status] = n
        return out

    # -- internals -----------------------------------------------------------------------------
    def transaction(self):
        db = self.db

        class _Tx:
            def __enter__(self_inner):
                db.execute("BEGIN IMMEDIATE")

            def __exit__(self_inner, exc_type, *rest):
                db.execute("ROLLBACK" if exc_type else "COMMIT")

        return _Tx()

    def _decode(self, row: tuple) -> UnitRecord:
        cols = [d[0] for d in self.db.execute("SELECT * FROM units LIMIT 0").description]
        raw = dict(zip(cols, row))
        for key in ("config", "deps", "conventions", "model_hashes", "metrics", "artifacts"):
            raw[key] = json.loads(raw[key]) if raw[key] else ({} if key != "deps" else [])
        return UnitRecord(**raw)
