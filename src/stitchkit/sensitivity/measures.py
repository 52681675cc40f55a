"""The measures of the tests on their comparisons: array measures on the extracted activations, and the
stitching measures (``dm_accuracy`` / ``tlm_accuracy``) by stitching the candidate's network into the
reference's."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace

import numpy as np
from torch import nn

from ..choices import DEFAULT_POLICY
from ..ranks import rank_label
from ..similarity.pairs import RepresentationBank
from ..similarity.registry import get_measure
from ..stitching.donors import load_donor
from ..stitching.grid import stitch_grid
from ..stitching.settings import StitchSettings
from ..training.optim import OptimConfig
from .comparisons import Comparison
from .settings import GroundingSettings


def array_measure_values(
    bank: RepresentationBank,
    comparisons: Sequence[Comparison],
    measures: Sequence[str],
    *,
    policy: str = DEFAULT_POLICY,
    counts: np.ndarray | None = None,
    resamples: dict[str, np.ndarray] | None = None,
) -> dict[str, list[float]]:
    """Each array measure on every comparison (X = candidate, Y = reference), each representation
    truncated and prepared once per measure. With ``counts`` ((B, images) bootstrap counts of the
    measures' images), each measure's values on every resample are put in ``resamples`` (measure →
    (B, comparisons); :meth:`~stitchkit.similarity.pairs.RepresentationBank.resampled`), from the same
    preparations."""
    out: dict[str, list[float]] = {}
    for name in measures:
        m = get_measure(name)
        out[m.name] = [bank.compare(m, c.candidate, c.reference, policy=policy).value for c in comparisons]
        if counts is not None and resamples is not None:
            resamples[m.name] = np.stack(
                [bank.resampled(m, c.candidate, c.reference, counts, policy=policy) for c in comparisons], axis=1
            )
        bank.forget(prepared_only=True)  # the next measure prepares differently; keep the truncations
    return out


def stitching_measure_values(
    models: Mapping[str, nn.Module],
    comparisons: Sequence[Comparison],
    measures: Sequence[str],
    dataset: str,
    settings: GroundingSettings,
    *,
    data_root: str | None = None,
    say: Callable[[str], None] = lambda line: None,
) -> dict[str, list[float]]:
    """``dm_accuracy`` / ``tlm_accuracy`` of every comparison: the candidate's network (front, cut at
    the candidate's layer, truncated to its rank) stitched into the reference's network (end, at the
    reference's layer); one :func:`~stitchkit.stitching.stitch_grid` per (front, end, rank) group, so
    activations are shared across the layer pairs of a group."""
    donors = {name: load_donor(model) for name, model in models.items()}
    out: dict[str, list[float]] = {}
    for measure in measures:
        if measure == "dm_accuracy":
            base = StitchSettings(init="pinv", epochs=0)
        else:
            base = StitchSettings(
                init="rand",
                epochs=settings.tlm_epochs,
                batch_size=settings.tlm_batch_size,
                train_samples=settings.tlm_train_samples,
                optim=OptimConfig(optimizer="adam", lr=settings.tlm_lr, weight_decay=1e-5),
                augment=settings.tlm_augment,
            )
        run = replace(
            settings.run_options(), data_root=data_root if data_root is not None else settings.data_root, verbose=False
        )
        base = replace(
            base,
            fit_samples=settings.stitch_fit_samples,
            test_samples=settings.stitch_test_samples,
            dataset=dataset,
            low_rank_mode=settings.low_rank_mode,
            save_weights=False,
            **vars(run),
        )
        groups: dict[tuple[str, str, int | None], list[int]] = {}
        for i, c in enumerate(comparisons):
            groups.setdefault((c.candidate.network, c.reference.network, c.candidate.rank), []).append(i)
        values = [math.nan] * len(comparisons)
        for n_group, ((front, end, rank), idx) in enumerate(groups.items()):
            fls = list(dict.fromkeys(comparisons[i].candidate.layer for i in idx))
            els = list(dict.fromkeys(comparisons[i].reference.layer for i in idx))
            say(
                f"{measure}: {front} -> {end} at rank {rank_label(rank)}: {len(fls)}×{len(els)} layer pair(s) "
                f"[{n_group + 1}/{len(groups)}]"
            )
            results = stitch_grid(donors[front], donors[end], fls, els, replace(base, front_stitch_rank=rank))
            by_pair = {(r.front_layer, r.end_layer): r.accuracy for r in results}
            for i in idx:
                values[i] = float(by_pair[(comparisons[i].candidate.layer, comparisons[i].reference.layer)])
        out[measure] = values
    return out
