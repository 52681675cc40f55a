"""Grown bad-input cases: see tests/grown_sweep.py for the contract (build, CLI_CASES, API_CASES)."""

from __future__ import annotations

from pathlib import Path

from bad_inputs import Case
from grown_sweep import ApiCase


def build(world: Path) -> None:
    """Adds the inputs these cases refer to under ``world``."""


CLI_CASES: list[Case] = []
API_CASES: list[ApiCase] = []
