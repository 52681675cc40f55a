"""Tests of the dataset registry (stitchkit.data).

Every file-based dataset is tested on tiny files written in its real on-disk format into tmp_path;
nothing is downloaded. Fashion-MNIST is also read from Debian's system location (real files).
"""

from __future__ import annotations

import gzip
import pickle
import struct
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch
from PIL import Image
from torch.utils.data import DataLoader

from stitchkit.data import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    SYSTEM_DATA_DIRS,
    DatasetInfo,
    MultiEpochDisjointSubsetSampler,
    dataset_info,
    dataset_mean_std,
    get_dataset,
    list_datasets,
    memmap_npz_member,
    read_idx,
    resolve_data_root,
    sources,
    train_sampler_for,
)
from stitchkit.errors import StitchkitError, UnknownNameError

DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")


# --------------------------------------------------------------------------------------------------
# writers of tiny files in the real formats


def _rng(seed=0):
    return np.random.default_rng(seed)


def write_cifar10(root: Path, n_per_batch=3, n_test=4) -> dict:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = _rng(1)
    written = {"train": ([], []), "test": ([], [])}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        n = n_test if name == "test_batch" else n_per_batch
        data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, size=n)]
        with open(folder / name, "wb") as f:
            pickle.dump(
                {"batch_label": name, "data": data, "labels": labels, "filenames": [f"{i}.png" for i in range(n)]}, f
            )
        key = "test" if name == "test_batch" else "train"
        written[key][0].append(data)
        written[key][1].extend(labels)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": [f"class{i}" for i in range(10)], "num_cases_per_batch": n_per_batch}, f)
    return {k: (np.concatenate(v[0]), np.array(v[1])) for k, v in written.items()}


def write_cifar100(root: Path, n_train=5, n_test=3) -> dict:
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    rng = _rng(2)
    written = {}
    for name, n in (("train", n_train), ("test", n_test)):
        data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
        fine = [int(v) for v in rng.integers(0, 100, size=n)]
        with open(folder / name, "wb") as f:
            pickle.dump({"data": data, "fine_labels": fine, "coarse_labels": [v // 5 for v in fine]}, f)
        written[name] = (data, np.array(fine))
    with open(folder / "meta", "wb") as f:
        pickle.dump(
            {"fine_label_names": [f"f{i}" for i in range(100)], "coarse_label_names": [f"c{i}" for i in range(20)]}, f
        )
    return written


def write_idx(path: Path, array: np.ndarray, gz: bool) -> None:
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + array.astype(np.uint8).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    if gz:
        with gzip.open(str(path) + ".gz", "wb") as f:
            f.write(payload)
    else:
        path.write_bytes(payload)


def write_mnist_like(folder: Path, gz: bool, n_train=6, n_test=4, seed=3) -> dict:
    rng = _rng(seed)
    written = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n).astype(np.uint8)
        write_idx(folder / f"{prefix}-images-idx3-ubyte", images, gz)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte", labels, gz)
        written["train" if prefix == "train" else "test"] = (images, labels)
    return written


def write_svhn(root: Path, n=5) -> dict:
    rng = _rng(4)
    written = {}
    for split in ("train", "test"):
        images = rng.integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8)
        digits = np.arange(n) % 10
        y = np.where(digits == 0, 10, digits).reshape(-1, 1).astype(np.uint8)  # SVHN stores 0 as 10
        scipy.io.savemat(root / f"{split}_32x32.mat", {"X": np.transpose(images, (1, 2, 3, 0)), "y": y})
        written[split] = (images, digits)
    return written


CIFAR5M_SIZES = (3, 2, 4, 1, 2, 3)


def write_cifar5m(root: Path, compressed_parts=()) -> tuple[np.ndarray, np.ndarray]:
    folder = root / "cifar5m"
    folder.mkdir(parents=True)
    rng = _rng(5)
    xs, ys = [], []
    for i, n in enumerate(CIFAR5M_SIZES):
        x = rng.integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8)
        y = rng.integers(0, 10, size=n).astype(np.int64)
        save = np.savez_compressed if i in compressed_parts else np.savez
        save(folder / f"cifar5m_part{i}.npz", X=x, Y=y)
        xs.append(x)
        ys.append(y)
    return np.concatenate(xs), np.concatenate(ys)


def write_oe(root: Path, n=6) -> np.ndarray:
    (root / "oe").mkdir(parents=True)
    images = _rng(6).integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8)
    np.save(root / "oe" / "300K_random_images.npy", images)
    return images


def write_image_folder(folder: Path, classes=("b_dogs", "a_cats", "c_birds"), per_class=2) -> None:
    rng = _rng(7)
    for cls in classes:
        (folder / cls).mkdir(parents=True)
        for k in range(per_class):
            pixels = rng.integers(0, 256, size=(40 + 5 * k, 50, 3), dtype=np.uint8)
            suffix = "png" if k % 2 == 0 else "jpg"
            Image.fromarray(pixels).save(folder / cls / f"img{k}.{suffix}")


def as_uint8_chw(tensor: torch.Tensor) -> np.ndarray:
    return np.round(tensor.numpy() * 255).astype(np.uint8)


@pytest.fixture(autouse=True)
def _no_system_dirs_or_downloads(monkeypatch, tmp_path):
    """No test may touch the network; system folders are re-enabled only where a test says so."""

    def refuse(*args, **kwargs):
        raise urllib.error.URLError("network disabled in tests")

    monkeypatch.setattr(sources, "download_with_torchvision", refuse)
    monkeypatch.setitem(SYSTEM_DATA_DIRS, "fashion", ())
    monkeypatch.setitem(SYSTEM_DATA_DIRS, "mnist", ())
    monkeypatch.delenv("STITCHKIT_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg_cache"))


# --------------------------------------------------------------------------------------------------
# registry metadata


def test_registry_lists_the_original_and_offline_names():
    names = list_datasets()
    for name in [
        "cifar10",
        "cifar100",
        "cifar10_large",
        "cifar100_large",
        "svhn",
        "mnist",
        "fashion",
        "cifar5m",
        # fmt: skip
        "outlier_exposure",
        "imagenet",
        "digits",
        "natural_patches",
        "natural_patches_gray",
        "noise",
    ]:
        assert name in names
    assert len(names) == len(set(names))
    for name in names:
        info = dataset_info(name)
        assert isinstance(info, DatasetInfo) and info.name == name
        assert len(info.shape) == 3 and info.shape[0] in (1, 3)
        assert info.num_classes >= 1 and info.description and info.expected_files


@pytest.mark.parametrize(
    "name, classes, shape",
    [
        ("mnist", 10, (1, 28, 28)), ("fashion", 10, (1, 28, 28)), ("cifar10", 10, (3, 32, 32)),
        ("cifar100", 100, (3, 32, 32)), ("cifar10_large", 10, (3, 224, 224)), ("cifar100_large", 100, (3, 224, 224)),
        ("cifar5m", 10, (3, 32, 32)), ("svhn", 10, (3, 32, 32)), ("imagenet", 1000, (3, 224, 224)),
        ("outlier_exposure", 1, (3, 32, 32)),
    ],
)  # fmt: skip
def test_class_counts_and_shapes_match_the_original(name, classes, shape):
    info = dataset_info(name)
    assert (info.num_classes, info.shape) == (classes, shape)


def test_aliases_resolve_to_the_canonical_entry():
    assert dataset_info("fashion-mnist") is dataset_info("fashion")
    assert dataset_info("fashion_mnist").name == "fashion"
    assert dataset_info("oe").name == "outlier_exposure"
    assert "fashion-mnist" in dataset_info("fashion").aliases
    assert "oe" not in list_datasets()


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(UnknownNameError) as err:
        dataset_info("cifar11")
    message = str(err.value)
    assert "cifar11" in message and "cifar10" in message and "imagenet" in message and "digits" in message
    with pytest.raises(StitchkitError):
        get_dataset("not_a_dataset")


def test_unknown_split_and_bad_options_are_user_errors():
    with pytest.raises(StitchkitError, match="split"):
        get_dataset("digits", split="validation")
    with pytest.raises(StitchkitError, match="size"):
        get_dataset("digits", size=10)
    with pytest.raises(StitchkitError, match="size"):
        get_dataset("noise", size=0)
    with pytest.raises(StitchkitError, match="shape"):
        get_dataset("noise", shape=(2, 8, 8))


def test_mean_std_only_for_imagenet():
    assert dataset_mean_std("imagenet") == (IMAGENET_MEAN, IMAGENET_STD)
    for name in ["cifar10", "cifar5m", "mnist", "svhn", "outlier_exposure", "digits"]:
        assert dataset_mean_std(name) is None


def test_data_root_argument_then_env_then_default(monkeypatch, tmp_path):
    assert resolve_data_root() == (Path.cwd() / "data").absolute()
    monkeypatch.setenv("STITCHKIT_DATA", str(tmp_path / "env_root"))
    assert resolve_data_root() == tmp_path / "env_root"
    assert resolve_data_root(tmp_path / "explicit") == tmp_path / "explicit"


def test_env_var_root_is_used_to_load(monkeypatch, tmp_path):
    written = write_cifar10(tmp_path / "elsewhere")
    monkeypatch.setenv("STITCHKIT_DATA", str(tmp_path / "elsewhere"))
    dataset = get_dataset("cifar10", "test")
    assert len(dataset) == len(written["test"][1])


# --------------------------------------------------------------------------------------------------
# file-based datasets


def test_cifar10_train_and_test(tmp_path):
    written = write_cifar10(tmp_path)
    train = get_dataset("cifar10", "train", root=tmp_path, augment=False)
    test = get_dataset("cifar10", "test", root=tmp_path)
    assert len(train) == 15 and len(test) == 4
    assert train.classes == [f"class{i}" for i in range(10)]
    for dataset, split in ((train, "train"), (test, "test")):
        data, labels = written[split]
        for i in (0, len(dataset) - 1):
            image, label = dataset[i]
            assert image.shape == (3, 32, 32) and image.dtype == torch.float32
            assert 0.0 <= float(image.min()) and float(image.max()) <= 1.0
            assert isinstance(label, int) and label == labels[i]
            np.testing.assert_array_equal(as_uint8_chw(image), data[i].reshape(3, 32, 32))


def test_train_augmentation_changes_images_but_keeps_shape(tmp_path):
    write_cifar10(tmp_path)
    plain = get_dataset("cifar10", "train", root=tmp_path, augment=False)
    augmented = get_dataset("cifar10", "train", root=tmp_path)  # augment defaults to True for train
    torch.manual_seed(0)
    draws = [augmented[0][0] for _ in range(8)]
    assert all(d.shape == (3, 32, 32) for d in draws)
    assert any(not torch.equal(d, plain[0][0]) for d in draws)
    assert torch.equal(plain[0][0], plain[0][0])  # eval transform: plain ToTensor, deterministic


def test_custom_transform_replaces_the_default(tmp_path):
    write_cifar10(tmp_path)
    dataset = get_dataset("cifar10", "test", root=tmp_path, transform=lambda img: torch.full((2,), float(img.size[0])))
    assert torch.equal(dataset[0][0], torch.tensor([32.0, 32.0]))


def test_cifar100_uses_fine_labels(tmp_path):
    written = write_cifar100(tmp_path)
    for split in ("train", "test"):
        dataset = get_dataset("cifar100", split, root=tmp_path)
        data, fine = written[split]
        assert len(dataset) == len(fine)
        image, label = dataset[1]
        assert label == fine[1] and image.shape == (3, 32, 32)
        if split == "test":
            np.testing.assert_array_equal(as_uint8_chw(image), data[1].reshape(3, 32, 32))


@pytest.mark.parametrize("name", ["cifar10_large", "cifar100_large"])
def test_large_cifar_variants_are_224(tmp_path, name):
    write_cifar10(tmp_path)
    write_cifar100(tmp_path)
    for split, augment in (("test", None), ("train", None), ("train", False)):
        image, _ = get_dataset(name, split, root=tmp_path, augment=augment)[0]
        assert image.shape == (3, 224, 224)  # CIFAR-100's eval is 224, not the original's 244 typo
        assert 0.0 <= float(image.min()) and float(image.max()) <= 1.0


def test_svhn_mat_files_and_label_ten_is_zero(tmp_path):
    written = write_svhn(tmp_path)
    for split in ("train", "test"):
        dataset = get_dataset("svhn", split, root=tmp_path, augment=False)
        images, digits = written[split]
        assert len(dataset) == len(digits)
        assert [dataset[i][1] for i in range(len(dataset))] == list(digits)
        assert 0 in [dataset[i][1] for i in range(len(dataset))]
        np.testing.assert_array_equal(as_uint8_chw(dataset[2][0]), images[2].transpose(2, 0, 1))
    torch.manual_seed(0)
    assert get_dataset("svhn", "train", root=tmp_path)[0][0].shape == (3, 32, 32)


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("name, folder", [("mnist", "MNIST"), ("fashion", "FashionMNIST")])
def test_idx_datasets_plain_and_gzipped(tmp_path, name, folder, gz):
    written = write_mnist_like(tmp_path / folder / "raw", gz=gz)
    for split in ("train", "test"):
        dataset = get_dataset(name, split, root=tmp_path, augment=False)
        images, labels = written[split]
        assert len(dataset) == len(labels)
        image, label = dataset[3]
        assert image.shape == (1, 28, 28) and image.dtype == torch.float32
        assert label == labels[3] and isinstance(label, int)
        np.testing.assert_array_equal(as_uint8_chw(image)[0], images[3])
    torch.manual_seed(0)
    assert get_dataset(name, "train", root=tmp_path)[0][0].shape == (1, 28, 28)


def test_read_idx_rejects_other_files(tmp_path):
    (tmp_path / "junk").write_bytes(b"not an idx file")
    with pytest.raises(StitchkitError, match="IDX"):
        read_idx(tmp_path / "junk")


def test_fashion_from_the_system_location(monkeypatch, tmp_path):
    assert DEBIAN_FASHION.is_dir(), "Debian's dataset-fashion-mnist package must be installed for this test"
    monkeypatch.setitem(SYSTEM_DATA_DIRS, "fashion", (DEBIAN_FASHION,))
    train = get_dataset("fashion-mnist", "train", root=tmp_path, download=False)
    test = get_dataset("fashion", "test", root=tmp_path, download=False, augment=False)
    assert len(train) == 60_000 and len(test) == 10_000
    image, label = test[0]
    assert image.shape == (1, 28, 28) and 0 <= label < 10
    assert label == 9  # the first Fashion-MNIST test image is an ankle boot
    assert not any(tmp_path.iterdir())  # read in place, nothing written


def test_data_root_comes_before_the_system_location(monkeypatch, tmp_path):
    monkeypatch.setitem(SYSTEM_DATA_DIRS, "fashion", (DEBIAN_FASHION,))
    write_mnist_like(tmp_path / "FashionMNIST" / "raw", gz=True, n_test=4)
    assert len(get_dataset("fashion", "test", root=tmp_path)) == 4


def test_system_location_is_a_monkeypatchable_list(monkeypatch, tmp_path):
    system = tmp_path / "usr_share_mnist"
    written = write_mnist_like(system, gz=True)
    monkeypatch.setitem(SYSTEM_DATA_DIRS, "mnist", (system,))
    dataset = get_dataset("mnist", "train", root=tmp_path / "empty_root", download=False)
    assert len(dataset) == len(written["train"][1])


def test_cifar5m_is_memory_mapped_and_concatenated(tmp_path):
    all_x, all_y = write_cifar5m(tmp_path)
    dataset = get_dataset("cifar5m", "train", root=tmp_path)
    assert len(dataset) == sum(CIFAR5M_SIZES)
    assert all(isinstance(part.array, np.memmap) for part in dataset.images.arrays)
    for i in (0, 2, 3, 5, 9, len(dataset) - 1):  # indices across part boundaries
        image, label = dataset[i]
        assert image.shape == (3, 32, 32) and label == all_y[i]
        np.testing.assert_array_equal(as_uint8_chw(image), all_x[i].transpose(2, 0, 1))
    # cifar5m's default train transform has no augmentation
    assert torch.equal(dataset[4][0], dataset[4][0])


def test_memory_mapped_datasets_pickle_as_file_references(tmp_path):
    # DataLoader workers started by spawn/forkserver receive the dataset pickled: the parts must
    # travel as "map this file again", not as copies of the data.
    write_cifar5m(tmp_path)
    write_oe(tmp_path)
    for name in ("cifar5m", "outlier_exposure"):
        dataset = get_dataset(name, "train", root=tmp_path, augment=False)
        blob = pickle.dumps(dataset)
        assert len(blob) < 4_000  # the pixels alone are 18 KB (OE) and 46 KB (CIFAR-5M)
        clone = pickle.loads(blob)
        assert len(clone) == len(dataset)
        assert torch.equal(clone[len(dataset) - 1][0], dataset[len(dataset) - 1][0])
        assert clone[1][1] == dataset[1][1]


def test_npz_member_memmap_in_place_and_compressed_fallback(tmp_path):
    x = np.arange(2 * 4 * 3, dtype=np.uint8).reshape(2, 4, 3)
    np.savez(tmp_path / "stored.npz", X=x, Y=np.array([1, 2]))
    mapped = memmap_npz_member(tmp_path / "stored.npz", "X")
    assert isinstance(mapped, np.memmap) and Path(mapped.filename) == tmp_path / "stored.npz"
    np.testing.assert_array_equal(mapped, x)
    np.savez_compressed(tmp_path / "packed.npz", X=x)
    mapped = memmap_npz_member(tmp_path / "packed.npz", "X")
    assert isinstance(mapped, np.memmap)
    np.testing.assert_array_equal(mapped, x)
    assert (tmp_path / "packed.X.npy").is_file()  # extracted once beside the archive
    assert isinstance(memmap_npz_member(tmp_path / "packed.npz", "X"), np.memmap)  # cache reused
    with pytest.raises(StitchkitError, match="no array"):
        memmap_npz_member(tmp_path / "stored.npz", "Z")


def test_cifar5m_compressed_part_goes_through_the_fallback(tmp_path):
    all_x, all_y = write_cifar5m(tmp_path, compressed_parts=(2,))
    dataset = get_dataset("cifar5m", "train", root=tmp_path)
    assert all(isinstance(part.array, np.memmap) for part in dataset.images.arrays)
    assert (tmp_path / "cifar5m" / "cifar5m_part2.X.npy").is_file()
    i = CIFAR5M_SIZES[0] + CIFAR5M_SIZES[1] + 1  # inside part 2
    np.testing.assert_array_equal(as_uint8_chw(dataset[i][0]), all_x[i].transpose(2, 0, 1))
    assert dataset[i][1] == all_y[i]


def test_cifar5m_test_split_is_cifar10_test(tmp_path):
    write_cifar5m(tmp_path)
    written = write_cifar10(tmp_path)
    test = get_dataset("cifar5m", "test", root=tmp_path)
    reference = get_dataset("cifar10", "test", root=tmp_path)
    assert len(test) == len(reference) == len(written["test"][1])
    for i in range(len(test)):
        assert torch.equal(test[i][0], reference[i][0]) and test[i][1] == reference[i][1]


def test_outlier_exposure_npy_label_one_and_test_split(tmp_path):
    images = write_oe(tmp_path)
    test = get_dataset("oe", "test", root=tmp_path)  # the original crashed here
    assert isinstance(test.images.array, np.memmap)
    assert len(test) == len(images)
    image, label = test[2]
    assert label == 1 and image.shape == (3, 32, 32)
    np.testing.assert_array_equal(as_uint8_chw(image), images[2].transpose(2, 0, 1))
    torch.manual_seed(0)
    train = get_dataset("outlier_exposure", "train", root=tmp_path)
    assert train[0][0].shape == (3, 32, 32) and train[0][1] == 1
    assert not dataset_info("outlier_exposure").has_test_split


@pytest.mark.parametrize("under_imagenet", [True, False])
def test_imagenet_folders_sorted_classes_and_normalisation(tmp_path, under_imagenet):
    base = tmp_path / "imagenet" if under_imagenet else tmp_path
    write_image_folder(base / "training_data")
    write_image_folder(base / "validation_data", per_class=1)
    train = get_dataset("imagenet", "train", root=tmp_path)
    val = get_dataset("imagenet", "test", root=tmp_path)
    assert train.classes == ["a_cats", "b_dogs", "c_birds"]
    assert len(train) == 6 and len(val) == 3
    assert [val[i][1] for i in range(3)] == [0, 1, 2]
    image, _ = val[0]
    assert image.shape == (3, 224, 224)
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    raw = image * std + mean
    assert float(raw.min()) >= -1e-5 and float(raw.max()) <= 1 + 1e-5
    assert float(image.min()) < 0.0  # normalised, not raw pixels
    torch.manual_seed(0)
    assert train[0][0].shape == (3, 224, 224)


# --------------------------------------------------------------------------------------------------
# missing data


def test_missing_dataset_names_files_roots_and_remedy(tmp_path):
    with pytest.raises(StitchkitError) as err:
        get_dataset("cifar10", root=tmp_path, download=False)
    message = str(err.value)
    assert "'cifar10'" in message and str(tmp_path) in message
    assert "cifar-10-batches-py" in message and "data_batch_1" in message and "download=True" in message
    assert "\n" not in message

    with pytest.raises(StitchkitError) as err:
        get_dataset("cifar5m", root=tmp_path)
    assert "cifar5m_part0.npz" in str(err.value) and "preetum/cifar5m" in str(err.value)

    with pytest.raises(StitchkitError) as err:
        get_dataset("outlier_exposure", root=tmp_path)
    assert "300K_random_images.npy" in str(err.value) and str(tmp_path / "oe") in str(err.value)

    with pytest.raises(StitchkitError) as err:
        get_dataset("imagenet", "test", root=tmp_path)
    assert "validation_data" in str(err.value) and str(tmp_path / "imagenet") in str(err.value)


def test_missing_fashion_mentions_the_debian_package_and_searched_folders(monkeypatch, tmp_path):
    monkeypatch.setitem(SYSTEM_DATA_DIRS, "fashion", (tmp_path / "no_such_system_dir",))
    with pytest.raises(StitchkitError) as err:
        get_dataset("fashion", root=tmp_path / "root", download=False)
    message = str(err.value)
    assert "apt-get install dataset-fashion-mnist" in message
    assert "train-images-idx3-ubyte" in message
    assert str(tmp_path / "root" / "FashionMNIST" / "raw") in message and "no_such_system_dir" in message


def test_failed_download_is_the_missing_data_error(tmp_path):
    # The autouse fixture makes every download raise URLError, as on a machine without network.
    for name in ("cifar10", "cifar100", "svhn", "mnist", "fashion"):
        with pytest.raises(StitchkitError) as err:
            get_dataset(name, root=tmp_path, download=True)
        assert "download failed" in str(err.value) and "network disabled" in str(err.value)


def test_download_is_only_tried_when_files_are_missing(monkeypatch, tmp_path):
    calls = []
    monkeypatch.setattr(sources, "download_with_torchvision", lambda *a, **k: calls.append(a))
    write_cifar10(tmp_path)
    get_dataset("cifar10", root=tmp_path, download=True)
    assert calls == []


# --------------------------------------------------------------------------------------------------
# offline sets


def test_digits_shapes_split_and_determinism():
    train = get_dataset("digits", "train", augment=False)
    test = get_dataset("digits", "test")
    assert len(train) + len(test) == 1797 and len(train) == 1438
    image, label = test[5]
    assert image.shape == (1, 28, 28) and image.dtype == torch.float32 and 0 <= label < 10
    assert 0.0 <= float(image.min()) and float(image.max()) <= 1.0
    assert torch.equal(test[5][0], get_dataset("digits", "test")[5][0])
    assert set(train.labels.tolist()) == set(range(10))
    big = get_dataset("digits", "test", shape=(3, 32, 32))
    assert big[0][0].shape == (3, 32, 32)
    torch.manual_seed(0)
    assert get_dataset("digits", "train")[0][0].shape == (1, 28, 28)


@pytest.mark.parametrize("name, shape", [("natural_patches", (3, 32, 32)), ("natural_patches_gray", (1, 28, 28))])
def test_natural_patches_are_deterministic_per_index(name, shape):
    first = get_dataset(name, "train", augment=False, size=20)
    second = get_dataset(name, "train", augment=False, size=20)
    assert len(first) == 20 and len(get_dataset(name, "test")) == 10_000
    assert len(get_dataset(name, "train")) == 50_000
    image, label = first[7]
    assert image.shape == shape and label == 1
    assert 0.0 <= float(image.min()) and float(image.max()) <= 1.0
    assert torch.equal(image, second[7][0])
    assert not torch.equal(first[7][0], first[8][0])
    assert not torch.equal(first[7][0], get_dataset(name, "test", size=20)[7][0])
    assert float(image.std()) > 0.0  # not a flat image


def test_natural_patches_can_match_another_sets_shape():
    image, _ = get_dataset("natural_patches", "test", shape=(1, 28, 28), size=3)[0]
    assert image.shape == (1, 28, 28)
    image, _ = get_dataset("natural_patches_gray", "test", shape=(3, 64, 48), size=3)[0]
    assert image.shape == (3, 64, 48)
    torch.manual_seed(0)
    assert get_dataset("natural_patches", "train", size=3)[0][0].shape == (3, 32, 32)


def test_file_datasets_can_be_converted_to_another_shape(tmp_path):
    write_cifar10(tmp_path)
    image, _ = get_dataset("cifar10", "test", root=tmp_path, shape=(1, 28, 28))[0]
    assert image.shape == (1, 28, 28) and 0.0 <= float(image.min()) and float(image.max()) <= 1.0


def test_registered_sets_take_a_size_like_own_data(tmp_path):
    raw = write_cifar10(tmp_path)["test"][0].reshape(-1, 3, 32, 32).astype(np.float64) / 255
    info = dataset_info("CIFAR10@1x32x32")
    assert (info.name, info.shape, info.num_classes) == ("cifar10@1x32x32", (1, 32, 32), 10)
    grey, _ = get_dataset("cifar10@1x32x32", "test", root=tmp_path)[0]
    luma = np.tensordot([0.299, 0.587, 0.114], raw[0], axes=1)  # ITU-R 601-2, as PIL's convert("L")
    np.testing.assert_allclose(grey[0].numpy(), luma, atol=1e-6)
    small, _ = get_dataset("cifar10@3x16x16", "test", root=tmp_path)[1]
    pil = Image.fromarray(np.uint8(np.rint(raw[1] * 255)).transpose(1, 2, 0)).resize((16, 16), Image.BILINEAR)
    assert small.shape == (3, 16, 16)
    assert np.abs(small.numpy().transpose(1, 2, 0) * 255 - np.asarray(pil, dtype=np.float64)).max() <= 2.0
    # the same delivery as get_dataset(shape=...), augmented training batches included
    torch.manual_seed(0)
    named = next(iter(DataLoader(get_dataset("cifar10@3x48x40", "train", root=tmp_path), batch_size=4)))[0]
    torch.manual_seed(0)
    shaped = next(iter(DataLoader(get_dataset("cifar10", "train", root=tmp_path, shape=(3, 48, 40)), batch_size=4)))[0]
    assert named.shape == (4, 3, 48, 40) and torch.equal(named, shaped)


def test_size_suffix_of_generated_sets_and_aliases():
    images, labels = next(iter(DataLoader(get_dataset("digits@3x32x32", "test"), batch_size=5)))
    assert images.shape == (5, 3, 32, 32) and torch.equal(images[:, 0], images[:, 2])  # grey repeated
    assert get_dataset("noise@1x8x8", "test", size=2)[0][0].shape == (1, 8, 8)
    assert dataset_info("fashion-mnist@40x40").name == "fashion@1x40x40"  # @HxW keeps the set's channels
    assert dataset_info("digits@1x28x28").name == "digits"  # the set's own shape is the set itself


@pytest.mark.parametrize("name", ["fashion@2x32x32", "fashion@0x28", "fashion@28", "fashion@big", "fashion@3x28x28x1"])
def test_bad_size_suffix_says_what_is_accepted(name):
    with pytest.raises(StitchkitError, match=r"the size after '@' is HxW or CxHxW with 1 or 3 channels.*e\.g\. @32x32"):
        dataset_info(name)


def test_unknown_sized_name_lists_the_known_ones_and_the_forms():
    with pytest.raises(UnknownNameError, match=r"unknown dataset 'fashon'.*fashion.*NAME@CxHxW.*folder:PATH"):
        dataset_info("fashon@3x32x32")


@pytest.mark.parametrize("name", ["noise", "noise_gaussian"])
def test_noise_is_deterministic_and_in_range(name):
    dataset = get_dataset(name, "test", size=5)
    assert len(dataset) == 5
    image, label = dataset[3]
    assert image.shape == (3, 32, 32) and label == 1
    assert 0.0 <= float(image.min()) and float(image.max()) <= 1.0
    assert torch.equal(image, get_dataset(name, "test", size=5)[3][0])
    assert not torch.equal(image, dataset[2][0])
    assert get_dataset(name, "train", size=2, shape=(1, 8, 8))[1][0].shape == (1, 8, 8)
    assert dataset_info("noise_uniform").name == "noise"


def test_items_batch_through_a_dataloader():
    loader = DataLoader(get_dataset("noise", "test", size=10), batch_size=4)
    images, labels = next(iter(loader))
    assert images.shape == (4, 3, 32, 32) and labels.tolist() == [1, 1, 1, 1]


# --------------------------------------------------------------------------------------------------
# the multi-epoch sampler


def test_sampler_epochs_are_disjoint_until_the_data_are_used_up():
    data = list(range(10))
    sampler = MultiEpochDisjointSubsetSampler(data, 3, generator=torch.Generator().manual_seed(0))
    epochs = []
    for _ in range(4):
        expected_len = len(sampler)
        epochs.append(list(sampler))
        assert len(epochs[-1]) == expected_len
    assert [len(e) for e in epochs] == [3, 3, 3, 1]  # the last slice of a permutation is shorter
    seen = [i for e in epochs for i in e]
    assert sorted(seen) == data  # disjoint, and together every index once
    fifth = list(sampler)  # a new permutation
    assert len(fifth) == 3 and set(fifth) <= set(data)


def test_sampler_is_reproducible_with_a_generator_and_validates_n():
    a = MultiEpochDisjointSubsetSampler(range(100), 30, generator=torch.Generator().manual_seed(1))
    b = MultiEpochDisjointSubsetSampler(range(100), 30, generator=torch.Generator().manual_seed(1))
    assert [list(a) for _ in range(5)] == [list(b) for _ in range(5)]
    small = MultiEpochDisjointSubsetSampler(range(4), 10)
    assert len(small) == 4 and sorted(small) == [0, 1, 2, 3]
    for bad in (0, -5, None, 2.5, True):
        with pytest.raises(StitchkitError):
            MultiEpochDisjointSubsetSampler(range(4), bad)


def test_sampler_drives_a_dataloader():
    sampler = MultiEpochDisjointSubsetSampler(range(20), 8, generator=torch.Generator().manual_seed(2))
    loader = DataLoader(list(range(20)), batch_size=4, sampler=sampler)
    first = torch.cat(list(loader)).tolist()
    second = torch.cat(list(loader)).tolist()
    assert len(first) == len(second) == 8 and not set(first) & set(second)


def test_train_sampler_only_for_cifar5m(tmp_path):
    write_cifar5m(tmp_path)
    dataset = get_dataset("cifar5m", root=tmp_path)
    sampler = train_sampler_for("cifar5m", dataset)
    assert isinstance(sampler, MultiEpochDisjointSubsetSampler) and sampler.n_samples == 50_000
    assert sorted(sampler) == list(range(len(dataset)))  # fewer images than 50,000: all of them
    assert train_sampler_for("cifar10", dataset) is None
    assert train_sampler_for("digits", dataset) is None
