"""What the sweeps (``sweep_demo.py``, ``sweep_detectors.py``) share: settings given as ``key=value,...``,
results appended to a JSON-lines file as each setting finishes, and the Markdown table of all of them.
Importing or running it does nothing by itself."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path


def parse_setting(text: str, defaults: dict) -> dict:
    """``key=value,...`` over ``defaults`` (each value converted to its default's type)."""
    setting = dict(defaults)
    for part in filter(None, text.split(",")):
        key, value = part.split("=", 1)
        if key not in defaults:
            raise SystemExit(f"unknown setting key {key!r}; keys: {', '.join(defaults)}")
        setting[key] = float(value) if isinstance(defaults[key], float) else type(defaults[key])(value)
    return setting


def sweep_parser(doc: str, out: str) -> argparse.ArgumentParser:
    """The options every sweep has: --setting (repeatable), --out and --table."""
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--setting", action="append", default=[], help="key=value,... (repeatable)")
    p.add_argument("--out", default=out, help="results, one JSON line per setting (appended)")
    p.add_argument("--table", action="store_true", help="print the table of everything in --out and stop")
    return p


def run_sweep(
    args: argparse.Namespace, defaults: dict, measure: Callable[[dict], dict], table: Callable[[list[dict]], str]
) -> None:
    """Measure each setting (unless --table), appending its row to --out and printing it; then the table of every row
    there."""
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if not args.table:
        for text in args.setting or [""]:
            row = measure(parse_setting(text, defaults))
            with out.open("a") as f:
                f.write(json.dumps(row) + "\n")
            print(table([row]).splitlines()[2], flush=True)  # its row (under the head and the rule)
    rows = [json.loads(line) for line in out.read_text().splitlines() if line.strip()] if out.exists() else []
    print(table(rows))


if __name__ == "__main__":
    pass
