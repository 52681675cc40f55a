"""The grown bad-input sweep (tests/grown_sweep.py): own data, models, checkpoints and study configs,
through the Python API and the command line. Each case must give what it promises (a clear error, a
warning, or a correct result), never a traceback or a silent wrong result, and leave nothing behind."""

import pytest
from bad_inputs import run_case
from grown_sweep import api_cases, build_grown_world, cli_cases, run_api_case

CLI = cli_cases()
API = api_cases()


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return build_grown_world(tmp_path_factory.mktemp("grown-world"))


def test_the_grown_sweep_has_its_hundred_cases():
    ids = [c.id for c in CLI] + [c.id for c in API]
    assert len(ids) == len(set(ids)), "two cases share an id"
    assert len(ids) >= 100


@pytest.mark.parametrize("case", CLI, ids=[f"cli{i:03d}-{c.area}" for i, c in enumerate(CLI)])
def test_a_grown_cli_case(case, world, tmp_path):
    outcome = run_case(case, world, tmp_path / "out")
    assert outcome.ok(case), f"{outcome.kind}: {case.id}\n{outcome.err}\nleft: {outcome.leftovers}"


@pytest.mark.parametrize("case", API, ids=[f"api{i:03d}-{c.area}-{c.klass}" for i, c in enumerate(API)])
def test_a_grown_api_case(case, world, tmp_path):
    outcome = run_api_case(case, world, tmp_path / "out")
    assert outcome.ok, f"{outcome.kind}: {case.id}\n{outcome.message}\nleft: {outcome.leftovers}"
