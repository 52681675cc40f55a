"""The dataset registry: each dataset's loader and default transforms, by name.

Each dataset is declared once, at its loader in :mod:`stitchkit.data.sets` (names, class counts,
shapes, files, how to get them, default transforms); :mod:`stitchkit.data.catalog` reads those
declarations torch-free, and this module pairs each name with its declared loader
(:func:`stitchkit.declarations.implementation`, which imports the set's module on first use) and its
default train and eval transforms (:data:`TRANSFORMS`). Adding a dataset is adding one module to
:mod:`stitchkit.data.sets`. Your own data (``folder:PATH``, ``npz:PATH``, see
:mod:`stitchkit.data.custom`) is loaded here too.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Sequence, Sized
from dataclasses import dataclass

import torch
from torch.utils.data import Dataset

from ..declarations import Declaration, DeclarationError, declaration, implementation
from ..errors import StitchkitError
from . import catalog, custom
from . import transforms as tf
from .base import SPLITS, DatasetInfo, LoadRequest, resolve_data_root
from .catalog import dataset_info, list_datasets  # noqa: F401 (the registry's public names)
from .datasets import ArrayImageDataset, FileImageDataset, ImageDataset, TensorImageDataset
from .device_batches import TransformRecipe
from .sampler import MultiEpochDisjointSubsetSampler

Shape = tuple[int, int, int]


@dataclass(frozen=True)
class _Builder:
    #: builds the split's dataset (without transform) from a LoadRequest
    load: Callable[[LoadRequest], ImageDataset]
    #: geometric steps of the default train (augmenting) and eval transforms, given the item shape
    train_ops: tf.OpsFactory
    eval_ops: tf.OpsFactory
    mean_std: tuple[tuple[float, ...], tuple[float, ...]] | None = None


@dataclass(frozen=True)
class _Entry:
    meta: catalog.CatalogEntry
    builder: _Builder
    #: items are converted to ``info.shape`` at the end of the transform (your own data at a given size)
    convert: bool = False
    #: the shape of the items before that conversion (your own arrays; None: ``info.shape``)
    native_shape: tuple[int, int, int] | None = None
    #: the shape a registered set's name asks for (``fashion@3x224x224``): delivered as ``shape=`` is
    shape: Shape | None = None

    @property
    def info(self) -> DatasetInfo:
        return self.meta.info


#: the default transforms a dataset's declaration can name (``train_transform=``, ``eval_transform=``)
TRANSFORMS: dict[str, tf.OpsFactory] = {
    ops.__name__: ops
    for ops in (
        tf.no_ops,
        tf.flip_and_crop,
        tf.affine_jitter,
        tf.large_cifar_train,
        tf.large_cifar_eval,
        tf.imagenet_train,
        tf.imagenet_eval,
    )
}


def _transform_named(decl: Declaration, key: str) -> tf.OpsFactory:
    name = decl.get(key, catalog.METADATA[key])
    if name not in TRANSFORMS:
        raise DeclarationError(
            f"dataset {decl.name!r} ({decl.source}): {key} {name!r} is not one of {', '.join(TRANSFORMS)}"
        )
    return TRANSFORMS[name]


def _builder(name: str) -> _Builder:
    """A registered dataset's declared loader (importing its module in :mod:`stitchkit.data.sets`) and transforms."""
    decl = declaration("dataset", name)
    mean_std = decl.get("mean_std")
    return _Builder(
        implementation("dataset", name),
        _transform_named(decl, "train_transform"),
        _transform_named(decl, "eval_transform"),
        None if mean_std is None else (tuple(mean_std[0]), tuple(mean_std[1])),
    )


def _load_custom(req: LoadRequest) -> ImageDataset:
    data = custom.describe(req.info.name)
    split = data.splits[req.split]
    if isinstance(split, custom.FolderSplit):
        return FileImageDataset(
            split.files, split.labels, "L" if data.native_channels == 1 else "RGB", classes=data.classes
        )
    if split.images.dtype == "uint8":
        return ArrayImageDataset(split.images, split.labels)
    images = split.images if split.images.ndim == 4 else split.images[..., None]
    return TensorImageDataset(torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(), split.labels)


_CUSTOM_BUILDER = _Builder(_load_custom, tf.no_ops, tf.no_ops)  # no default augmentation for your own data


def _entry(name: str) -> _Entry:
    if custom.is_custom(name):
        data = custom.describe(name)
        return _Entry(
            catalog.CatalogEntry(data.info, f"check the files at {data.spec.path}"),
            _CUSTOM_BUILDER,
            convert=data.convert,
            native_shape=data.native_shape,
        )
    key, shape = catalog.registered(name)
    return _Entry(catalog.entries()[key], _builder(key), shape=shape)


def dataset_mean_std(name: str) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
    """``(mean, std)`` that ``get_dataset`` normalises with: ImageNet's statistics for ``imagenet``,
    None for every other dataset (CIFAR and the rest are fed as raw [0, 1] pixels, like the original;
    models that want normalisation do it inside the network)."""
    return _entry(name).builder.mean_std


def dataset_augments(name: str) -> bool:
    """Whether the dataset's default training transform augments (differs from its eval transform):
    CIFAR-5M, the noise sets and your own data have no augmentation, so their augmented training
    split is the plain one."""
    if custom.is_custom(name):
        return False  # (without reading the data's files)
    builder = _entry(name).builder
    return builder.train_ops is not builder.eval_ops


def _check_shape(shape: Sequence[int] | None) -> Shape | None:
    if shape is None:
        return None
    try:
        shape = tuple(int(s) for s in shape)
    except (TypeError, ValueError):
        shape = ()
    if len(shape) != 3 or shape[0] not in (1, 3) or min(shape) <= 0:
        raise StitchkitError(
            f"shape must be (channels, height, width) with 1 or 3 channels, e.g. (1, 28, 28); got {shape!r}"
        )
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
    """A registered dataset's split, or your own data's (``folder:PATH``, ``npz:PATH``; see
    :mod:`stitchkit.data.custom`), yielding ``(C×H×W float tensor in [0, 1], int label)``.

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
    * ``shape``: ``(C, H, W)`` to deliver instead of the dataset's own shape (``name@CxHxW`` does the
      same; ``shape`` wins when both are given), so that an OOD set can
      match the in-distribution set's input (e.g. ``get_dataset("natural_patches", shape=(1, 28, 28))``
      next to MNIST). Generated sets are generated at that shape; other sets are converted at the
      end of the transform (channels 3→1 by luma, 1→3 by repetition; bilinear resize with
      antialiasing), before ImageNet's normalisation. With ``transform=``, ``shape`` converts that
      transform's output.

    ImageNet items are normalised with :func:`dataset_mean_std`; no other set is.
    """
    entry = _entry(name)
    meta, builder = entry.meta, entry.builder
    if split not in SPLITS:
        raise StitchkitError(f"unknown split {split!r} for dataset {entry.info.name!r}; use 'train' or 'test'")
    target = _check_shape(shape) or entry.shape  # NAME@CxHxW delivers like shape=(C, H, W)
    if size is not None:
        if not meta.takes_size:
            generated = [n for n, e in catalog.entries().items() if e.takes_size]
            raise StitchkitError(
                f"size= only applies to the generated datasets ({', '.join(generated)}); "
                f"to take part of {entry.info.name!r}, wrap it in torch.utils.data.Subset"
            )
        if isinstance(size, bool) or not isinstance(size, int) or size <= 0:
            raise StitchkitError(f"size must be a positive number of items, got {size!r}")
    request = LoadRequest(entry.info, split, resolve_data_root(root), bool(download), size, target, meta.how_to_get)
    dataset = builder.load(request)

    produced = target if (meta.generated and target is not None) else entry.info.shape
    augment = split == "train" if augment is None else bool(augment)
    if entry.convert and target is None:
        target = entry.info.shape  # your own data at the size (and channels) its name gives
    match = target is not None and (transform is not None or target != produced or entry.convert)
    ops = (builder.train_ops if augment else builder.eval_ops) if transform is None else None
    empty = transform is None and ops is tf.no_ops and not dataset.yields_pil and not match and builder.mean_std is None
    # Built on first use: the default transforms need torchvision, whose import takes seconds, and
    # batches made on the device never call them.
    dataset.transform = (
        None
        if empty
        else tf.DeferredTransform(
            functools.partial(
                _transform, ops, dataset.yields_pil, produced, target if match else None, builder.mean_std, transform
            )
        )
    )
    # The default transform, described for the batched device path (data/device_batches.py).
    native = entry.native_shape or produced
    dataset.recipe = (
        None
        if ops is None or not dataset.yields_pil
        else TransformRecipe(
            ops.__name__,
            tuple(native),
            target if target is not None and tuple(target) != tuple(native) else None,
            builder.mean_std,
        )
    )
    return dataset


def _transform(ops, yields_pil: bool, produced, target, mean_std, custom):
    """The item transform of :func:`get_dataset`: the geometric steps (or ``custom``), ``ToTensor`` for
    PIL images, the shape conversion, and the dataset's normalisation."""
    if custom is not None:
        steps = [custom]
    else:
        steps = list(ops(produced))
        if yields_pil:
            steps.append(tf.to_tensor())
    if target is not None:
        steps.append(tf.MatchShape(target))
    if custom is None and mean_std is not None:
        steps.append(tf.normalize_for(mean_std, (target or produced)[0]))
    return tf.compose(steps) if steps else None


def train_sampler_for(name: str, dataset: Sized, generator=None) -> MultiEpochDisjointSubsetSampler | None:
    """The training sampler a dataset needs: for CIFAR-5M a :class:`MultiEpochDisjointSubsetSampler`
    of 50,000 fresh images per epoch; None (plain shuffling) for every other dataset."""
    epoch_size = _entry(name).meta.epoch_size
    if epoch_size is None:
        return None
    return MultiEpochDisjointSubsetSampler(dataset, epoch_size, generator=generator)
