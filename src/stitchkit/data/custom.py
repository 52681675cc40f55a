"""Your own data, by name: ``folder:PATH`` (an image-folder tree) and ``npz:PATH`` (arrays).

Both go through the dataset registry, so every command and study config takes them wherever it takes
a dataset name (``-d npz:data/mine.npz``, ``dataset = "folder:/data/pets@64x64"``).

* ``folder:PATH`` reads ``PATH/train/<class>/<image>`` and ``PATH/test/<class>/<image>`` (PNG, JPEG,
  BMP, GIF, TIFF, WebP, PPM/PGM; sub-folders of a class folder count too; hidden files are skipped).
  Classes are the train folder's class folders in sorted order (class index = position); the test
  split may lack classes but may not have others. Images are read as grey when every image is grey,
  else as RGB; 16-bit images are scaled, and a file that cannot be decoded is named
  (:mod:`.image_files`).
* ``npz:PATH`` reads an ``.npz`` archive (``np.savez``) with the arrays ``x_train``, ``y_train``,
  ``x_test``, ``y_test``: images ``N×H×W`` (grey) or ``N×H×W×C`` (C = 1 or 3), uint8 in 0–255 or
  float in [0, 1]; labels ``N`` integers ``0 … K−1``. Uncompressed archives are memory-mapped.
  Float images that are exactly ``k/255`` are stored as uint8; others stay float32.

The class count is the data's: the number of class folders, or the largest label + 1. Both kinds need
two classes with training images and refuse a test class the train split lacks (:func:`_check_classes`);
a class index without training images (1-based labels) is warned of.

**Input size.** ``@HxW`` (e.g. ``folder:PATH@32x32``) delivers every image at that size (bilinear
with antialiasing); ``@CxHxW`` also sets the channels (1 or 3; grey ↔ RGB by luma / repetition).
Without it the size is inferred, and images of mixed sizes are an error that asks for one. Giving
``@CxHxW`` for a folder skips reading every image's header. A size at which one image would not fit in
the available memory is refused before any image is made (:func:`_check_memory`).

Paths are relative to the working folder; the registered name (``DatasetInfo.name``, recorded in
checkpoints and results) holds the absolute path. No default augmentation is applied to your own data
(flips and crops are wrong for many data sets). Every wrong layout raises a
:class:`~stitchkit.errors.StitchkitError` that says what is wrong and what is expected.

This module needs numpy and Pillow only (no torch), so checking a layout is fast.
"""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ..errors import StitchkitError, warn
from ..utils.memory import available_memory, gib
from .base import CUSTOM_KINDS, SPLITS, DatasetInfo, is_custom, parse_size, size_suffix  # noqa: F401 (is_custom: part of this module's API)
from .readers import memmap_npz_member

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm")
#: Pillow modes read as one channel
GREY_MODES = ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F")
NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")
#: float images within this distance of k/255 (in units of 1/255) are stored as uint8 without loss
_UINT8_TOLERANCE = 1e-3


@dataclass(frozen=True)
class CustomSpec:
    """A parsed ``folder:PATH[@[C]xHxW]`` / ``npz:PATH[@...]`` name."""

    kind: str
    path: Path
    channels: int | None = None
    size: tuple[int, int] | None = None

    @property
    def name(self) -> str:
        """The canonical name: absolute path, and the size when one was given."""
        text = f"{self.kind}:{self.path}"
        if self.size is not None:
            text += size_suffix(self.channels, self.size)
        return text

    def error(self, text: str) -> StitchkitError:
        return StitchkitError(f"dataset {self.kind}:{self.path}: {text}")


@dataclass(frozen=True)
class FolderSplit:
    files: tuple[str, ...]
    labels: np.ndarray


@dataclass(frozen=True)
class ArraySplit:
    #: N×H×W or N×H×W×C uint8 (possibly memory-mapped), or N×H×W×C float32 in [0, 1]
    images: Any
    labels: np.ndarray


@dataclass(frozen=True)
class CustomData:
    """A checked data set: its info, each split's contents, and how items are read."""

    spec: CustomSpec
    info: DatasetInfo
    splits: dict[str, FolderSplit | ArraySplit]
    classes: tuple[str, ...] | None
    #: the channels images are read with (folders), or the arrays' channels (npz)
    native_channels: int
    #: whether items need converting to ``info.shape`` (a given size or channels that differ)
    convert: bool
    #: the shape items have before that conversion (None: it varies, images of mixed sizes)
    native_shape: tuple[int, int, int] | None = None


def parse(name: str) -> CustomSpec:
    kind, _, rest = str(name).strip().partition(":")
    kind = kind.strip().lower()
    if kind not in CUSTOM_KINDS or not rest.strip():
        raise StitchkitError(
            f"{name!r} is not your own data's name; use folder:PATH or npz:PATH (optionally @HxW or @CxHxW)"
        )
    path_text, channels, size = rest, None, None
    head, at, tail = rest.rpartition("@")
    parsed = parse_size(name, tail, strict=False) if at else None
    if parsed is not None:
        path_text, (channels, size) = head, parsed
    if not path_text.strip():
        raise StitchkitError(f"{name!r} names no path; use {kind}:PATH")
    return CustomSpec(kind, Path(path_text.strip()).expanduser().absolute(), channels, size)


# --------------------------------------------------------------------------------------------------
# checked descriptions, cached per (name, state of the files)

_CACHE: dict[tuple[str, tuple], CustomData] = {}
_CACHE_SIZE = 8


def _state(spec: CustomSpec) -> tuple:
    """What must be unchanged for a cached description to hold: the modification times of the path
    and (for a folder) of its split and class folders."""
    paths = [spec.path]
    if spec.kind == "folder":
        for split in SPLITS:
            folder = spec.path / split
            if folder.is_dir():
                paths += [folder, *(p for p in folder.iterdir() if p.is_dir())]
    out = []
    for p in paths:
        try:
            st = p.stat()
            out.append((str(p), st.st_mtime_ns, st.st_size))
        except OSError:
            out.append((str(p), None, None))
    return tuple(out)


def describe(name: str) -> CustomData:
    """Read and check your own data (on first use; again only when its files changed)."""
    spec = parse(name)
    key = (spec.name, _state(spec))
    if key not in _CACHE:
        data = _describe_folder(spec) if spec.kind == "folder" else _describe_npz(spec)
        _check_memory(spec, data.info.shape)
        if len(_CACHE) >= _CACHE_SIZE:
            _CACHE.pop(next(iter(_CACHE)))
        _CACHE[key] = data
    return _CACHE[key]


def _check_memory(spec: CustomSpec, shape: tuple[int, int, int]) -> None:
    """Refuse an ``@HxW`` size whose single image (a float32 tensor) would not fit in the memory this
    machine has available, before any image is made at that size."""
    if spec.size is None:
        return
    need, available = 4 * shape[0] * shape[1] * shape[2], available_memory()
    if available is not None and need > available:
        raise spec.error(
            f"@{spec.size[0]}x{spec.size[1]} makes every image {'×'.join(map(str, shape))}, which takes {gib(need)} "
            f"({need} bytes) as float32 for one image, more than the {gib(available)} of memory "
            f"available; give a smaller size"
        )


def _check_classes(spec: CustomSpec, train: list, test: list, names: tuple[str, str], listed: str) -> None:
    """The class rules shared by folders and arrays: at least two classes in the training split, and
    no class in the test split that the training split lacks. ``train``/``test``: the classes present
    in each split; ``names``: how the two splits are called (``train/``, ``y_train``); ``listed``: the
    training split's classes, in words."""
    if len(set(train)) < 2:
        way = "one folder per class under train/" if spec.kind == "folder" else "labels 0 … K−1"
        raise spec.error(f"{names[0]} has only class {train[0]!r}; a classifier needs at least two classes ({way})")
    extra = sorted(set(test) - set(train))
    if extra:
        raise spec.error(
            f"{names[1]} has class {extra[0]!r}, which {names[0]} lacks; both splits use the train "
            f"split's classes ({listed})"
        )


def _target_shape(spec: CustomSpec, channels: int, size: tuple[int, int]) -> tuple[int, int, int]:
    return (spec.channels or channels, *(spec.size or size))


# --------------------------------------------------------------------------------------------------
# image folders

_LAYOUT = "expected PATH/train/<class>/<image> and PATH/test/<class>/<image>"


def _images_under(folder: Path) -> list[Path]:
    found = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        found += [
            Path(dirpath) / f for f in sorted(filenames) if not f.startswith(".") and f.lower().endswith(IMAGE_SUFFIXES)
        ]
    return found


def _describe_folder(spec: CustomSpec) -> CustomData:
    root = spec.path
    if not root.is_dir():
        raise spec.error(("is a file, not a folder" if root.exists() else "does not exist") + f"; {_LAYOUT}")
    split_dirs = {}
    for split in SPLITS:
        folder = root / split
        if not folder.is_dir():
            raise spec.error(f"has no {split}/ folder; {_LAYOUT}")
        loose = [p.name for p in folder.iterdir() if p.is_file() and p.name.lower().endswith(IMAGE_SUFFIXES)]
        if loose:
            raise spec.error(
                f"{split}/ holds images directly ({loose[0]}, …); put each class's images in its own "
                f"folder, {split}/<class>/"
            )
        split_dirs[split] = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    classes = tuple(p.name for p in split_dirs["train"])
    if not classes:
        raise spec.error(f"train/ has no class folders; {_LAYOUT}")
    _check_classes(spec, list(classes), [p.name for p in split_dirs["test"]], ("train/", "test/"), ", ".join(classes))
    splits, files_by_split = {}, {}
    for split, dirs in split_dirs.items():
        files, labels = [], []
        for folder in dirs:
            images = _images_under(folder)
            if not images and split == "train":
                raise spec.error(
                    f"train/{folder.name}/ holds no images ({', '.join(s.lstrip('.') for s in IMAGE_SUFFIXES)})"
                )
            files += images
            labels += [classes.index(folder.name)] * len(images)
        if not files:
            raise spec.error(f"{split}/ holds no images; {_LAYOUT}")
        files_by_split[split] = files
        splits[split] = FolderSplit(tuple(map(str, files)), np.asarray(labels, dtype=np.int64))
    if spec.channels is not None and spec.size is not None:
        channels, sizes = spec.channels, {spec.size}  # everything given: no image needs opening
    else:
        channels, sizes = _scan_headers(spec, [f for split in SPLITS for f in files_by_split[split]])
    if len(sizes) > 1 and spec.size is None:
        (a, fa), (b, fb) = sorted(sizes.items())[:2]
        raise spec.error(
            f"has images of mixed sizes ({a[0]}×{a[1]} in {fa}, {b[0]}×{b[1]} in {fb}, …); "
            f"give the size to deliver them at, e.g. folder:{root}@{a[0]}x{a[1]}"
        )
    native = next(iter(sizes))
    shape = _target_shape(spec, channels, native)
    n_train, n_test = (len(files_by_split[s]) for s in SPLITS)
    info = DatasetInfo(
        spec.name,
        len(classes),
        shape,
        True,
        f"your image folders: {n_train} train / {n_test} test images in {len(classes)} classes",
        f"{root}/train/<class>/<image> and {root}/test/<class>/<image>",
    )
    # with a given size every item is converted (a no-op for images already at that size)
    native_shape = (shape[0], *native) if len(sizes) == 1 and (spec.channels is None or spec.size is None) else None
    return CustomData(spec, info, splits, classes, shape[0], spec.size is not None, native_shape)


def _scan_headers(spec: CustomSpec, files: list[Path]) -> tuple[int, dict[tuple[int, int], Path]]:
    """The channels to read the images with (1 when every image is grey) and each size (H, W) seen,
    with one file of that size; reads only the headers."""
    grey, sizes = True, {}
    for path in files:
        try:
            with Image.open(path) as image:
                width, height = image.size
                grey = grey and image.mode in GREY_MODES
        except (OSError, SyntaxError, ValueError) as exc:
            raise spec.error(f"cannot read image {path} ({type(exc).__name__}: {exc})") from None
        sizes.setdefault((height, width), path.relative_to(spec.path))
    return (1 if grey else 3), sizes


# --------------------------------------------------------------------------------------------------
# npz arrays


def _npz_member(spec: CustomSpec, archive: zipfile.ZipFile, key: str) -> np.ndarray:
    info = archive.getinfo(f"{key}.npy")
    try:
        if info.compress_type == zipfile.ZIP_STORED:
            return memmap_npz_member(spec.path, key)  # no copy; nothing is written for stored members
        with np.load(spec.path, allow_pickle=False) as arrays:
            return arrays[key]
    except ValueError as exc:  # object arrays (pickles) and broken headers
        raise spec.error(
            f"cannot read {key} ({exc}); store plain numeric arrays (np.savez(path, x_train=..., ...))"
        ) from None
    except (OSError, zipfile.BadZipFile, EOFError) as exc:
        raise spec.error(f"cannot read {key} ({type(exc).__name__}: {exc}); the archive may be truncated") from None


def _check_images(spec: CustomSpec, key: str, x: np.ndarray) -> np.ndarray:
    if x.ndim == 4 and x.shape[-1] not in (1, 3):
        hint = "; it looks channels-first: store N×H×W×C (np.moveaxis(x, 1, -1))" if x.shape[1] in (1, 3) else ""
        raise spec.error(f"{key} has shape {x.shape}; images must be N×H×W or N×H×W×C with C = 1 or 3{hint}")
    if x.ndim not in (3, 4) or min(x.shape[1:3], default=0) < 1:
        raise spec.error(f"{key} has shape {x.shape}; images must be N×H×W (grey) or N×H×W×C (C = 1 or 3)")
    if x.dtype == np.uint8:
        return x
    if x.dtype.kind != "f":
        raise spec.error(f"{key} is {x.dtype}; images must be uint8 (0–255) or float in [0, 1]")
    if x.size and not np.isfinite(x).all():
        raise spec.error(f"{key} holds NaN or infinite values; images must be uint8 (0–255) or float in [0, 1]")
    low, high = (float(x.min()), float(x.max())) if x.size else (0.0, 0.0)
    if low < 0 or high > 1:
        raise spec.error(
            f"{key} is float with values in [{low:g}, {high:g}]; float images must lie in [0, 1] (or store uint8 0–255)"
        )
    scaled = np.asarray(x, dtype=np.float64) * 255
    levels = np.rint(scaled)
    if np.abs(scaled - levels).max(initial=0) <= _UINT8_TOLERANCE:
        return levels.astype(np.uint8)
    return np.array(x, dtype=np.float32)  # a writable copy in RAM (torch tensors need one)


def _check_labels(spec: CustomSpec, key: str, y: np.ndarray, n: int, x_key: str) -> np.ndarray:
    if y.ndim == 2 and y.shape[1] == 1:
        y = y.reshape(-1)
    if y.ndim != 1:
        hint = " (one-hot labels? store the class indices, y.argmax(1))" if y.ndim == 2 else ""
        raise spec.error(f"{key} has shape {y.shape}; labels must be one integer per image (shape N){hint}")
    if len(y) != n:
        raise spec.error(f"{x_key} has {n} images but {key} has {len(y)} labels")
    if y.dtype.kind == "f":
        whole = np.isfinite(y) & (y == np.rint(np.nan_to_num(y)))
        if not whole.all():
            raise spec.error(
                f"{key} has non-integer labels (e.g. {y[np.flatnonzero(~whole)[0]]!r}); labels must be "
                f"class indices 0 … K−1"
            )
    elif y.dtype.kind not in "iu":
        raise spec.error(f"{key} holds {y.dtype} values; labels must be integer class indices 0 … K−1")
    labels = y.astype(np.int64)
    if labels.size and labels.min() < 0:
        raise spec.error(f"{key} has negative labels (e.g. {int(labels.min())}); labels must be class indices 0 … K−1")
    return labels


def _ranges(values: list[int]) -> str:
    """Sorted integers in words: ``0–4, 7``."""
    runs: list[list[int]] = []
    for v in values:
        if runs and v == runs[-1][1] + 1:
            runs[-1][1] = v
        else:
            runs.append([v, v])
    return ", ".join(f"{a}" if a == b else f"{a}–{b}" for a, b in runs)


def _warn_empty_classes(spec: CustomSpec, train: list[int], num_classes: int) -> None:
    """A class index below the largest label that no training image has still counts as a class (a
    logit the networks learn never to give): say so, with the likely cause."""
    empty = sorted(set(range(num_classes)) - set(train))
    if not empty:
        return
    hint = "; are the labels 1-based? store y - 1 so that they run 0 … K−1" if empty == [0] and train[0] == 1 else ""
    warn(
        f"dataset {spec.kind}:{spec.path}: class {_ranges(empty)} has no training images (labels {_ranges(train)}), "
        f"yet counts among its {num_classes} classes (the largest label + 1){hint}"
    )


def _describe_npz(spec: CustomSpec) -> CustomData:
    path = spec.path
    if not path.is_file():
        raise spec.error("is a folder; give the .npz file" if path.is_dir() else "does not exist")
    if not zipfile.is_zipfile(path):
        raise spec.error(
            "is not an .npz archive (write one with np.savez(path, x_train=..., y_train=..., x_test=..., y_test=...))"
        )
    try:
        with zipfile.ZipFile(path) as archive:
            present = [n.removesuffix(".npy") for n in archive.namelist()]
            missing = [k for k in NPZ_KEYS if k not in present]
            if missing:
                raise spec.error(
                    f"has no {', '.join(missing)}; it holds {', '.join(present) or 'nothing'}, and needs "
                    f"{', '.join(NPZ_KEYS)}"
                )
            arrays = {k: _npz_member(spec, archive, k) for k in NPZ_KEYS}
    except zipfile.BadZipFile as exc:
        raise spec.error(f"is a damaged archive ({exc})") from None
    splits = {}
    for split in SPLITS:
        x_key, y_key = f"x_{split}", f"y_{split}"
        images = _check_images(spec, x_key, arrays[x_key])
        if len(images) == 0:
            raise spec.error(f"{x_key} holds no images")
        splits[split] = ArraySplit(images, _check_labels(spec, y_key, arrays[y_key], len(images), x_key))
    image_shapes = {
        s: splits[s].images.shape[1:] if splits[s].images.ndim == 4 else (*splits[s].images.shape[1:], 1)
        for s in SPLITS
    }
    if image_shapes["train"] != image_shapes["test"]:
        a, b = image_shapes["train"], image_shapes["test"]
        raise spec.error(
            f"x_train images are {'×'.join(map(str, a))} but x_test images are {'×'.join(map(str, b))}; "
            f"both splits need one shape"
        )
    height, width, channels = image_shapes["train"]
    shape = _target_shape(spec, channels, (height, width))
    present = {s: np.unique(splits[s].labels).tolist() for s in SPLITS}
    _check_classes(spec, present["train"], present["test"], ("y_train", "y_test"), _ranges(present["train"]))
    num_classes = int(max(present["train"])) + 1
    _warn_empty_classes(spec, present["train"], num_classes)
    n_train, n_test = (len(splits[s].labels) for s in SPLITS)
    info = DatasetInfo(
        spec.name,
        num_classes,
        shape,
        True,
        f"your arrays: {n_train} train / {n_test} test images, {num_classes} classes (largest label + 1)",
        f"{path} with arrays {', '.join(NPZ_KEYS)}",
    )
    return CustomData(spec, info, splits, None, channels, shape != (channels, height, width), (channels, height, width))
