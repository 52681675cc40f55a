"""Shared pieces of the dataset registry: dataset metadata, the data root, load requests and the
missing-data error."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from ..errors import StitchkitError

#: Environment variable naming the data root when no ``root`` argument is given.
DATA_ROOT_ENV = "STITCHKIT_DATA"
#: Data root used when neither the argument nor the environment variable is set.
DEFAULT_DATA_ROOT = "./data"

SPLITS = ("train", "test")

#: the prefixes of your own data's names (``folder:PATH``, ``npz:PATH``; see :mod:`stitchkit.data.custom`)
CUSTOM_KINDS = ("folder", "npz")


def is_custom(name) -> bool:
    """Whether ``name`` names your own data (``folder:...`` or ``npz:...``)."""
    return isinstance(name, (str, os.PathLike)) and ":" in str(name) and str(name).split(":", 1)[0].strip().lower() in CUSTOM_KINDS


@dataclass(frozen=True)
class DatasetInfo:
    """What a model and a user need to know about a registered dataset.

    ``shape`` is the ``(C, H, W)`` of the items the default transforms produce; models take their
    input channel count from it. ``expected_files`` says in words which files the dataset reads,
    relative to the data root (it is quoted in the missing-data message).
    """

    name: str
    num_classes: int
    shape: tuple[int, int, int]
    has_test_split: bool
    description: str
    expected_files: str
    aliases: tuple[str, ...] = ()


def resolve_data_root(root: str | os.PathLike | None = None) -> Path:
    """The data root: the ``root`` argument, else ``$STITCHKIT_DATA``, else ``./data`` (absolute)."""
    if root is None or str(root) == "":
        root = os.environ.get(DATA_ROOT_ENV) or DEFAULT_DATA_ROOT
    return Path(root).expanduser().absolute()


@dataclass(frozen=True)
class LoadRequest:
    """Everything a dataset's loader needs; ``shape`` is the requested item shape (None: default)."""

    info: DatasetInfo
    split: str
    root: Path
    download: bool
    size: int | None
    shape: tuple[int, int, int] | None
    how_to_get: str

    @property
    def name(self) -> str:
        return self.info.name

    @property
    def train(self) -> bool:
        return self.split == "train"

    def missing(self, searched: Sequence[Path], missing: Sequence[str] = (), download_error: BaseException | None = None) -> StitchkitError:
        """The missing-data error: one paragraph naming the dataset, what was searched, the expected
        files and how to get them."""
        where = ", ".join(str(p) for p in dict.fromkeys(searched))
        text = f"dataset {self.name!r} ({self.split} split) was not found: it needs {self.info.expected_files}; searched {where}"
        if missing:
            text += f" (missing: {', '.join(missing)})"
        text += f". To get it: {self.how_to_get.format(root=self.root)}"
        if download_error is not None:
            reason = str(download_error).strip() or type(download_error).__name__
            text += f" The automatic download failed ({type(download_error).__name__}: {reason}); without network access, place the files by hand."
        text += f" The data root is the root= argument, else ${DATA_ROOT_ENV}, else {DEFAULT_DATA_ROOT}."
        return StitchkitError(text)
