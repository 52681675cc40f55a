"""The quick start: examples/quickstart.toml is valid and plans every kind of unit a study has (cheap:
nothing runs), and `make quickstart` runs it. Running it end to end is the study integration test's job
(tests/test_study.py, on a smaller config)."""

from pathlib import Path

from stitchkit.declarations import catalogue
from stitchkit.study.config import load_config
from stitchkit.study.plan import plan_study

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "examples" / "quickstart.toml"


def test_the_quickstart_plans_every_unit_kind(tmp_path):
    units = plan_study(load_config(QUICKSTART), tmp_path / "study")
    kinds = {u.kind for u in units}
    # "train" and "network" are the two ways of getting a network: the quick start trains its own
    # (other test modules register kinds of their own: only stitchkit's count)
    built_in = {name for name, decl in catalogue("unit_kind").items() if decl.module.startswith("stitchkit.")}
    assert len(built_in) >= 9 and kinds == built_in - {"network"}
    assert {u.params["method"] for u in units if u.kind == "stitch"} == {"dm", "tlm"}
    ood = [u for u in units if u.kind == "ood"]
    assert ood and all(u.params["energy"] and set(u.params["training_free"]) == {"mahalanobis", "knn"} for u in ood)
    stitches = [u for u in units if u.kind == "stitch"]
    assert any(u.deps[0] == u.deps[1] for u in stitches) and any(
        u.deps[0] != u.deps[1] for u in stitches
    )  # C4 needs a self-pair


def test_make_quickstart_runs_the_quickstart_config():
    makefile = (ROOT / "Makefile").read_text()
    target = makefile[makefile.index("\nquickstart:") :].split("\n\n", 1)[0]
    assert "stitchkit study examples/quickstart.toml" in target
