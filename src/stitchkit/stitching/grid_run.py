"""The one path of a grid: fit, train and evaluate its pairs together (:mod:`.grouped`).

Per grid: every needed layer of both networks is extracted once for the fit set
(:class:`~.fit_cache.FitActivations`); then each pair's stitcher is built and fitted (direct matching),
all pairs train at once with one front pass and one end-suffix pass per group for each training batch
(:func:`~.grouped.grouped_task_loss_match`, in the training loop's epoch scaffold), and one grouped
evaluation pass over the test set (:func:`~.grid_evaluation.grouped_evaluate`) gives every pair's
numbers (fused with the last epoch's validation).

``grouping="per-pair"`` (the reference the grouped path is tested against) runs the same code with
grids of one pair, one after the other.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from ..models.layers import layered
from ..training.loop import EpochLog, LoopSettings
from .fit_cache import CacheOptions
from .grid_checkpoint import checkpoint_identity, load_grouped_checkpoint, save_grouped_checkpoint
from .grid_evaluation import EvalOptions, GridEvaluation, SharedActivations, grouped_evaluate
from .grouped import GridPair, GridPass, auto_group_size, grouped_task_loss_match
from .pair_fit import fit_pair, new_stitcher
from .pair_result import execution, pair_result
from .records import StitchResult
from .session import GridSession
from .shared_cache import shared_activations
from .stitcher import Stitcher

Pair = tuple[str, str]
Shared = tuple[SharedActivations | None, SharedActivations | None] | None


def run_grid(
    session: GridSession, todo: Sequence[Pair], names: dict[Pair, str], *, checkpoint: Path | None = None
) -> Iterator[tuple[StitchResult, Stitcher]]:
    """Fit, train and evaluate the ``todo`` pairs (module docstring): together, or as grids of one with
    ``grouping="per-pair"``. ``checkpoint`` is a file for the state after each training epoch: an
    interrupted grid continues from it."""
    s, c, data = session.settings, session.compute, session.data
    front_order, end_order = layered(c.front_model).layers, layered(c.end_model).layers
    fronts = sorted({f for f, _ in todo}, key=front_order.index)
    ends = sorted({e for _, e in todo}, key=end_order.index)
    cache = CacheOptions(
        memory_limit_gb=s.memory_limit_gb, cache_dir=s.cache_dir, workers=s.workers, progress=s.progress
    )
    session.fit_acts.extract(
        (c.front_model, fronts),
        (c.end_model, ends),
        data.fit_set,
        data.sample_keys["fit"],
        data.input_shape,
        cache,
        session.log,
    )
    if s.grouping == "per-pair":
        for pair in todo:
            yield from run_pairs(session, [pair], names, checkpoint=checkpoint, per_pair=True)
    else:
        yield from run_pairs(session, todo, names, checkpoint=checkpoint)


def run_pairs(
    session: GridSession,
    todo: Sequence[Pair],
    names: dict[Pair, str],
    *,
    checkpoint: Path | None = None,
    per_pair: bool = False,
) -> list[tuple[StitchResult, Stitcher]]:
    """One grid of ``todo`` pairs, fitted, trained and evaluated together; ``per_pair``: a grid of one
    pair (one pair per suffix pass, recorded as the per-pair reference)."""
    s, c = session.settings, session.compute
    pairs, fits, fit_seconds = _fitted_pairs(session, todo)
    group_size = 1 if per_pair else (s.group_size or auto_group_size(pairs, s.batch_size, c.device))
    donors = not session.donors.measured
    grid = GridPass(pairs, group_size, donors=donors, channels_last=c.channels_last, compile=s.compile)
    shared = _shared_activations(session, grid)
    started = time.perf_counter()
    histories, final = _train(session, grid, shared, [names[pair] for pair in todo], checkpoint, donors)
    train_seconds = time.perf_counter() - started
    if final is None:
        final = _evaluate(
            session, grid, EvalOptions(residuals=True, donors=donors, keep_samples=True, progress=s.progress), shared
        )
    if donors:
        session.donors.store(final.front_accuracy, final.end_accuracy, final.front_hit_images, final.end_hit_images)
    how = execution(session, "per-pair", None) if per_pair else execution(session, "grouped", group_size)
    n = len(pairs)
    out = []
    for k, pair in enumerate(pairs):
        seconds = {
            "fit": fit_seconds[k],
            "train": train_seconds / n,
            "eval": final.seconds / n,
            "total": fit_seconds[k] + (train_seconds + final.seconds) / n,
            "grouped_train": train_seconds,
            "grouped_eval": final.seconds,
        }
        history = [log.row() for log in histories[k]]
        result = pair_result(
            session,
            pair.stitcher,
            names[(pair.front_layer, pair.end_layer)],
            final.of_pair(k),
            fits[k],
            history,
            seconds,
            how,
        )
        out.append((result, pair.stitcher))
    if checkpoint is not None:
        checkpoint.unlink(missing_ok=True)
    return out


def _fitted_pairs(session: GridSession, todo: Sequence[Pair]) -> tuple[list[GridPair], list, list[float]]:
    """Each pair's stitcher, fitted on the fit set (:func:`~.pair_fit.fit_pair`), and its seconds."""
    c = session.compute
    pairs, fits, seconds = [], [], []
    for front_layer, end_layer in todo:
        started = time.perf_counter()
        stitcher = new_stitcher(
            c.front_model, c.end_model, (front_layer, end_layer), session.settings, session.input_shape, c.device
        )
        fits.append(fit_pair(stitcher, session.fit_acts.source(stitcher), session.settings))
        pairs.append(GridPair(front_layer, end_layer, stitcher))
        seconds.append(time.perf_counter() - started)
    return pairs, fits, seconds


def _train(
    session: GridSession, grid: GridPass, shared: Shared, runs: list[str], checkpoint: Path | None, donors: bool
) -> tuple[list[list[EpochLog]], GridEvaluation | None]:
    """Task loss matching of every pair (none with ``epochs == 0``); the last epoch's validation is the
    final evaluation (float32, residuals, donors), returned with the histories."""
    s, c, pairs = session.settings, session.compute, grid.pairs
    if s.epochs <= 0:
        return [[] for _ in pairs], None
    final: GridEvaluation | None = None

    def validate(epoch: int) -> list[dict[str, float]]:
        nonlocal final
        last = epoch == s.epochs - 1
        options = EvalOptions(
            residuals=last, donors=last and donors, amp=c.amp and not last, keep_samples=last, progress=s.progress
        )
        ev = _evaluate(session, grid, options, shared)
        if last:
            final = ev
        return [p.validation_row(pair.stitcher, s.l1) for p, pair in zip(ev.pairs, pairs, strict=True)]

    identity = checkpoint_identity(session.key, runs, s.epochs)
    resume = load_grouped_checkpoint(checkpoint, identity, session.log)
    save = (lambda state: save_grouped_checkpoint(checkpoint, identity, state)) if checkpoint is not None else None
    desc = pairs[0].label if len(pairs) == 1 else f"TLM {len(pairs)} pairs"
    loop = LoopSettings(
        epochs=s.epochs,
        device=c.device,
        seed=s.seed,
        grad_clip=s.grad_clip,
        amp=c.amp,
        progress=s.progress,
        verbose=s.verbose,
        desc=desc,
    )
    histories = grouped_task_loss_match(
        grid, session.batches.train, loop, optim=s.optim, l1=s.l1, validate=validate, resume=resume, on_epoch_end=save
    )
    return histories, final


def _evaluate(session: GridSession, grid: GridPass, options: EvalOptions, shared: Shared) -> GridEvaluation:
    fronts_from, ends_from = shared or (None, None)
    if not options.residuals:  # validation passes only read the cache; the final evaluation fills it
        fronts_from = fronts_from if fronts_from is not None and fronts_from.cached is not None else None
        ends_from = None
    evaluation = grouped_evaluate(
        grid, session.batches.test, session.device, options, fronts_from=fronts_from, ends_from=ends_from
    )
    wrote = False
    for source in (fronts_from, ends_from):
        if source is not None and source.sink is not None:
            source.cached, source.sink, wrote = source.sink.close(), None, True
    if wrote:
        session.shared.trim(session.settings.cache_limit_gb * 2**30)
    return evaluation


def _shared_activations(session: GridSession, grid: GridPass) -> Shared:
    if session.shared is None:
        return None
    c, data = session.compute, session.data
    return shared_activations(
        session.shared,
        grid,
        (session.front.model, c.front_model),
        (session.end.model, c.end_model),
        data.input_shape,
        data.sample_keys["test"],
        data.n_test,
        session.settings.cache_limit_gb * 2**30,
    )


__all__ = ["run_grid", "run_pairs"]
