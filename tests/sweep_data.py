"""Grown bad-input cases of a researcher's own data (``npz:``, ``folder:``) and of the Python API's inputs:
see tests/grown_sweep.py for the contract (build, CLI_CASES, API_CASES).

Classes: ``own-data`` (own data read right: layouts, labels, classes), ``honest`` (values delivered as
what they are: 16-bit images, sizes that cannot fit, pixels on another scale), ``api`` (clear errors
from the Python API: items, models, argument types)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
from bad_inputs import Case
from grown_sweep import ApiCase
from PIL import Image
from torch.utils.data import DataLoader, Dataset, TensorDataset

OWN = "own"  # the folder under {W} holding this module's inputs
RNG_SEED = 18
QUIET = "-gpu -1 --no-progress"


# -- the inputs ---------------------------------------------------------------------------------------------


def _npz(path: Path, y_train=None, y_test=None, x_train=None, x_test=None) -> None:
    rng = np.random.default_rng(RNG_SEED)
    arrays = {
        "x_train": rng.integers(0, 256, (12, 8, 8), dtype=np.uint8) if x_train is None else x_train,
        "y_train": np.arange(12) % 3 if y_train is None else y_train,
        "x_test": rng.integers(0, 256, (6, 8, 8), dtype=np.uint8) if x_test is None else x_test,
        "y_test": np.arange(6) % 3 if y_test is None else y_test,
    }
    np.savez(path, **arrays)


def _folder(root: Path, classes=("cat", "dog"), per_class=2, mode="L", size=(8, 8), test_classes=None) -> Path:
    for split, names in (("train", classes), ("test", classes if test_classes is None else test_classes)):
        for label, name in enumerate(names):
            (root / split / name).mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                level = np.full(size, 60 * label + 10 * i + 5, dtype=np.uint8)
                Image.fromarray(level if mode == "L" else np.stack([level] * 3, -1)).save(
                    root / split / name / f"{i}.png"
                )
    for split in ("train", "test"):
        (root / split).mkdir(parents=True, exist_ok=True)
    return root


def _cut_jpeg(path: Path) -> None:
    pixels = np.random.default_rng(RNG_SEED).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, quality=95)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def build(world: Path) -> None:
    """Adds the inputs these cases refer to under ``world/own``: archives and image folders with one
    mistake (or one unusual feature) each, and a small checkpoint to evaluate on them."""
    from stitchkit.models import get_model
    from stitchkit.models.checkpoint import save_checkpoint

    w = world / OWN
    w.mkdir()
    rng = np.random.default_rng(RNG_SEED)
    grey = rng.integers(0, 256, (12, 8, 8), dtype=np.uint8)
    _npz(w / "plain.npz")
    _npz(w / "one_class.npz", y_train=np.zeros(12, int), y_test=np.zeros(6, int))
    _npz(w / "all_ones.npz", y_train=np.ones(12, int), y_test=np.ones(6, int))
    _npz(w / "one_based.npz", y_train=np.arange(12) % 3 + 1, y_test=np.arange(6) % 3 + 1)
    _npz(w / "gap.npz", y_train=np.array([0, 1, 3] * 4), y_test=np.array([0, 1, 3] * 2))
    _npz(w / "test_extra.npz", y_test=np.array([0, 1, 2, 3, 0, 1]))
    _npz(
        w / "float_whole.npz",
        y_train=(np.arange(12) % 3).astype(np.float32),
        y_test=(np.arange(6) % 3).astype(np.float64),
    )
    _npz(w / "float_half.npz", y_train=np.arange(12) % 3 + 0.5)
    _npz(w / "negative.npz", y_train=np.arange(12) % 3 - 1)
    _npz(w / "string_labels.npz", y_train=np.array(["cat", "dog", "eel"] * 4))
    _npz(w / "one_hot.npz", y_train=np.eye(3)[np.arange(12) % 3])
    _npz(w / "uint16.npz", x_train=grey.astype(np.uint16) * 257, x_test=grey[:6].astype(np.uint16) * 257)
    _npz(w / "float_255.npz", x_train=grey.astype(np.float32), x_test=grey[:6].astype(np.float32))
    nan = grey.astype(np.float32) / 255
    nan[3, 2, 2] = np.nan
    _npz(w / "nan.npz", x_train=nan, x_test=grey[:6].astype(np.float32) / 255)
    _npz(w / "shapes.npz", x_test=rng.integers(0, 256, (6, 9, 9), dtype=np.uint8))
    _npz(
        w / "channels_first.npz",
        x_train=rng.integers(0, 256, (12, 3, 8, 8), dtype=np.uint8),
        x_test=rng.integers(0, 256, (6, 3, 8, 8), dtype=np.uint8),
    )
    _npz(w / "grey_mixed_dims.npz", x_test=grey[:6, :, :, None])  # train N×H×W, test N×H×W×1: one shape
    _npz(w / "one_test_image.npz", x_test=grey[:1], y_test=np.array([2]))
    _npz(w / "empty_test.npz", x_test=grey[:0], y_test=np.zeros(0, int))
    _npz(w / "length.npz", y_train=np.arange(11) % 3)
    np.savez(w / "missing_key.npz", x_train=grey, y_train=np.arange(12) % 3, x_test=grey)
    (w / "not_an_archive.npz").write_text("x_train,y_train\n")

    _folder(w / "f_one_class", classes=("cat",))
    _folder(w / "f_test_extra", test_classes=("cat", "dog", "eel"))
    _folder(w / "f_ok")
    _folder(w / "f_hidden")
    (w / "f_hidden" / "train" / "cat" / ".DS_Store").write_bytes(b"\x00\x01")
    (w / "f_hidden" / "train" / "dog" / "notes.txt").write_text("not an image\n")
    (w / "f_hidden" / "train" / ".cache").mkdir()
    _folder(w / "f_mixed_modes")
    Image.fromarray(np.zeros((8, 8, 3), np.uint8) + np.array([200, 0, 0], np.uint8)).save(
        w / "f_mixed_modes" / "train" / "dog" / "red.png"
    )
    _folder(w / "f_16bit")
    Image.fromarray(np.full((8, 8), 257 * 100, np.uint16)).save(w / "f_16bit" / "train" / "cat" / "deep.png")
    _folder(w / "f_16bit_rgb")
    Image.fromarray(np.full((8, 8), 65535, np.uint16)).save(w / "f_16bit_rgb" / "train" / "cat" / "deep.png")
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(w / "f_16bit_rgb" / "train" / "dog" / "colour.png")
    _folder(w / "f_cut_jpeg", mode="RGB")
    _cut_jpeg(w / "f_cut_jpeg" / "test" / "dog" / "broken.jpg")
    _folder(w / "f_cut_train", mode="RGB")
    _cut_jpeg(w / "f_cut_train" / "train" / "dog" / "broken.jpg")
    _folder(w / "f_fake_png")
    (w / "f_fake_png" / "train" / "cat" / "fake.png").write_text("this is text, not a PNG\n")
    _folder(w / "f_empty_class")
    (w / "f_empty_class" / "train" / "eel").mkdir()
    _folder(w / "f_no_test", test_classes=())
    _folder(w / "f_loose")
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(w / "f_loose" / "train" / "stray.png")
    _folder(w / "f_sizes")
    Image.fromarray(np.zeros((9, 8), np.uint8)).save(w / "f_sizes" / "train" / "cat" / "tall.png")
    torch.manual_seed(0)
    rgb = get_model("small_cnn", num_classes=2, in_channels=3, input_size=(8, 8), width=2)
    save_checkpoint(w / "rgb2.pt", rgb, dataset=f"folder:{w / 'f_cut_jpeg'}@3x8x8", input_shape=(3, 8, 8))


# -- the command-line cases ------------------------------------------------------------------------------------


def _layers(data: str, klass: str, needle: str) -> Case:
    area = "folder" if data.startswith("folder:") else "npz"
    return Case(f"{area}/{klass}", f"layers small_cnn --width 2 -d {data}", needle)


def _npz_name(name: str) -> str:
    return f"npz:{{W}}/{OWN}/{name}.npz"


def _folder_name(name: str) -> str:
    return f"folder:{{W}}/{OWN}/{name}"


CLI_CASES: list[Case] = [
    _layers(_npz_name("one_class"), "own-data", "y_train has only class 0; a classifier needs at least two classes"),
    _layers(_npz_name("all_ones"), "own-data", "y_train has only class 1"),
    _layers(_npz_name("test_extra"), "own-data", "y_test has class 3, which y_train lacks"),
    _layers(_npz_name("float_half"), "own-data", "non-integer labels"),
    _layers(_npz_name("negative"), "own-data", "negative labels"),
    _layers(_npz_name("string_labels"), "own-data", "labels must be integer class indices"),
    _layers(_npz_name("one_hot"), "own-data", "one-hot labels?"),
    _layers(_npz_name("uint16"), "own-data", "x_train is uint16; images must be uint8 (0–255) or float in [0, 1]"),
    _layers(_npz_name("float_255"), "own-data", "float with values in [0, 255]"),
    _layers(_npz_name("nan"), "own-data", "x_train holds NaN"),
    _layers(_npz_name("shapes"), "own-data", "x_train images are 8×8×1 but x_test images are 9×9×1"),
    _layers(_npz_name("channels_first"), "own-data", "it looks channels-first"),
    _layers(_npz_name("empty_test"), "own-data", "x_test holds no images"),
    _layers(_npz_name("length"), "own-data", "x_train has 12 images but y_train has 11 labels"),
    _layers(_npz_name("missing_key"), "own-data", "has no y_test"),
    _layers(_npz_name("not_an_archive"), "own-data", "is not an .npz archive"),
    _layers(_npz_name("plain") + "@100000x100000", "honest", "as float32 for one image, more than the"),
    _layers(_folder_name("f_one_class"), "own-data", "train/ has only class 'cat'"),
    _layers(_folder_name("f_test_extra"), "own-data", "test/ has class 'eel', which train/ lacks"),
    _layers(_folder_name("f_fake_png"), "own-data", "cannot read image"),
    _layers(_folder_name("f_empty_class"), "own-data", "train/eel/ holds no images"),
    _layers(_folder_name("f_no_test"), "own-data", "test/ holds no images"),
    _layers(_folder_name("f_loose"), "own-data", "train/ holds images directly"),
    _layers(_folder_name("f_sizes"), "own-data", "has images of mixed sizes"),
    _layers(_folder_name("f_ok") + "@3x200000x200000", "honest", "(480000000000 bytes)"),
    Case(
        "folder/honest",
        f"eval {{W}}/{OWN}/rgb2.pt -d {_folder_name('f_cut_jpeg')}@3x8x8 {QUIET}",
        f"/{OWN}/f_cut_jpeg/test/dog/broken.jpg: its data is cut short",
    ),
    Case(
        "folder/honest",
        f"eval {{W}}/{OWN}/rgb2.pt -d {_folder_name('f_cut_jpeg')}@3x8x8 {QUIET} -workers 0",
        f"/{OWN}/f_cut_jpeg/test/dog/broken.jpg: its data is cut short",
    ),
    # found while training, before the first epoch ends: nothing to resume, so the run leaves nothing
    Case(
        "folder/honest",
        f"train small_cnn -d {_folder_name('f_cut_train')}@3x8x8 --width 2 -e 1 -b 2 {QUIET} -workers 0 -dir {{O}}/t",
        f"/{OWN}/f_cut_train/train/dog/broken.jpg: its data is cut short",
    ),
]


# -- the Python API cases --------------------------------------------------------------------------------------


def _info(world: Path, name: str):
    from stitchkit.data import dataset_info

    return dataset_info(name.replace("{W}", str(world)))


def _dataset(world: Path, name: str, split: str = "train"):
    from stitchkit.data import get_dataset

    return get_dataset(name.replace("{W}", str(world)), split)


def _item(world: Path, name: str, path: str, split: str = "train"):
    """The item of ``name``'s ``split`` read from file ``path`` (relative to the data's folder)."""
    data = _dataset(world, name, split)
    root = name.replace("{W}", str(world)).split(":", 1)[1].split("@")[0]
    return data[data.files.index(f"{root}/{path}")]


def _ok_grey_mixed_dims(world: Path, out: Path) -> None:
    info = _info(world, _npz_name("grey_mixed_dims"))
    image, _ = _dataset(world, _npz_name("grey_mixed_dims"), "test")[0]
    assert info.shape == (1, 8, 8) and image.shape == (1, 8, 8), (info.shape, image.shape)


def _ok_float_whole(world: Path, out: Path) -> None:
    info = _info(world, _npz_name("float_whole"))
    labels = [_dataset(world, _npz_name("float_whole"))[i][1] for i in range(4)]
    assert info.num_classes == 3 and labels == [0, 1, 2, 0] and all(isinstance(y, int) for y in labels), (
        info.num_classes,
        labels,
    )


def _ok_one_test_image(world: Path, out: Path) -> None:
    test = _dataset(world, _npz_name("one_test_image"), "test")
    assert len(test) == 1 and test[0][1] == 2 and _info(world, _npz_name("one_test_image")).num_classes == 3


def _ok_hidden(world: Path, out: Path) -> None:
    data = _dataset(world, _folder_name("f_hidden"))
    assert len(data) == 4 and not any(Path(f).name.startswith(".") or f.endswith(".txt") for f in data.files), (
        data.files
    )


def _ok_mixed_modes(world: Path, out: Path) -> None:
    info = _info(world, _folder_name("f_mixed_modes"))
    grey, _ = _item(world, _folder_name("f_mixed_modes"), "train/cat/0.png")
    red, label = _item(world, _folder_name("f_mixed_modes"), "train/dog/red.png")
    assert info.shape == (3, 8, 8) and label == 1
    assert torch.allclose(grey, torch.full((3, 8, 8), 5 / 255)), "a grey image in an RGB set is repeated on 3 channels"
    assert torch.allclose(red[:, 0, 0], torch.tensor([200 / 255, 0.0, 0.0])), red[:, 0, 0]


def _ok_16bit(world: Path, out: Path) -> None:
    image, _ = _item(world, _folder_name("f_16bit"), "train/cat/deep.png")
    assert torch.allclose(image, torch.full((1, 8, 8), 100 / 255)), (
        f"16-bit 25700 must read as 100/255, got {float(image.max()):.4f}"
    )


def _ok_16bit_rgb(world: Path, out: Path) -> None:
    image, _ = _item(world, _folder_name("f_16bit_rgb"), "train/cat/deep.png")
    assert image.shape == (3, 8, 8) and torch.allclose(image, torch.ones(3, 8, 8)), image[:, 0, 0]


def _ok_size_that_fits(world: Path, out: Path) -> None:
    image, _ = _dataset(world, _folder_name("f_ok") + "@1x16x16", "test")[0]
    assert image.shape == (1, 16, 16) and torch.allclose(image, torch.full((1, 16, 16), 5 / 255), atol=1e-6)


# The API's data and models: tiny, made on the spot (a width-2 small_cnn on 1×8×8 items).

X = torch.rand(8, 1, 8, 8, generator=torch.Generator().manual_seed(RNG_SEED))
Y = torch.arange(8) % 2


class _Items(Dataset):
    """A dataset from a notebook whose items are whatever ``make(i)`` returns."""

    def __init__(self, make):
        self.make = make

    def __len__(self) -> int:
        return len(X)

    def __getitem__(self, i):
        return self.make(i)


def _model(seed: int = 0, size=(8, 8)):
    from stitchkit.models import get_model

    torch.manual_seed(seed)
    return get_model("small_cnn", num_classes=2, in_channels=1, input_size=size, width=2).eval()


def _dm(data, front=None, end=None, **options):
    import stitchkit

    front = front if front is not None else _model(0)
    end = end if end is not None else _model(1)
    return stitchkit.direct_match(
        front, end, "relu2", "relu2", data, **{"fit_samples": 8, "test_samples": 8, "device": "cpu", **options}
    )


def _items(make):
    return lambda w, o: _dm(_Items(make))


def _meta_model(world: Path, out: Path):
    from stitchkit.models import get_model

    with torch.device("meta"):
        meta = get_model("small_cnn", num_classes=2, in_channels=1, input_size=(8, 8), width=2)
    return _dm(TensorDataset(X, Y), front=meta)


def _ok_labels_as_numpy_and_0d(world: Path, out: Path) -> None:
    result = _dm(_Items(lambda i: (X[i] * 4 - 2, np.int64(Y[i]))))
    pair = result.pair()
    assert result.data.info.num_classes == 2 and 0 <= pair.accuracy <= 1, (result.data.info, pair.accuracy)
    result = _dm(_Items(lambda i: (X[i], torch.tensor(int(Y[i])))))  # 0-d tensors
    assert result.data.info.num_classes == 2 and 0 <= pair.accuracy <= 1, (result.data.info, pair.accuracy)


def _ok_loader(world: Path, out: Path) -> None:
    result = _dm(DataLoader(TensorDataset(X, Y), batch_size=4))
    assert result.settings.batch_size == 4 and result.pair().accuracy is not None


def _compare(**kwargs):
    import stitchkit

    return lambda w, o: stitchkit.compare(
        _model(0), _model(1), "relu2", TensorDataset(X, Y), **{"measures": ["cka"], "n_samples": 8, **kwargs}
    )


def _ood(**kwargs):
    import stitchkit

    return lambda w, o: stitchkit.ood_test(
        _model(0),
        _model(1),
        "relu2",
        "relu2",
        TensorDataset(X, Y),
        **{"detector_fit_samples": 8, "test_samples": 8, "fit_samples": 8, **kwargs},
    )


def _warns_and_runs(world: Path, out: Path):
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        return _dm(TensorDataset(X * 255, Y))


API_CASES: list[ApiCase] = [
    # own data: unusual inputs read right, and what must be said about them
    ApiCase(
        "npz",
        "own-data",
        "1-based labels: the empty class 0 is warned of",
        lambda w, o: _info(w, _npz_name("one_based")),
        "class 0 has no training images (labels 1–3)",
        "warning",
    ),
    ApiCase(
        "npz",
        "own-data",
        "labels 0, 1, 3: the empty class 2 is warned of",
        lambda w, o: _info(w, _npz_name("gap")),
        "class 2 has no training images",
        "warning",
    ),
    ApiCase("npz", "own-data", "labels stored as whole floats are the classes", _ok_float_whole, expect="ok"),
    ApiCase("npz", "own-data", "grey train N×H×W with test N×H×W×1 is one shape", _ok_grey_mixed_dims, expect="ok"),
    ApiCase("npz", "own-data", "a test split of one image", _ok_one_test_image, expect="ok"),
    ApiCase(
        "npz",
        "own-data",
        "a test class the train split lacks, from Python",
        lambda w, o: _dataset(w, _npz_name("test_extra"), "test"),
        "y_test has class 3, which y_train lacks",
    ),
    ApiCase("folder", "own-data", "hidden files, hidden folders and notes are skipped", _ok_hidden, expect="ok"),
    ApiCase("folder", "own-data", "grey and RGB images mixed: read as RGB", _ok_mixed_modes, expect="ok"),
    ApiCase(
        "folder",
        "own-data",
        "one class folder, from Python",
        lambda w, o: _info(w, _folder_name("f_one_class")),
        "train/ has only class 'cat'",
    ),
    ApiCase("folder", "honest", "a 16-bit grey PNG is scaled, not clipped to white", _ok_16bit, expect="ok"),
    ApiCase("folder", "honest", "a white 16-bit PNG in an RGB set is white", _ok_16bit_rgb, expect="ok"),
    ApiCase(
        "folder",
        "honest",
        "a cut JPEG read from Python names the file",
        lambda w, o: _item(w, _folder_name("f_cut_jpeg") + "@3x8x8", "test/dog/broken.jpg", "test"),
        "broken.jpg: its data is cut short",
    ),
    ApiCase("folder", "honest", "an @HxW size that fits is delivered", _ok_size_that_fits, expect="ok"),
    ApiCase(
        "npz",
        "honest",
        "an @HxW size of 37 GiB, from Python",
        lambda w, o: _info(w, _npz_name("gap") + "@100000x100000"),
        "(40000000000 bytes) as float32 for one image",
    ),
    # the API's items
    ApiCase(
        "api",
        "api",
        "items are dicts",
        _items(lambda i: {"image": X[i], "label": int(Y[i])}),
        "is a dict with keys 'image', 'label'",
    ),
    ApiCase(
        "api",
        "api",
        "items are 1-tuples",
        _items(lambda i: (X[i],)),
        "is a tuple of 1 item; items must be (image, label) pairs",
    ),
    ApiCase(
        "api", "api", "items are (image, label, index)", _items(lambda i: (X[i], int(Y[i]), i)), "is a tuple of 3 items"
    ),
    ApiCase(
        "api",
        "api",
        "items are bare tensors",
        _items(lambda i: X[i]),
        "is a torch.Tensor; items must be (image, label) pairs",
    ),
    ApiCase(
        "api",
        "api",
        "images are numpy arrays",
        _items(lambda i: (X[i].numpy(), int(Y[i]))),
        "images must be float tensors (torch.from_numpy(x))",
    ),
    ApiCase(
        "api",
        "api",
        "images are PIL images",
        _items(lambda i: (Image.fromarray(np.zeros((8, 8), np.uint8)), int(Y[i]))),
        "ToTensor()",
    ),
    ApiCase(
        "api",
        "api",
        "images are uint8 tensors",
        _items(lambda i: ((X[i] * 255).to(torch.uint8), int(Y[i]))),
        "is a torch.uint8 tensor",
    ),
    ApiCase(
        "api",
        "api",
        "images keep a batch dimension",
        _items(lambda i: (X[i][None], int(Y[i]))),
        "with a batch dimension",
    ),
    ApiCase(
        "api",
        "api",
        "NaN pixels",
        lambda w, o: _dm(TensorDataset(torch.where(torch.arange(64).reshape(1, 8, 8) == 9, float("nan"), X), Y)),
        "holds 1 NaN or infinite value of 64; images must be finite",
    ),
    ApiCase("api", "api", "infinite pixels", _items(lambda i: (X[i] / 0, int(Y[i]))), "NaN or infinite values"),
    ApiCase(
        "api",
        "api",
        "labels are strings",
        _items(lambda i: (X[i], "cat" if i % 2 else "dog")),
        "the str 'dog'; labels must be integer class indices",
    ),
    ApiCase(
        "api",
        "api",
        "labels are floats",
        _items(lambda i: (X[i], float(Y[i]))),
        "the float 0.0; labels must be integer class indices 0 … K−1 (int(y))",
    ),
    ApiCase(
        "api",
        "api",
        "labels are one-hot",
        _items(lambda i: (X[i], torch.eye(2)[int(Y[i])])),
        "(one-hot? give the class index, y.argmax())",
    ),
    ApiCase(
        "api",
        "api",
        "labels are negative",
        _items(lambda i: (X[i], -1 - int(Y[i]))),
        "is -1; labels must be class indices 0 … K−1",
    ),
    ApiCase("api", "api", "labels are bools", _items(lambda i: (X[i], bool(Y[i]))), "the bool False"),
    ApiCase("api", "api", "the dataset's own __getitem__ fails", _items(lambda i: [][i]), "cannot be read: IndexError"),
    ApiCase(
        "api",
        "api",
        "a test set of dicts beside a good train set",
        lambda w, o: _dm((TensorDataset(X, Y), _Items(lambda i: {"x": X[i]}))),
        "item 0 of the test data is a dict",
    ),
    ApiCase("api", "api", "a model on the meta device", _meta_model, "has no weights: it is on the meta device"),
    ApiCase(
        "api",
        "api",
        "a seed given as a string",
        lambda w, o: _dm(TensorDataset(X, Y), seed="1"),
        "seed must be an integer, got the str '1'",
    ),
    ApiCase(
        "api",
        "api",
        "fit_samples as a float",
        lambda w, o: _dm(TensorDataset(X, Y), fit_samples=7.5),
        "fit_samples must be an integer or None",
    ),
    ApiCase(
        "api",
        "api",
        "num_classes as a string",
        lambda w, o: _dm(TensorDataset(X, Y), num_classes="2"),
        "num_classes must be an integer or None",
    ),
    ApiCase(
        "api",
        "api",
        "compare with n_samples=1e3",
        _compare(n_samples=1e3),
        "n_samples must be an integer or None, got the float 1000.0",
    ),
    ApiCase(
        "api",
        "api",
        "compare with a seed as a string",
        lambda w, o: __import__("stitchkit").compare(
            "small_cnn", "small_cnn", "relu2", TensorDataset(X, Y), n_samples=8, seed="0", model_options={"width": 2}
        ),
        "seed must be an integer",
    ),
    ApiCase(
        "api",
        "api",
        "compare with all_pairs='no'",
        _compare(all_pairs="no"),
        "all_pairs must be True or False, got the str 'no'",
    ),
    ApiCase("api", "api", "ood_test with tpr='95%'", _ood(tpr="95%"), "tpr must be a number, got the str '95%'"),
    ApiCase(
        "api",
        "api",
        "ood_test with detector_fit_samples as a float",
        _ood(detector_fit_samples=8.0),
        "detector_fit_samples must be an integer, got the float 8.0",
    ),
    ApiCase(
        "api",
        "honest",
        "float pixels on the 0–255 scale are warned of",
        _warns_and_runs,
        "which looks like 0–255 pixels",
        "warning",
    ),
    ApiCase(
        "api",
        "honest",
        "a model built for 16×16 images run on 8×8 items is warned of",
        lambda w, o: _dm(TensorDataset(X, Y), front=_model(0, size=(16, 16))),
        "was built for 16×16 images",
        "warning",
    ),
    ApiCase(
        "api",
        "api",
        "labels as numpy integers (normalised images) or 0-d tensors",
        _ok_labels_as_numpy_and_0d,
        expect="ok",
    ),
    ApiCase("api", "api", "a DataLoader stands for its dataset and lends its batch size", _ok_loader, expect="ok"),
]
