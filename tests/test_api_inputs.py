"""Clear errors from the Python API (issue 18, part 5): one item of data in memory checked before
loading, models on the meta device, and arguments of the wrong type, each named."""

import numpy as np
import pytest
import torch
from torch.utils.data import Dataset, TensorDataset

import stitchkit
from stitchkit.api.arguments import ArgumentTypeError, check_types
from stitchkit.data.items import check_item
from stitchkit.data.splits import DataSplits
from stitchkit.errors import StitchkitError, StitchkitWarning
from stitchkit.models import get_model
from stitchkit.stitching.settings import StitchSettings

X = torch.rand(8, 1, 28, 28)
Y = torch.arange(8) % 2


class Items(Dataset):
    def __init__(self, make):
        self.make = make

    def __len__(self):
        return 8

    def __getitem__(self, i):
        return self.make(i)


@pytest.mark.parametrize(
    "make, needle",
    [
        (
            lambda i: {"image": X[i], "label": 0},
            "is a dict with keys 'image', 'label'; items must be (image, label) pairs",
        ),
        (lambda i: (X[i],), "is a tuple of 1 item; items must be (image, label) pairs"),
        (lambda i: (X[i], 0, i), "is a tuple of 3 items; items must be (image, label) pairs"),
        (lambda i: X[i], "is a torch.Tensor; items must be (image, label) pairs"),
        (lambda i: (X[i].numpy(), 0), "is a numpy.ndarray; images must be float tensors (torch.from_numpy(x))"),
        (
            lambda i: ((X[i] * 255).to(torch.uint8), 0),
            "is a torch.uint8 tensor; images must be float tensors in [0, 1]",
        ),
        (lambda i: (X[i][None], 0), "has shape (1, 1, 28, 28), with a batch dimension"),
        (
            lambda i: (torch.full((1, 4, 4), float("nan")), 0),
            "holds 16 NaN or infinite values of 16; images must be finite",
        ),
        (
            lambda i: (X[i], "cat"),
            "the label of item 0 of the train data is the str 'cat'; labels must be integer class indices",
        ),
        (lambda i: (X[i], 1.0), "is the float 1.0; labels must be integer class indices 0 … K−1 (int(y))"),
        (lambda i: (X[i], torch.eye(2)[0]), "is a tensor of shape (2,); a label is one integer class index (one-hot?"),
        (lambda i: (X[i], -1), "the label of item 0 of the train data is -1; labels must be class indices"),
        (lambda i: (X[i], True), "is the bool True; labels must be integer class indices"),
        (lambda i: 1 / 0, "item 0 of the train data cannot be read: ZeroDivisionError: division by zero"),
    ],
)
def test_a_wrong_item_is_named(make, needle):
    with pytest.raises(StitchkitError) as info:
        DataSplits.from_datasets(Items(make))
    assert needle in str(info.value) and "\n" not in str(info.value)


def test_a_right_item_passes_and_0_255_pixels_are_warned_of():
    check_item(Items(lambda i: (X[i], np.int64(1))), "train")  # numpy integers and 0-d tensors are labels too
    check_item(Items(lambda i: (X[i] * 4 - 2, torch.tensor(1))), "train")  # normalised images stay silent
    with pytest.warns(StitchkitWarning, match="has values up to 255, which looks like 0–255 pixels"):
        check_item(Items(lambda i: (torch.full((1, 2, 2), 255.0), 0)), "test")


def test_the_test_and_augmented_sets_are_checked_too():
    good = TensorDataset(X, Y)
    with pytest.raises(StitchkitError, match="item 0 of the test data is a dict"):
        DataSplits.from_datasets(good, Items(lambda i: {"x": X[i]}))
    with pytest.raises(StitchkitError, match="item 0 of the train_augmented data is a tuple of 1 item"):
        DataSplits.from_datasets(good, good, train_augmented=Items(lambda i: (X[i],)))


def _tiny(seed=0):
    torch.manual_seed(seed)
    return get_model("resnet18", num_classes=2, in_channels=1, input_size=(28, 28), width=4).eval()


def test_a_model_on_the_meta_device_is_refused():
    with torch.device("meta"):
        meta = get_model("resnet18", num_classes=2, in_channels=1, input_size=(28, 28), width=4)
    with pytest.raises(StitchkitError, match=r"the end model has no weights: it is on the meta device \(conv1.weight"):
        stitchkit.direct_match(_tiny(), meta, "layer1.0", "layer1.0", TensorDataset(X, Y), fit_samples=4)


def test_a_model_built_for_another_size_is_warned_of():
    data = TensorDataset(torch.rand(8, 1, 32, 32), Y)
    with pytest.warns(StitchkitWarning) as caught:
        stitchkit.compare(_tiny(), _tiny(1), "layer1.0", data, measures=["cka"], n_samples=8)
    said = [str(w.message) for w in caught if w.category is StitchkitWarning]
    assert [s.split(" was built")[0] for s in said] == ["the model a model", "the model b model"]
    assert all("built for 28×28 images but the data (memory:TensorDataset(8)) has 32×32" in s for s in said)


@pytest.mark.parametrize(
    "call, needle",
    [
        (
            lambda m, d: stitchkit.direct_match(m, m, "layer1.0", "layer1.0", d, seed="1"),
            "stitchkit.stitch_grid: seed must be an integer, got the str '1'",
        ),
        (
            lambda m, d: stitchkit.direct_match(m, m, "layer1.0", "layer1.0", d, fit_samples=4.5),
            "fit_samples must be an integer or None, got the float 4.5",
        ),
        (
            lambda m, d: stitchkit.stitch_grid(m, m, "layer1.0", "layer1.0", d, num_classes="2"),
            "num_classes must be an integer or None",
        ),
        (
            lambda m, d: stitchkit.compare(m, m, "layer1.0", d, n_samples=8.0),
            "stitchkit.compare: n_samples must be an integer or None, got the float 8.0",
        ),
        (
            lambda m, d: stitchkit.compare(m, m, "layer1.0", d, all_pairs="no"),
            "all_pairs must be True or False, got the str 'no'",
        ),
        (lambda m, d: stitchkit.compare(m, m, "layer1.0", d, batch_size="8"), "batch_size must be an integer"),
        (
            lambda m, d: stitchkit.ood_test(m, m, "layer1.0", "layer1.0", d, tpr="95%"),
            "stitchkit.ood_test: tpr must be a number, got the str '95%'",
        ),
    ],
)
def test_an_argument_of_the_wrong_type_is_named(call, needle):
    with pytest.raises(ArgumentTypeError) as info:
        call(_tiny(), TensorDataset(X, Y))
    assert needle in str(info.value) and isinstance(info.value, TypeError)


def test_check_types_reads_the_declared_types():
    check_types(
        StitchSettings, {"seed": np.int64(3), "l1": 1, "grad_clip": None, "amp": 0, "device": torch.device("cpu")}, "f"
    )
    with pytest.raises(ArgumentTypeError, match="f: seed must be an integer, got the bool True"):
        check_types(StitchSettings, {"seed": True}, "f")
    with pytest.raises(ArgumentTypeError, match="f: l1 must be a number, got the str '0'"):
        check_types(StitchSettings, {"l1": "0"}, "f")
