"""Names of the report's figure and table files: the report writes them, the findings link to them."""

from __future__ import annotations

import re


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_")[:120]


def artifact_stem(kind: str, label: str, name: str) -> str:
    """The file stem (and the page anchor) of one unit's matrix or table in the report:
    ``figures/STEM.png``, ``tables/STEM.csv``, ``index.html#STEM``."""
    return slug(f"{kind}_{label}_{name}")
