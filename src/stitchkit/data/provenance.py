"""Data provenance: the dataset a network was trained on (as its checkpoint records) against the one it
meets now. Networks trained on Fashion-MNIST run on ``digits`` without an error (same shape, same class
count), and their numbers then describe them on data they never saw; every entry point (``eval``,
``stitch``, ``detector``, ``probe``, the Python API, a study's plan) asks :func:`other_datasets`, and the
commands say so once (:func:`note_provenance`) and record it in the result's conventions.

Torch-free (the study's planner imports it).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from ..errors import StitchkitError, warn
from .base import is_custom
from .catalog import canonical_name

#: the key of the conventions entry a result records when a network met another dataset
CONVENTION = "data_provenance"


def _identity(name: str) -> str:
    """A dataset's name as compared: registered names by their canonical name (aliases, capitals), your
    own data by kind and resolved path (its ``@HxW`` size kept), anything else as written."""
    text = str(name).strip()
    if is_custom(text):
        kind, rest = text.split(":", 1)
        path, at, size = rest.partition("@")
        return f"{kind.strip().lower()}:{Path(path).expanduser().resolve()}{at}{size}"
    try:
        return canonical_name(text)
    except StitchkitError:
        return text


def same_dataset(recorded: str | None, used: str) -> bool:
    """Whether a network that records ``recorded`` (None: records nothing) runs on its own data."""
    return recorded is None or not str(recorded).strip() or _identity(recorded) == _identity(used)


def other_datasets(recorded: Mapping[str, str | None], used: str | None) -> dict[str, str]:
    """The networks (by role, e.g. ``{"front": …, "end": …}``) whose recorded dataset differs from
    ``used`` (None: data without a name, nothing to compare), with what they record."""
    if used is None:
        return {}
    return {role: str(name) for role, name in recorded.items() if not same_dataset(name, used)}


def provenance_message(others: Mapping[str, str], used: str) -> str:
    """One sentence naming both datasets (``others`` from :func:`other_datasets`, not empty)."""
    said = [
        f"the {role + ' ' if role else ''}network" + (f" on {name}" if i else f" was trained on {name}")
        for i, (role, name) in enumerate(others.items())
    ]
    trained = said[0] if len(said) == 1 else ", ".join(said[:-1]) + " and " + said[-1]
    one = len(said) == 1
    return (
        f"{trained} (as {'its checkpoint records' if one else 'their checkpoints record'}) but "
        f"{'runs' if one else 'they run'} "
        f"on {used} here: {'its' if one else 'their'} results describe {'it' if one else 'them'} on data "
        f"{'it was' if one else 'they were'} not trained on"
    )


def provenance_conventions(others: Mapping[str, str], used: str) -> dict[str, str]:
    """The conventions entry of a result whose networks met another dataset (empty when none did)."""
    if not others:
        return {}
    recorded = ", ".join(f"{name} ({role or 'network'})" for role, name in others.items())
    return {CONVENTION: f"trained on {recorded} as the checkpoints record; used {used}"}


def note_provenance(recorded: Mapping[str, str | None], used: str | None) -> dict[str, str]:
    """Warn once when a network runs on a dataset other than the one its checkpoint records, and return
    the conventions entry to record with the result (empty when every network runs on its own data)."""
    others = other_datasets(recorded, used)
    if not others:
        return {}
    warn(provenance_message(others, str(used)))
    return provenance_conventions(others, str(used))
