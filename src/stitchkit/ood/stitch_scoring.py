"""The OOD test of stitches that are at hand as :class:`~stitchkit.stitching.grouped.GridPair`\\ s: the
detectors of their end layers (:func:`end_layer_detectors`) and their accuracies and OOD metrics from
one grouped pass over the evaluation set (:func:`score_stitches`). The test of a results folder
(:mod:`.stitched`, ``stitchkit ood``) loads its stitches from the run folders and calls these; the
Python API (``stitchkit.ood_test``) calls them on the stitches of a grid it has just run.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch
from torch import nn
from torch.utils.data import Dataset

from ..data.loading import make_batches
from ..stitching.grouped import GridPair, GridPass, auto_group_size
from .detectors import Detector
from .evaluate import StitchOODResult, fit_training_free, load_layer_detectors
from . import grouped
from .metrics import ValueSummary, ood_metrics


def end_layer_detectors(
    end: nn.Module,
    end_layers: Sequence[str],
    *,
    registry: Any = None,
    source_path: str | None = None,
    training_free: Sequence[str] = (),
    training_free_options: Mapping[str, Mapping[str, Any]] | None = None,
    fit_set: Dataset | None = None,
    device: torch.device | str = "cpu",
    batch_size: int = 256,
    workers: int = 0,
    progress: bool = False,
) -> tuple[dict[str, dict[str, Detector]], dict[str, str | None]]:
    """``({end layer: {name: detector}}, {end layer: energy detector id})``: the registry's energy
    detector of each layer (by the end model's content hash) and the ``training_free`` detectors
    fitted on the end model's genuine activations of ``fit_set`` in one pass."""
    detectors: dict[str, dict[str, Detector]] = {layer: {} for layer in end_layers}
    ids: dict[str, str | None] = {}
    if registry is not None:
        for layer, det in load_layer_detectors(registry, end, end_layers, source_path=source_path, device=device).items():
            detectors[layer]["energy"] = det
            ids[layer] = det.meta.get("id")
    if training_free:
        fitted = fit_training_free(end, end_layers, fit_set, names=training_free, options=training_free_options, device=device,
                                   batch_size=batch_size, workers=workers, progress=progress)
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
    positive: str = "id",
    tpr: float = 0.95,
    fpr_rule: str = "closest",
    device: torch.device | str = "cpu",
    batch_size: int = 256,
    workers: int = 0,
    group_size: int | None = None,
    progress: bool = False,
) -> tuple[list[StitchOODResult], int]:
    """Each stitch's accuracy on ``eval_set`` and the OOD metrics of its stitched activations against
    the end network's genuine ``id_scores`` (``{end layer: {detector: scores}}``), from one grouped pass
    (:func:`~.grouped.grouped_stitch_scores`), in the order of ``pairs``; and the largest group size.
    ``id_norms`` (``{end layer: norms}`` of the same genuine activations, :func:`~.evaluate.genuine_pass`)
    gives each result its norm ratio."""
    device = torch.device(device)
    # On a CPU the detectors' passes dominate, and they run fastest on one stitch's batch at a time
    # (measured: 8 stitches per pass took 1.3-1.5x as long); a GPU takes what its memory holds.
    auto = 1 if device.type == "cpu" else auto_group_size(list(pairs), batch_size, device)
    grid = GridPass(list(pairs), group_size or auto, channels_last=True)
    batches = make_batches(eval_set, batch_size, shuffle=False, device=device, workers=workers)
    scored = grouped.grouped_stitch_scores(grid, batches, detectors, device, progress=progress)  # looked up at call time: the fault tests replace it
    genuine_norms = {layer: ValueSummary.of(values, f"genuine activation norms at {layer!r}") for layer, values in (id_norms or {}).items()}
    results = []
    for pair, out in zip(pairs, scored):
        ood, norms = out.arrays(), out.norm_array()
        metrics = {name: ood_metrics(id_scores[pair.end_layer][name], ood[name], positive=positive, tpr=tpr, fpr_rule=fpr_rule,
                                     score=detectors[pair.end_layer][name].name) for name in ood}
        results.append(StitchOODResult(pair.end_layer, out.accuracy, out.n, metrics, ood, front_layer=pair.front_layer, seconds=out.seconds,
                                       stitched_norm=ValueSummary.of(norms), genuine_norm=genuine_norms.get(pair.end_layer), norms=norms))
    return results, max(len(g) for g in grid.groups)


__all__ = ["end_layer_detectors", "score_stitches"]
