"""``torch.compile`` where asked, with the eager module as the fallback when compiling fails."""

from __future__ import annotations

import sys
from typing import Any

import torch
from torch import nn


class CompiledOrEager:
    """Calls a ``torch.compile``\\ d version of ``module``; if compiling or running it raises (no
    compiler, an unsupported op, a backend error), warns once and uses ``module`` itself from then on.
    The wrapper holds no parameters of its own: ``module``'s stay where they are."""

    def __init__(self, module: nn.Module):
        self.module = module
        self.compiled: Any = None
        try:
            self.compiled = torch.compile(module)
        except Exception as exc:  # torch.compile itself can refuse (e.g. an unsupported Python version)
            self._fall_back(exc)

    def _fall_back(self, exc: BaseException) -> None:
        print(
            f"stitchkit: note: torch.compile failed ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}); "
            "running eagerly",
            file=sys.stderr,
        )
        self.compiled = None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.compiled is not None:
            try:
                return self.compiled(*args, **kwargs)
            except Exception as exc:  # compilation happens at the first call: any failure means "use eager"
                self._fall_back(exc)
        return self.module(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.module, name)


def maybe_compile(module: nn.Module, enabled: bool) -> nn.Module | CompiledOrEager:
    """``module`` unchanged, or wrapped in :class:`CompiledOrEager` when ``enabled``."""
    return CompiledOrEager(module) if enabled else module
