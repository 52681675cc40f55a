"""Shared pieces of the dataset registry: dataset metadata, the data root, load requests and the
missing-data error."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import StitchkitError

#: Environment variable naming the data root when no ``root`` argument is given.
DATA_ROOT_ENV = "STITCHKIT_DATA"
#: Data root used when neither the argument nor the environment variable is set.
DEFAULT_DATA_ROOT = "./data"

SPLITS = ("train", "test")

#: the prefixes of your own data's names (``folder:PATH``, ``npz:PATH``; see :mod:`stitchkit.data.custom`)
CUSTOM_KINDS = ("folder", "npz")


#: a size after '@' in a dataset's name: ``HxW`` or ``CxHxW``
_SIZE = re.compile(r"(?:(\d+)x)?(\d+)x(\d+)")
#: what may follow '@', in words (quoted by every error about it)
SIZE_FORMS = "HxW or CxHxW with 1 or 3 channels and positive sides, e.g. @32x32 or @3x224x224"


def parse_size(name: str, text: str, strict: bool = True) -> tuple[int | None, tuple[int, int]] | None:
    """The ``(channels or None, (H, W))`` that ``text`` (what follows '@' in the dataset name ``name``)
    asks for, for your own data (``folder:PATH@64x64``) and registered sets (``fashion@3x224x224``)
    alike. A malformed size raises; with ``strict=False`` (a path may contain '@') text that does not
    look like a size at all gives None."""
    cleaned = text.strip().lower()
    match = _SIZE.fullmatch(cleaned)
    if match is None:
        if strict or re.fullmatch(r"[\dx×*,\s]+", cleaned):
            raise StitchkitError(f"{name!r}: the size after '@' is {SIZE_FORMS}; got {text!r}")
        return None
    channels = int(match.group(1)) if match.group(1) else None
    size = (int(match.group(2)), int(match.group(3)))
    if channels not in (None, 1, 3) or min(size) < 1:
        raise StitchkitError(f"{name!r}: the size after '@' is {SIZE_FORMS}; got {text!r}")
    return channels, size


def size_suffix(channels: int | None, size: tuple[int, int]) -> str:
    """``@CxHxW`` (``@HxW`` without channels): the canonical spelling of a size in a dataset's name."""
    return "@" + (f"{channels}x" if channels else "") + f"{size[0]}x{size[1]}"


def is_custom(name) -> bool:
    """Whether ``name`` names your own data (``folder:...`` or ``npz:...``)."""
    return (
        isinstance(name, (str, os.PathLike))
        and ":" in str(name)
        and str(name).split(":", 1)[0].strip().lower() in CUSTOM_KINDS
    )


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

    def missing(
        self, searched: Sequence[Path], missing: Sequence[str] = (), download_error: BaseException | None = None
    ) -> StitchkitError:
        """The missing-data error: one paragraph naming the dataset, what was searched, the expected
        files and how to get them."""
        where = ", ".join(str(p) for p in dict.fromkeys(searched))
        text = (
            f"dataset {self.name!r} ({self.split} split) was not found: it needs {self.info.expected_files}; "
            f"searched {where}"
        )
        if missing:
            text += f" (missing: {', '.join(missing)})"
        text += f". To get it: {self.how_to_get.format(root=self.root)}"
        if download_error is not None:
            reason = str(download_error).strip() or type(download_error).__name__
            text += (
                f" The automatic download failed ({type(download_error).__name__}: {reason}); "
                "without network access, place the files by hand."
            )
        text += f" The data root is the root= argument, else ${DATA_ROOT_ENV}, else {DEFAULT_DATA_ROOT}."
        return StitchkitError(text)
