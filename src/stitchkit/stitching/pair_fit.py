"""One pair's stitcher and its fit on the fit set: the seeded stitching layer, the fixed low-rank basis,
direct matching (``init="pinv"``) and the in-sample residual of whatever map is installed at the end."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from ..errors import StitchkitError
from ..models.layers import layered
from ..ranks import warn_clamped
from ..utils.seed import set_seed
from .direct_match import DirectMatchResult
from .matching import PairSource, fit_direct_match, fit_image_terms
from .settings import StitchSettings
from .stitcher import Stitcher, StitcherOptions


def new_stitcher(
    front_model: nn.Module,
    end_model: nn.Module,
    layers: tuple[str, str],
    settings: StitchSettings,
    input_shape: Sequence[int],
    device: torch.device,
) -> Stitcher:
    """The pair's stitcher on ``device``, seeded: the random init and the training of every pair are
    independent of the pair order."""
    s = settings
    set_seed(s.seed)
    stitcher = Stitcher(
        front_model,
        end_model,
        layers[0],
        layers[1],
        s.stitching_type,
        input_shape=tuple(input_shape),
        options=StitcherOptions.of(s, init=s.init),
    )
    return stitcher.to(device)


def fit_pair(stitcher: Stitcher, source: PairSource, settings: StitchSettings) -> DirectMatchResult | None:
    """The fixed low-rank basis (if any) and, with ``init="pinv"``, direct matching on the fit set."""
    if stitcher.reduce.needs_fit:
        stitcher.fit_low_rank(front for front, _, _ in source())
    if settings.init != "pinv":
        return None
    return fit_direct_match(
        stitcher,
        source,
        rank=settings.front_pinv_rank,
        low_rank_mode=settings.low_rank_mode,
        rcond=settings.rcond,
        solver=settings.dm_solver,
    )


def fit_residual(
    stitcher: Stitcher,
    dm: DirectMatchResult | None,
    source: PairSource,
    settings: StitchSettings,
) -> tuple[float, tuple[np.ndarray, np.ndarray] | None]:
    """In-sample residual of the installed map on the source the stitched network sees, and each fit
    image's numerator and denominator of it, the map held fixed (:func:`~.matching.fit_image_terms`)."""
    s = settings
    only_affine = (
        len(stitcher.trainable_parameters()) == 2
    )  # no learned CLS weight whose training would change the source
    try:
        if (
            dm is not None
            and dm.stats is not None
            and s.front_pinv_rank == s.front_stitch_rank
            and (s.epochs == 0 or only_affine)
        ):
            _, num, den = fit_image_terms(stitcher, source)
            return dm.stats.residual(*stitcher.layer.affine()), (num, den)
        acc, num, den = fit_image_terms(stitcher, source, accumulate=True)
        return acc.residual(*stitcher.layer.affine()), (num, den)
    except StitchkitError:
        return math.nan, None  # e.g. rc2c_post across sizes has no target in the transform's layout


def warn_clamped_ranks(
    front_model: nn.Module, input_shape: Sequence[int], front_layers: Sequence[str], settings: StitchSettings
) -> None:
    """One warning per rank option above a front layer's channel count: that rank is the layer's full
    rank, and it is recorded as ``front_*_rank_used`` in each pair's options (run names keep the
    rank asked for)."""
    options = {"--front-stitch-rank": settings.front_stitch_rank, "--front-pinv-rank": settings.front_pinv_rank}
    given = {flag: rank for flag, rank in options.items() if rank is not None}
    if not given:
        return
    shapes = layered(front_model).shapes(tuple(input_shape), list(front_layers))
    if len(set(given.values())) == 1:  # the same rank: one line names both options
        warn_clamped([next(iter(given.values()))], shapes, " and ".join(given))
    else:
        for flag, rank in given.items():
            warn_clamped([rank], shapes, flag)
