"""Upgrading a study store written by an earlier stitchkit (:data:`~.store.STORE_VERSION`).

Version 1 hashed a unit's dependencies sorted, so the stitch A → B and the stitch B → A had one id
(one of them was never computed, and a config with the networks in the other order was handed the
stored grid as its own), and it hashed a given network's path, so a study moved to another folder or
clone was no longer recognised. Version 2 hashes the dependencies in order and identifies a network
by its content (:class:`~.units.Unit`).

The upgrade keeps every finished unit whose identity is unambiguous and recomputes the rest:

* the order of a unit's dependencies is read from the ``unit_result.json`` its run wrote (the unit
  that actually ran); without that file, a unit whose dependencies are one network (or none) is
  unambiguous, and one between two different inputs is not;
* a unit is kept only when every dependency is kept (a result computed from an ambiguous input is
  itself ambiguous);
* a kept unit gets its new id, its folder ``units/<kind>-<new id>`` and a result file naming its new
  dependencies; the folders of dropped units are removed, so nothing half-known stays behind.

The new rows are written in one transaction together with the list of folder moves still to do, and
the moves are finished (idempotently) after the commit, also by the next run when one was cut short.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..utils.io import write_text_atomic
from .store import STORE_VERSION, VERSION_KEY, Store, UnitRecord, dump_json
from .units import RESULT_FILE, Unit

#: meta key of the folder moves an upgrade still has to do (present only between its commit and their end)
PENDING_KEY = "upgrade_pending"


def legacy_unit_id(kind: str, params: dict[str, Any], deps: list[str]) -> str:
    """A unit's id as store version 1 computed it (dependencies sorted, every parameter)."""
    blob = json.dumps({"kind": kind, "params": params, "deps": sorted(deps)}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


@dataclass
class Upgrade:
    """What :func:`upgrade_store` did."""

    from_version: int
    kept: int = 0
    dropped: list[str] = field(default_factory=list)  # labels of finished units that run again

    def message(self) -> str:
        again = (
            (
                f"; {len(self.dropped)} finished unit(s) whose inputs' roles the old store cannot tell run again: "
                f"{', '.join(self.dropped)}"
            )
            if self.dropped
            else ""
        )
        return (
            f"upgraded the study store from version {self.from_version} to {STORE_VERSION} (unit ids now keep which "
            f"network is "
            f"the front and which the end, and identify given networks by content): kept {self.kept} finished "
            f"unit(s){again}"
        )


def upgrade_store(study_dir: str | os.PathLike, store: Store) -> Upgrade | None:
    """Upgrade ``store`` (of the study in ``study_dir``) to :data:`STORE_VERSION`; None when it is
    current. Finishes the folder moves of an upgrade that was cut short either way."""
    study_dir = Path(study_dir)
    if store.version >= STORE_VERSION:
        _finish_moves(study_dir, store)
        return None
    records = {r.id: r for r in store.all()}
    new_units = _resolve(study_dir, records)
    upgrade = Upgrade(store.version)
    moves: list[list[Any]] = []
    with store.transaction():
        store.db.execute("DELETE FROM units")
        for old_id, rec in records.items():
            unit = new_units.get(old_id)
            if unit is None:
                if rec.status == "done":
                    upgrade.dropped.append(rec.label)
                moves.append([rec.kind, old_id, None, None])
                continue
            if store.db.execute("SELECT 1 FROM units WHERE id = ?", (unit.id,)).fetchone():  # two old rows of one unit
                moves.append([rec.kind, old_id, None, None])
                continue
            _insert(store, unit, rec)
            upgrade.kept += 1
            moves.append([rec.kind, old_id, unit.id, list(unit.deps)])
        plan = store.get_meta("plan")
        if plan is not None:
            store.set_meta("plan", [new_units[i].id for i in plan if i in new_units])
        store.set_meta(PENDING_KEY, moves)
        store.set_meta(VERSION_KEY, STORE_VERSION)
    _finish_moves(study_dir, store)
    return upgrade


def _resolve(study_dir: Path, records: dict[str, UnitRecord]) -> dict[str, Unit]:
    """old id → the unit with its new identity, for every finished unit that keeps one."""
    memo: dict[str, Unit | None] = {}

    def resolve(old_id: str, seen: frozenset[str] = frozenset()) -> Unit | None:
        if old_id in memo:
            return memo[old_id]
        rec = records.get(old_id)
        memo[old_id] = None
        if rec is None or rec.status != "done" or old_id in seen:
            return None
        deps = _ordered_deps(study_dir, rec)
        if deps is None or legacy_unit_id(rec.kind, rec.config, deps) != old_id:
            return None
        new_deps = [resolve(d, seen | {old_id}) for d in deps]
        if any(d is None for d in new_deps):
            return None
        memo[old_id] = Unit(rec.kind, rec.config, tuple(d.id for d in new_deps), rec.label)
        return memo[old_id]

    for old_id in records:
        resolve(old_id)
    return {k: v for k, v in memo.items() if v is not None}


def _ordered_deps(study_dir: Path, rec: UnitRecord) -> list[str] | None:
    """The dependencies of a finished unit in the order it ran with, or None when nobody can tell."""
    try:
        ran = json.loads((_folder(study_dir, rec.kind, rec.id) / RESULT_FILE).read_text())["unit"]["deps"]
    except (OSError, ValueError, KeyError, TypeError):
        ran = None
    if isinstance(ran, list) and sorted(ran) == sorted(rec.deps):
        return list(ran)
    return list(rec.deps) if len(set(rec.deps)) <= 1 else None


def _insert(store: Store, unit: Unit, rec: UnitRecord) -> None:
    store.db.execute(
        "INSERT INTO units(id, kind, label, config, deps, status, conventions, model_hashes, code_version, seed, "
        "metrics, artifacts, error, "
        "attempts, started, finished, seconds, worker) VALUES (?, ?, ?, ?, ?, 'done', ?, ?, ?, ?, ?, ?, NULL, ?, ?, "
        "?, ?, ?)",
        (
            unit.id,
            unit.kind,
            rec.label,
            dump_json(unit.params),
            dump_json(list(unit.deps)),
            dump_json(rec.conventions),
            dump_json(rec.model_hashes),
            rec.code_version,
            rec.seed,
            dump_json(rec.metrics),
            dump_json(rec.artifacts),
            rec.attempts,
            rec.started,
            rec.finished,
            rec.seconds,
            rec.worker,
        ),
    )


def _folder(study_dir: Path, kind: str, unit_id: str) -> Path:
    return study_dir / "units" / f"{kind}-{unit_id}"


def _finish_moves(study_dir: Path, store: Store) -> None:
    """Give each kept unit its new folder and result file, remove the folders of dropped units and
    the stitch caches of old ids; safe to repeat after an interruption."""
    moves = store.get_meta(PENDING_KEY)
    if not moves:
        return
    for kind, old_id, new_id, new_deps in moves:
        old = _folder(study_dir, kind, old_id)
        shutil.rmtree(study_dir / "cache" / "stitch" / old_id, ignore_errors=True)
        if new_id is None or new_id == old_id:
            if new_id is None:
                shutil.rmtree(old, ignore_errors=True)
            continue
        new = _folder(study_dir, kind, new_id)
        if old.is_dir() and not new.exists():
            _rewrite_result(old, new_deps)
            os.replace(old, new)
        elif old.is_dir():
            shutil.rmtree(old, ignore_errors=True)
    store.db.execute("DELETE FROM meta WHERE key = ?", (PENDING_KEY,))


def _rewrite_result(folder: Path, new_deps: list[str]) -> None:
    """The unit's result file names its dependencies by their new ids (a rebuilt store reads it)."""
    marker = folder / RESULT_FILE
    try:
        data = json.loads(marker.read_text())
    except (OSError, ValueError):
        return
    data["unit"]["deps"] = new_deps
    write_text_atomic(marker, json.dumps(data, indent=2, default=str))
