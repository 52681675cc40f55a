"""What uncertainty costs a study: the demo (examples/demo.toml) run in one go with every interval,
permutation null and verdict robustness switched off, then the same study again twice on its finished
folder, once still off and once with the ``[uncertainty]`` defaults.

The second pair differs only in what uncertainty adds: the similarity units (whose identity includes
their bootstrap and permutations, so they run again whole, a conservative count), the sensitivity and
specificity tests (both second runs recompute them: with the defaults they also resample their indices
for C6's robustness, in their own pass), the intervals the
report computes from the units' stored per-sample statistics, and the verdicts' robustness. No stitch,
OOD or probe unit runs again (the script checks it). It prints each time and the ratio

    added = (second run with defaults) − (second run without), as a share of the first run.

    python benchmarks/bench_uncertainty.py                 # the demo; ~9 min on 2 cores
    python benchmarks/bench_uncertainty.py --config C.toml --out runs/bench-unc
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TESTS = ("sensitivity", "specificity")
OFF = "\n[uncertainty]\nbootstrap = 0\nsimilarity_bootstrap = 0\npermutations = 0\nverdict_resamples = 0\n"


def _study(config: Path, out: Path, rerun: tuple[str, ...] = ()) -> tuple[float, dict]:
    """Run ``stitchkit study`` as a user would (report included); its wall time and summary line."""
    started = time.perf_counter()
    again = [a for kind in rerun for a in ("--rerun", kind)]
    done = subprocess.run(
        [sys.executable, "-m", "stitchkit", "study", str(config), "--out", str(out), "--no-progress", "--json", *again],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"the study failed:\n{done.stderr[-3000:]}")
    summary = next((json.loads(line) for line in done.stdout.splitlines() if line.startswith('{"study_dir"')), {})
    return seconds, summary


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default=str(REPO / "examples" / "demo.toml"))
    p.add_argument("--out", default=str(REPO / "runs" / "bench-uncertainty"))
    args = p.parse_args()
    source = Path(args.config).read_text()
    if re.search(r"^\[uncertainty\]", source, re.M):
        raise SystemExit("give a config without an [uncertainty] section: the script sets it")
    out = Path(args.out)
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    off, on = out / "off.toml", out / "defaults.toml"
    off.write_text(source + OFF)
    on.write_text(source)
    study = out / "study"
    first, summary = _study(off, study)
    # The tests' resamples of their indices (C6's robustness) are taken in the tests' own pass, which switching
    # uncertainty on does not repeat by itself: both second runs recompute the tests, so the difference is their share.
    again_off, rerun_off = _study(off, study, TESTS)
    again_on, rerun_on = _study(on, study, TESTS)
    reran = rerun_on.get("ran", 0)
    kinds = sorted(rerun_on.get("seconds_by_kind", {}))
    if any(k in kinds for k in ("stitch", "ood", "probes", "detectors", "train", "network")):
        raise SystemExit(f"switching uncertainty on re-ran units it must not: {kinds}")
    added = again_on - again_off
    print(f"first run, uncertainty off: {first:.1f} s ({summary.get('ran')} units)")
    print(f"again, off:                 {again_off:.1f} s ({rerun_off.get('ran')} units)")
    print(f"again, defaults:            {again_on:.1f} s ({reran} units re-run: {', '.join(kinds) or 'none'})")
    print(f"uncertainty adds {added:.1f} s = {added / first:.1%} of the study's time (target: at most 10%)")


if __name__ == "__main__":
    main()
