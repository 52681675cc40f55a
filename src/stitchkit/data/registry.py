"""The dataset registry: one entry per dataset; adding a dataset is adding one entry to ``_ENTRIES``.

Names, on-disk layouts, splits, class counts and default transforms follow the original code
(seed spec section 3), plus the offline sets ``digits``, ``natural_patches`` and ``noise``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable, Sequence, Sized

from torch.utils.data import Dataset

from ..errors import StitchkitError, unknown_name
from . import sources, synthetic
from . import transforms as tf
from .base import SPLITS, DatasetInfo, LoadRequest, resolve_data_root
from .datasets import ImageDataset
from .device_batches import TransformRecipe
from .sampler import MultiEpochDisjointSubsetSampler

Shape = tuple[int, int, int]

DEFAULT_GENERATED_SIZES = {"train": 50_000, "test": 10_000}


@dataclass(frozen=True)
class _Entry:
    info: DatasetInfo
    #: builds the split's dataset (without transform) from a LoadRequest
    load: Callable[[LoadRequest], ImageDataset]
    #: geometric steps of the default train (augmenting) and eval transforms, given the item shape
    train_ops: tf.OpsFactory
    eval_ops: tf.OpsFactory
    how_to_get: str
    mean_std: tuple[tuple[float, ...], tuple[float, ...]] | None = None
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


def _generated_load(make: Callable[[LoadRequest, Shape, int], ImageDataset]) -> Callable[[LoadRequest], ImageDataset]:
    def load(req: LoadRequest) -> ImageDataset:
        shape = req.shape or req.info.shape
        size = req.size if req.size is not None else DEFAULT_GENERATED_SIZES[req.split]
        return make(req, shape, size)

    return load


def _entries() -> list[_Entry]:
    return [
        _Entry(
            DatasetInfo("mnist", 10, (1, 28, 28), True, "MNIST handwritten digits (60,000 train / 10,000 test).",
                        "MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte, plain or .gz (torchvision's layout)"),
            sources.load_mnist, tf.affine_jitter, tf.no_ops,
            "copy the four IDX files into {root}/MNIST/raw, " + _TORCHVISION_DOWNLOAD + ".",
        ),
        _Entry(
            DatasetInfo("fashion", 10, (1, 28, 28), True, "Fashion-MNIST clothing images (60,000 train / 10,000 test).",
                        "FashionMNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte, plain or .gz (torchvision's layout), "
                        "or the same .gz files in /usr/share/datasets/fashion-mnist",
                        aliases=("fashion-mnist", "fashion_mnist")),
            sources.load_fashion, tf.flip_and_crop, tf.no_ops,
            "install Debian's package (apt-get install dataset-fashion-mnist, which puts the files in "
            "/usr/share/datasets/fashion-mnist), copy the four IDX files into {root}/FashionMNIST/raw, "
            + _TORCHVISION_DOWNLOAD + ".",
        ),
        _Entry(
            DatasetInfo("cifar10", 10, (3, 32, 32), True, "CIFAR-10 at 32×32, no normalisation.", _CIFAR10_FILES),
            sources.load_cifar10, tf.flip_and_crop, tf.no_ops, _CIFAR10_HOW,
        ),
        _Entry(
            DatasetInfo("cifar100", 100, (3, 32, 32), True, "CIFAR-100 (fine labels) at 32×32, no normalisation.", _CIFAR100_FILES),
            sources.load_cifar100, tf.flip_and_crop, tf.no_ops, _CIFAR100_HOW,
        ),
        _Entry(
            DatasetInfo("cifar10_large", 10, (3, 224, 224), True, "CIFAR-10 resized to 224×224 (for ImageNet-style models).", _CIFAR10_FILES),
            sources.load_cifar10, tf.large_cifar_train, tf.large_cifar_eval, _CIFAR10_HOW,
        ),
        _Entry(
            # The original's eval transform resized CIFAR-100 to 244×244 (a typo); we use 224×224.
            DatasetInfo("cifar100_large", 100, (3, 224, 224), True, "CIFAR-100 resized to 224×224 (the original's 244 typo fixed).", _CIFAR100_FILES),
            sources.load_cifar100, tf.large_cifar_train, tf.large_cifar_eval, _CIFAR100_HOW,
        ),
        _Entry(
            DatasetInfo("cifar5m", 10, (3, 32, 32), True,
                        "CIFAR-5M (about 6M synthetic CIFAR-10-like images), memory-mapped; the test split is CIFAR-10's test set; "
                        "training samples 50,000 fresh images per epoch.",
                        "cifar5m/cifar5m_part0.npz … cifar5m_part5.npz (arrays X: N×32×32×3 uint8, Y: N labels), "
                        "and cifar-10-batches-py/test_batch for the test split"),
            sources.load_cifar5m, tf.no_ops, tf.no_ops,
            "CIFAR-5M cannot be downloaded automatically; get cifar5m_part0.npz … cifar5m_part5.npz from "
            "https://github.com/preetum/cifar5m and place them in {root}/cifar5m (the test split uses CIFAR-10, "
            "which torchvision can download).",
            epoch_size=50_000,
        ),
        _Entry(
            DatasetInfo("svhn", 10, (3, 32, 32), True, "SVHN house-number digits (73,257 train / 26,032 test); 'extra' unused.",
                        "train_32x32.mat and test_32x32.mat directly in the data root (torchvision's layout)"),
            sources.load_svhn, tf.affine_jitter, tf.no_ops,
            "download train_32x32.mat and test_32x32.mat from http://ufldl.stanford.edu/housenumbers/ into {root}, "
            + _TORCHVISION_DOWNLOAD + ".",
        ),
        _Entry(
            DatasetInfo("imagenet", 1000, (3, 224, 224), True, "ImageNet ILSVRC-2012 from class folders, normalised with ImageNet statistics.",
                        "imagenet/training_data/<class>/* and imagenet/validation_data/<class>/* "
                        "(or training_data/ and validation_data/ directly in the data root)"),
            sources.load_imagenet, tf.imagenet_train, tf.imagenet_eval,
            "download ILSVRC-2012 from https://image-net.org and arrange the train and val images as one sub-folder "
            "per class (e.g. n01440764/) in {root}/imagenet/training_data and {root}/imagenet/validation_data.",
            mean_std=(tf.IMAGENET_MEAN, tf.IMAGENET_STD),
        ),
        _Entry(
            DatasetInfo("outlier_exposure", 1, (3, 32, 32), False,
                        "The 300K random images of Hendrycks et al.'s outlier exposure, memory-mapped; every label is 1; "
                        "the test split is the same images without augmentation.",
                        "oe/300K_random_images.npy (300,000×32×32×3 uint8, NHWC)", aliases=("oe",)),
            sources.load_outlier_exposure, tf.flip_and_crop, tf.no_ops,
            "download 300K_random_images.npy (linked from https://github.com/hendrycks/outlier-exposure) and place it "
            "in {root}/oe; offline, the natural_patches dataset is a stand-in.",
        ),
        _Entry(
            DatasetInfo("digits", 10, (1, 28, 28), True,
                        "scikit-learn's 1,797 handwritten digits (8×8) upsampled to 28×28; 80% train / 20% test; offline.",
                        "nothing (bundled with scikit-learn)"),
            _generated_load(lambda req, shape, size: synthetic.load_digits_split(req.split, shape)),
            tf.affine_jitter, tf.no_ops, "install scikit-learn.", generated=True,
        ),
        _Entry(
            DatasetInfo("natural_patches", 1, (3, 32, 32), True,
                        "Random crops of the photos bundled with scikit-image and scikit-learn, a stand-in for the 300K "
                        "random images; label 1; 50,000 train / 10,000 test by default; offline.",
                        "nothing (photos bundled with scikit-image and scikit-learn)"),
            _generated_load(lambda req, shape, size: synthetic.NaturalPatches(req.split, size, shape)),
            tf.flip_and_crop, tf.no_ops, "install scikit-image and pillow (pip install scikit-image pillow).", generated=True, takes_size=True,
        ),
        _Entry(
            DatasetInfo("natural_patches_gray", 1, (1, 28, 28), True,
                        "natural_patches in grey at 28×28, to pair with MNIST-like sets; offline.",
                        "nothing (photos bundled with scikit-image and scikit-learn)"),
            _generated_load(lambda req, shape, size: synthetic.NaturalPatches(req.split, size, shape)),
            tf.flip_and_crop, tf.no_ops, "install scikit-image and pillow (pip install scikit-image pillow).", generated=True, takes_size=True,
        ),
        _Entry(
            DatasetInfo("noise", 1, (3, 32, 32), True, "Uniform noise images in [0, 1]; label 1; offline.", "nothing (generated)",
                        aliases=("noise_uniform",)),
            _generated_load(lambda req, shape, size: synthetic.NoiseImages(req.split, size, shape, "uniform")),
            tf.no_ops, tf.no_ops, "nothing to install.", generated=True, takes_size=True,
        ),
        _Entry(
            DatasetInfo("noise_gaussian", 1, (3, 32, 32), True, "Gaussian noise images (mean 0.5, std 0.25, clipped to [0, 1]); label 1; offline.",
                        "nothing (generated)"),
            _generated_load(lambda req, shape, size: synthetic.NoiseImages(req.split, size, shape, "gaussian")),
            tf.no_ops, tf.no_ops, "nothing to install.", generated=True, takes_size=True,
        ),
    ]  # fmt: skip


_REGISTRY: dict[str, _Entry] = {entry.info.name: entry for entry in _entries()}
_ALIASES: dict[str, str] = {alias: entry.info.name for entry in _REGISTRY.values() for alias in entry.info.aliases}


def _entry(name: str) -> _Entry:
    key = str(name).strip().lower()
    key = _ALIASES.get(key, key)
    if key not in _REGISTRY:
        raise unknown_name("dataset", str(name), list(_REGISTRY))
    return _REGISTRY[key]


def list_datasets() -> list[str]:
    """Canonical names of the registered datasets (aliases not included)."""
    return list(_REGISTRY)


def dataset_info(name: str) -> DatasetInfo:
    """Metadata of a dataset by name or alias; an unknown name lists the known ones."""
    return _entry(name).info


def dataset_mean_std(name: str) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
    """``(mean, std)`` that ``get_dataset`` normalises with: ImageNet's statistics for ``imagenet``,
    None for every other dataset (CIFAR and the rest are fed as raw [0, 1] pixels, like the original;
    models that want normalisation do it inside the network)."""
    return _entry(name).mean_std


def _check_shape(shape: Sequence[int] | None) -> Shape | None:
    if shape is None:
        return None
    try:
        shape = tuple(int(s) for s in shape)
    except (TypeError, ValueError):
        shape = ()
    if len(shape) != 3 or shape[0] not in (1, 3) or min(shape) <= 0:
        raise StitchkitError(f"shape must be (channels, height, width) with 1 or 3 channels, e.g. (1, 28, 28); got {shape!r}")
    return shape


def get_dataset(
    name: str,
    split: str = "train",
    root: str | os.PathLike | None = None,
    augment: bool | None = None,
    transform: Callable | None = None,
    download: bool = True,
    size: int | None = None,
    shape: Sequence[int] | None = None,
) -> Dataset:
    """A registered dataset's split, yielding ``(C×H×W float tensor in [0, 1], int label)``.

    * ``split``: ``"train"`` or ``"test"``. Sets without a test split of their own (outlier
      exposure) give their train data under the eval transform; CIFAR-5M's test split is CIFAR-10's.
    * ``augment``: use the default train (augmenting) transform; defaults to ``split == "train"``.
      ``augment=False`` on the train split gives the plain eval transform, as used for the samples
      of direct matching.
    * ``transform``: replaces the default transform entirely (it receives a PIL image for the sets
      read from files, a tensor for the generated ones).
    * ``root``: the data root (else ``$STITCHKIT_DATA``, else ``./data``); see
      :func:`resolve_data_root`. ``download``: fetch missing files through torchvision where it can.
    * ``size``: number of items of a generated set (``natural_patches*``, ``noise*``; default
      50,000 train / 10,000 test).
    * ``shape``: ``(C, H, W)`` to deliver instead of the dataset's own shape, so that an OOD set can
      match the in-distribution set's input (e.g. ``get_dataset("natural_patches", shape=(1, 28, 28))``
      next to MNIST). Generated sets are generated at that shape; other sets are converted at the
      end of the transform (channels 3→1 by luma, 1→3 by repetition; bilinear resize with
      antialiasing), before ImageNet's normalisation. With ``transform=``, ``shape`` converts that
      transform's output.

    ImageNet items are normalised with :func:`dataset_mean_std`; no other set is.
    """
    entry = _entry(name)
    if split not in SPLITS:
        raise StitchkitError(f"unknown split {split!r} for dataset {entry.info.name!r}; use 'train' or 'test'")
    target = _check_shape(shape)
    if size is not None:
        if not entry.takes_size:
            generated = [n for n, e in _REGISTRY.items() if e.takes_size]
            raise StitchkitError(
                f"size= only applies to the generated datasets ({', '.join(generated)}); "
                f"to take part of {entry.info.name!r}, wrap it in torch.utils.data.Subset"
            )
        if isinstance(size, bool) or not isinstance(size, int) or size <= 0:
            raise StitchkitError(f"size must be a positive number of items, got {size!r}")
    request = LoadRequest(entry.info, split, resolve_data_root(root), bool(download), size, target, entry.how_to_get)
    dataset = entry.load(request)

    produced = target if (entry.generated and target is not None) else entry.info.shape
    if transform is not None:
        steps = [transform]
    else:
        augment = split == "train" if augment is None else bool(augment)
        steps = list((entry.train_ops if augment else entry.eval_ops)(produced))
        if dataset.yields_pil:
            steps.append(tf.T.ToTensor())
    if target is not None and (transform is not None or target != produced):
        steps.append(tf.MatchShape(target))
    if transform is None and entry.mean_std is not None:
        steps.append(tf.normalize_for(entry.mean_std, (target or produced)[0]))
    dataset.transform = tf.compose(steps) if steps else None
    # The default transform, described for the batched device path (data/device_batches.py).
    ops = (entry.train_ops if augment else entry.eval_ops) if transform is None else None
    dataset.recipe = None if ops is None or not dataset.yields_pil else TransformRecipe(
        ops.__name__, tuple(produced), target if target != produced else None, entry.mean_std)
    return dataset


def train_sampler_for(name: str, dataset: Sized, generator=None) -> MultiEpochDisjointSubsetSampler | None:
    """The training sampler a dataset needs: for CIFAR-5M a :class:`MultiEpochDisjointSubsetSampler`
    of 50,000 fresh images per epoch; None (plain shuffling) for every other dataset."""
    entry = _entry(name)
    if entry.epoch_size is None:
        return None
    return MultiEpochDisjointSubsetSampler(dataset, entry.epoch_size, generator=generator)
