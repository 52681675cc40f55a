"""Datasets by name: the first stage of stitchkit's flow (dataset → model → activations → ...).

Nothing else in stitchkit reads dataset files. Every item is ``(C×H×W float tensor in [0, 1], int
label)`` (ImageNet's normalised with :func:`dataset_mean_std`).

>>> from stitchkit.data import get_dataset, dataset_info
>>> dataset_info("fashion-mnist").shape
(1, 28, 28)
>>> train = get_dataset("digits", "train")           # offline, no files needed
>>> image, label = train[0]

Registered names (see :func:`list_datasets`): the original's ``mnist``, ``fashion``, ``cifar10``,
``cifar100``, ``cifar10_large``, ``cifar100_large``, ``cifar5m``, ``svhn``, ``imagenet``,
``outlier_exposure`` with the same on-disk layouts, splits and default transforms, and the offline
``digits``, ``natural_patches``, ``natural_patches_gray``, ``noise`` and ``noise_gaussian``.

Where files are looked for: the data root (argument, else ``$STITCHKIT_DATA``, else ``./data``), then
the system folders in :data:`SYSTEM_DATA_DIRS` (Debian's Fashion-MNIST package), then a torchvision
download when ``download=True``. A dataset that cannot be found raises a
:class:`~stitchkit.errors.StitchkitError` that names the files and how to get them.
"""

from .base import DATA_ROOT_ENV, DatasetInfo, resolve_data_root
from .readers import memmap_npz_member, read_idx
from .registry import dataset_info, dataset_mean_std, get_dataset, list_datasets, train_sampler_for
from .sampler import MultiEpochDisjointSubsetSampler
from .sources import SYSTEM_DATA_DIRS
from .transforms import IMAGENET_MEAN, IMAGENET_STD, MatchShape

__all__ = [
    "DATA_ROOT_ENV",
    "DatasetInfo",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "MatchShape",
    "MultiEpochDisjointSubsetSampler",
    "SYSTEM_DATA_DIRS",
    "dataset_info",
    "dataset_mean_std",
    "get_dataset",
    "list_datasets",
    "memmap_npz_member",
    "read_idx",
    "resolve_data_root",
    "train_sampler_for",
]
