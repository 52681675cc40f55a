"""Run one small study with two source trees and compare every unit's stored metrics.

Used to show that a refactoring changes no result: the same unit ids (hashes of each unit's
configuration) and, unit by unit, the same metrics, to the last bit.

    python scripts/compare_study_metrics.py BEFORE_SRC AFTER_SRC [--config tests/configs/tiny_study.toml]

BEFORE_SRC is the ``src`` folder of a checkout of the older commit (``git worktree add --detach DIR REV``).
Wall times (the metrics named ``seconds…``) are left out: they differ from run to run.
Exits 0 when every unit matches, 1 otherwise, printing each difference.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STORE_FILE = "study.sqlite"  # the study folder's database (stitchkit.study.store)


def wall_times(metrics: dict) -> list[str]:
    return [name for name in metrics if name.startswith("seconds")]


def run_study(src: Path, config: Path, out: Path) -> None:
    env = dict(os.environ, PYTHONPATH=str(src), OMP_NUM_THREADS="1")
    subprocess.run([sys.executable, "-m", "stitchkit", "study", str(config), "--out", str(out)], env=env, check=True)


def stored_units(out: Path) -> dict[str, dict]:
    with sqlite3.connect(f"file:{out / STORE_FILE}?mode=ro", uri=True) as db:
        rows = db.execute("SELECT id, kind, label, status, config, metrics FROM units").fetchall()
    return {
        r[0]: {
            "kind": r[1],
            "label": r[2],
            "status": r[3],
            "config": json.loads(r[4]),
            "metrics": json.loads(r[5] or "{}"),
        }
        for r in rows
    }


def differences(before: dict[str, dict], after: dict[str, dict]) -> list[str]:
    out = [f"unit only before: {before[u]['label']} ({u})" for u in sorted(set(before) - set(after))]
    out += [f"unit only after: {after[u]['label']} ({u})" for u in sorted(set(after) - set(before))]
    for unit in sorted(set(before) & set(after)):
        a, b = before[unit], after[unit]
        for key in ("kind", "label", "status", "config"):
            if a[key] != b[key]:
                out.append(f"{a['label']}: {key} differs: {a[key]!r} != {b[key]!r}")
        for name in sorted(
            (set(a["metrics"]) | set(b["metrics"])) - set(wall_times(a["metrics"]) + wall_times(b["metrics"]))
        ):
            if a["metrics"].get(name, "<missing>") != b["metrics"].get(name, "<missing>"):
                out.append(
                    f"{a['label']}: metric {name}: {a['metrics'].get(name, '<missing>')!r} != "
                    f"{b['metrics'].get(name, '<missing>')!r}"
                )
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before_src", type=Path)
    parser.add_argument("after_src", type=Path, nargs="?", default=ROOT / "src")
    parser.add_argument("--config", type=Path, default=ROOT / "tests" / "configs" / "tiny_study.toml")
    parser.add_argument("--keep", type=Path, help="folder to keep both study folders in (default: a temporary one)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = args.keep or Path(tmp)
        outs = {}
        for side, src in (("before", args.before_src), ("after", args.after_src)):
            outs[side] = base / side
            run_study(src.resolve(), args.config.resolve(), outs[side])
        before, after = stored_units(outs["before"]), stored_units(outs["after"])
    problems = differences(before, after)
    n_metrics = sum(len(set(u["metrics"]) - set(wall_times(u["metrics"]))) for u in after.values())
    for line in problems:
        print(line)
    print(
        f"{len(before)} units before, {len(after)} after, {n_metrics} metrics compared: "
        + ("identical" if not problems else f"{len(problems)} differences")
    )
    return 0 if not problems else 1


if __name__ == "__main__":
    sys.exit(main())
