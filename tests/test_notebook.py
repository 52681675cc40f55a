"""The Python API in a notebook: plot() figures that IPython's display machinery renders as PNG images
without ``%matplotlib inline`` (and that still save headless), compact reprs, small HTML tables and
summary() of every result, no tqdm "IProgress not found" warning in a Jupyter kernel without
ipywidgets, and list_layers() for a model in memory."""

import os
import pickle
import struct
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
import torch
import torchvision
from IPython.core.formatters import DisplayFormatter
from matplotlib.figure import Figure

import stitchkit
from stitchkit.errors import StitchkitError
from stitchkit.models import get_model
from stitchkit.models.layers import stitchable_layers
from stitchkit.probing.probe import ProbeReport
from stitchkit.results import Matrix, Table
from stitchkit.results.display import SHOWN_LABELS, Summary

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ["layer1.0", "layer3.0"]
QUICK = dict(model_options={"width": 8}, device="cpu", workers=0)


def _displayed(obj) -> dict:
    """What a notebook receives for ``obj`` as a cell's value: IPython's mime bundle."""
    data, _ = DisplayFormatter().format(obj)
    return data


def _png_size(png: bytes) -> tuple[int, int]:
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", png[16:24])  # the IHDR chunk: width, height


@pytest.fixture(scope="module")
def results():
    """A 2 × 2 DM grid of two untrained ResNet-18s (width 8), their comparison and OOD test: small and quick."""
    dm = stitchkit.direct_match(
        "resnet18", "resnet18", LAYERS, LAYERS, "digits", fit_samples=50, test_samples=64, **QUICK
    )
    sim = stitchkit.compare(
        "resnet18",
        "resnet18",
        LAYERS,
        "digits",
        measures=["cka", "procrustes"],
        n_samples=64,
        model_options={"width": 8},
        device="cpu",
    )
    ood = stitchkit.ood_test(dm, detectors=["mahalanobis"], detector_fit_samples=64, test_samples=64)
    return dm, sim, ood


def _matrix(n: int = 2, kind: str = "accuracy", values=None) -> Matrix:
    names = [f"layer{i}" for i in range(n)]
    values = np.arange(n * n, dtype=float).reshape(n, n) / (n * n) if values is None else values
    return Matrix(names, names, values, kind=kind, range=(0, 1) if kind == "accuracy" else None, name="test matrix")


# --- figures that show up -------------------------------------------------------------------------


def test_a_bare_matplotlib_figure_gives_ipython_no_image():
    """The issue: without ``%matplotlib inline`` IPython shows a plain Figure as text only."""
    fig = Figure()
    fig.add_subplot().plot([0, 1])
    data = _displayed(fig)
    assert "image/png" not in data and data["text/plain"].startswith("<Figure size")


def test_every_plot_renders_as_a_png_image_and_still_saves_headless(results, tmp_path):
    dm, sim, ood = results
    figures = {
        "grid": dm.plot(),
        "grid metric": dm.plot("fit_residual"),
        "comparison": sim.plot(),
        "ood": ood.plot(),
        "ood metric": ood.plot("fpr95"),
        "scores": ood.plot_scores(),
        "matrix": _matrix().plot(),
        "table": Table([{"layer": "a", "auroc": 0.5}, {"layer": "b", "auroc": 0.7}]).plot(),
    }
    for what, fig in figures.items():
        assert isinstance(fig, Figure), what
        png = _displayed(fig).get("image/png")
        assert png is not None, f"{what}: no image/png"
        width, height = _png_size(png)
        # the whole figure at 100 dpi, its margins cropped (bbox_inches="tight")
        assert 0.5 * fig.get_figwidth() * 100 < width <= fig.get_figwidth() * 100 + 20, what
        assert 0.5 * fig.get_figheight() * 100 < height <= fig.get_figheight() * 100 + 20, what
        fig.savefig(tmp_path / "figure.png")
        assert (tmp_path / "figure.png").read_bytes()[:4] == b"\x89PNG"
    # the heatmaps themselves are those of before: titles of each panel
    assert [ax.get_title() for ax in figures["grid"].axes if ax.images] == ["DM accuracy", "DM residual"]
    again = pickle.loads(pickle.dumps(figures["matrix"]))
    assert "image/png" in _displayed(again)


def test_a_figure_drawn_into_the_callers_axes_is_left_as_it_is():
    fig = Figure()
    ax = fig.add_subplot()
    assert _matrix().plot(ax=ax) is fig and type(fig) is Figure


# --- repr, HTML and summary -----------------------------------------------------------------------


def test_a_stitch_grid_describes_itself_in_a_few_lines(results):
    dm = results[0]
    text = repr(dm)
    assert len(text) < 1000 and len(text.splitlines()) <= 10
    accuracies = {(r.front_layer, r.end_layer): r.accuracy for r in dm.pairs}
    best = max(accuracies, key=accuracies.get)
    residuals = {(r.front_layer, r.end_layer): r.residual for r in dm.pairs}
    lowest = min(residuals, key=residuals.get)
    end = dm.pairs[0].end_accuracy
    assert text.splitlines()[0] == "StitchGridResult: DM stitching, 2 × 2 layer pairs, digits (64 test images)"
    assert (
        f"accuracy: mean {np.mean(list(accuracies.values())):.3g}, {min(accuracies.values()):.3g} to "
        f"{max(accuracies.values()):.3g}, highest {accuracies[best]:.3g} at ({best[0]}, {best[1]}), same layers "
        f"{np.mean([accuracies[(l, l)] for l in LAYERS]):.3g}" in text
    )
    assert (
        f"residual: mean {np.mean(list(residuals.values())):.3g}" in text
        and f"lowest {residuals[lowest]:.3g} at ({lowest[0]}, {lowest[1]})" in text
    )
    assert f"relative accuracy: mean {np.mean([a / end for a in accuracies.values()]):.3g}" in text
    assert f"end network alone: accuracy {end:.3g}" in text and f"({dm.front.fingerprint[:8]})" in text
    summary = dm.summary()
    assert (
        isinstance(summary, str)
        and summary.startswith(text.splitlines()[0])
        and len(summary.splitlines()) > len(text.splitlines())
    )
    assert "50 fit images" in summary and len(summary) < 1500
    html = dm._repr_html_()
    assert html.startswith("<div>") and html.count("<table>") == 1 and len(html) < 5000
    assert all(name in html for name in ("accuracy", "relative accuracy", "residual", "layer1.0"))
    data = _displayed(dm)
    assert data["text/html"] == html and data["text/plain"] == text
    pair = repr(dm.pair("layer1.0", "layer3.0"))
    assert len(pair) < 300 and "\n" not in pair and f"accuracy {accuracies[('layer1.0', 'layer3.0')]:.3g}" in pair


def test_a_comparison_and_an_ood_test_describe_themselves(results):
    _, sim, ood = results
    text = repr(sim)
    cka = sim.matrix("cka")
    assert len(text) < 1000 and text.startswith(
        "ComparisonResult: 2 measures on 2 × 2 layer pairs, digits (64 test images)"
    )
    assert (
        f"cka: mean {np.mean(cka.values):.3g}" in text
        and f"same layers {np.mean([cka[l, l] for l in LAYERS]):.3g}" in text
    )
    assert (
        "procrustes: " in text and "lowest" in text.split("procrustes: ")[1]
    )  # a distance: the lowest cell is the most alike
    assert "policy" in sim.summary() and "<table>" in sim._repr_html_()
    text = repr(ood)
    auroc = ood.matrix("auroc")
    assert len(text) < 1200 and text.startswith(
        "OODTestResult: 1 detector on 2 × 2 DM stitches, digits (64 test images)"
    )
    assert f"auroc (mahalanobis): mean {np.mean(auroc.values):.3g}" in text and "detectors: mahalanobis" in text
    norm_line = next(line for line in text.splitlines() if line.strip().startswith("norm ratio:"))
    assert "highest" not in norm_line and "lowest" not in norm_line  # a ratio has no "more alike" end
    assert "score_table()" in ood.summary() and "auroc (mahalanobis)" in ood._repr_html_()
    assert len(repr(sim.report)) < 300 and "cka, procrustes" in repr(sim.report)


def test_a_probe_report_is_one_line():
    probes = [
        SimpleNamespace(layer=layer) for layer in ("layer1.0", "layer1.0", "layer2.0")
    ]  # the repr reads only the layers
    assert repr(ProbeReport(probes, {})) == "ProbeReport: 3 probes over 2 layers; .matrix() (layers × ranks), .table()"


def test_a_summary_shows_as_its_text_in_a_notebook():
    summary = _matrix().summary()
    assert isinstance(summary, Summary) and _displayed(summary)["text/plain"] == str(summary) and "\n" in str(summary)


def test_a_large_matrix_stays_a_few_lines_and_a_small_html_table():
    values = np.full((20, 20), 0.5)
    values[3, 7], values[0, 0] = 0.9, np.nan
    m = _matrix(20, values=values)
    text = repr(m)
    assert len(text.splitlines()) == 4 and len(text) < 600 and "(20)" in text
    assert "highest 0.9 at (layer3, layer7)" in text and "399 of 400 cells measured" in text
    assert m.to_dict()["values"][3][7] == 0.9  # the repr changed nothing
    html = m._repr_html_()
    assert html.count("<tr>") == 1 + 12 and "first 12 rows and 12 columns shown" in html and "<td>–</td>" in html
    distance = _matrix(2, kind="distance", values=[[0.3, 0.1], [0.2, 0.4]])
    assert "lowest 0.1 at (layer0, layer1)" in repr(distance) and "same layers 0.35" in repr(distance)
    assert "highest" not in repr(_matrix(2, kind="ratio", values=[[0.5, 2.0], [1.0, 1.0]]))
    assert "nothing measured" in repr(_matrix(2, values=[[np.nan, np.nan], [np.nan, np.nan]]))


def test_a_long_table_shows_its_first_rows():
    table = Table([{"layer": f"l{i}", "value": i / 3} for i in range(30)], name="long")
    assert repr(table).splitlines()[0] == "Table 'long': 30 rows × 2 columns"
    html = table._repr_html_()
    assert html.count("<tr>") == 1 + 12 and "first 12 of 30 rows shown" in html and "<td>0.333</td>" in html
    assert len(repr(Table([{f"c{i}": i for i in range(40)}]))) < 300


def test_labels_are_shortened_to_the_first_and_last():
    m = _matrix(SHOWN_LABELS + 4)
    rows_line = repr(m).splitlines()[1]
    assert rows_line.endswith(
        f"layer0, layer1, layer2, …, layer{SHOWN_LABELS + 1}, layer{SHOWN_LABELS + 2}, layer{SHOWN_LABELS + 3} "
        f"({SHOWN_LABELS + 4})"
    )


# --- no tqdm widget warning -----------------------------------------------------------------------

TQDM_PROBE = """
import sys, types, warnings
import IPython
sys.modules["ipykernel.zmqshell"] = types.ModuleType("ipykernel.zmqshell")  # what tqdm takes for a Jupyter kernel
sys.modules["ipywidgets"] = None  # not installed
warnings.simplefilter("always")
with warnings.catch_warnings(record=True) as caught:
    if sys.argv[1] == "tqdm.auto":
        import tqdm.auto
    else:
        import stitchkit.study.runner, stitchkit.training.loop
        from stitchkit.utils.progress import progress_bar
        assert list(progress_bar(range(3), "work", True)) == [0, 1, 2]
print(sum("IProgress" in str(w.message) for w in caught))
"""


@pytest.mark.parametrize("imported, warnings", [("tqdm.auto", 1), ("stitchkit", 0)])
def test_no_iprogress_warning_in_a_kernel_without_ipywidgets(imported, warnings):
    """tqdm.auto alone warns there (so the probe does reproduce a kernel); stitchkit's bars do not."""
    env = dict(
        os.environ, PYTHONPATH=str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", ""), OMP_NUM_THREADS="1"
    )
    done = subprocess.run(
        [sys.executable, "-c", TQDM_PROBE, imported], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert int(done.stdout.strip().splitlines()[-1]) == warnings


# --- list_layers ----------------------------------------------------------------------------------


def test_list_layers_of_a_registered_model_gives_names_types_and_shapes():
    model = get_model("resnet18", num_classes=10, in_channels=1, input_size=(28, 28), width=8)
    layers = stitchkit.list_layers(model)  # the size it was built for
    assert [layer.name for layer in layers] == stitchable_layers(model) and [layer.index for layer in layers] == list(
        range(8)
    )
    assert {layer.module_type for layer in layers} == {"BasicBlock"}
    # CIFAR-style ResNet on 28 × 28: stride 2 at stages 2-4 (28 → 14 → 7 → 4), channels width × 1, 2, 4, 8
    expected = [(8, 28, 28)] * 2 + [(16, 14, 14)] * 2 + [(32, 7, 7)] * 2 + [(64, 4, 4)] * 2
    assert [layer.shape for layer in layers] == expected
    assert [layer.shape for layer in stitchkit.list_layers(model, (1, 32, 32))][-1] == (64, 4, 4)
    assert stitchkit.list_layers(model, "digits") == layers  # digits: 1 × 28 × 28


def test_list_layers_of_any_module():
    net = torchvision.models.mobilenet_v3_small(num_classes=10)
    layers = stitchkit.list_layers(net, (3, 64, 64))
    by_name = {layer.name: layer for layer in layers}
    assert by_name["features.0"].module_type == "Conv2dNormActivation" and by_name["features.0"].shape == (16, 32, 32)
    assert by_name["features.1"].module_type == "InvertedResidual" and by_name["classifier.3"].shape == (10,)
    assert all(layer.shape is None for layer in stitchkit.list_layers(net))  # no size known: names and types only

    class MLP(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.body = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.ReLU(), torch.nn.Linear(5, 3))

        def forward(self, x):
            return self.body(x)

    assert [(layer.name, layer.module_type, layer.shape) for layer in stitchkit.list_layers(MLP(), (6,))] == [
        ("body.0", "Linear", (5,)),
        ("body.1", "ReLU", (5,)),
        ("body.2", "Linear", (3,)),
    ]


def test_list_layers_refuses_what_it_cannot_list():
    model = get_model("small_cnn", num_classes=10, in_channels=1, input_size=(28, 28), width=8)
    with pytest.raises(StitchkitError, match="takes an nn.Module, got str"):
        stitchkit.list_layers("resnet18")
    with pytest.raises(StitchkitError, match="input_shape must be positive integers"):
        stitchkit.list_layers(model, (1, 0, 28))
    with pytest.raises(StitchkitError, match="cannot take inputs of shape"):
        stitchkit.list_layers(model, (3, 28, 28))
    assert "list_layers" in stitchkit.__all__ and stitchkit.LayerInfo is stitchkit.api.LayerInfo


class _CountingLoader:
    """An iterable that counts the iterators made of it (a DataLoader draws from torch's RNG for each one)."""

    def __init__(self, items):
        self.items, self.iterators = items, 0

    def __iter__(self):
        self.iterators += 1
        return iter(self.items)


@pytest.mark.parametrize("enabled", [False, True])
def test_a_progress_bar_makes_one_iterator_of_its_loader_and_only_when_iterated(enabled):
    # tqdm.auto's class (tqdm_asyncio) made one at construction and dropped it: a DataLoader then drew an
    # extra seed from torch's RNG (and started its workers) for every loop, which shifted what trains after
    from stitchkit.utils.progress import progress_bar

    loader = _CountingLoader([1, 2, 3])
    bar = progress_bar(loader, "test", enabled)
    assert loader.iterators == 0
    assert list(bar) == [1, 2, 3] and loader.iterators == 1
