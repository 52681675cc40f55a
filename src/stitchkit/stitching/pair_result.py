"""One pair's record (:class:`~.records.StitchResult`): the same fields whichever way the grid ran."""

from __future__ import annotations

from typing import Any

from ..models.layers import layered
from ..ranks import rank_used
from .direct_match import DirectMatchResult
from .grid_evaluation import StitchEvaluation
from .matching import sparsity
from .pair_fit import fit_residual
from .per_sample import PairSamples
from .records import StitchResult
from .session import GridSession
from .stitcher import Stitcher


def execution(session: GridSession, grouping: str, group_size: int | None) -> dict[str, Any]:
    """How the pair was computed (recorded with it; no number depends on it)."""
    c = session.compute
    return {
        "grouping": grouping,
        "group_size": group_size,
        "device": str(c.device),
        "data_path": session.batches.describe(),
        "amp": "bf16 autocast in TLM training and validation" if c.amp else None,
        "channels_last": c.channels_last,
        "batchnorm_folded": c.fold,
        "compile": bool(session.settings.compile),
    }


def pair_samples(session: GridSession, evaluation: StitchEvaluation, fit_terms) -> PairSamples:
    """One pair's per-image statistics: its evaluation's, with the donors' hits on the same images, and
    the fit images' residual terms (``fit_terms``, the map held fixed)."""
    per = evaluation.per_image
    fit_num, fit_den = fit_terms if fit_terms is not None else (None, None)
    front_hits, end_hits = session.donors.hits
    return PairSamples(
        per["hits"],
        per["residual_num"],
        per["residual_den"],
        end_hits=end_hits,
        front_hits=front_hits,
        images=session.data.test_images,
        fit_num=fit_num,
        fit_den=fit_den,
    )


def pair_result(
    session: GridSession,
    stitcher: Stitcher,
    name: str,
    evaluation: StitchEvaluation,
    dm: DirectMatchResult | None,
    history: list[dict[str, float]],
    seconds: dict[str, float],
    how: dict[str, Any],
) -> StitchResult:
    """The record of one pair, computed as ``how`` says (:func:`execution`)."""
    s, c = session.settings, session.compute
    lf, le = layered(c.front_model), layered(c.end_model)
    front_layer, end_layer = stitcher.front_layer, stitcher.end_layer
    residual, fit_terms = fit_residual(stitcher, dm, session.fit_acts.source(stitcher), s)
    # the ranks as they act on this front layer: one above its channel count is its full rank
    used = {
        f"{option}_used": rank_used(rank, stitcher.source_shape)
        for option, rank in (("front_stitch_rank", s.front_stitch_rank), ("front_pinv_rank", s.front_pinv_rank))
        if rank is not None
    }
    front_accuracy, end_accuracy = session.donors.accuracy
    return StitchResult(
        front_layer=front_layer,
        end_layer=end_layer,
        stitching_type=stitcher.kind,
        init=s.init,
        epochs=s.epochs,
        accuracy=evaluation.accuracy,
        loss=evaluation.loss,
        residual=evaluation.residual,
        residual_batch_mean=evaluation.residual_batch_mean,
        fit_residual=residual,
        dm_fit_residual=dm.residual if dm is not None else None,
        dm_rank=dm.rank if dm is not None else None,
        n_fit=session.data.n_fit,
        n_fit_rows=dm.n_rows if dm is not None else None,
        n_test=evaluation.n,
        front_accuracy=front_accuracy,
        end_accuracy=end_accuracy,
        sparsity=sparsity(stitcher),
        train_history=history,
        seconds={**seconds, "shared_extraction": session.fit_acts.seconds},
        front={
            **session.front.describe(),
            "layers": list(lf.layers),
            "layer_index": lf.index(front_layer),
            "source_shape": list(stitcher.source_shape),
        },
        end={
            **session.end.describe(),
            "layers": list(le.layers),
            "layer_index": le.index(end_layer),
            "target_shape": list(stitcher.target_shape),
        },
        dataset=session.info.name,
        options={**session.naming_settings.result_options(), "resolved_stitching_type": stitcher.kind, **used},
        config_key=session.key,
        run_name=name,
        execution=how,
        conventions={
            **s.conventions(),
            "augmentation": session.augmentation.describe() if s.epochs > 0 else "n/a (nothing trained)",
            **session.provenance,
        },
        dm_dropped=dm.dropped if dm is not None else None,
        dm_reported_residual=dm.reported_residual if dm is not None else None,
        samples=pair_samples(session, evaluation, fit_terms),
    )
