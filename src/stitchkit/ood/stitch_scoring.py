"""The OOD test of stitches that are at hand as :class:`~stitchkit.stitching.grouped.GridPair`\\ s: the
detectors of their end layers (:func:`end_layer_detectors`) and their accuracies and OOD metrics from
one grouped pass over the evaluation set (:func:`score_stitches`). The test of a results folder
(:mod:`.stitched`, ``stitchkit ood``) loads its stitches from the run folders and calls these; the
Python API (``stitchkit.ood_test``) calls them on the stitches of a grid it has just run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from ..data.loading import make_batches
from ..stitching.grouped import GridPair, GridPass, auto_group_size
from . import grouped
from .detectors import Detector
from .evaluate import StitchOODResult, fit_training_free, load_layer_detectors
from .metrics import OODConvention
from .settings import PassOptions


def end_layer_detectors(
    end: nn.Module,
    end_layers: Sequence[str],
    *,
    registry: Any = None,
    source_path: str | None = None,
    training_free: Sequence[str] = (),
    training_free_options: Mapping[str, Mapping[str, Any]] | None = None,
    fit_set: Dataset | None = None,
    scoring: PassOptions | None = None,
) -> tuple[dict[str, dict[str, Detector]], dict[str, str | None]]:
    """``({end layer: {name: detector}}, {end layer: energy detector id})``: the registry's energy
    detector of each layer (by the end model's content hash) and the ``training_free`` detectors
    fitted on the end model's genuine activations of ``fit_set`` in one pass (run as ``scoring`` says)."""
    scoring = scoring or PassOptions()
    detectors: dict[str, dict[str, Detector]] = {layer: {} for layer in end_layers}
    ids: dict[str, str | None] = {}
    if registry is not None:
        loaded = load_layer_detectors(registry, end, end_layers, source_path=source_path, device=scoring.device)
        for layer, det in loaded.items():
            detectors[layer]["energy"] = det
            ids[layer] = det.meta.get("id")
    if training_free:
        fitted = fit_training_free(
            end, end_layers, fit_set, names=training_free, options=training_free_options, scoring=scoring
        )
        for layer in end_layers:
            detectors[layer].update(fitted[layer])
    return detectors, ids


def score_stitches(
    pairs: Sequence[GridPair],
    detectors: Mapping[str, Mapping[str, Detector]],
    id_scores: Mapping[str, Mapping[str, Any]],
    eval_set: Dataset,
    *,
    id_norms: Mapping[str, Any] | None = None,
    convention: OODConvention | None = None,
    scoring: PassOptions | None = None,
    group_size: int | None = None,
) -> tuple[list[StitchOODResult], int]:
    """Each stitch's accuracy on ``eval_set`` and the OOD metrics of its stitched activations against
    the end network's genuine ``id_scores`` (``{end layer: {detector: scores}}``) under ``convention``,
    from one grouped pass (:func:`~.grouped.grouped_stitch_scores`, run as ``scoring`` says), in the order
    of ``pairs``; and the largest group size. ``id_norms`` (``{end layer: norms}`` of the same genuine
    activations, :func:`~.evaluate.genuine_pass`) gives each result its norm ratio."""
    scoring = scoring or PassOptions()
    device = torch.device(scoring.device)
    # On a CPU the detectors' passes dominate, and they run fastest on one stitch's batch at a time
    # (measured: 8 stitches per pass took 1.3-1.5x as long); a GPU takes what its memory holds.
    auto = 1 if device.type == "cpu" else auto_group_size(list(pairs), scoring.batch_size, device)
    grid = GridPass(list(pairs), group_size or auto, channels_last=True)
    batches = make_batches(eval_set, scoring.batch_size, shuffle=False, device=device, workers=scoring.workers)
    # looked up at call time: the fault tests replace it
    scored = grouped.grouped_stitch_scores(grid, batches, detectors, device, progress=scoring.progress)
    results = grouped.stitch_results(pairs, scored, detectors, id_scores, convention or OODConvention(), id_norms)
    return results, max(len(g) for g in grid.groups)


__all__ = ["end_layer_detectors", "score_stitches"]
