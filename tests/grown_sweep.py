"""The grown bad-input sweep: a researcher's own data, models, checkpoints and study configs, through
the Python API as well as the command line.

The cases live in one module per area of the code (:data:`MODULES`); each module exports

* ``build(world)``: adds the inputs its cases refer to under ``world`` (the shared inputs of
  ``tests/bad_inputs.py`` are already there);
* ``CLI_CASES``: :class:`bad_inputs.Case` command lines, judged exactly like the original sweep;
* ``API_CASES``: :class:`ApiCase` calls into the library.

Every case names its ``area`` (api, npz, folder, study, checkpoint, cli) and its ``klass``, the kind of
defect it guards against: ``identity`` (a study's units and networks), ``provenance`` (which data a
network meets), ``checks`` (a config checked before any work), ``honest`` (results recorded as what they
are), ``own-data`` (own data read right), ``api`` (clear errors from the Python API).

An :class:`ApiCase` expects either an ``error``: a :class:`~stitchkit.errors.StitchkitError`,
``ValueError`` or ``TypeError`` whose one-line message contains ``needle``; or a ``warning``: the call
succeeds and issues a :class:`~stitchkit.errors.StitchkitWarning` containing ``needle``; or ``ok``: the
call succeeds (an unusual input handled correctly; ``call`` asserts what correct means). Outcomes:
``clear`` / ``warned`` / ``handled`` (as expected), ``unclear`` (the right kind of answer, the wrong
words), ``traceback`` (another exception escaped), ``silent`` (no error or warning where one was due).
Leftovers (files the call left in its output folder after an error) are reported for every case.

``python tests/grown_sweep.py`` prints the counts by class and area, and every case that is not as expected.
"""

from __future__ import annotations

import importlib
import json
import sys
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bad_inputs import Case, Outcome, build_world, run_case

#: the modules holding the grown cases, one per area of the code
MODULES = ("sweep_identity", "sweep_data", "sweep_results", "sweep_study")

CLASSES = ("identity", "provenance", "checks", "honest", "own-data", "api")
AREAS = ("api", "npz", "folder", "study", "checkpoint", "cli")
ERRORS = (ValueError, TypeError)  # StitchkitError too (it is an Exception subclass checked by name below)


@dataclass(frozen=True)
class ApiCase:
    area: str
    klass: str
    name: str
    call: Callable[[Path, Path], Any]  # (world, out): the library call, writing only under out
    needle: str = ""
    expect: str = "error"  # error | warning | ok

    def __post_init__(self) -> None:
        assert self.area in AREAS and self.klass in CLASSES and self.expect in ("error", "warning", "ok"), self

    @property
    def id(self) -> str:
        return f"{self.area}/{self.klass}: {self.name}"


@dataclass
class ApiOutcome:
    kind: str  # clear | warned | handled | unclear | traceback | silent
    message: str
    leftovers: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.kind in ("clear", "warned", "handled") and not self.leftovers


def _is_user_error(exc: BaseException) -> bool:
    from stitchkit.errors import StitchkitError

    return isinstance(exc, (StitchkitError, *ERRORS))


def run_api_case(case: ApiCase, world: Path, out: Path) -> ApiOutcome:
    """Run one API case in this process and classify what happened (module docstring)."""
    from stitchkit.errors import StitchkitWarning

    out.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            case.call(world, out)
        except AssertionError as exc:  # the call returned, but not what a correct answer is
            return ApiOutcome("silent", f"wrong result: {exc}", _left(out))
        except BaseException as exc:  # noqa: BLE001 - an escaped exception is what the sweep looks for
            message = f"{type(exc).__name__}: {exc}"
            if not _is_user_error(exc) or case.expect != "error":
                return ApiOutcome("traceback", message, _left(out))
            one_line = "\n" not in str(exc).strip()
            return ApiOutcome("clear" if case.needle in str(exc) and one_line else "unclear", message, _left(out))
    said = [str(w.message) for w in caught if issubclass(w.category, StitchkitWarning)]
    if case.expect == "warning":
        hit = any(case.needle in s for s in said)
        return ApiOutcome("warned" if hit else ("unclear" if said else "silent"), "; ".join(said))
    if case.expect == "ok":
        return ApiOutcome("handled", "; ".join(said))
    return ApiOutcome("silent", "; ".join(said) or "returned without an error")


def _left(out: Path) -> list[str]:
    return sorted(str(p.relative_to(out)) for p in out.iterdir())


def modules() -> list[Any]:
    return [importlib.import_module(name) for name in MODULES]


def cli_cases() -> list[Case]:
    return [c for m in modules() for c in m.CLI_CASES]


def api_cases() -> list[ApiCase]:
    return [c for m in modules() for c in m.API_CASES]


def build_grown_world(root: Path) -> Path:
    world = build_world(root)
    for module in modules():
        module.build(world)
    return world


def cli_klass(case: Case) -> str:
    """A grown CLI case's class: its area is written ``area/klass`` (``bad_inputs.Case`` has one field)."""
    return case.area.split("/", 1)[1] if "/" in case.area else "checks"


def tally(results: list[tuple[str, str, bool]]) -> dict[str, Any]:
    """Counts by class and area, and how many were not as expected."""
    by = Counter((klass, area) for klass, area, _ in results)
    table = {klass: {area: by[(klass, area)] for area in AREAS if by[(klass, area)]} for klass in CLASSES}
    return {
        "cases": len(results),
        "not as expected": sum(1 for *_, ok in results if not ok),
        "by class and area": table,
    }


def main() -> int:
    import tempfile

    rows: list[tuple[str, str, bool]] = []
    bad: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        world = build_grown_world(Path(tmp) / "world")
        for i, case in enumerate(cli_cases()):
            outcome: Outcome = run_case(case, world, Path(tmp) / "cli" / f"{i:03d}")
            ok = outcome.ok(case)
            rows.append((cli_klass(case), "cli" if "/" not in case.area else case.area.split("/")[0], ok))
            if not ok:
                bad.append(f"{outcome.kind}: {case.id}\n    -> {outcome.err.strip()[:300]} {outcome.leftovers or ''}")
        for i, case in enumerate(api_cases()):
            outcome = run_api_case(case, world, Path(tmp) / "api" / f"{i:03d}")
            rows.append((case.klass, case.area, outcome.ok))
            if not outcome.ok:
                bad.append(f"{outcome.kind}: {case.id}\n    -> {outcome.message[:300]} {outcome.leftovers or ''}")
    print(json.dumps(tally(rows), indent=1))
    print("\n".join(bad))
    return 0


if __name__ == "__main__":
    sys.exit(main())
