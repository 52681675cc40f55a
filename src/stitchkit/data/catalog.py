"""What the dataset registry holds, without loading anything: names, class counts, shapes, files.

This module imports neither torch nor the loaders, so ``stitchkit datasets`` and every command's
checks can read it quickly. :mod:`stitchkit.data.registry` pairs each entry with its loader and
default transforms (and checks at import that both list the same names). Names, layouts, splits and
class counts follow the original code (seed spec section 3), plus the offline sets ``digits``,
``natural_patches`` and ``noise``; your own data (``folder:PATH``, ``npz:PATH``) is described by
:mod:`stitchkit.data.custom`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ..errors import UnknownNameError, unknown_name
from .base import DatasetInfo, is_custom, parse_size, size_suffix


@dataclass(frozen=True)
class CatalogEntry:
    """A registered dataset's metadata: its :class:`DatasetInfo`, how to get its files (quoted in the
    missing-data message; ``{root}`` is the data root), and how it is sampled."""

    info: DatasetInfo
    how_to_get: str
    #: generated sets are built directly at any requested shape
    generated: bool = False
    #: the set's length is chosen by ``size`` (patches and noise)
    takes_size: bool = False
    #: samples per training epoch when one epoch over the whole set is impractical (CIFAR-5M)
    epoch_size: int | None = None


_TORCHVISION_DOWNLOAD = "or let torchvision download it into {root} (download=True, needs network access)"

_CIFAR10_FILES = "cifar-10-batches-py/data_batch_1..5, test_batch and batches.meta (torchvision's CIFAR-10 layout)"
_CIFAR100_FILES = "cifar-100-python/train, test and meta (torchvision's CIFAR-100 layout)"
_CIFAR10_HOW = "unpack cifar-10-python.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html into {root}, " + _TORCHVISION_DOWNLOAD + "."
_CIFAR100_HOW = "unpack cifar-100-python.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html into {root}, " + _TORCHVISION_DOWNLOAD + "."
_PATCHES_HOW = "install scikit-image and pillow (pip install scikit-image pillow)."


def _entries() -> list[CatalogEntry]:
    return [
        CatalogEntry(
            DatasetInfo("mnist", 10, (1, 28, 28), True, "MNIST handwritten digits (60,000 train / 10,000 test).",
                        "MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte, plain or .gz (torchvision's layout)"),
            "copy the four IDX files into {root}/MNIST/raw, " + _TORCHVISION_DOWNLOAD + ".",
        ),
        CatalogEntry(
            DatasetInfo("fashion", 10, (1, 28, 28), True, "Fashion-MNIST clothing images (60,000 train / 10,000 test).",
                        "FashionMNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte, plain or .gz (torchvision's layout), "
                        "or the same .gz files in /usr/share/datasets/fashion-mnist",
                        aliases=("fashion-mnist", "fashion_mnist")),
            "install Debian's package (apt-get install dataset-fashion-mnist, which puts the files in "
            "/usr/share/datasets/fashion-mnist), copy the four IDX files into {root}/FashionMNIST/raw, "
            + _TORCHVISION_DOWNLOAD + ".",
        ),
        CatalogEntry(DatasetInfo("cifar10", 10, (3, 32, 32), True, "CIFAR-10 at 32×32, no normalisation.", _CIFAR10_FILES), _CIFAR10_HOW),
        CatalogEntry(DatasetInfo("cifar100", 100, (3, 32, 32), True, "CIFAR-100 (fine labels) at 32×32, no normalisation.", _CIFAR100_FILES),
                     _CIFAR100_HOW),
        CatalogEntry(DatasetInfo("cifar10_large", 10, (3, 224, 224), True, "CIFAR-10 resized to 224×224 (for ImageNet-style models).",
                                 _CIFAR10_FILES), _CIFAR10_HOW),
        # The original's eval transform resized CIFAR-100 to 244×244 (a typo); we use 224×224.
        CatalogEntry(DatasetInfo("cifar100_large", 100, (3, 224, 224), True, "CIFAR-100 resized to 224×224 (the original's 244 typo fixed).",
                                 _CIFAR100_FILES), _CIFAR100_HOW),
        CatalogEntry(
            DatasetInfo("cifar5m", 10, (3, 32, 32), True,
                        "CIFAR-5M (about 6M synthetic CIFAR-10-like images), memory-mapped; the test split is CIFAR-10's test set; "
                        "training samples 50,000 fresh images per epoch.",
                        "cifar5m/cifar5m_part0.npz … cifar5m_part5.npz (arrays X: N×32×32×3 uint8, Y: N labels), "
                        "and cifar-10-batches-py/test_batch for the test split"),
            "CIFAR-5M cannot be downloaded automatically; get cifar5m_part0.npz … cifar5m_part5.npz from "
            "https://github.com/preetum/cifar5m and place them in {root}/cifar5m (the test split uses CIFAR-10, "
            "which torchvision can download).",
            epoch_size=50_000,
        ),
        CatalogEntry(
            DatasetInfo("svhn", 10, (3, 32, 32), True, "SVHN house-number digits (73,257 train / 26,032 test); 'extra' unused.",
                        "train_32x32.mat and test_32x32.mat directly in the data root (torchvision's layout)"),
            "download train_32x32.mat and test_32x32.mat from http://ufldl.stanford.edu/housenumbers/ into {root}, "
            + _TORCHVISION_DOWNLOAD + ".",
        ),
        CatalogEntry(
            DatasetInfo("imagenet", 1000, (3, 224, 224), True, "ImageNet ILSVRC-2012 from class folders, normalised with ImageNet statistics.",
                        "imagenet/training_data/<class>/* and imagenet/validation_data/<class>/* "
                        "(or training_data/ and validation_data/ directly in the data root)"),
            "download ILSVRC-2012 from https://image-net.org and arrange the train and val images as one sub-folder "
            "per class (e.g. n01440764/) in {root}/imagenet/training_data and {root}/imagenet/validation_data.",
        ),
        CatalogEntry(
            DatasetInfo("outlier_exposure", 1, (3, 32, 32), False,
                        "The 300K random images of Hendrycks et al.'s outlier exposure, memory-mapped; every label is 1; "
                        "the test split is the same images without augmentation.",
                        "oe/300K_random_images.npy (300,000×32×32×3 uint8, NHWC)", aliases=("oe",)),
            "download 300K_random_images.npy (linked from https://github.com/hendrycks/outlier-exposure) and place it "
            "in {root}/oe; offline, the natural_patches dataset is a stand-in.",
        ),
        CatalogEntry(
            DatasetInfo("digits", 10, (1, 28, 28), True,
                        "scikit-learn's 1,797 handwritten digits (8×8) upsampled to 28×28; 80% train / 20% test; offline.",
                        "nothing (bundled with scikit-learn)"),
            "install scikit-learn.", generated=True,
        ),
        CatalogEntry(
            DatasetInfo("natural_patches", 1, (3, 32, 32), True,
                        "Random crops of the photos bundled with scikit-image and scikit-learn, a stand-in for the 300K "
                        "random images; label 1; 50,000 train / 10,000 test by default; offline.",
                        "nothing (photos bundled with scikit-image and scikit-learn)"),
            _PATCHES_HOW, generated=True, takes_size=True,
        ),
        CatalogEntry(
            DatasetInfo("natural_patches_gray", 1, (1, 28, 28), True, "natural_patches in grey at 28×28, to pair with MNIST-like sets; offline.",
                        "nothing (photos bundled with scikit-image and scikit-learn)"),
            _PATCHES_HOW, generated=True, takes_size=True,
        ),
        CatalogEntry(
            DatasetInfo("noise", 1, (3, 32, 32), True, "Uniform noise images in [0, 1]; label 1; offline.", "nothing (generated)",
                        aliases=("noise_uniform",)),
            "nothing to install.", generated=True, takes_size=True,
        ),
        CatalogEntry(
            DatasetInfo("noise_gaussian", 1, (3, 32, 32), True, "Gaussian noise images (mean 0.5, std 0.25, clipped to [0, 1]); label 1; offline.",
                        "nothing (generated)"),
            "nothing to install.", generated=True, takes_size=True,
        ),
    ]  # fmt: skip


#: every registered dataset by canonical name
DATASETS: dict[str, CatalogEntry] = {entry.info.name: entry for entry in _entries()}
ALIASES: dict[str, str] = {alias: entry.info.name for entry in DATASETS.values() for alias in entry.info.aliases}

#: how the registry's errors and listings name your own data
OWN_DATA = "your own data: folder:PATH (PATH/train/<class>/<image>, PATH/test/<class>/<image>) or npz:PATH (x_train, y_train, x_test, y_test)"
#: how the registry's errors and listings name a registered set at another input size
SIZED = "any of them at another input size as NAME@CxHxW (e.g. fashion@3x224x224)"


def registered(name: str) -> tuple[str, tuple[int, int, int] | None]:
    """The registered name behind ``name`` and the item shape its ``@CxHxW`` suffix asks for (None:
    the set's own shape). ``@HxW`` keeps the set's channels. An unknown name raises the error that
    lists the known ones; a malformed size says what is accepted."""
    text = str(name).strip()
    base, at, tail = text.partition("@")
    key = base.strip().lower()
    key = ALIASES.get(key, key)
    if key not in DATASETS:
        listing = unknown_name("dataset", base.strip() if at else text, list(DATASETS))
        raise UnknownNameError(f"{listing}; {SIZED}; or {OWN_DATA}")
    if not at:
        return key, None
    channels, size = parse_size(text, tail)
    native = DATASETS[key].info.shape
    shape = (channels or native[0], *size)
    return key, (None if shape == native else shape)


def canonical_name(name: str) -> str:
    """The registered name behind ``name`` (an alias or another capitalisation), with ``@CxHxW`` when
    it asks for a shape other than the set's own; an unknown name raises the error that lists the
    known ones."""
    key, shape = registered(name)
    return key if shape is None else key + size_suffix(shape[0], shape[1:])


def list_datasets() -> list[str]:
    """Canonical names of the registered datasets (aliases and your own data not included)."""
    return list(DATASETS)


def dataset_info(name: str) -> DatasetInfo:
    """Metadata of a dataset by name or alias (``NAME@CxHxW``: at that item shape), or of your own
    data (``folder:PATH``, ``npz:PATH``, read and checked on first use); an unknown name lists the
    known ones."""
    if is_custom(name):
        from . import custom  # deferred: numpy and Pillow load only for your own data

        return custom.describe(name).info
    key, shape = registered(name)
    info = DATASETS[key].info
    if shape is None:
        return info
    return replace(info, name=canonical_name(name), shape=shape, aliases=(),
                   description=f"{info.description} Delivered at {'×'.join(map(str, shape))} (bilinear resize with antialiasing; "
                   "channels by luma or repetition).")
