"""A fast command line: help and the listings never import torch, and the torch-free tables they read
(stitchkit.choices, the model and dataset catalogues) agree with the code that implements them."""

import importlib
import inspect
import json
import os
import subprocess
import sys
from pathlib import Path

from stitchkit import choices
from stitchkit.cli import build_parser

SRC = str(Path(__file__).resolve().parents[1] / "src")

#: runs each command in one fresh interpreter and reports, per command, whether torch was imported after it
PROBE = """
import json, sys
from stitchkit.cli import main
report = {}
for argv in json.loads(sys.argv[1]):
    try:
        main(argv)
    except SystemExit:
        pass
    report[" ".join(argv)] = "torch" in sys.modules
print(json.dumps(report))
"""


def _commands() -> list[list[str]]:
    parser = build_parser()
    out = [["--help"], ["models"], ["datasets"]]
    sub = next(a for a in parser._actions if a.dest == "command")
    for name, command in sub.choices.items():
        out.append([name, "--help"])
        for action in command._actions:
            if action.dest == "action":  # detector train/check/list
                out += [[name, verb, "--help"] for verb in action.choices]
    return out


def test_help_and_listings_do_not_import_torch():
    commands = _commands()
    env = dict(os.environ, PYTHONPATH=SRC + os.pathsep + os.environ.get("PYTHONPATH", ""), OMP_NUM_THREADS="1")
    done = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(commands)], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert set(report) == {" ".join(c) for c in commands} and len(report) > 15
    imported = [c for c, loaded in report.items() if loaded]
    assert not imported, f"torch was imported by: {imported[0]}"


def test_the_listings_say_the_same_as_the_registries(capsys):
    from stitchkit.cli import main
    from stitchkit.data import dataset_info, list_datasets
    from stitchkit.models import describe_models

    assert main(["models"]) == 0
    assert capsys.readouterr().out.strip() == describe_models()
    assert main(["datasets"]) == 0
    out = capsys.readouterr().out
    for name in list_datasets():
        assert f"  {name} " in out and dataset_info(name).description in out
    assert "folder:PATH" in out and "npz:PATH" in out


def test_the_model_catalogue_and_the_builders_agree():
    from stitchkit.models import catalog, registry

    assert registry.list_models() == list(catalog.models())
    for info in catalog.models().values():
        build = registry.family_builder(info)
        keywords = {p.name for p in inspect.signature(build).parameters.values() if p.kind is p.KEYWORD_ONLY}
        required = {
            p.name
            for p in inspect.signature(build).parameters.values()
            if p.kind is p.KEYWORD_ONLY and p.default is p.empty
        }
        given = set(info.options) | set(info.build_args)
        assert required <= given <= keywords, (info.name, keywords ^ given)
    assert registry.describe_models() == catalog.describe_models()


def test_the_dataset_catalogue_and_the_loaders_agree():
    from stitchkit.data import catalog, registry

    for name in catalog.entries():  # every declared set has its loader and its transforms
        assert callable(registry._builder(name).load)
    for alias, name in catalog.aliases().items():
        assert registry.dataset_info(alias).name == name
    assert registry.dataset_mean_std("imagenet") is not None and registry.dataset_mean_std("cifar10") is None


def test_the_choices_are_the_libraries_names():
    # by module path: some packages export functions named like their modules (stitchkit.probing.probe)
    modules = [
        "ood.detectors",
        "ood.metrics",
        "ood.registry",
        "ood.train",
        "probing.probe",
        "sensitivity.settings",
        "similarity.compute",
        "similarity.models",
        "similarity.policy",
        "stitching.collect",
        "stitching.layers",
        "stitching.stitcher",
        "study.config",
        "training.optim",
    ]
    (
        detectors,
        metrics,
        registry,
        train,
        probe,
        grounding,
        compute,
        models,
        policy,
        collect,
        layers,
        stitcher,
        config,
        optim,
    ) = (importlib.import_module(f"stitchkit.{m}") for m in modules)

    assert tuple(optim.OPTIMIZERS) == choices.OPTIMIZERS and optim.SCHEDULERS is choices.SCHEDULERS
    # measures, detectors and stitching-layer types are declared where they are defined (tests/test_extending.py
    # checks that everything reads those declarations); stitching keeps these option lists of its own
    assert (layers.UPSAMPLE_MODES, layers.C2T_CLS_MODES, layers.T2C_CLS_MODES) == (
        choices.UPSAMPLE_MODES,
        choices.C2T_CLS_MODES,
        choices.T2C_CLS_MODES,
    )
    assert collect.METRICS == choices.COLLECT_METRICS
    assert metrics.FPR_RULES is choices.FPR_RULES and metrics.POSITIVE_CLASSES is choices.POSITIVE_CLASSES
    assert train.OOD_SCORES is choices.OOD_SCORES and registry.DEFAULT_DETECTOR_DIR == choices.DEFAULT_DETECTOR_DIR
    assert policy.POLICIES is choices.POLICIES
    assert (
        models.DEFAULT_MEASURES == choices.DEFAULT_SIMILARITY_MEASURES
        and grounding.DEFAULT_MEASURES == choices.DEFAULT_GROUNDING_MEASURES
    )
    assert probe.TOKEN_POOLS is choices.TOKEN_POOLS
    # the study schema's lists are subsets of the same names
    schema = config.SCHEMA
    assert set(schema["stitching"]["type"].choices) == set(layers.list_stitching_layers())
    assert set(schema["networks"]["scheduler"].choices) == set(choices.SCHEDULERS)
    assert set(schema["networks"]["optimizer"].choices) == set(choices.OPTIMIZERS)
    assert set(schema["similarity"]["policy"].choices) == set(choices.POLICIES)
    assert set(schema["ood"]["training_free"].choices) == set(detectors.training_free_detectors())


def test_the_study_report_and_its_ood_figures_do_not_import_torch():
    """The report (and `stitchkit study --findings`) reads stored records only: drawing an OOD unit's
    score distributions must not pull in the detectors."""
    env = dict(os.environ, PYTHONPATH=SRC + os.pathsep + os.environ.get("PYTHONPATH", ""), OMP_NUM_THREADS="1")
    code = "import sys, stitchkit.study.report, stitchkit.results.ood_scores; print('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"
