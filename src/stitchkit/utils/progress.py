"""What a long run shows while it works: the one progress bar and the one verbose printer.

:data:`tqdm` is the bar class every module uses: tqdm's automatic choice (the notebook widget in a
Jupyter kernel) where ipywidgets is installed, else tqdm's text bar. ``tqdm.auto`` alone would, in a
kernel without ipywidgets, warn "IProgress not found" on import and draw nothing better.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable, Iterable

if importlib.util.find_spec("ipywidgets") is not None:
    from tqdm.auto import tqdm
else:
    from tqdm.std import tqdm


def progress_bar(iterable: Iterable, desc: str, enabled: bool, **kw):
    """tqdm on stderr; redraws at most every few seconds when stderr is a log file, not a terminal."""
    interactive = sys.stderr.isatty()
    return tqdm(
        iterable,
        desc=desc,
        leave=False,
        disable=not enabled,
        file=sys.stderr,
        dynamic_ncols=True,
        mininterval=0.1 if interactive else 10.0,
        **kw,
    )


def printer(verbose: bool) -> Callable[[str], None]:
    """``say(line)``: prints (flushed) when ``verbose``, else does nothing."""
    return _say if verbose else _quiet


def _say(line: str) -> None:
    print(line, flush=True)


def _quiet(line: str) -> None:
    pass


__all__ = ["printer", "progress_bar", "tqdm"]
