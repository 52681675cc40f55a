"""Coverage of stitchkit's 95% percentile bootstrap intervals on synthetic data with a known truth
(issue 19, item 6): a Bernoulli accuracy, a residual-like ratio of sums, and the AUROC of two Gaussian
score samples, unpaired and paired (the scenarios live in tests/coverage_support.py, which
tests/test_uncertainty_stats.py runs at 200 repetitions and B = 500).

    python benchmarks/coverage_check.py                          # 200 repetitions, B = 500
    python benchmarks/coverage_check.py --repetitions 1000 --resamples 1000

A correct 95% interval covers the truth in 95% of repetitions, ± 1.96·√(0.95·0.05/R) (± 3.0 points
at R = 200, ± 1.4 at R = 1000).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from coverage_support import SCENARIOS  # noqa: E402  (tests/ is put on the path above)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repetitions", type=int, default=200)
    parser.add_argument("--resamples", type=int, default=500)
    parser.add_argument("--level", type=float, default=0.95)
    args = parser.parse_args()
    sd = math.sqrt(args.level * (1 - args.level) / args.repetitions)
    print(f"nominal {args.level:.3f}, binomial sd of the coverage {sd:.4f} ({args.repetitions} repetitions)")
    for scenario in SCENARIOS:
        start = time.perf_counter()
        result = scenario(repetitions=args.repetitions, resamples=args.resamples, level=args.level)
        print(f"{result.line()}  ({time.perf_counter() - start:.1f} s)")


if __name__ == "__main__":
    main()
