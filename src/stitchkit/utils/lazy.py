"""Names a package exports but imports only on first use (a module ``__getattr__``, PEP 562).

A package whose light parts serve the command line's ``--help`` or a catalogue keeps its heavy parts
(torch, the architectures) out of ``import``: it lists each lazily exported name with the submodule
that defines it, and :func:`lazy_exports` gives it the module ``__getattr__`` and ``__dir__``::

    __getattr__, __dir__ = lazy_exports(__name__, {"stitch_grid": "grid", "Stitcher": "stitcher"})
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(package: str, table: Mapping[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The module ``__getattr__`` and ``__dir__`` of ``package`` (its ``__name__``): each name of
    ``table`` (name -> submodule, relative to the package) is imported from its submodule on first use."""
    table = dict(table)

    def __getattr__(name: str) -> Any:
        if name in table:
            return getattr(importlib.import_module(f".{table[name]}", package), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(table))

    return __getattr__, __dir__


__all__ = ["lazy_exports"]
