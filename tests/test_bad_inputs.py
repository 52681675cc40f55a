"""The bad-input sweep (cases in tests/bad_inputs.py): every command, as a new user gets it wrong. Each
case must give one clear line ``stitchkit: error: …`` with exit code 2 (or argparse's usage for a parse
error), never a traceback or a silent success, and leave nothing behind."""

import pytest
from bad_inputs import CASES, OPEN_ELSEWHERE, build_world, run_case

TESTED = [c for c in CASES if c.args not in OPEN_ELSEWHERE]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return build_world(tmp_path_factory.mktemp("world"))


def test_the_sweep_is_large_and_its_open_cases_are_real():
    assert len(CASES) >= 151 and len({c.args for c in CASES}) == len(CASES)
    assert set(OPEN_ELSEWHERE) <= {c.args for c in CASES}


@pytest.mark.parametrize("case", TESTED, ids=[f"{i:03d}-{c.area}" for i, c in enumerate(TESTED)])
def test_a_bad_input_gets_one_clear_error_and_leaves_nothing(case, world, tmp_path):
    outcome = run_case(case, world, tmp_path / "out")
    assert outcome.kind != "traceback", f"{case.id}\n{outcome.err}"
    assert outcome.kind != "silent", f"accepted: {case.id}"
    assert outcome.kind != "unclear", f"{case.id}\nexpected one line with {case.needle!r}, got:\n{outcome.err}"
    assert not outcome.leftovers, f"{case.id} left {outcome.leftovers}"
