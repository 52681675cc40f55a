"""Own data read right (issue 18, part 4): damaged files named, 16-bit images scaled, class rules shared
by folders and arrays, ``@HxW`` sizes checked against memory, and worker errors kept to one line."""

import warnings

import numpy as np
import pytest
import torch
from PIL import Image
from test_own_data import write_folder, write_npz
from torch.utils.data import DataLoader

from stitchkit.cli import main
from stitchkit.data import custom, dataset_info, get_dataset
from stitchkit.data.image_files import read_image
from stitchkit.errors import StitchkitError, StitchkitWarning


def _cut_jpeg(path):
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(path, quality=95)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # the header is intact, the data cut
    return path


def test_a_cut_jpeg_is_named_when_decoded(tmp_path):
    root = write_folder(tmp_path / "f", mode="RGB")
    bad = _cut_jpeg(root / "train" / "cat" / "9.jpg")
    data = get_dataset(f"folder:{root}@3x6x5", "train")  # the size given: no header is read, the layout is accepted
    index = data.files.index(str(bad))
    with pytest.raises(StitchkitError, match=rf"cannot decode image {bad}: its data is cut short") as info:
        data[index]
    assert "\n" not in str(info.value)


def test_an_error_in_a_loader_worker_keeps_its_one_line(tmp_path):
    root = write_folder(tmp_path / "f", mode="RGB")
    bad = _cut_jpeg(root / "train" / "cat" / "0a.jpg")
    data = get_dataset(f"folder:{root}@3x6x5", "train")
    with pytest.raises(StitchkitError) as info:
        list(DataLoader(data, batch_size=len(data), num_workers=1))
    assert str(info.value).startswith(f"cannot decode image {bad}: its data is cut short") and "\n" not in str(
        info.value
    )


def test_the_cli_names_a_cut_jpeg(tmp_path, capsys):
    root = write_folder(tmp_path / "f", mode="RGB", per_class=(1, 1))
    bad = _cut_jpeg(root / "test" / "dog" / "1.jpg")
    model = tmp_path / "m.pt"
    from stitchkit.models import get_model
    from stitchkit.models.checkpoint import save_checkpoint

    # (8×8: small_cnn pools three times and takes no smaller images)
    save_checkpoint(
        model,
        get_model("small_cnn", num_classes=2, in_channels=3, input_size=(8, 8), width=2),
        dataset="digits",
        input_shape=(3, 8, 8),
    )
    code = main(["eval", str(model), "-d", f"folder:{root}@3x8x8", "-gpu", "-1", "-workers", "0", "--no-progress"])
    err = capsys.readouterr().err
    lines = err.splitlines()  # the network records digits: that is said once, then the error
    assert (
        code == 2 and len(lines) == 2 and lines[0].startswith("stitchkit: warning: the network was trained on digits")
    )
    assert lines[1].startswith(f"stitchkit: error: cannot decode image {bad}")


def test_sixteen_bit_images_are_scaled_not_clipped(tmp_path):
    values = np.array([[0, 257 * 100, 65535, 1000]], dtype=np.uint16)  # 1000 → round(1000·255/65535) = 4
    path = tmp_path / "16.png"
    Image.fromarray(values).save(path)
    assert Image.open(path).mode.startswith("I")
    expected = np.array([[0, 100, 255, 4]], dtype=np.uint8)
    assert np.array_equal(np.asarray(read_image(str(path), "L")), expected)
    assert np.array_equal(np.asarray(read_image(str(path), "RGB")), np.stack([expected] * 3, -1))
    # through a folder dataset: the tensor values are k/255
    root = write_folder(tmp_path / "f")
    Image.fromarray(np.full((6, 5), 257 * 60, dtype=np.uint16)).save(root / "train" / "cat" / "16bit.png")
    data = get_dataset(f"folder:{root}", "train")
    image, label = data[data.files.index(str(root / "train" / "cat" / "16bit.png"))]
    assert label == 0 and torch.allclose(image, torch.full((1, 6, 5), 60 / 255))


def test_a_32_bit_image_outside_16_bits_is_refused(tmp_path):
    path = tmp_path / "big.tif"
    Image.fromarray(np.array([[0, 70000]], dtype=np.int32), mode="I").save(path)
    with pytest.raises(StitchkitError, match=r"values in \[0, 70000\], outside the 16-bit range"):
        read_image(str(path), "L")


def test_fewer_than_two_classes_are_refused(tmp_path):
    root = write_folder(tmp_path / "f", classes=("cat",))
    with pytest.raises(StitchkitError, match="train/ has only class 'cat'; a classifier needs at least two classes"):
        dataset_info(f"folder:{root}")
    path = write_npz(tmp_path / "one.npz", y_train=np.zeros(40, int), y_test=np.zeros(12, int))
    with pytest.raises(StitchkitError, match="y_train has only class 0; a classifier needs at least two classes"):
        dataset_info(f"npz:{path}")
    # labels all 1: one class holding images (class 0 empty) is still one class
    path = write_npz(tmp_path / "ones.npz", y_train=np.ones(40, int), y_test=np.ones(12, int))
    with pytest.raises(StitchkitError, match="y_train has only class 1"):
        dataset_info(f"npz:{path}")


def test_an_npz_test_class_the_train_split_lacks_is_refused(tmp_path):
    path = write_npz(tmp_path / "d.npz", y_train=np.arange(40) % 3, y_test=np.array([0, 1, 2, 5] * 3))
    with pytest.raises(
        StitchkitError,
        match=r"y_test has class 5, which y_train lacks; both splits use the train split's classes \(0–2\)",
    ):
        dataset_info(f"npz:{path}")
    # the same rule and words as for folders
    root = write_folder(tmp_path / "f")
    (root / "test" / "eel").mkdir()
    Image.fromarray(np.zeros((6, 5), np.uint8)).save(root / "test" / "eel" / "0.png")
    with pytest.raises(
        StitchkitError,
        match=r"test/ has class 'eel', which train/ lacks; both splits use the train split's classes \(cat, dog\)",
    ):
        dataset_info(f"folder:{root}")


def test_a_class_without_training_images_is_warned_of(tmp_path):
    path = write_npz(tmp_path / "d.npz", y_train=np.arange(40) % 3 + 1, y_test=np.arange(12) % 3 + 1)  # 1-based labels
    with pytest.warns(
        StitchkitWarning,
        match=r"class 0 has no training images \(labels 1–3\), yet counts among its 4 classes.*1-based",
    ):
        info = dataset_info(f"npz:{path}")
    assert info.num_classes == 4
    path = write_npz(tmp_path / "gap.npz", y_train=np.array([0, 1, 4] * 10 + [0] * 10), y_test=np.arange(12) % 2)
    with pytest.warns(StitchkitWarning, match=r"class 2–3 has no training images \(labels 0–1, 4\)"):
        assert dataset_info(f"npz:{path}").num_classes == 5
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        dataset_info(f"npz:{write_npz(tmp_path / 'fine.npz')}")  # every class present: silent


def test_a_size_is_checked_against_memory_first(tmp_path, monkeypatch):
    path = write_npz(tmp_path / "d.npz")
    monkeypatch.setattr(custom, "available_memory", lambda: 30_000)
    with pytest.raises(
        StitchkitError,
        match=r"@100x100 makes every image 1×100×100, which takes .* \(40000 bytes\) as float32 for one image, "
        r"more than the .* of memory available",
    ):
        dataset_info(f"npz:{path}@100x100")
    assert dataset_info(f"npz:{path}@3x50x50").shape == (3, 50, 50)  # 30000 bytes: fits
    root = write_folder(tmp_path / "f")
    with pytest.raises(StitchkitError, match=r"\(120000 bytes\)"):
        dataset_info(f"folder:{root}@3x100x100")


def test_the_cli_refuses_a_huge_size_in_one_line(tmp_path, capsys):
    path = write_npz(tmp_path / "d.npz")
    assert main(["layers", "small_cnn", "-d", f"npz:{path}@1000000x1000000"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("stitchkit: error: dataset npz:") and "(4000000000000 bytes)" in err and err.count("\n") == 1
