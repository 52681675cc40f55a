"""What every unit kind's planner shares: the plan's context (the config, the networks and the layers of
their architecture), the layers a config key asks for, the network pairs, the default ranks.

A unit kind plans its own units (a module-level ``plan(ctx, planned) -> list[Unit]`` in its module of
:mod:`stitchkit.study.unit_kinds`, named by its declaration's ``planner=``); :func:`~.plan.plan_study`
calls the planners in order. This module is the planners' common ground and imports no torch (the study
package stays torch-free until a unit runs).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..data import dataset_info  # the torch-free catalogue
from ..data.augmentation import resolve_augmentation
from ..errors import StitchkitError
from ..ranks import feature_count  # torch-free: importing the study package must not import torch
from .units import Unit

if TYPE_CHECKING:
    from ..models.layers import LayeredModel

#: the units planned so far, by kind (the planners of later kinds read them: their dependencies)
Planned = Mapping[str, list[Unit]]

#: a unit kind's planner: the context and the units planned so far → this kind's units, in order
Planner = Callable[["PlanContext", Planned], list[Unit]]


def file_hash(path: Path) -> str:
    """The content hash of a file (a given network's identity)."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def network(spec: dict[str, Any], dataset: str) -> LayeredModel:
    """The (untrained) network a model name and options describe, cut into its stitchable layers."""
    from ..models import (
        get_model,  # deferred: importing the study package must not import torch (pool workers set threads first)
    )
    from ..models.layers import layered

    info = dataset_info(dataset)
    model = get_model(
        spec["model"],
        num_classes=info.num_classes,
        in_channels=info.shape[0],
        input_size=tuple(info.shape[1:]),
        **spec["options"],
    )
    return layered(model)


def default_ranks(shape: tuple[int, ...]) -> list[int]:
    """Halving ranks below the feature count (channels, or token width): C/2, C/4, …, 1."""
    ranks, r = [], feature_count(shape) // 2
    while r >= 1:
        ranks.append(r)
        r //= 2
    return ranks


def select(net: LayeredModel, wanted: str | list[str], where: str) -> list[str]:
    """The layers a config key asks for ("all", a comma list or a list), in the network's order."""
    chosen = set(net.resolve(wanted, where=f"study config: {where}"))
    return [layer for layer in net.layers if layer in chosen]


def pairs(n: int, how: str) -> list[tuple[int, int]]:
    """The (front, end) network indices a ``pairs`` key asks for, among ``n`` networks."""
    if how == "self":
        return [(i, i) for i in range(n)]
    if how == "all":
        return [(i, j) for i in range(n) for j in range(n) if i != j]
    found = [(0, j) for j in range(1, n)]
    if how == "first":
        found = found[:1]
    if how == "first_and_self":
        found = found[:1]
    if how in ("reference_and_self", "first_and_self"):
        found = [(0, 0)] + found
    if not found:
        raise StitchkitError('study config: stitching between networks needs at least two networks (or pairs = "self")')
    return found


@dataclass
class PlanContext:
    """What every planner reads: the config, and once the network kinds are planned, the networks, their
    names and the layers of their architecture."""

    config: dict[str, Any]
    networks: list[Unit] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    net: LayeredModel | None = None
    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    front_layers: list[str] = field(default_factory=list)
    end_layers: list[str] = field(default_factory=list)
    #: network id → whether it was trained with the dataset's augmentation, as its record says (None: no
    #: record); the network kinds' planners fill it
    augment_records: dict[str, bool | None] = field(default_factory=dict)

    @property
    def common(self) -> dict[str, Any]:
        return {"dataset": self.config["study"]["dataset"], "seed": self.config["study"]["seed"]}

    def augmented(self, section: str, network_id: str, dataset: str | None = None) -> bool | None:
        """What the images a ``section`` unit feeds through a network get, ``[section] augment``
        resolved by the network's record: True the dataset's augmentation, False none, None the same
        either way (the dataset has no augmentation)."""
        from ..data import dataset_augments  # deferred: importing the study package must not import torch

        if not dataset_augments(dataset or self.config["study"]["dataset"]):
            return None
        return resolve_augmentation(self.config[section]["augment"], self.augment_records[network_id]).augment

    @property
    def layers(self) -> list[str]:
        return list(self.shapes)

    def set_networks(self, networks: list[Unit]) -> None:
        """The networks the network kinds planned: their names, architecture and chosen layers."""
        config = self.config
        dataset = config["study"]["dataset"]
        net = network({"model": networks[0].params["model"], "options": networks[0].params["options"]}, dataset)
        self.networks = networks
        self.names = [n.label.split(" ", 1)[1] for n in networks]
        self.net = net
        self.shapes = net.shapes(dataset_info(dataset).shape)
        self.front_layers = select(net, config["layers"]["front"], "layers.front")
        self.end_layers = select(net, config["layers"]["end"], "layers.end")
