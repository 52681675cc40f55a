"""The study report's tables (column order, number formats, marked rows) and the figures' titles
(wrapped at separators only)."""

import math
import re

import pytest

from stitchkit.results import Matrix
from stitchkit.results.plot import KIND_CMAPS, wrap_title
from stitchkit.study.report_tables import MISSING, column_order, html_table, number_format


def _cells(table_html: str) -> list[list[str]]:
    return [re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", row) for row in re.findall(r"<tr[^>]*>(.*?)</tr>", table_html)]


def test_columns_read_key_first_then_numbers_in_a_fixed_order_not_alphabetically():
    # as a store gives them back: sorted by name
    rows = [
        {
            "aupr": 0.5,
            "auroc": 0.5,
            "detector": "energy",
            "fpr95": 0.95,
            "layer": "layer1.0",
            "zeta": "note",
            "extra": 3,
        }
    ]
    assert column_order(rows) == ["detector", "layer", "zeta", "auroc", "aupr", "fpr95", "extra"]
    scores = [
        {
            "activations": "genuine",
            "auroc": None,
            "detector": "knn",
            "end_layer": "l1",
            "front_layer": None,
            "max": 1.0,
            "mean": 0.5,
            "min": 0.0,
            "n": 10,
            "q25": 0.2,
            "q50": 0.5,
            "q75": 0.7,
        }
    ]
    assert column_order(scores) == [
        "end_layer",
        "detector",
        "activations",
        "front_layer",
        "auroc",
        "min",
        "q25",
        "q50",
        "mean",
        "q75",
        "max",
        "n",
    ]


def test_a_values_interval_columns_come_right_after_it():
    base = [
        {
            "network": "a",
            "test accuracy": 0.9,
            "top-5": 1.0,
            "seconds": 5.0,
            "content hash": "ab",
            "test accuracy (lower)": 0.88,
            "test accuracy (upper)": 0.92,
        }
    ]
    assert column_order(base) == [
        "network",
        "test accuracy",
        "test accuracy (lower)",
        "test accuracy (upper)",
        "top-5",
        "seconds",
        "content hash",
    ]
    unnamed = [{"layer": "l1", "cka (upper)": 0.9, "cka": 0.8, "cka (p)": 0.02, "cka (lower)": 0.7, "other": 1.0}]
    assert column_order(unnamed) == ["layer", "cka", "cka (lower)", "cka (upper)", "cka (p)", "other"]


def test_a_column_has_one_number_of_decimals_and_missing_values_are_a_dash():
    assert [number_format([0.09192, 0.1226])(v) for v in (0.09192, 0.1226)] == ["0.092", "0.123"]
    assert [number_format([0.5, 0.75, 1.0])(v) for v in (0.5, 1.0)] == ["0.500", "1.000"]
    assert number_format([2.9, 15.3, 3.0])(3.0) == "3.00"
    assert number_format([3, 10])(10) == "10"  # integers as they are
    wide = number_format(
        [30800.0, 0.0054, 2.0]
    )  # several detectors' scores in one column: three significant digits each
    assert [wide(v) for v in (30800.0, 0.0054, 2.0, -14.76)] == ["30800", "0.00540", "2.00", "-14.8"]
    table = html_table(
        [
            {"measure": "cka", "spearman_p": math.nan, "kendall_p": None},
            {"measure": "cka", "spearman_p": 0.0008, "kendall_p": 0.03},
        ]
    )
    assert "nan" not in table and "None" not in table
    assert _cells(table)[1] == ["cka", MISSING, MISSING]


def test_rows_can_be_marked_and_numbers_align_right():
    rows = [{"detector": "energy", "auroc": 0.95, "passes": True}, {"detector": "knn", "auroc": 0.5, "passes": False}]
    table = html_table(rows, lambda row: None if row["passes"] else "fail")
    assert table.count("<tr class=fail>") == 1 and _cells(table)[2] == ["knn", "no", "0.500"]
    assert '<td class="num">0.950</td>' in table and "<td>energy</td>" in table


@pytest.mark.parametrize(
    "title",
    [
        "stitch dm fm_r18_s0→fm_r18_s1: DM residual (test, pooled)",
        "similarity resnet18 s0↔resnet18 s1: procrustes",
        "ood tlm fm_r18_seed0_width64→fm_r18_seed1_width64: AUROC (mahalanobis)",
    ],
)
@pytest.mark.parametrize("width", [12, 20, 40])
def test_titles_wrap_at_separators_never_inside_a_word(title, width):
    text, scale = wrap_title(title, width)
    lines = text.split("\n")
    joined = "".join(lines)
    assert joined.replace(" ", "") == title.replace(" ", "")  # nothing lost or added but spaces at the breaks
    position = 0
    for line in lines[:-1]:  # each line ends where the title has a separator (or a space follows it)
        position = title.index(line, position) + len(line)
        assert title[position - 1] in " →↔_/" or title[position] == " ", (line, title)
    longest = max(map(len, lines))
    assert longest <= width or scale == pytest.approx(width / longest)


def test_a_title_that_cannot_break_shrinks_instead():
    text, scale = wrap_title("averyveryverylongwordwithoutbreaks", 10)
    assert text == "averyveryverylongwordwithoutbreaks" and scale == pytest.approx(10 / 34)


def test_auroc_is_drawn_with_one_colour_map_in_the_api_and_the_report():
    """The OOD test's AUROC is a distance (stitchkit.ood.matrices.METRIC_KINDS); the study stores it so, and
    every heatmap takes its colours from KIND_CMAPS (the report's figures are Matrix.plot too)."""
    from stitchkit.ood.matrices import METRIC_KINDS

    kind, scale = METRIC_KINDS["auroc"]
    stored = {
        "rows": ["a"],
        "cols": ["b"],
        "values": [[0.9]],
        "kind": kind,
        "range": list(scale),
    }  # as the study's OOD unit stores it
    image = Matrix.from_dict(stored, name="AUROC (energy)").plot().axes[0].images[0]
    assert image.get_cmap().name == KIND_CMAPS["distance"] == "viridis_r"
