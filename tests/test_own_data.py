"""Your own data: `folder:PATH` image trees and `npz:PATH` arrays, through the dataset registry (so in
every command and study config), with one clear error for every wrong layout."""

import json
import textwrap
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

from stitchkit.cli import main
from stitchkit.data import dataset_info, get_dataset
from stitchkit.data.datasets import ArrayImageDataset, TensorImageDataset
from stitchkit.errors import StitchkitError


def write_npz(path, compressed=False, **overrides):
    rng = np.random.default_rng(0)
    arrays = {
        "x_train": rng.integers(0, 256, (40, 8, 8), dtype=np.uint8),
        "y_train": np.arange(40) % 3,
        "x_test": rng.integers(0, 256, (12, 8, 8), dtype=np.uint8),
        "y_test": np.arange(12) % 3,
    }
    arrays.update(overrides)
    arrays = {k: v for k, v in arrays.items() if v is not None}
    (np.savez_compressed if compressed else np.savez)(path, **arrays)
    return path


def write_folder(root, sizes=None, mode="L", classes=("cat", "dog"), per_class=(3, 2)):
    """A tree root/{train,test}/<class>/<i>.png; each image is one grey level (40·label + i) so items
    can be checked exactly; ``sizes`` maps (split, class, i) to another (H, W)."""
    values = {}
    for split, n in zip(("train", "test"), per_class):
        for label, name in enumerate(classes):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                level = 40 * label + i + (100 if split == "test" else 0)
                h, w = (sizes or {}).get((split, name, i), (6, 5))
                pixels = np.full((h, w), level, dtype=np.uint8)
                image = Image.fromarray(pixels) if mode == "L" else Image.fromarray(np.stack([pixels] * 3, -1))
                image.save(folder / f"{i}.png")
                values[(split, label, i)] = level
    return root


# --------------------------------------------------------------------------------------------------
# npz


@pytest.mark.parametrize("compressed", [False, True])
def test_npz_items_are_the_arrays(tmp_path, compressed):
    path = write_npz(tmp_path / "d.npz", compressed=compressed)
    raw = np.load(path)
    info = dataset_info(f"npz:{path}")
    assert (info.num_classes, info.shape, info.name) == (3, (1, 8, 8), f"npz:{path}")
    for split in ("train", "test"):
        data = get_dataset(f"npz:{path}", split)
        assert isinstance(data, ArrayImageDataset) and data.images.dtype == np.uint8  # loadable to a device as uint8
        assert isinstance(data.images, np.memmap) is (not compressed)  # stored archives are mapped, not copied
        assert len(data) == len(raw[f"y_{split}"])
        for i in (0, len(data) - 1):
            image, label = data[i]
            assert torch.equal(image, torch.from_numpy(raw[f"x_{split}"][i]).float().div(255)[None])
            assert label == raw[f"y_{split}"][i]


def test_npz_colour_float_and_resized(tmp_path):
    rng = np.random.default_rng(1)
    # float images that are k/255 become uint8 without loss
    levels = rng.integers(0, 256, (10, 4, 4, 3))
    path = write_npz(
        tmp_path / "a.npz",
        x_train=(levels / 255).astype(np.float32),
        x_test=(levels[:4] / 255),
        y_train=np.arange(10) % 2,
        y_test=np.array([0.0, 1.0, 1.0, 0.0]),
    )
    data = get_dataset(f"npz:{path}", "train")
    assert isinstance(data, ArrayImageDataset) and np.array_equal(data.images, levels.astype(np.uint8))
    assert dataset_info(f"npz:{path}").shape == (3, 4, 4)
    # other floats stay exact
    x = rng.random((6, 5, 5, 1)).astype(np.float32)
    path = write_npz(
        tmp_path / "b.npz", x_train=x, x_test=x[:2], y_train=np.array([0, 1, 2, 3, 4, 5]), y_test=np.array([5, 0])
    )
    data = get_dataset(f"npz:{path}", "train")
    assert isinstance(data, TensorImageDataset) and dataset_info(f"npz:{path}").num_classes == 6
    assert torch.equal(data[3][0], torch.from_numpy(x[3]).permute(2, 0, 1))
    # @HxW delivers another size: a constant image stays the same constant at any size
    const = np.full((4, 6, 6), 77, dtype=np.uint8)
    path = write_npz(tmp_path / "c.npz", x_train=const, x_test=const, y_train=np.arange(4) % 2, y_test=np.arange(4) % 2)
    info = dataset_info(f"npz:{path}@3x10x12")
    assert info.shape == (3, 10, 12) and info.name == f"npz:{path}@3x10x12"
    image, _ = get_dataset(info.name, "test")[1]
    assert image.shape == (3, 10, 12) and torch.allclose(image, torch.full((3, 10, 12), 77 / 255), atol=1e-6)


def test_relative_paths_become_absolute_names(tmp_path, monkeypatch):
    write_npz(tmp_path / "d.npz")
    monkeypatch.chdir(tmp_path)
    assert dataset_info("npz:d.npz").name == f"npz:{tmp_path / 'd.npz'}"
    assert dataset_info("NPZ:d.npz@16x16").name == f"npz:{tmp_path / 'd.npz'}@16x16"


@pytest.mark.parametrize(
    "overrides,message",
    [
        ({"y_test": None}, "has no y_test; it holds x_train, y_train, x_test"),
        ({"y_train": np.arange(39) % 3}, "x_train has 40 images but y_train has 39 labels"),
        ({"y_train": np.linspace(0, 1, 40)}, "y_train has non-integer labels"),
        ({"y_train": np.array(["a"] * 40)}, "labels must be integer class indices"),
        ({"y_test": -np.ones(12, int)}, "y_test has negative labels"),
        ({"y_train": np.eye(3)[np.arange(40) % 3]}, "one-hot"),
        ({"x_train": np.zeros((40, 3, 8, 8), np.uint8)}, "looks channels-first"),
        ({"x_train": np.zeros((40, 8), np.uint8)}, "images must be N×H×W"),
        ({"x_train": np.zeros((40, 8, 8), np.int64)}, "x_train is int64; images must be uint8"),
        ({"x_train": np.full((40, 8, 8), 2.0)}, "float with values in [2, 2]"),
        ({"x_train": np.full((40, 8, 8), np.nan)}, "NaN"),
        ({"x_test": np.zeros((12, 9, 8), np.uint8)}, "x_train images are 8×8×1 but x_test images are 9×8×1"),
        ({"x_test": np.zeros((0, 8, 8), np.uint8), "y_test": np.zeros(0, int)}, "x_test holds no images"),
    ],
)
def test_npz_layout_errors(tmp_path, overrides, message):
    path = write_npz(tmp_path / "d.npz", **overrides)
    with pytest.raises(StitchkitError) as info:
        dataset_info(f"npz:{path}")
    assert message in str(info.value) and str(path) in str(info.value)


def test_npz_file_errors(tmp_path):
    (tmp_path / "text.npz").write_text("not an archive")
    np.savez(
        tmp_path / "objects.npz",
        x_train=np.array([{"a": 1}] * 3, dtype=object),
        y_train=[0, 1, 2],
        x_test=np.zeros((1, 2, 2)),
        y_test=[0],
    )
    np.savez_compressed(
        tmp_path / "objects_z.npz",
        x_train=np.array([{"a": 1}] * 3, dtype=object),
        y_train=[0, 1, 2],
        x_test=np.zeros((1, 2, 2)),
        y_test=[0],
    )
    with zipfile.ZipFile(tmp_path / "empty.npz", "w"):
        pass
    for name, message in [
        ("missing.npz", "does not exist"),
        ("text.npz", "is not an .npz archive"),
        ("objects.npz", "stores x_train as Python objects"),
        ("objects_z.npz", "cannot read x_train"),
        ("empty.npz", "it holds nothing"),
        ("", "is a folder"),
    ]:
        with pytest.raises(StitchkitError) as info:
            dataset_info(f"npz:{tmp_path / name}")
        assert message in str(info.value)
    for bad in ("npz:", "npz:@32x32", f"npz:{tmp_path}/d.npz@32x"):
        with pytest.raises(StitchkitError):
            dataset_info(bad)
    with pytest.raises(StitchkitError, match="1 or 3 channels"):
        dataset_info(f"npz:{tmp_path}/d.npz@2x8x8")


# --------------------------------------------------------------------------------------------------
# image folders


def test_folder_items_labels_and_classes(tmp_path):
    root = write_folder(tmp_path / "imgs")
    info = dataset_info(f"folder:{root}")
    assert (info.num_classes, info.shape) == (2, (1, 6, 5))
    train = get_dataset(f"folder:{root}", "train")
    assert train.classes == ["cat", "dog"] and len(train) == 6
    for index, (label, i) in enumerate([(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2)]):
        image, got = train[index]
        assert got == label and torch.equal(image, torch.full((1, 6, 5), (40 * label + i) / 255))
    test = get_dataset(f"folder:{root}", "test")
    assert [test[k][1] for k in range(len(test))] == [0, 0, 1, 1]


def test_folder_colour_mixed_sizes_and_a_given_size(tmp_path):
    # one RGB image makes the whole set RGB; grey images are then repeated over the channels
    root = write_folder(tmp_path / "rgb")
    Image.fromarray(np.full((6, 5, 3), (10, 20, 30), np.uint8)).save(root / "train" / "cat" / "colour.png")
    assert dataset_info(f"folder:{root}").shape == (3, 6, 5)
    image, _ = get_dataset(f"folder:{root}", "train")[0]
    assert image.shape == (3, 6, 5) and torch.equal(image[0], image[2])
    # mixed sizes need a size; with one, every image is delivered at it (a constant stays constant)
    root = write_folder(tmp_path / "mixed", sizes={("train", "dog", 1): (9, 7)})
    with pytest.raises(StitchkitError, match=r"mixed sizes \(6×5 in .*, 9×7 in train/dog/1.png.*folder:.*@6x5"):
        dataset_info(f"folder:{root}")
    data = get_dataset(f"folder:{root}@8x8", "train")
    for index, level in [(0, 0), (4, 41)]:
        image, _ = data[index]
        assert image.shape == (1, 8, 8) and torch.allclose(image, torch.full((1, 8, 8), level / 255), atol=1e-6)
    # @CxHxW needs no header scan and sets the channels
    assert dataset_info(f"folder:{root}@3x4x4").shape == (3, 4, 4)
    assert get_dataset(f"folder:{root}@3x4x4", "test")[0][0].shape == (3, 4, 4)


def test_a_changed_folder_is_read_again(tmp_path):
    root = write_folder(tmp_path / "imgs")
    assert dataset_info(f"folder:{root}").description.startswith("your image folders: 6 train")
    (root / "train" / "bird").mkdir()
    Image.fromarray(np.zeros((6, 5), np.uint8)).save(root / "train" / "bird" / "0.png")
    assert dataset_info(f"folder:{root}").num_classes == 3


@pytest.mark.parametrize(
    "damage,message",
    [
        (lambda r: __import__("shutil").rmtree(r / "test"), "has no test/ folder"),
        (
            lambda r: (r / "train" / "cat" / "0.png").rename(r / "train" / "loose.png"),
            "train/ holds images directly (loose.png",
        ),
        (lambda r: (r / "test" / "fish").mkdir(), "test/ has class 'fish', which train/ lacks"),
        (lambda r: [p.unlink() for p in (r / "train" / "dog").iterdir()], "train/dog/ holds no images"),
        (lambda r: (r / "train" / "cat" / "1.png").write_bytes(b"not a png"), "cannot read image"),
        (lambda r: [p.unlink() for d in (r / "test").iterdir() for p in d.iterdir()], "test/ holds no images"),
    ],
)
def test_folder_layout_errors(tmp_path, damage, message):
    root = write_folder(tmp_path / "imgs")
    damage(root)
    with pytest.raises(StitchkitError) as info:
        dataset_info(f"folder:{root}")
    assert message in str(info.value) and str(root) in str(info.value)
    with pytest.raises(StitchkitError, match="does not exist"):
        dataset_info(f"folder:{tmp_path / 'nowhere'}")


def test_non_image_and_hidden_files_are_ignored(tmp_path):
    root = write_folder(tmp_path / "imgs")
    (root / "train" / "cat" / "notes.txt").write_text("hello")
    (root / "train" / "cat" / ".hidden.png").write_bytes(b"junk")
    (root / "train" / ".cache").mkdir()
    assert len(get_dataset(f"folder:{root}", "train")) == 6 and dataset_info(f"folder:{root}").num_classes == 2


# --------------------------------------------------------------------------------------------------
# every command: through the CLI, end to end


CPU = ["-gpu", "-1", "-workers", "0", "--no-progress"]


def test_train_and_stitch_end_to_end_on_npz(tmp_path, capsys):
    path = write_npz(tmp_path / "mine.npz")
    name = f"npz:{path}"
    for seed in (0, 1):
        code = main(
            [
                "train",
                "small_cnn",
                "-d",
                name,
                "--width",
                "4",
                "-e",
                "1",
                "-b",
                "16",
                "-s",
                str(seed),
                "-dir",
                str(tmp_path / f"r{seed}"),
                *CPU,
            ]
        )
        assert code == 0, capsys.readouterr().err
    config = json.loads((tmp_path / "r0" / "config.json").read_text())
    assert config["dataset"] == name and config["input_shape"] == [1, 8, 8]
    capsys.readouterr()
    code = main(
        [
            "stitch",
            str(tmp_path / "r0" / "final.pt"),
            str(tmp_path / "r1" / "final.pt"),
            "-",
            "-",
            "relu2",
            "relu2",
            "c2c",
            "-e",
            "0",
            "-i",
            "pinv",
            "-pinv-samples",
            "20",
            "--results-root",
            str(tmp_path / "results"),
            "-dir",
            "dm",
            *CPU,
        ]
    )
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "stitched relu2 -> relu2 (c2c, pinv, 0 epoch(s)): accuracy " in out and ", relative accuracy " in out
    result = json.loads(next((tmp_path / "results" / "dm").glob("*/result.json")).read_text())
    assert result["dataset"] == name
    # the checkpoints remember the data: layers and eval need no -d
    assert main(["layers", str(tmp_path / "r0" / "final.pt")]) == 0
    assert "(input 1x8x8)" in capsys.readouterr().out
    assert main(["eval", str(tmp_path / "r1" / "final.pt"), "-gpu", "-1", "-workers", "0", "--no-progress"]) == 0


def test_a_wrong_layout_is_one_line_from_every_command(tmp_path, capsys):
    path = write_npz(tmp_path / "bad.npz", y_train=None)
    for argv in (
        ["layers", "small_cnn", "-d", f"npz:{path}"],
        ["train", "small_cnn", "-d", f"npz:{path}", "-dir", str(tmp_path / "run"), *CPU],
    ):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "has no y_train" in err
    assert not (tmp_path / "run").exists()


def test_a_study_on_your_own_data(tmp_path):
    from stitchkit.study import run_study

    path = write_npz(tmp_path / "mine.npz")
    config = tmp_path / "own.toml"
    disabled = "\n".join(
        f"[{s}]\nenabled = false" for s in ("similarity", "ood", "probes", "sensitivity", "specificity")
    )
    config.write_text(
        textwrap.dedent(f"""
        [study]
        name = "own"
        dataset = "npz:{path}"
        device = "cpu"

        [networks]
        model = "small_cnn"
        options = {{ width = 4 }}
        seeds = [0, 1]
        epochs = 1
        batch_size = 16

        [layers]
        front = ["relu2"]
        end = ["relu3"]

        [stitching]
        methods = ["dm"]
        fit_samples = 20
    """)
        + disabled
        + "\n"
    )
    summary = run_study(config, tmp_path / "study", progress=False)
    assert summary.counts["done"] == 3 and summary.counts["failed"] == 0


@pytest.mark.parametrize("suffix", ["", "@3x12x12"])
def test_your_arrays_take_the_batched_device_path_with_the_loaders_batches(tmp_path, suffix):
    from torch.utils.data import DataLoader

    from stitchkit.data.device_batches import DeviceBatches, can_batch_on_device

    rng = np.random.default_rng(3)
    path = write_npz(
        tmp_path / "rgb.npz",
        x_train=rng.integers(0, 256, (20, 8, 8, 3), dtype=np.uint8),
        y_train=np.arange(20) % 4,
        x_test=rng.integers(0, 256, (6, 8, 8, 3), dtype=np.uint8),
        y_test=np.arange(6) % 4,
    )
    data = get_dataset(f"npz:{path}{suffix}", "train")
    assert can_batch_on_device(data) is None
    torch.manual_seed(5)
    expected = list(DataLoader(data, batch_size=8, shuffle=True))
    torch.manual_seed(5)
    got = list(DeviceBatches(data, 8, shuffle=True))
    assert len(got) == len(expected)
    for (x, y), (ex, ey) in zip(got, expected):
        assert torch.equal(y, ey) and x.shape == ex.shape and torch.allclose(x, ex, atol=1e-6)
