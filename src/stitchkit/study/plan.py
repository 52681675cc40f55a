"""Turning a study config into units of work and their dependencies.

Each unit kind plans its own units: its declaration names a planner of its module
(``@declare("unit_kind", KIND, planner="plan", …)``, a function ``plan(ctx, planned) -> list[Unit]`` of
:mod:`stitchkit.study.unit_kinds`; their common ground is :mod:`.planning`). :func:`plan_study` calls
the planners of the declared kinds in order: the network kinds first (``train`` per seed, or ``network``
per given checkpoint), then the others in their declared ``order`` (or ``plan_order``), each reading the
units planned before it. Every method depends on the networks it uses:

* ``stitch`` — one layer grid per (front network, end network, method), activations shared inside;
* ``detectors`` — energy OOD detectors for every end layer of an end network;
* ``ood`` — the OOD test of one stitch grid (energy and training-free detectors);
* ``similarity`` — the measure matrices of a network pair;
* ``probes`` — linear probes of one network's layers at each rank;
* ``sensitivity`` / ``specificity`` — the tests of Ding et al. over all networks.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..data import dataset_info  # the torch-free catalogue
from ..declarations import catalogue
from ..errors import StitchkitError
from .planning import PlanContext
from .units import Unit, network_kinds, unit_planner


def planning_order() -> list[str]:
    """The declared unit kinds in the order they are planned: by ``plan_order`` (default their ``order``);
    kinds declared at run time without one come last, as declared. (:func:`plan_study` plans the network
    kinds before all others.)"""
    known = catalogue("unit_kind")
    return sorted(known, key=lambda k: known[k].get("plan_order", known[k].order))


def _check_networks(config: dict[str, Any], networks: list[Unit]) -> None:
    """Enough networks for the sensitivity test."""
    if config["sensitivity"]["enabled"] and len(networks) < 2:
        raise StitchkitError(
            "study config: the sensitivity test needs at least two networks (it ranks each network's low-rank versions "
            "against the others); add a seed or a checkpoint, or set [sensitivity] enabled = false"
        )


def plan_study(config: dict[str, Any], study_dir: Path) -> list[Unit]:
    """Every unit of a study, dependencies first (see the module docstring)."""
    dataset_info(config["study"]["dataset"])  # fail early on an unknown name
    kinds, network = planning_order(), set(network_kinds())
    ctx = PlanContext(config)
    planned: dict[str, list[Unit]] = {}

    def plan(kind: str) -> None:
        planner = unit_planner(kind)
        if planner is not None:
            planned[kind] = planner(ctx, planned)

    for kind in (k for k in kinds if k in network):
        plan(kind)
    networks = [u for units in planned.values() for u in units]
    _check_networks(config, networks)
    ctx.set_networks(networks)
    for kind in (k for k in kinds if k not in network):
        plan(kind)
    units = [u for kind_units in planned.values() for u in kind_units]
    from .checks import check_units  # deferred: importing the study package must not import torch

    # what each unit would meet on its networks, before anything is written
    check_units(config, networks, units, ctx.net)
    return units
