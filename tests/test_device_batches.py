"""The batched device data path gives exactly the DataLoader's batches: the same sample order, the
same augmentation draws and bitwise the same pixels (flip-and-crop, plain, resized, grey-converted and
normalised items), and it falls back to a DataLoader where it cannot reproduce the transform."""

from pathlib import Path

import numpy as np
import pytest
import torch
from stitch_support import write_tiny_cifar10
from torch.utils.data import DataLoader

from stitchkit.activations import sample_subset
from stitchkit.data import get_dataset
from stitchkit.data.device_batches import DeviceBatches, can_batch_on_device, draw_flip_and_crop, flip_and_crop_batch
from stitchkit.data.loading import BatchPath, make_batches
from stitchkit.errors import StitchkitError

DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")


@pytest.fixture()
def cifar_root(tmp_path):
    write_tiny_cifar10(tmp_path, n_per_batch=7, n_test=9)
    return tmp_path


def _loader_batches(dataset, batch_size, shuffle, sampler=None):
    return [
        (x.clone(), y.clone())
        for x, y in DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, sampler=sampler, num_workers=0)
    ]


def _assert_same(reference, batches):
    assert len(reference) == len(batches)
    for (x0, y0), (x1, y1) in zip(reference, batches):
        assert x0.dtype == x1.dtype and x0.shape == x1.shape
        assert torch.equal(x0, x1)  # bitwise
        assert torch.equal(torch.as_tensor(y0), y1)


@pytest.mark.parametrize("augment", [True, False])
def test_cifar_batches_equal_the_loader_bitwise(cifar_root, augment):
    dataset = get_dataset("cifar10", "train", root=cifar_root, augment=augment, download=False)
    assert can_batch_on_device(dataset) is None
    for seed in (0, 1):
        torch.manual_seed(seed)
        reference = _loader_batches(dataset, 4, shuffle=True)
        torch.manual_seed(seed)
        ours = list(DeviceBatches(dataset, 4, shuffle=True))
        _assert_same(reference, ours)
    # the global RNG is left where the loader leaves it, so what follows is unchanged too
    torch.manual_seed(3)
    _loader_batches(dataset, 4, shuffle=True)
    after_loader = torch.rand(3)
    torch.manual_seed(3)
    list(DeviceBatches(dataset, 4, shuffle=True))
    assert torch.equal(after_loader, torch.rand(3))


def test_the_same_stream_through_a_progress_bar(cifar_root):
    # tqdm creates an iterator at construction and another one to iterate: a DataLoader draws its base
    # seed for each, and so must the device path
    from stitchkit.training.loop import progress_bar

    dataset = get_dataset("cifar10", "train", root=cifar_root, augment=True, download=False)
    torch.manual_seed(0)
    reference = [
        (x.clone(), y.clone()) for x, y in progress_bar(DataLoader(dataset, batch_size=4, shuffle=True), "x", False)
    ]
    torch.manual_seed(0)
    _assert_same(reference, list(progress_bar(DeviceBatches(dataset, 4, shuffle=True), "x", False)))


def test_fashion_subset_with_augmentation_equals_the_loader():
    assert DEBIAN_FASHION.is_dir(), "Debian's dataset-fashion-mnist package must be installed for this test"
    dataset = sample_subset(get_dataset("fashion", "train", augment=True), 300, seed=5)
    torch.manual_seed(11)
    reference = _loader_batches(dataset, 64, shuffle=True)
    torch.manual_seed(11)
    _assert_same(reference, list(make_batches(dataset, 64, shuffle=True, device="cpu")))


def test_shape_conversion_and_normalisation_equal_the_per_image_transforms(cifar_root):
    grey = get_dataset("cifar10", "test", root=cifar_root, shape=(1, 28, 28), download=False)
    assert can_batch_on_device(grey) is None
    _assert_same(_loader_batches(grey, 4, shuffle=False), list(DeviceBatches(grey, 4)))
    # a recipe with normalisation (as ImageNet's) applied to an array set
    from dataclasses import replace

    normalised = get_dataset("cifar10", "test", root=cifar_root, download=False)
    normalised.recipe = replace(normalised.recipe, mean_std=((0.5, 0.4, 0.3), (0.2, 0.25, 0.3)))
    from torchvision import transforms as T

    normalised.transform = T.Compose([normalised.transform, T.Normalize((0.5, 0.4, 0.3), (0.2, 0.25, 0.3))])
    _assert_same(_loader_batches(normalised, 5, shuffle=False), list(DeviceBatches(normalised, 5)))


def test_a_sampler_drives_the_order(cifar_root):
    dataset = get_dataset("cifar10", "train", root=cifar_root, augment=False, download=False)
    sampler = torch.utils.data.SubsetRandomSampler(list(range(0, 35, 3)), generator=torch.Generator().manual_seed(2))
    reference = _loader_batches(dataset, 3, shuffle=False, sampler=sampler)
    sampler.generator.manual_seed(2)
    batches = DeviceBatches(dataset, 3, sampler=sampler)
    assert batches.sampler is sampler and len(batches) == len(reference)
    _assert_same(reference, list(batches))


def test_batched_flip_and_crop_against_a_direct_per_image_reference():
    torch.manual_seed(0)
    x = torch.rand(6, 3, 5, 7)
    flip, top, left = (
        torch.tensor([1, 0, 1, 0, 1, 0], dtype=torch.bool),
        torch.tensor([0, 8, 4, 1, 7, 3]),
        torch.tensor([8, 0, 4, 2, 6, 5]),
    )
    out = flip_and_crop_batch(x, flip, top, left)
    for i in range(6):
        image = x[i].flip(-1) if flip[i] else x[i]
        padded = torch.zeros(3, 13, 15)
        padded[:, 4:9, 4:11] = image
        assert torch.equal(out[i], padded[:, top[i] : top[i] + 5, left[i] : left[i] + 7])


def test_draws_follow_torchvisions_per_image_calls():
    torch.manual_seed(4)
    flips, tops, lefts = draw_flip_and_crop(3)
    torch.manual_seed(4)
    for i in range(3):
        assert bool(torch.rand(1) < 0.5) == bool(flips[i])
        assert int(torch.randint(0, 9, size=(1,)).item()) == int(tops[i])
        assert int(torch.randint(0, 9, size=(1,)).item()) == int(lefts[i])


def test_what_cannot_be_batched_falls_back_to_a_loader(cifar_root):
    digits = get_dataset("digits", "train")  # generated tensors, not a uint8 array
    assert can_batch_on_device(digits) is not None
    assert isinstance(make_batches(digits, 8, shuffle=False), DataLoader)
    custom = get_dataset(
        "cifar10", "train", root=cifar_root, transform=lambda im: torch.zeros(3, 32, 32), download=False
    )
    assert "custom transform" in can_batch_on_device(custom)
    assert isinstance(make_batches(custom, 8, shuffle=False), DataLoader)
    with pytest.raises(StitchkitError, match="--data-path device cannot serve"):
        make_batches(digits, 8, shuffle=False, path=BatchPath(data_path="device"))
    assert isinstance(
        make_batches(
            get_dataset("cifar10", "train", root=cifar_root, download=False),
            8,
            shuffle=False,
            path=BatchPath(data_path="loader"),
        ),
        DataLoader,
    )
    huge = get_dataset("cifar10", "train", root=cifar_root, download=False)
    with pytest.raises(StitchkitError, match="unknown data path"):
        BatchPath(data_path="gpu")
    over_budget = BatchPath(memory_limit_gb=1e-9)
    assert isinstance(make_batches(huge, 8, shuffle=False, path=over_budget), DataLoader)  # over the memory budget


def test_labels_of_a_single_label_set_and_channels_last(cifar_root):
    dataset = get_dataset("cifar10", "test", root=cifar_root, download=False)
    dataset.labels = 1
    x, y = next(iter(DeviceBatches(dataset, 4, channels_last=True)))
    assert torch.equal(y, torch.ones(4, dtype=torch.long))
    assert x.is_contiguous(memory_format=torch.channels_last)
    np.testing.assert_array_equal(x.numpy(), next(iter(DeviceBatches(dataset, 4)))[0].numpy())
