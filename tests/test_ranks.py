"""Ranks and low-rank modes in their one home (stitchkit.ranks), and the other shared homes of issue 21:
the stitching methods (stitchkit.stitch_methods) and the lazy exports of a package (stitchkit.utils.lazy)."""

import json.decoder
import subprocess
import sys

import numpy as np
import pytest

import stitchkit.data
from stitchkit.errors import StitchkitError, StitchkitWarning, UnknownNameError
from stitchkit.ranks import (
    LOW_RANK_MODES,
    check_rank,
    check_ranks_fit,
    clamped_ranks,
    descending,
    feature_count,
    low_rank_mode,
    parse_ranks,
    rank_label,
    rank_used,
    warn_clamped,
)
from stitchkit.stitch_methods import (
    DEFAULT_DM_SOLVER,
    DIRECT_MATCHING_METHODS,
    DM_SOLVERS,
    METHOD_INIT,
    METHODS,
    either_of,
)
from stitchkit.utils.lazy import lazy_exports


def test_a_rank_is_written_full_or_as_its_number():
    assert rank_label(None) == "full" and rank_label(np.int64(4)) == "4" and rank_label(16) == "16"


def test_one_rank_check_names_the_option_and_allows_full_rank_only_where_asked():
    assert check_rank(None, "front_rank", full=True) is None
    value = check_rank(np.int64(3), "front_rank")
    assert value == 3 and type(value) is int
    for bad in (None, 0, -2, 2.0, True, "4"):
        with pytest.raises(StitchkitError, match=r"^front_rank must be a positive integer, got "):
            check_rank(bad, "front_rank")


def test_ranks_from_the_command_line_in_the_original_order():
    assert parse_ranks(None, "-ranks") == [None] and parse_ranks([], "-ranks") == [None]
    assert parse_ranks(["4,full 8", "4", "none"], "-ranks") == [4, None, 8]
    assert descending([4, None, 8, 1]) == [None, 8, 4, 1]
    with pytest.raises(StitchkitError, match=r"-m1r takes positive integers \(or 'full'\), got 0"):
        parse_ranks(["0"], "-m1r")
    with pytest.raises(StitchkitError, match=r"-ranks takes positive integers \(or 'full'\), got 'abc'"):
        parse_ranks(["abc"], "-ranks")


def test_a_rank_counts_channels_of_a_map_and_the_width_of_tokens_and_vectors():
    assert feature_count((16, 4, 4)) == 16 and feature_count((10, 32)) == 32 and feature_count((7,)) == 7
    with pytest.raises(StitchkitError, match="per sample"):
        feature_count((1, 2, 3, 4))
    assert rank_used(None, (16, 4, 4)) is None and rank_used(64, (16, 4, 4)) == 16 and rank_used(8, (10, 32)) == 8


def test_ranks_above_a_layer_are_clamped_with_one_warning_line_or_refused(capsys):
    shapes = {"a": (16, 4, 4), "b": (10, 32)}
    assert clamped_ranks([None, 20, 8], shapes) == [("a", 20, 16)]
    assert warn_clamped([None, 8], shapes) == [] and capsys.readouterr().err == ""
    assert warn_clamped([40, 20], shapes, "-m1r") == [("a", 40, 16), ("a", 20, 16), ("b", 40, 32)]
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("stitchkit: warning: -m1r above")
    assert "40 at b (32 features)" in lines[0]
    check_ranks_fit([None, 16, 8], shapes)  # 16 fits both layers
    with pytest.raises(StitchkitError, match=r"-ranks 20 is above the 16 channels of layer a"):
        check_ranks_fit([20, 4], shapes, "-ranks")


def test_the_low_rank_mode_has_one_spelling_and_reads_the_earlier_one_with_a_warning():
    assert LOW_RANK_MODES == ("fixed", "per_batch") and low_rank_mode("fixed") == "fixed"
    with pytest.warns(StitchkitWarning, match="'per-batch' is deprecated"):
        assert low_rank_mode("per-batch") == "per_batch"
    with pytest.raises(UnknownNameError, match="known low-rank modes: fixed, per_batch"):
        low_rank_mode("svd")


def test_the_stitching_methods_are_declared_once():
    assert METHODS == ("dm", "tlm", "tlm_from_dm") and DIRECT_MATCHING_METHODS == ("dm", "tlm_from_dm")
    assert METHOD_INIT == {"dm": "pinv", "tlm": "rand", "tlm_from_dm": "pinv"}
    assert DEFAULT_DM_SOLVER == "stitchkit" and DEFAULT_DM_SOLVER in DM_SOLVERS
    assert either_of(METHODS) == "dm, tlm or tlm_from_dm" and either_of(["x"], "'") == "'x'"


def test_the_declaration_modules_import_no_torch():
    code = (
        "import sys, stitchkit.ranks, stitchkit.stitch_methods, stitchkit.study.config; print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_lazy_exports_import_a_name_on_first_use_and_list_it():
    getattr_, dir_ = lazy_exports("json", {"JSONDecoder": "decoder", "dumps": "decoder"})
    assert getattr_("JSONDecoder") is json.decoder.JSONDecoder
    with pytest.raises(AttributeError, match="dumps"):
        getattr_("dumps")  # the table names a submodule without it: an AttributeError, not a silent None
    with pytest.raises(AttributeError, match=r"^module 'json' has no attribute 'nothing'$"):
        getattr_("nothing")
    assert {"dumps", "JSONDecoder", "loads"} <= set(dir_())
    assert "MatchShape" in dir(stitchkit.data)
    assert stitchkit.data.MatchShape.__module__ == "stitchkit.data.transforms"
