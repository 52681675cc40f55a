"""The result records (stitchkit.results): round trips through to_dict, JSON, CSV and Parquet, pandas
views, figures, and the clear errors of bad input."""

import json
import math
import sys

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from stitchkit.errors import StitchkitError
from stitchkit.results import Matrix, Provenance, Table
from stitchkit.utils.io import json_safe


def _matrix() -> Matrix:
    values = [[0.1, math.nan, 1 / 3], [2.0, -0.25, 1e-17]]
    return Matrix(
        ["layer1.0", "layer2.0"],
        ["layer1.0", "layer2.0", "layer3.0"],
        values,
        kind="distance",
        range=(0, None),
        name="residual",
        provenance=Provenance("DM residual", {"front": "abc", "end": "def"}, {"seed": 3}, {"residual": "pooled"}),
    )


def _same_values(a: Matrix, b: Matrix) -> None:
    assert (a.rows, a.cols, a.row_label, a.col_label) == (b.rows, b.cols, b.row_label, b.col_label)
    np.testing.assert_array_equal(a.to_numpy(), b.to_numpy())  # exact, NaN where NaN


def test_matrix_round_trips_through_dict_and_json(tmp_path):
    m = _matrix()
    data = m.to_dict()
    assert (
        data["values"][0][1] is None
        and data["range"] == [0.0, None]
        and data["provenance"]["models"] == {"front": "abc", "end": "def"}
    )
    again = Matrix.from_dict(data)
    assert again.to_dict() == data and again.kind == "distance" and again.provenance == m.provenance
    m.save(tmp_path / "m.json")
    loaded = Matrix.load(tmp_path / "m.json")
    assert loaded.to_dict() == data
    _same_values(loaded, m)


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_matrix_values_and_labels_round_trip_through_csv_and_parquet(tmp_path, suffix):
    m = _matrix()
    path = m.save(tmp_path / f"m{suffix}")
    loaded = Matrix.load(path, kind="distance", name="residual")
    _same_values(loaded, m)
    assert loaded.kind == "distance" and loaded.name == "residual"
    if suffix == ".csv":
        lines = path.read_text().splitlines()
        assert (
            lines[0] == "front layer \\ end layer,layer1.0,layer2.0,layer3.0"
            and lines[1] == "layer1.0,0.1,,0.3333333333333333"
        )


def test_a_study_units_matrix_entry_is_a_matrix():
    entry = {
        "rows": ["a"],
        "cols": ["b", "c"],
        "values": [[0.5, None]],
        "kind": "accuracy",
        "range": [0, 1],
        "row_label": "layer",
        "col_label": "rank",
    }
    m = Matrix.from_dict(entry, name="probe accuracy")
    assert m.name == "probe accuracy" and m["a", "b"] == 0.5 and math.isnan(m["a", "c"])
    assert {k: m.to_dict()[k] for k in entry} == {**entry, "range": [0.0, 1.0]}


def test_matrix_to_pandas_has_the_shape_and_labels():
    m = _matrix()
    df = m.to_pandas()
    assert df.shape == (2, 3) and list(df.index) == m.rows and list(df.columns) == m.cols
    assert (df.index.name, df.columns.name) == ("front layer", "end layer")
    assert df.loc["layer2.0", "layer1.0"] == 2.0 and math.isnan(df.loc["layer1.0", "layer2.0"])


def test_matrix_plot_is_a_labelled_heatmap(tmp_path):
    m = _matrix()
    fig = m.plot()
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == m.cols and [
        t.get_text() for t in ax.get_yticklabels()
    ] == m.rows
    assert (ax.get_xlabel(), ax.get_ylabel(), ax.get_title()) == ("end layer", "front layer", "residual")
    image = ax.images[0]
    assert (
        image.get_cmap().name == "viridis_r"
    )  # distances: lower = more alike gets the same colour as higher similarity
    assert image.get_clim() == (0.0, 2.0)  # the range's open upper end is the largest finite value
    assert sorted(t.get_text() for t in ax.texts) == sorted(
        ["0.10", "0.33", "2.00", "-0.25", "0.00"]
    )  # NaN cells stay empty
    fig.savefig(tmp_path / "m.png")
    assert (tmp_path / "m.png").read_bytes()[:4] == b"\x89PNG"
    accuracy = Matrix(["a"], ["b"], [[0.5]], kind="accuracy", range=(0, 1))
    assert accuracy.plot().axes[0].images[0].get_clim() == (0.0, 1.0)


def test_the_study_report_draws_with_the_shared_heatmap(tmp_path, monkeypatch):
    from stitchkit.results import records
    from stitchkit.study import report

    drawn = []
    real = records.heatmap
    monkeypatch.setattr(records, "heatmap", lambda matrix, **kw: drawn.append(matrix) or real(matrix, **kw))
    entry = {"rows": ["a", "b"], "cols": ["c"], "values": [[0.5], [None]], "kind": "accuracy", "range": [0, 1]}
    report._heatmap(
        Matrix.from_dict(entry, name="unit: DM accuracy"), tmp_path / "f.png", tmp_path / "f.pdf", alpha=0.05
    )
    assert [m.name for m in drawn] == ["unit: DM accuracy"] and drawn[0].rows == ["a", "b"]
    assert (tmp_path / "f.png").read_bytes()[:4] == b"\x89PNG" and (tmp_path / "f.pdf").read_bytes()[:4] == b"%PDF"


def test_bad_matrices_are_refused_with_one_line():
    with pytest.raises(StitchkitError, match="2 rows and 1 columns got values of shape"):
        Matrix(["a", "b"], ["c"], [[1.0, 2.0]])
    with pytest.raises(StitchkitError, match="unknown matrix kind 'auroc'"):
        Matrix(["a"], ["b"], [[1.0]], kind="auroc")
    with pytest.raises(StitchkitError, match="'z' is not a end layer"):
        _matrix()["layer1.0", "z"]
    with pytest.raises(StitchkitError, match="suffix"):
        _matrix().save("m.txt")
    with pytest.raises(StitchkitError, match="needs rows"):
        Matrix.from_dict({"cols": [], "values": []})


def _table() -> Table:
    rows = [
        {"layer": "layer1.0", "auroc": 0.75, "n": 64, "detector": "knn", "ok": True, "shape": [8, 28, 28]},
        {"layer": "layer2.0", "auroc": 1 / 3, "n": 32, "detector": "knn", "ok": False, "shape": [16, 14, 14]},
        {"layer": "layer3.0", "auroc": None, "n": 0, "detector": "mahalanobis", "ok": True, "shape": [32, 7, 7]},
    ]
    return Table(rows, name="sanity check", provenance=Provenance("detectors", {"network": "abc"}))


def test_table_round_trips_through_dict_json_and_csv(tmp_path):
    t = _table()
    assert t.columns == ["layer", "auroc", "n", "detector", "ok", "shape"]
    assert Table.from_dict(t.to_dict()).to_dict() == t.to_dict()
    assert Table.load(t.save(tmp_path / "t.json")).to_dict() == t.to_dict()
    from_csv = Table.load(t.save(tmp_path / "t.csv"), name="sanity check", provenance=t.provenance)
    assert from_csv.to_dict() == t.to_dict()  # numbers, booleans, None and JSON lists come back as they were


def test_table_round_trips_through_parquet_with_its_types(tmp_path):
    t = _table()
    loaded = Table.load(t.save(tmp_path / "t.parquet"))
    assert loaded.columns == t.columns
    for before, after in zip(t.rows, loaded.rows):
        assert {k: v for k, v in after.items() if k != "shape"} == {k: v for k, v in before.items() if k != "shape"}
        assert after["shape"] == json.dumps(before["shape"])  # lists are stored as JSON text
    mixed = Table([{"x": 1}, {"x": "a"}, {"x": None}])
    assert Table.load(mixed.save(tmp_path / "mixed.parquet")).column("x") == ["1", "a", None]


def test_parquet_without_pyarrow_is_a_clear_error_and_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # what an environment without the extra sees
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    for record in (_matrix(), _table()):
        with pytest.raises(StitchkitError, match=r"pip install 'stitchkit\[parquet\]'"):
            record.save(tmp_path / "x.parquet")
    assert list(tmp_path.iterdir()) == []
    _table().save(tmp_path / "t.csv")  # CSV and JSON need nothing extra
    assert (tmp_path / "t.csv").is_file()


def test_table_to_pandas_and_plot():
    t = _table()
    df = t.to_pandas()
    assert (
        df.shape == (3, 6)
        and list(df.columns) == t.columns
        and list(df["layer"]) == ["layer1.0", "layer2.0", "layer3.0"]
    )
    fig = t.plot(y="auroc")
    ax = fig.axes[0]
    assert (
        isinstance(fig, Figure) and len(ax.patches) == 3 and ax.get_xlabel() == "layer" and ax.get_ylabel() == "auroc"
    )
    assert [t.get_text() for t in ax.get_xticklabels()] == ["layer1.0", "layer2.0", "layer3.0"]
    assert [p.get_height() for p in ax.patches][:2] == [0.75, 1 / 3]
    assert len(t.plot().axes[0].patches) == 6  # every numeric column: auroc and n
    with pytest.raises(StitchkitError, match="'detector' is not numeric"):
        t.plot(y="detector")


def test_json_ready_makes_plain_json():
    data = json_safe(
        {"a": np.float32(0.5), "b": (np.int64(2), float("inf")), 3: np.array([1.0, np.nan]), "c": np.bool_(True)}
    )
    assert data == {"a": 0.5, "b": [2, None], "3": [1.0, None], "c": True}
    assert all(type(v) in (float, list, bool) for v in data.values())


def test_a_long_title_wraps_inside_the_figure_instead_of_being_cut_off():
    title = "ood tlm resnet18_w32_seed0.pt#0→resnet18_w32_seed1.pt#1: AUROC (energy)"
    fig = _matrix().plot(title=title)
    shown = fig.axes[0].get_title()
    assert "".join(shown.split()) == "".join(title.split()) and "\n" in shown  # the same characters, over lines
    box = fig.axes[0].title.get_window_extent(FigureCanvasAgg(fig).get_renderer())
    assert 0 <= box.x0 and box.x1 <= fig.bbox.width  # every character lies inside the figure


def test_a_ratio_matrix_is_drawn_on_a_log_scale_centred_at_one():
    m = Matrix(["a", "b"], ["c", "d"], [[0.5, 2.0], [1.0, math.nan]], kind="ratio", range=(0, None), name="norm ratio")
    fig = m.plot()
    image = fig.axes[0].images[0]
    norm = image.norm
    assert image.get_cmap().name == "RdBu_r" and (norm.vmin, norm.vmax) == pytest.approx((0.5, 2.0))
    assert float(norm(1.0)) == pytest.approx(0.5) and float(norm(0.5)) + float(norm(2.0)) == pytest.approx(
        1.0
    )  # ½ and 2 equally far from 1
    ticks = [t.get_text() for t in fig.axes[1].get_yticklabels()]
    assert ticks == ["0.5", "1", "2"]  # plain ratios, not powers of ten
    assert sorted(t.get_text() for t in fig.axes[0].texts) == ["0.50", "1.00", "2.00"]
    near_one = Matrix(["a"], ["b"], [[1.0]], kind="ratio").plot().axes[0].images[0].norm
    assert near_one.vmin < 1 < near_one.vmax  # all ones: still a scale
    fig = Matrix(["a"], ["b", "c"], [[0.9, 1.2]], kind="ratio").plot()
    assert [t.get_text() for t in fig.axes[1].get_yticklabels()] == [
        "0.9",
        "1",
        "1.1",
    ]  # a narrow scale gets finer ticks
    fig = Matrix(["a"], ["b", "c"], [[0.15, 3.0]], kind="ratio").plot()
    assert [t.get_text() for t in fig.axes[1].get_yticklabels()] == ["0.25", "0.5", "1", "2", "4"]


def test_summary_boxes_draw_the_given_quartiles():
    from stitchkit.results.plot import summary_boxes

    panels = {
        "end: x": [
            {
                "label": "genuine",
                "min": 0.0,
                "q25": 1.0,
                "q50": 2.0,
                "q75": 3.0,
                "max": 5.0,
                "mean": 2.2,
                "reference": True,
            },
            {"label": "f1", "min": -4.0, "q25": -3.0, "q50": -2.5, "q75": -2.0, "max": -1.0, "note": "0.00"},
        ],
        "end: y": [{"label": "f1", "min": 1.0, "q25": 2.0, "q50": 3.0, "q75": 4.0, "max": 6.0}],
    }
    fig = summary_boxes(panels, title="t", xlabel="front layer", ylabel="score")
    ax = fig.axes[0]
    assert [a.get_title() for a in fig.axes] == ["end: x", "end: y"] and [
        t.get_text() for t in ax.get_xticklabels()
    ] == ["genuine", "f1"]
    boxes = list(ax.patches)
    assert [(p.get_path().vertices[:, 1].min(), p.get_path().vertices[:, 1].max()) for p in boxes] == [
        (1.0, 3.0),
        (-3.0, -2.0),
    ]  # q25..q75
    ys = {round(float(y), 9) for line in ax.lines for y in line.get_ydata()}
    assert {0.0, 5.0, -4.0, -1.0, 2.0, -2.5, 2.2} <= ys  # whiskers reach min and max; medians and the given mean drawn
    assert any(
        line.get_linestyle() == "--" and set(line.get_ydata()) == {2.0} for line in ax.lines
    )  # the reference median across the panel
    assert [t.get_text() for t in ax.texts] == ["0.00"] and ax.get_ylabel() == "score" and fig.get_suptitle() == "t"
    assert boxes[0].get_facecolor() != boxes[1].get_facecolor()
    with pytest.raises(StitchkitError, match="no distributions to draw"):
        summary_boxes({})


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".json"])
def test_a_matrix_keeps_its_interval_and_p_values_through_every_file_format(tmp_path, suffix):
    m = Matrix(
        ["a", "b"],
        ["c", "d"],
        [[0.5, 0.6], [0.7, math.nan]],
        kind="accuracy",
        name="acc",
        lower=[[0.4, 0.5], [0.6, math.nan]],
        upper=[[0.6, 0.7], [0.8, math.nan]],
        p_value=[[0.01, 0.2], [0.03, math.nan]],
        interval={"level": 0.95, "resamples": 1000, "method": "percentile", "seed": 0},
    )
    back = Matrix.load(m.save(tmp_path / f"m{suffix}"))
    assert back.cols == ["c", "d"] and back.ci("a", "d") == (0.5, 0.7)
    np.testing.assert_array_equal(back.ci()[1], np.array(m.upper))
    np.testing.assert_array_equal(np.array(back.p_value), np.array(m.p_value))
    if suffix == ".csv":
        header = (tmp_path / "m.csv").read_text().splitlines()[0]
        assert header.endswith("c (lower),d (lower),c (upper),d (upper),c (p),d (p)")


def test_a_matrix_without_an_interval_says_how_to_get_one():
    m = Matrix(["a"], ["b"], [[1.0]], name="acc")
    with pytest.raises(StitchkitError, match="no confidence intervals; compute it with bootstrap"):
        m.ci("a", "b")
    with pytest.raises(StitchkitError, match="both bounds"):
        Matrix(["a"], ["b"], [[1.0]], lower=[[0.5]])
