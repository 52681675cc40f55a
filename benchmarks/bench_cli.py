"""Benchmark: start-up time of the commands that compute nothing (help and listings).

Each command runs as a fresh ``python -m stitchkit ...`` subprocess, several times; the script prints
the best and the median wall time of each, next to two references measured in the same run: the bare
interpreter (``python -c pass``) and ``python -c 'import torch'``, the cost every command paid while
every import was eager. A second child per command records whether torch ended up in
``sys.modules`` (checked at interpreter exit, so ``--help``'s ``SystemExit`` is covered).

    python benchmarks/bench_cli.py              # 7 repetitions per command
    python benchmarks/bench_cli.py --reps 15
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

COMMANDS = [
    ["--help"],
    ["train", "--help"],
    ["stitch", "--help"],
    ["similarity", "--help"],
    ["detector", "train", "--help"],
    ["study", "--help"],
    ["models"],
    ["datasets"],
]

#: Runs the CLI like ``python -m stitchkit`` and writes, at exit, whether torch was imported.
PROBE = """\
import atexit, runpy, sys
out = sys.argv[1]
atexit.register(lambda: open(out, "w").write(str("torch" in sys.modules)))
sys.argv = ["stitchkit", *sys.argv[2:]]
runpy.run_module("stitchkit", run_name="__main__")
"""


def _env() -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    src = str(Path(__file__).resolve().parents[1] / "src")
    env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def wall_times(argv: list[str], reps: int) -> list[float]:
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        subprocess.run(argv, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        times.append(time.perf_counter() - start)
    return times


def imports_torch(command: list[str]) -> bool:
    with tempfile.TemporaryDirectory() as tmp:
        flag = Path(tmp) / "torch_imported"
        subprocess.run(
            [sys.executable, "-c", PROBE, str(flag), *command],
            env=_env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=False,
        )
        return flag.read_text() == "True"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=7, help="runs per command")
    args = parser.parse_args()

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPU cores, Python {platform.python_version()}, "
        f"load average {load:.1f}; {args.reps} runs per command"
    )
    rows = [
        ("python -c pass", [sys.executable, "-c", "pass"], None),
        ("python -c 'import torch'", [sys.executable, "-c", "import torch"], True),
    ]
    rows += [("stitchkit " + " ".join(c), [sys.executable, "-m", "stitchkit", *c], imports_torch(c)) for c in COMMANDS]
    results = []
    for label, argv, torch_flag in rows:
        times = wall_times(argv, args.reps)
        results.append((label, min(times), statistics.median(times), torch_flag))
    torch_best = results[1][1]
    width = max(len(r[0]) for r in results)
    print(f"{'command':<{width}}  {'best s':>7}  {'median s':>8}  {'/ import torch':>14}  torch imported")
    for label, best, median, torch_flag in results:
        flag = "-" if torch_flag is None else ("yes" if torch_flag else "no")
        print(f"{label:<{width}}  {best:7.3f}  {median:8.3f}  {best / torch_best:14.2f}  {flag}")
    slowest = max(r[2] for r in results[2:])
    print(f"slowest command (median): {slowest:.3f} s; target < 0.5 s: {'met' if slowest < 0.5 else 'NOT met'}")


if __name__ == "__main__":
    main()
