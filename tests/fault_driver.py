"""A small study driver for the fault-injection tests (tests/test_faults.py), run as a script:

    python tests/fault_driver.py CONFIG STUDY_DIR EXECUTOR WORKERS PLAN_JSON

It runs the real study runner on a plan of ``fault_step`` units (a DAG given as JSON: name, seconds,
value, deps) instead of the config's plan. Each unit appends ``start``/``end`` lines with its pid to
the file named by ``$STITCHKIT_FAULT_LOG``, sleeps, and returns ``value + the sum of its
dependencies' values``, so the tests can see which units ran, where, how often, and check the
results. Pool workers are spawned and import this file as ``__mp_main__``, so they know the kind too.
"""

from __future__ import annotations

import json
import os
import sys
import time

# torch and the library the built-in kinds call, loaded before the study starts: kills land in units
import stitchkit.stitching.grid  # noqa: F401
from stitchkit.study import runner
from stitchkit.study.units import Unit, register_unit_kind


def log(event: str, name: str) -> None:
    path = os.environ.get("STITCHKIT_FAULT_LOG")
    if path:
        with open(path, "a") as f:  # one short append per line: lines of concurrent units do not mix
            f.write(f"{event} {name} {os.getpid()} {time.time():.6f}\n")


@register_unit_kind("fault_step", "fault-injection tests: sleep, then add the dependencies' values", uses_gpu=False)
def fault_step(unit, ctx):
    p = unit.params
    log("start", p["name"])
    time.sleep(p["seconds"])
    value = p["value"] + sum(d["metrics"]["value"] for d in ctx.deps.values())
    (ctx.out_dir / "value.txt").write_text(str(value))
    log("end", p["name"])
    return {"metrics": {"value": value}, "artifacts": {"value": ctx.out_dir / "value.txt"}}


def build_units(plan: list[dict]) -> list[Unit]:
    """Units in plan order; deps name earlier units."""
    by_name: dict[str, Unit] = {}
    for step in plan:
        params = {"name": step["name"], "seconds": step["seconds"], "value": step["value"]}
        deps = tuple(by_name[d].id for d in step.get("deps", []))
        by_name[step["name"]] = Unit("fault_step", params, deps, step["name"])
    return list(by_name.values())


def main(argv: list[str]) -> int:
    config, study_dir, executor, workers, plan_json = argv
    units = build_units(json.loads(open(plan_json).read()))
    runner.plan_study = lambda config, study_dir: units
    runner.run_study(config, study_dir, executor=executor, workers=int(workers), progress=False)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
