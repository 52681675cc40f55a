"""Loaders of the file-based datasets: where their files are looked for, and how they are fetched.

Lookup order, for every dataset: the data root (``root`` argument, ``$STITCHKIT_DATA``, ``./data``)
in torchvision's layout; then, for MNIST and Fashion-MNIST, the system folders in
:data:`SYSTEM_DATA_DIRS` (Debian's ``dataset-fashion-mnist`` package installs the gzipped IDX files
in ``/usr/share/datasets/fashion-mnist``; they are read in place, nothing is written there); then,
when ``download=True`` and torchvision knows the dataset, a download into the data root through
torchvision. A failed download (e.g. no network) raises the missing-data :class:`StitchkitError`.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..errors import StitchkitError
from .base import LoadRequest
from .datasets import ArrayImageDataset, ConcatArrays, FolderImageDataset, ImageDataset
from .readers import (
    MappedArray,
    memmap_npy,
    memmap_npz_member,
    read_cifar_batches,
    read_cifar_class_names,
    read_idx,
    read_svhn_mat,
)

#: how the missing-data messages of the sets torchvision can fetch end (quoted in their declarations)
TORCHVISION_DOWNLOAD = "or let torchvision download it into {root} (download=True, needs network access)"

#: System folders searched after the data root, per canonical dataset name. A dict so that tests
#: and administrators can change it in place (``monkeypatch.setitem(SYSTEM_DATA_DIRS, "fashion", ...)``).
#: No Debian package ships MNIST today; ``/usr/share/datasets/mnist`` follows the same convention in
#: case one is placed there.
SYSTEM_DATA_DIRS: dict[str, tuple[Path, ...]] = {
    "fashion": (Path("/usr/share/datasets/fashion-mnist"),),
    "mnist": (Path("/usr/share/datasets/mnist"),),
}


def user_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/stitchkit`` (default ``~/.cache/stitchkit``): where extracted copies go when
    the data folder is read-only."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "stitchkit"


def download_with_torchvision(class_name: str, root: Path, **kwargs) -> None:
    """Let torchvision's dataset class download (and verify the md5 of) its files into ``root``."""
    from torchvision import datasets  # deferred: torchvision loads only when a torchvision dataset is read

    root.mkdir(parents=True, exist_ok=True)
    getattr(datasets, class_name)(str(root), download=True, **kwargs)


def _fetch_or_fail(
    req: LoadRequest, fetch: Callable[[], None] | None, searched, missing, present: Callable[[], bool]
) -> None:
    """Download when allowed and possible; afterwards the files must be ``present``."""
    if fetch is None or not req.download:
        raise req.missing(searched, missing)
    try:
        fetch()
    except StitchkitError:
        raise
    except Exception as exc:  # no network, a proxy page, a full disk, ...: all mean "not available"
        raise req.missing(searched, missing, download_error=exc) from None
    if not present():
        raise req.missing(searched, missing)


def _absent(paths: list[Path], root: Path) -> list[str]:
    return [str(p.relative_to(root)) if p.is_relative_to(root) else str(p) for p in paths if not p.is_file()]


# --------------------------------------------------------------------------------------------------
# CIFAR-10 / CIFAR-100 (torchvision layout: root/cifar-10-batches-py, root/cifar-100-python)


def _cifar_loader(class_name: str) -> Callable[[LoadRequest], ImageDataset]:
    def load(req: LoadRequest) -> ImageDataset:
        from torchvision import datasets  # deferred: torchvision loads only when a torchvision dataset is read

        tv_class = getattr(datasets, class_name)
        folder = req.root / tv_class.base_folder
        listing = tv_class.train_list if req.train else tv_class.test_list
        paths = [folder / filename for filename, _md5 in listing]
        if _absent(paths, req.root):
            _fetch_or_fail(
                req,
                lambda: download_with_torchvision(class_name, req.root, train=req.train),
                [folder],
                _absent(paths, req.root),
                lambda: not _absent(paths, req.root),
            )
        images, labels = read_cifar_batches(paths)
        classes = read_cifar_class_names(folder / tv_class.meta["filename"], tv_class.meta["key"])
        return ArrayImageDataset(images, labels, classes=classes)

    return load


load_cifar10 = _cifar_loader("CIFAR10")
load_cifar100 = _cifar_loader("CIFAR100")


# --------------------------------------------------------------------------------------------------
# SVHN (torchvision layout: root/train_32x32.mat, root/test_32x32.mat; the extra split is unused)


def load_svhn(req: LoadRequest) -> ImageDataset:
    path = req.root / f"{req.split}_32x32.mat"
    if not path.is_file():
        _fetch_or_fail(
            req,
            lambda: download_with_torchvision("SVHN", req.root, split=req.split),
            [req.root],
            [path.name],
            path.is_file,
        )
    images, labels = read_svhn_mat(path)
    return ArrayImageDataset(images, labels, classes=[str(d) for d in range(10)])


# --------------------------------------------------------------------------------------------------
# MNIST / Fashion-MNIST (torchvision layout root/MNIST/raw, root/FashionMNIST/raw; plain or .gz IDX)

IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def _find_idx_files(folders: list[Path], split: str) -> tuple[Path, Path] | None:
    """The first folder that holds both files of the split, each plain or gzipped (plain preferred)."""
    for folder in folders:
        found = []
        for stem in IDX_FILES[split]:
            candidates = [folder / stem, folder / f"{stem}.gz"]
            found.append(next((c for c in candidates if c.is_file()), None))
        if all(found):
            return found[0], found[1]
    return None


def _idx_loader(name: str, class_name: str) -> Callable[[LoadRequest], ImageDataset]:
    def load(req: LoadRequest) -> ImageDataset:
        folders = [req.root / class_name / "raw", *SYSTEM_DATA_DIRS.get(name, ())]
        files = _find_idx_files(folders, req.split)
        if files is None:
            _fetch_or_fail(
                req,
                lambda: download_with_torchvision(class_name, req.root, train=req.train),
                folders,
                [f"{stem}[.gz]" for stem in IDX_FILES[req.split]],
                lambda: _find_idx_files(folders[:1], req.split) is not None,
            )
            files = _find_idx_files(folders[:1], req.split)
        images, labels = (read_idx(path) for path in files)
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise StitchkitError(
                f"{str(files[0])!r} and {str(files[1])!r} do not fit together: images {images.shape}, labels "
                f"{labels.shape}; "
                "expected N×28×28 images and N labels"
            )
        return ArrayImageDataset(images.astype(np.uint8, copy=False), labels.astype(np.int64))

    return load


load_mnist = _idx_loader("mnist", "MNIST")
load_fashion = _idx_loader("fashion", "FashionMNIST")


# --------------------------------------------------------------------------------------------------
# CIFAR-5M: root/cifar5m/cifar5m_part{0..5}.npz, memory-mapped; its test split is CIFAR-10's test

CIFAR5M_PARTS = tuple(f"cifar5m_part{i}.npz" for i in range(6))


def load_cifar5m(req: LoadRequest) -> ImageDataset:
    if not req.train:
        # As in the original: CIFAR-5M has no test split of its own; CIFAR-10's test set serves.
        return load_cifar10(req)
    folder = req.root / "cifar5m"
    paths = [folder / part for part in CIFAR5M_PARTS]
    missing = _absent(paths, req.root)
    if missing:
        raise req.missing([folder], missing)
    images, labels = [], []
    for path in paths:
        x = MappedArray(functools.partial(memmap_npz_member, path, "X", cache_dir=user_cache_dir() / "cifar5m"))
        y = MappedArray(functools.partial(memmap_npz_member, path, "Y", cache_dir=user_cache_dir() / "cifar5m"))
        if x.ndim != 4 or x.shape[1:] != (32, 32, 3) or x.dtype != np.uint8 or len(y) != len(x):
            raise StitchkitError(
                f"{str(path)!r} does not hold CIFAR-5M data: X is {x.dtype} {x.shape} and Y has {len(y)} entries; "
                "expected X as N×32×32×3 uint8 and N labels"
            )
        images.append(x)
        labels.append(y)
    return ArrayImageDataset(ConcatArrays(images), ConcatArrays(labels))


# --------------------------------------------------------------------------------------------------
# Outlier exposure: root/oe/300K_random_images.npy (N×32×32×3 uint8), memory-mapped, label 1

OE_FILE = Path("oe") / "300K_random_images.npy"


def load_outlier_exposure(req: LoadRequest) -> ImageDataset:
    # There is no test split: the test split is the same images under the eval transform (the
    # original applied ToTensor to a tensor there, which crashed).
    path = req.root / OE_FILE
    if not path.is_file():
        raise req.missing([path.parent], [str(OE_FILE)])
    images = MappedArray(functools.partial(memmap_npy, path))
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise StitchkitError(f"{str(path)!r} holds {images.dtype} {images.shape}; expected N×H×W×3 uint8 (NHWC)")
    return ArrayImageDataset(images, 1)


# --------------------------------------------------------------------------------------------------
# ImageNet: ImageFolder trees training_data/ and validation_data/

IMAGENET_FOLDERS = {"train": "training_data", "test": "validation_data"}


def imagenet_candidates(root: Path, split: str) -> list[Path]:
    """``root/imagenet/<folder>`` first (each dataset in its own folder under a shared root), then
    ``root/<folder>`` (the original's layout, where the root was the ImageNet folder itself)."""
    folder = IMAGENET_FOLDERS[split]
    return [root / "imagenet" / folder, root / folder]


def load_imagenet(req: LoadRequest) -> ImageDataset:
    from torchvision.datasets import ImageFolder  # deferred: torchvision loads only when a torchvision dataset is read

    candidates = imagenet_candidates(req.root, req.split)
    folder = next((c for c in candidates if c.is_dir()), None)
    if folder is None:
        raise req.missing(candidates)
    try:
        tree = ImageFolder(str(folder))
    except (FileNotFoundError, OSError) as exc:
        raise StitchkitError(
            f"{str(folder)!r} is not a usable ImageNet folder ({exc}); it needs one sub-folder per class "
            "holding that class's images (class index = position of the folder name in sorted order)"
        ) from None
    return FolderImageDataset(tree)
