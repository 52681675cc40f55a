"""Units of work: what a study is made of, how each is identified, and how one is executed.

A :class:`Unit` is a kind (``train``, ``stitch``, ``similarity``, …), the parameters that determine
its result, and the ids of the units it needs, in the order of their roles (front network, end
network, …). Its id is a hash of exactly those three things, so a unit that was finished once is
recognised in every later run of the study, wherever the study folder or the checkout lies (a given
network is identified by its content hash, not its path), and changing anything that affects a result
(an epoch count, a seed, a dependency, which network is the front) makes a new unit. The code version is
recorded with every result but is not part of the id: upgrading stitchkit does not silently
invalidate a finished study (``stitchkit study --rerun KIND`` recomputes a kind on purpose).

:func:`execute_unit` runs one unit anywhere (in the driver, a pool process or a Ray worker): it writes
the unit's artifacts into a temporary folder, renames it to ``units/<kind>-<id>`` when the unit has
finished, and returns a plain dict for the driver to store. Nothing half-written is ever left under
a final name.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import __version__
from ..declarations import Declaration, DeclarationError, catalogue, declare, implementation, names
from ..errors import StitchkitError, unknown_name
from ..utils.run_options import RunOptions
from ..utils.write_errors import disk_full_cause
from .params import identity

#: written into a unit's folder when it finishes: the unit and its whole result (a store can be rebuilt
#: from these, see :mod:`.integrity`)
RESULT_FILE = "unit_result.json"


@dataclass(frozen=True)
class Unit:
    kind: str
    params: dict[str, Any]
    deps: tuple[str, ...] = ()
    label: str = ""

    @property
    def id(self) -> str:
        """The hash of the kind, the parameters that determine the result (:func:`~.params.identity`:
        not where an input file happens to lie) and the dependencies IN ORDER: their position is
        their role (front, end, …), so the stitch A → B and the stitch B → A are different units."""
        blob = json.dumps(
            {"kind": self.kind, "params": identity(self.kind, self.params), "deps": list(self.deps)},
            sort_keys=True,
            default=str,
        )
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    @property
    def folder_name(self) -> str:
        return f"{self.kind}-{self.id}"


@dataclass
class UnitContext:
    """What a unit's function gets besides its parameters."""

    study_dir: Path
    out_dir: Path  # write artifacts here (a temporary folder, renamed when the unit finishes)
    deps: dict[str, dict[str, Any]]  # dependency id -> {"kind", "params", "metrics", "artifacts"}
    settings: dict[str, Any] = field(default_factory=dict)  # device, data_root, progress, workers

    @property
    def run(self) -> RunOptions:
        """How the unit runs (the study's device, data root, workers and progress bars; never verbose)."""
        s = self.settings
        return RunOptions(
            data_root=s.get("data_root"),
            device=s.get("device", "auto"),
            workers=s.get("workers", 0),
            progress=s.get("progress", False),
            verbose=False,
        )

    @property
    def data_path(self) -> str:
        """How a unit's batches are made (``study.data_path``)."""
        return self.settings.get("data_path", "auto")

    @property
    def group_size(self) -> int | None:
        """Stitches per end-suffix pass of a grouped grid (``study.group_size``; None: automatic)."""
        return self.settings.get("group_size")

    def dep(self, kind: str) -> list[dict[str, Any]]:
        """The dependencies of one kind, in the order the unit listed them."""
        return [d for d in self.deps.values() if d["kind"] == kind]

    @property
    def cache_dir(self) -> Path:
        return self.study_dir / "cache"


@dataclass(frozen=True)
class UnitKind:
    name: str
    run: Callable[[Unit, UnitContext], dict[str, Any]]
    description: str
    uses_gpu: bool = True


#: a unit kind's declaration metadata (``@declare("unit_kind", KIND, **metadata)`` at its run function in
#: :mod:`stitchkit.study.unit_kinds`): ``help`` says what it does, ``uses_gpu`` whether it wants a GPU,
#: ``record`` names its parameter record in its module, ``network`` marks the kinds that give the study a
#: network, ``planner`` names its module's function that plans its units (``plan(ctx, planned)``,
#: :mod:`.planning`), ``config_section`` the section of the study config it declares (its module's
#: ``SECTION``, :mod:`.config`; ``config_order`` places it in the schema, default ``order``), ``title``
#: and ``intro`` head its section of the report (``intro`` may name a finding threshold,
#: ``{detector_sanity:g}``), ``order`` places that section and its planning, and ``plan_order`` places its
#: planning elsewhere (a kind whose units later kinds depend on)
KIND_METADATA = (
    "help",
    "uses_gpu",
    "record",
    "network",
    "planner",
    "config_section",
    "config_order",
    "title",
    "intro",
    "order",
    "plan_order",
)


def register_unit_kind(name: str, description: str, uses_gpu: bool = True):
    """Decorator: ``fn(unit, ctx) -> {"metrics": …, "artifacts": {name: path in ctx.out_dir}, …}``, declared
    as the unit kind ``name`` from where it runs (a test's or a notebook's kind; the built-in kinds are
    declared in :mod:`stitchkit.study.unit_kinds`)."""
    return declare("unit_kind", name, help=description, uses_gpu=uses_gpu)


def unit_kind_declaration(name: str) -> Declaration:
    """A unit kind's declaration, its metadata checked (an unknown name lists the known ones)."""
    known = catalogue("unit_kind")
    if name not in known:
        raise unknown_name("unit kind", name, list(known))
    decl = known[name]
    unknown = sorted(set(decl.meta) - set(KIND_METADATA))
    if unknown:
        raise DeclarationError(
            f"unit kind {name!r} ({decl.source}) has no metadata {unknown[0]!r}; "
            f"its metadata: {', '.join(KIND_METADATA)}"
        )
    return decl


def unit_kind(name: str) -> UnitKind:
    """A declared unit kind, its run function imported (an unknown name lists the known ones)."""
    decl = unit_kind_declaration(name)
    return UnitKind(name, implementation("unit_kind", name), decl.get("help", ""), decl.get("uses_gpu", True))


def unit_planner(name: str) -> Callable[..., list[Unit]] | None:
    """The planner a unit kind's declaration names (``planner=``: a function of its module, called as
    ``plan(ctx, planned)``); None for a kind without one (its units are planned by hand)."""
    decl = unit_kind_declaration(name)
    if "planner" not in decl.meta:
        return None
    implementation("unit_kind", name)  # imports its module
    planner = getattr(sys.modules[decl.module], decl.meta["planner"], None)
    if not callable(planner):
        raise DeclarationError(
            f"unit kind {name!r} ({decl.source}) names the planner {decl.meta['planner']!r}, "
            f"which its module {decl.module} does not define"
        )
    return planner


def network_kinds() -> tuple[str, ...]:
    """The unit kinds that give the study its networks (``train``, ``network``)."""
    return names("unit_kind", network=True)


def unit_dir(study_dir: Path, unit: Unit) -> Path:
    return Path(study_dir) / "units" / unit.folder_name


def execute_unit(
    unit: Unit, study_dir: str | Path, deps: dict[str, dict[str, Any]], settings: dict[str, Any]
) -> dict[str, Any]:
    """Run one unit and return ``{"ok", "metrics", "artifacts", "conventions", "model_hashes", "seconds",
    "code_version", "worker", "error"}``. Never raises for a failure of the unit itself: the error is
    returned, so the study records it and goes on."""
    study_dir = Path(study_dir).absolute()  # a relative --out must not leak into the stored artifact paths
    final = unit_dir(study_dir, unit)
    adopted = _adopt_finished(final)
    if adopted is not None:  # finished by a driver that died before recording it
        return adopted
    tmp = final.parent / f".tmp-{unit.folder_name}-{os.getpid()}-{int(time.time() * 1000)}"
    tmp.mkdir(parents=True, exist_ok=True)
    worker = f"{socket.gethostname()}:{os.getpid()}"
    started = time.perf_counter()
    try:
        kind = unit_kind(unit.kind)
        out = kind.run(unit, UnitContext(study_dir, tmp, deps, settings)) or {}
        result = {
            "ok": True,
            "metrics": out.get("metrics", {}),
            "artifacts": {k: _relative_to(Path(v), tmp) for k, v in out.get("artifacts", {}).items()},
            "conventions": out.get("conventions", {}),
            "model_hashes": out.get("model_hashes", {}),
            "seconds": time.perf_counter() - started,
            "code_version": __version__,
            "worker": worker,
            "error": None,
        }
        record = {
            "unit": {"kind": unit.kind, "params": unit.params, "deps": list(unit.deps), "label": unit.label},
            **result,
        }
        (tmp / RESULT_FILE).write_text(json.dumps(record, indent=2, default=str))
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        return result
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise
        message = _failure_message(exc, final)
        return {
            "ok": False,
            "error": message,
            "traceback": traceback.format_exc(),
            "seconds": time.perf_counter() - started,
            "worker": worker,
        }


def _failure_message(exc: BaseException, final: Path) -> str:
    """One line for the store: a StitchkitError's own sentence; a write that ran out of space (disk,
    quota, file-size limit) named as such with where it was writing; otherwise the exception."""
    if isinstance(exc, StitchkitError):
        return str(exc)
    text = "".join(traceback.format_exception_only(type(exc), exc)).strip()
    cause = disk_full_cause(exc, final)
    if cause:
        return f"{cause} ({text}); nothing of this unit was kept: free space and run the study again"
    return text


def _relative_to(path: Path, folder: Path) -> str:
    """An artifact's path inside the unit's folder (stored that way so a study folder can be moved)."""
    path = path.absolute()
    return str(path.relative_to(folder)) if path.is_relative_to(folder) else str(path)


def _adopt_finished(final: Path) -> dict[str, Any] | None:
    marker = final / RESULT_FILE
    if not marker.is_file():
        return None
    try:
        data = json.loads(marker.read_text())
    except ValueError:
        return None
    data.pop("unit", None)
    return data if data.get("ok") else None


def resolve_artifacts(study_dir: Path, unit: Unit | str, kind: str | None, artifacts: dict[str, str]) -> dict[str, str]:
    """Artifact paths of a finished unit, absolute (for the units that depend on it)."""
    folder = unit_dir(study_dir, unit) if isinstance(unit, Unit) else Path(study_dir) / "units" / f"{kind}-{unit}"
    return {k: str(folder / v) for k, v in artifacts.items()}
