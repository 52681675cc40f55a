"""What a long run shows while it works: the one progress bar and the one verbose printer."""

from __future__ import annotations

import sys
from typing import Callable, Iterable

from tqdm.auto import tqdm


def progress_bar(iterable: Iterable, desc: str, enabled: bool, **kw):
    """tqdm on stderr; redraws at most every few seconds when stderr is a log file, not a terminal."""
    interactive = sys.stderr.isatty()
    return tqdm(iterable, desc=desc, leave=False, disable=not enabled, file=sys.stderr, dynamic_ncols=True,
                mininterval=0.1 if interactive else 10.0, **kw)


def printer(verbose: bool) -> Callable[[str], None]:
    """``say(line)``: prints (flushed) when ``verbose``, else does nothing."""
    return _say if verbose else _quiet


def _say(line: str) -> None:
    print(line, flush=True)


def _quiet(line: str) -> None:
    pass
