"""What :func:`stitchkit.api.ood_test` reads besides the stitches: its detectors, per end layer
(training-free ones fitted here, energy detectors from a folder, or ready ones), and its ID data."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..data import get_dataset
from ..data.loading import sample_subset
from ..data.splits import DataSplits, as_dataset
from ..errors import StitchkitError
from ..ood.detectors import Detector, training_free_detectors
from ..ood.registry import DetectorRegistry
from ..ood.settings import PassOptions
from ..ood.stitch_scoring import end_layer_detectors
from .inputs import resolve_data


def detector_sources(
    detectors: Any,
) -> tuple[DetectorRegistry | None, list[str], Mapping[str, Mapping[str, Detector]] | None]:
    """``detectors`` as (an energy detectors' registry, training-free names, ready detectors by layer)."""
    if isinstance(detectors, Mapping):
        return None, [], detectors
    items = [detectors] if isinstance(detectors, (str, os.PathLike)) else list(detectors)
    registry, names, training_free = None, [], training_free_detectors()
    for item in items:
        if isinstance(item, str) and item in training_free:
            names.append(item)
        elif isinstance(item, (str, os.PathLike)) and Path(item).is_dir() and registry is None:
            registry = DetectorRegistry(item)
        else:
            raise StitchkitError(
                f"detector {item!r} is neither a training-free detector ({', '.join(training_free)}) nor a folder "
                "of energy detectors (`stitchkit detector train … -fdir FOLDER`; one folder at most)"
            )
    if registry is None and not names:
        raise StitchkitError(
            "no detectors: give training-free ones (e.g. detectors=['mahalanobis']) or a folder of energy detectors"
        )
    return registry, names, None


def _ready_detectors(
    ready: Mapping[str, Mapping[str, Detector]], end_layers: list[str]
) -> dict[str, dict[str, Detector]]:
    """Detectors given ready, ``{end layer: {name: detector}}``: one set for every end layer of the grid."""
    missing = [layer for layer in end_layers if not ready.get(layer)]
    if missing:
        raise StitchkitError(
            f"no detectors given for end layer {missing[0]}; give {{end layer: {{name: detector}}}} for "
            f"{', '.join(end_layers)}"
        )
    return {layer: dict(ready[layer]) for layer in end_layers}


def id_splits(id_data: Any, eval_splits: DataSplits, data_root: str | None) -> tuple[Any, Any, str]:
    """The ID (test set, training set for fitting detectors, name); a named ID set is converted to the
    evaluation set's item shape, as ``stitchkit ood -idd`` does."""
    if id_data is None:
        return eval_splits.test, eval_splits.train, eval_splits.info.name
    if isinstance(id_data, (str, os.PathLike)):
        test = get_dataset(str(id_data), "test", root=data_root, shape=eval_splits.info.shape)
        return test, get_dataset(str(id_data), "train", root=data_root, augment=False), str(id_data)
    splits = resolve_data(id_data)
    return splits.test, splits.train, splits.info.name


def detectors_by_end_layer(
    sources: tuple[DetectorRegistry | None, list[str], Mapping[str, Mapping[str, Detector]] | None],
    end_model: Any,
    end_layers: list[str],
    *,
    id_train: Any,
    end_path: Any,
    fit_samples: int,
    seed: int,
    detector_options: Mapping[str, Mapping[str, Any]] | None,
    scoring: PassOptions,
) -> tuple[dict[str, dict[str, Detector]], dict[str, str | None]]:
    """Each end layer's detectors and the ids of those read from a folder: the ready ones as given, or
    (:func:`~stitchkit.ood.stitch_scoring.end_layer_detectors`) the folder's energy detectors, found by
    the end network's content hash, and the training-free ones, fitted on ``fit_samples`` random images
    of ``id_train`` drawn with ``seed``."""
    registry, training_free, ready = sources
    if ready is not None:
        return _ready_detectors(ready, end_layers), {}
    fit_set = sample_subset(as_dataset(id_train), fit_samples, seed=seed) if training_free else None
    return end_layer_detectors(
        end_model,
        end_layers,
        registry=registry,
        source_path=end_path,
        training_free=training_free,
        training_free_options=detector_options,
        fit_set=fit_set,
        scoring=scoring,
    )
