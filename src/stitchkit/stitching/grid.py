"""Stitching experiments on models: one layer pair (:func:`stitch_pair`) or a layer grid in one process
(:func:`stitch_grid`), with the original's run files on disk (spec 1.3) and typed result records.

One pair, step by step (the original's ``exec_stitch.py``, minus its bugs and waste):

1. seed; build the :class:`~.stitcher.Stitcher` (front prefix → stitching layer → end suffix, donors frozen
   in eval mode);
2. the fit set: K (``fit_samples``, default 100) training images **without augmentation**, a seeded
   random subset (:func:`~stitchkit.activations.sample_subset`), streamed in batches; with a fixed
   low-rank mode the basis of ``--front-stitch-rank`` is estimated on it;
3. ``init="pinv"``: direct matching on the fit set (:func:`~.matching.fit_direct_match`);
4. ``epochs > 0``: task loss matching on the training split with the augmentation the end network was
   trained with (``settings.augment``, :mod:`stitchkit.data.augmentation`), validated on the test split
   after every epoch. ``epochs == 0`` builds no training set or loader at all, so only
   the K fit images of the training split are ever read;
5. one pass over the test split: accuracy, loss, residual of the installed map (pooled and the
   original's per-batch mean) and, once per session, the donors' own accuracies;
6. the in-sample residual of the installed map on the fit set, sparsity, wall times;
7. the run folder ``<save_dir>/<run name>/``, written to a hidden temporary folder and renamed into
   place, so it is either complete or absent.

A grid extracts each network's activations at every needed layer **once** for the fit set
(:func:`~stitchkit.activations.extract_activations`; memory-mapped in a cache folder when large) and
fits every pair's direct matching from them. Then, by default, all pairs train and evaluate together
(:mod:`.grouped`, run by :func:`~.grid_run.run_grid`): per batch the front network runs once for all
front layers, and the end suffix once per group of pairs sharing an end layer. ``grouping="per-pair"``
runs the pairs one after the other (the reference), each through the same code as a grid of one.

Run names are deterministic: ``<front layer>__<end layer>__<type>__<init>_e<epochs>__<hash>``, the hash
covering both models' content fingerprints, the dataset and every option that changes the numbers. A
finished run is never overwritten silently: it is skipped (and said so) unless ``overwrite``. So an
interrupted grid, run again, only computes the missing pairs.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from torch import nn

from ..data.splits import DataSplits, check_unnamed
from ..utils.progress import printer
from .donors import Donor, load_donor, resolve_layers
from .grid_run import run_grid
from .intervals import attach_intervals, bootstrap_spec, describe_ci
from .pair_fit import warn_clamped_ranks
from .records import StitchResult, run_name
from .run_folder import RunContext, is_finished, write_run
from .session import GridSession
from .settings import StitchSettings
from .stitcher import Stitcher


@dataclass(frozen=True)
class GridOptions:
    """How a grid's donors are loaded and its runs described and reported, none of which changes a
    number: ``front_type``/``end_type`` (the original's plain state_dicts) and ``model_options`` for
    loading checkpoints, the ``command`` and ``save_dir_label`` its run folders record, and callbacks
    with each computed pair's record (``on_result``) and its stitched network (``on_stitched``)."""

    front_type: str | None = None
    end_type: str | None = None
    model_options: dict[str, Any] | None = None
    command: str | None = None
    save_dir_label: str | None = None
    on_result: Callable[[StitchResult], None] | None = None
    on_stitched: Callable[[StitchResult, Stitcher], None] | None = None


def stitch_grid(
    front: str | os.PathLike | nn.Module | Donor,
    end: str | os.PathLike | nn.Module | Donor,
    front_layers: str | Sequence[str] = "all",
    end_layers: str | Sequence[str] = "all",
    settings: StitchSettings | None = None,
    options: GridOptions | None = None,
    *,
    save_dir: str | os.PathLike | None = None,
    data: DataSplits | None = None,
) -> list[StitchResult]:
    """Stitch every (front layer, end layer) pair in one process; returns one record per pair (front-major).

    ``front``/``end`` are checkpoint paths (with ``options.front_type``/``end_type`` for the original's
    plain state_dicts), models or :class:`Donor`\\ s; the same model may be both. Layers are ``"all"``, a
    comma-separated string or a list. With ``save_dir`` every pair gets a run folder there, and pairs
    whose folder is already finished are skipped (their stored record is returned, ``skipped=True``)
    unless ``settings.overwrite``. By default all pairs are trained and evaluated together
    (``settings.grouping``, see :mod:`.grid_run`); ``"per-pair"`` runs them one after the other, each a
    grid of one. ``data`` gives the data instead of ``settings.dataset`` (e.g. datasets in memory,
    :class:`~stitchkit.data.splits.DataSplits`); ``options.on_stitched`` receives each computed pair's record
    with its stitched network (skipped pairs have none in memory: :func:`~.run_folder.load_stitcher`).
    """
    settings = replace(settings or StitchSettings()).validate()  # a copy: the cache folder is filled in below
    o = options or GridOptions()
    log = printer(settings.verbose)
    front_d, end_d = _load_donors(front, end, settings.dataset, o)
    fls = resolve_layers(front_d.model, front_layers)
    els = resolve_layers(end_d.model, end_layers)
    if data is not None:
        check_unnamed(data, save_dir=save_dir, cache_dir=settings.cache_dir, activation_cache=settings.activation_cache)
    session = GridSession(front_d, end_d, settings, log=log, data=data)
    pairs = [(fl, el) for fl in fls for el in els]
    names = {
        pair: run_name(pair[0], pair[1], front_d, end_d, session.info.name, session.naming_settings) for pair in pairs
    }
    root = Path(save_dir) if save_dir is not None else None
    results, todo = _finished_and_todo(pairs, names, root, settings.overwrite, log)
    warn_clamped_ranks(front_d.model, session.input_shape, sorted({fl for fl, _ in todo}, key=fls.index), settings)
    context = _run_context(session, settings, o, root)
    checkpoint = root / f".grouped-training-{session.key}.pt" if root is not None and settings.epochs > 0 else None

    spec = bootstrap_spec(settings)
    attach_intervals(
        list(results.values()), spec
    )  # stored records: intervals as asked now, from their per-image statistics

    def finish(i: int, result: StitchResult, stitcher) -> None:
        fl, el = result.front_layer, result.end_layer
        attach_intervals([result], spec)  # the same resamples for every pair (same test images, same seed)
        if root is not None:
            write_run(root / names[(fl, el)], result, stitcher, context)
        results[(fl, el)] = result
        if len(pairs) > 1:
            log(_pair_line(i, len(todo), result))
        if o.on_result is not None:
            o.on_result(result)
        if o.on_stitched is not None:
            o.on_stitched(result, stitcher)

    try:
        if todo and settings.cache_dir is None:
            _use_own_activation_cache(session, settings, root)
        if todo:
            for i, (result, stitcher) in enumerate(run_grid(session, todo, names, checkpoint=checkpoint)):
                finish(i, result, stitcher)
    finally:
        session.close()
    return [results[pair] for pair in pairs]


def _load_donors(
    front: str | os.PathLike | nn.Module | Donor,
    end: str | os.PathLike | nn.Module | Donor,
    dataset: str | None,
    o: GridOptions,
) -> tuple[Donor, Donor]:
    """The two donors, loaded once: ``end`` is the front donor itself when it is the same object or the same
    file of the same type."""
    front_d = load_donor(front, o.front_type, dataset=dataset, model_options=o.model_options)
    paths = isinstance(end, (str, os.PathLike)) and isinstance(front, (str, os.PathLike))
    same_file = paths and str(end) == str(front) and o.end_type == o.front_type
    end_d = (
        front_d
        if (end is front or same_file)
        else load_donor(end, o.end_type, dataset=dataset, model_options=o.model_options)
    )
    return front_d, end_d


def _run_context(session: GridSession, settings: StitchSettings, o: GridOptions, root: Path | None) -> RunContext:
    """What every run folder of the grid records besides its own result: the donors, the settings, the
    command and the ``save_dir`` label."""
    label = o.save_dir_label if o.save_dir_label is not None else (str(root) if root is not None else "")
    return RunContext(
        session.front,
        session.end,
        settings,
        session.input_shape,
        session.device,
        o.command or "python: stitchkit.stitching.stitch_grid",
        label,
    )


def _use_own_activation_cache(session: GridSession, settings: StitchSettings, root: Path | None) -> None:
    """No cache folder was given: the session's own one, under ``root`` (or a new temporary folder),
    removed when the session closes."""
    session.remove_cache = True
    base = root if root is not None else Path(tempfile.mkdtemp(prefix="stitchkit-activations-"))
    settings.cache_dir = str(base / ".activation_cache")


def _pair_line(i: int, total: int, result: StitchResult) -> str:
    """The progress line of the ``i``-th computed pair of ``total``: accuracy, residuals and run folder."""
    where = f" -> {result.run_dir}" if result.run_dir else ""
    return (
        f"[{i + 1}/{total}] {result.front_layer} -> {result.end_layer}: Clean accuracy: "
        f"{100 * result.accuracy:.2f}%{describe_ci(result, 'accuracy', 100, '.2f', '%')} "
        f"| residual {result.residual:.4f}{describe_ci(result, 'residual')} "
        f"| fit residual {result.fit_residual:.4f}{where}"
    )


def _finished_and_todo(
    pairs: list[tuple[str, str]],
    names: dict[tuple[str, str], str],
    root: Path | None,
    overwrite: bool,
    log: Callable[[str], None],
) -> tuple[dict[tuple[str, str], StitchResult], list[tuple[str, str]]]:
    """The stored records of the pairs whose run folder is finished (``skipped=True``; none with
    ``overwrite``) and the pairs still to compute, in order."""
    results: dict[tuple[str, str], StitchResult] = {}
    todo = []
    for pair in pairs:
        final = root / names[pair] if root is not None else None
        if final is not None and is_finished(final) and not overwrite:
            results[pair] = StitchResult.load(final)
            results[pair].skipped = True
            log(f"skipping {pair[0]} -> {pair[1]}: finished run in {final} (pass --overwrite to redo it)")
        else:
            todo.append(pair)
    return results, todo


def stitch_pair(
    front: str | os.PathLike | nn.Module | Donor,
    end: str | os.PathLike | nn.Module | Donor,
    front_layer: str,
    end_layer: str,
    settings: StitchSettings | None = None,
    **kwargs: Any,
) -> StitchResult:
    """Stitch one pair; keywords as :func:`stitch_grid`."""
    return stitch_grid(front, end, [front_layer], [end_layer], settings, **kwargs)[0]
