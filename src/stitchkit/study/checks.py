"""What a study's units will meet, checked on the planned units before anything is written.

The config's schema (:mod:`.config`) checks names and ranges; these checks need the networks. Each
architecture of the study (a model name with its options) is built once, untrained, and its stitchable
layers and their activation shapes are traced (no data is read). Then every planned unit is checked
against the networks it depends on, as it would find them when it runs:

* each layer it names exists in each of its networks (the config names layers once for all networks,
  and ``"all"`` means the layers of ``networks[0]``, so networks of different architectures fail here);
* each (front layer, end layer) pair of a stitch grid gets its stitching layer (``stitching.type``
  against the two shapes, as the grid builds it), and direct matching can fit it;
* each end layer gets its OOD detector (``ood.detector`` with ``ood.detector_options``);
* the sensitivity test's ranks fit the tested layer of every network;
* the device exists.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch

from ..data import dataset_info
from ..errors import StitchkitError
from ..models.layers import LayeredModel
from ..ood.detector_model import build_detector_model
from ..ranks import check_ranks_fit
from ..stitch_methods import DIRECT_MATCHING_METHODS
from ..stitching.stitcher import Stitcher
from ..utils.device import resolve_device
from .planning import network
from .units import Unit

PREFIX = "study config"
#: what a layer key left out means (sensitivity.layer, specificity.reference_layer)
_MIDDLE = "the middle layer of networks[0]"


@dataclass
class _Network:
    """A network of the study as the checks see it: its label, architecture and traced layers."""

    index: int
    label: str
    model: str
    net: LayeredModel
    shapes: dict[str, tuple[int, ...]]


def check_units(config: dict[str, Any], networks: list[Unit], units: Iterable[Unit], first: LayeredModel) -> None:
    """Refuse a plan whose units would fail on their networks (module docstring); ``first`` is the
    traced architecture of ``networks[0]`` (the plan's own)."""
    try:
        resolve_device(config["study"]["device"])
    except StitchkitError as exc:
        raise StitchkitError(f"{PREFIX}: study.device: {exc}") from None
    nets = _traced(networks, config["study"]["dataset"], first)
    fitted: set[tuple[Any, ...]] = set()
    for unit in units:
        deps = [nets[d] for d in unit.deps if d in nets]
        p = unit.params
        if unit.kind == "stitch":
            _has_layers(deps[0], p["front_layers"], "layers.front", config["layers"]["front"])
            _has_layers(deps[-1], p["end_layers"], "layers.end", config["layers"]["end"])
            _stitches_fit(deps[0], deps[-1], p, config["study"]["dataset"], fitted)
        elif unit.kind == "similarity":
            for n in deps:
                _has_layers(n, p["layers"], "[similarity] (every layer of networks[0])", None)
        elif unit.kind == "probes":
            _has_layers(deps[0], p["layers"], "probes.layers", config["probes"]["layers"])
        elif unit.kind == "detectors":
            _has_layers(deps[0], p["layers"], "layers.end (the OOD detectors' layers)", config["layers"]["end"])
            _detectors_fit(deps[0], p, config["study"]["dataset"], fitted)
        elif unit.kind == "sensitivity":
            for n in deps:
                _has_layers(n, [p["layer"]], "sensitivity.layer", config["sensitivity"]["layer"] or _MIDDLE)
                check_ranks_fit(
                    p["ranks"], {p["layer"]: n.shapes[p["layer"]]}, f"{PREFIX}: sensitivity.ranks (network {n.label})"
                )
        elif unit.kind == "specificity":
            for n in deps:
                _has_layers(
                    n,
                    [p["reference_layer"]],
                    "specificity.reference_layer",
                    config["specificity"]["reference_layer"] or _MIDDLE,
                )
                _has_layers(n, p["layers"], "[specificity] (every layer of networks[0])", None)


def _traced(networks: list[Unit], dataset: str, first: LayeredModel) -> dict[str, _Network]:
    """Every network by unit id, each architecture built and traced once."""
    shape = dataset_info(dataset).shape
    built: dict[str, tuple[LayeredModel, dict[str, tuple[int, ...]]]] = {}
    out = {}
    for i, unit in enumerate(networks):
        spec = {"model": unit.params["model"], "options": unit.params["options"]}
        key = json.dumps(spec, sort_keys=True, default=str)
        if key not in built:
            net = first if i == 0 else network(spec, dataset)
            built[key] = (net, net.shapes(shape))
        net, shapes = built[key]
        out[unit.id] = _Network(i, unit.label.split(" ", 1)[1], spec["model"], net, shapes)
    return out


def _has_layers(n: _Network, layers: list[str], key: str, value: Any) -> None:
    missing = [layer for layer in layers if layer not in n.shapes]
    if not missing:
        return
    asked = key if value is None else f"{key} ({value})" if value == _MIDDLE else f"{key} = {json.dumps(value)}"
    raise StitchkitError(
        f"{PREFIX}: {asked} uses layer {missing[0]!r}, which network {n.label} (networks[{n.index}], a {n.model}) "
        f"does not have; the study's networks differ in architecture, so name layers each of them has ({n.label}'s: "
        f"{', '.join(n.shapes)}) "
        "or use networks of one architecture"
    )


def _stitches_fit(
    front: _Network, end: _Network, p: dict[str, Any], dataset: str, fitted: set[tuple[Any, ...]]
) -> None:
    """Every pair of the grid gets its stitching layer, as the grid builds it (and direct matching can fit it)."""
    dm = p["method"] in DIRECT_MATCHING_METHODS
    key = ("stitch", id(front.net), id(end.net), tuple(p["front_layers"]), tuple(p["end_layers"]), p["type"], dm)
    if key in fitted:
        return
    shape = dataset_info(dataset).shape
    for fl in p["front_layers"]:
        for el in p["end_layers"]:
            try:
                stitcher = Stitcher(front.net.model, end.net.model, fl, el, p["type"], input_shape=shape)
                if dm:  # what direct matching fits to: the end activation in the transform's layout
                    stitcher.layer.transform_target(torch.empty((1, *stitcher.target_shape), device="meta"))
            except StitchkitError as exc:
                raise StitchkitError(
                    f"{PREFIX}: stitching.type = {p['type']!r} cannot stitch {front.label} {fl} → {end.label} {el} "
                    f'({p["method"]}): {exc}; choose another stitching.type ("auto" picks one per pair) or other layers'
                ) from None
    fitted.add(key)


def _detectors_fit(end: _Network, p: dict[str, Any], dataset: str, fitted: set[tuple[Any, ...]]) -> None:
    """Every end layer gets its detector architecture (built on the meta device: no memory)."""
    key = (
        "detectors",
        id(end.net),
        tuple(p["layers"]),
        p["detector"],
        json.dumps(p["options"], sort_keys=True, default=str),
    )
    if key in fitted:
        return
    info = dataset_info(dataset)
    for layer in p["layers"]:
        try:
            with torch.device("meta"):
                build_detector_model(p["detector"], end.shapes[layer], info.num_classes, info.shape, p["options"])
        except StitchkitError as exc:
            raise StitchkitError(
                f"{PREFIX}: ood.detector = {p['detector']!r} cannot test layer {layer} of {end.label}: {exc}"
            ) from None
    fitted.add(key)
