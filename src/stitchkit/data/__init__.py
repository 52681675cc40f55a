"""Datasets by name: the first stage of stitchkit's flow (dataset → model → activations → ...).

Nothing else in stitchkit reads dataset files. Every item is ``(C×H×W float tensor in [0, 1], int
label)`` (ImageNet's normalised with :func:`dataset_mean_std`).

>>> from stitchkit.data import get_dataset, dataset_info
>>> dataset_info("fashion-mnist").shape
(1, 28, 28)
>>> train = get_dataset("digits", "train")           # offline, no files needed
>>> image, label = train[0]

Your own data: ``folder:PATH`` (``PATH/train/<class>/…``, ``PATH/test/<class>/…``) and ``npz:PATH``
(arrays ``x_train``, ``y_train``, ``x_test``, ``y_test``), optionally ``@HxW``; see :mod:`.custom`.

Registered names (see :func:`list_datasets`): the original's ``mnist``, ``fashion``, ``cifar10``,
``cifar100``, ``cifar10_large``, ``cifar100_large``, ``cifar5m``, ``svhn``, ``imagenet``,
``outlier_exposure`` with the same on-disk layouts, splits and default transforms, and the offline
``digits``, ``natural_patches``, ``natural_patches_gray``, ``noise`` and ``noise_gaussian``.

Where files are looked for: the data root (argument, else ``$STITCHKIT_DATA``, else ``./data``), then
the system folders in :data:`SYSTEM_DATA_DIRS` (Debian's Fashion-MNIST package), then a torchvision
download when ``download=True``. A dataset that cannot be found raises a
:class:`~stitchkit.errors.StitchkitError` that names the files and how to get them.
"""

from ..utils.lazy import lazy_exports
from .base import DATA_ROOT_ENV, DatasetInfo, resolve_data_root
from .catalog import dataset_info, list_datasets

__all__ = [
    "DATA_ROOT_ENV",
    "DatasetInfo",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "MatchShape",
    "MultiEpochDisjointSubsetSampler",
    "SYSTEM_DATA_DIRS",
    "dataset_augments",
    "dataset_info",
    "dataset_mean_std",
    "get_dataset",
    "list_datasets",
    "memmap_npz_member",
    "read_idx",
    "resolve_data_root",
    "train_sampler_for",
]

_LAZY = {
    "get_dataset": "registry",
    "dataset_augments": "registry",
    "dataset_mean_std": "registry",
    "train_sampler_for": "registry",
    "memmap_npz_member": "readers",
    "read_idx": "readers",
    "MultiEpochDisjointSubsetSampler": "sampler",
    "SYSTEM_DATA_DIRS": "sources",
    "IMAGENET_MEAN": "transforms",
    "IMAGENET_STD": "transforms",
    "MatchShape": "transforms",
}


# The loaders and transforms import torch; load them on first use, so that the catalogue
# (`stitchkit datasets`, dataset_info) stays fast.
__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
