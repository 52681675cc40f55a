"""A stitching session: the two donors, the data, the device and the caches of one grid, and the two
ways of running its pairs.

* :meth:`GridSession.run_grouped` (the default): every pair of the grid at once (:mod:`.grouped`):
  direct matching of each pair on the fit activations extracted once, task loss matching with one
  front pass and one end-suffix pass per group for each training batch, and one grouped evaluation
  pass over the test set (fused with the last epoch's validation).
* :meth:`GridSession.run_pair`: one pair after the other, the reference that the grouped path is
  tested against (``StitchSettings(grouping="per-pair")``, ``--per-pair``).

Both produce the same :class:`~.records.StitchResult` fields (:meth:`GridSession.result`).
"""

from __future__ import annotations

import contextlib
import math
import shutil
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
from torch import nn

from ..activations.extract import ActivationCache, Activations, ExtractionSettings, extract_activations
from ..data.loading import BatchPath, check_subset_size, clamped_count, describe_batches, make_batches, sample_subset
from ..data.provenance import note_provenance
from ..data.splits import DataSplits
from ..errors import StitchkitError
from ..models.folding import fold_batchnorm
from ..models.layers import layered
from ..ranks import rank_used, warn_clamped
from ..training.loop import EpochLog
from ..utils.device import channels_last, resolve_device
from ..utils.io import ensure_writable_dir
from ..utils.seed import set_seed
from .donors import Donor, check_donors_fit, resolve_dataset, stitch_augmentation
from .grid_checkpoint import checkpoint_identity, load_grouped_checkpoint, save_grouped_checkpoint
from .grid_evaluation import GridEvaluation, SharedActivations, grouped_evaluate
from .grouped import GridPair, GridPass, GroupedTrainingState, auto_group_size, grouped_task_loss_match
from .matching import (
    FrontActivationBatches,
    PairSource,
    StitchEvaluation,
    cached_pairs,
    evaluate_stitcher,
    fit_direct_match,
    fit_image_terms,
    image_pairs,
    l1_penalty,
    sparsity,
    task_loss_match,
)
from .per_sample import PairSamples
from .records import StitchResult, config_key
from .settings import StitchSettings
from .shared_cache import cached_donor_accuracy, shared_activations, store_donor_accuracy
from .stitcher import Stitcher

class GridSession:
    """Donors, data, device and caches shared by every pair of a grid (see the module docstring)."""

    def __init__(self, front: Donor, end: Donor, settings: StitchSettings, *, log: Callable[[str], None], data: DataSplits | None = None):
        self.s = s = settings
        self.front, self.end = front, end
        self.log = log
        # the data by name (settings.dataset, else the checkpoints'), unless given (e.g. datasets in memory)
        self.data = data if data is not None else DataSplits.from_name(resolve_dataset(settings.dataset, front, end), root=settings.data_root,
                                                                        download=settings.download)
        self.info = self.data.info
        self.input_shape = tuple(self.info.shape)
        check_donors_fit(front, end, self.info)
        # said once per grid, recorded with every pair (data in memory has no name to compare)
        recorded = {"": front.dataset} if end is front else {"front": front.dataset, "end": end.dataset}
        self.provenance = note_provenance(recorded, self.info.name if self.data.named else None)
        self.augmentation = stitch_augmentation(s.augment, front, end, self.data.augments)
        if self.augmentation.note and s.epochs > 0:
            log(f"note: {self.augmentation.note}")
        self.device = resolve_device(settings.device)
        self.amp = bool(s.amp and self.device.type == "cuda" and s.epochs > 0)
        if s.amp and not self.amp and s.epochs > 0:
            log("note: --amp applies on CUDA only; training in float32")
        # Channels-last convolutions are faster on CPUs (oneDNN) and GPUs alike, and so are frozen donors
        # with their BatchNorms folded into the convolutions (a copy; the same function): every model
        # family is tested to compute the same function both ways (tests/test_models_zoo.py).
        self.channels_last = True if s.channels_last is None else bool(s.channels_last)
        self.fold = s.fold_batchnorm is not False
        self.front_model = self._computing(front.model)
        self.end_model = self.front_model if end.model is front.model else self._computing(end.model)
        root = s.data_root
        # Only the K fit images of the training split are ever read unless we train.
        train_plain = self.data.train
        if s.epochs > 0:  # (a K above the split's size fits on all of it, recorded as n_fit, like the default K = 100 on tiny sets)
            check_subset_size(s.train_samples, len(train_plain), f"--train-subset (train_samples): the training split of {self.info.name}")
        test_full = self.data.test
        # K and the test samples above their split use all of it, said and recorded (in the settings, so that
        # run names, keys and labels carry the number used; the settings are the grid's own copy)
        s.fit_samples = clamped_count(s.fit_samples, len(train_plain), f"-pinv-samples (fit_samples, K): the training split of {self.info.name}")
        s.test_samples = clamped_count(s.test_samples, len(test_full), f"--test-samples (test_samples): the test split of {self.info.name}")
        self.fit_set = sample_subset(train_plain, s.fit_samples, s.seed)
        self.n_fit = len(self.fit_set)
        self.test_set = sample_subset(test_full, s.test_samples, None)
        self.n_test = len(self.test_set)
        self.sample_keys = {
            "fit": f"{self.info.name}|{root}|train|plain|K={s.fit_samples}|seed={s.seed}",
            "test": f"{self.info.name}|{root}|test|plain|n={s.test_samples}",
        }
        self._fit_loader = self._test_batches = self._train_batches = None
        self.cache: dict[str, dict[int, Activations]] | None = None
        self.cache_root: Path | None = None
        self.remove_cache = False
        self.shared = ActivationCache(ensure_writable_dir(s.activation_cache)) if s.activation_cache else None
        self.test_images = np.arange(self.n_test, dtype=np.int64)  # the first n_test images of the test split, in order
        #: the donors' accuracies and per-image hits (None until measured or read from the cache)
        self.donor_accuracy: tuple[float | None, float | None] | None = None
        self.donor_hits: tuple[np.ndarray | None, np.ndarray | None] = (None, None)
        self._cached_donor_accuracy()
        self.extraction_seconds = 0.0
        self.key = config_key(front, end, self.info.name, self.naming_settings)
        self._layout = contextlib.ExitStack()  # closed by close(): the models go back to their layout
        self._layout.enter_context(channels_last(self.front_model, self.end_model, enabled=self.channels_last))

    def _computing(self, model: nn.Module) -> nn.Module:
        """The donor as this session computes with it: frozen, in eval mode, on the device (folded)."""
        model = fold_batchnorm(model) if self.fold else model
        return model.requires_grad_(False).eval().to(self.device)

    @property
    def naming_settings(self) -> StitchSettings:
        """The settings as they act here (``amp`` only where it applies; the augmentation resolved, and
        ``"dataset"`` where the data has none to leave out), for run names and keys."""
        return replace(self.s, amp=self.amp, augment=self.augmentation.acting)

    # --- data ----------------------------------------------------------------------------------------
    def _batches(self, dataset, shuffle: bool, sampler=None):
        path = BatchPath(data_path=self.s.data_path, channels_last=self.channels_last)
        return make_batches(dataset, self.s.batch_size, shuffle=shuffle, device=self.device, workers=self.s.workers,
                            prefetch=self.s.prefetch, sampler=sampler, path=path)

    @property
    def fit_loader(self):
        if self._fit_loader is None:
            self._fit_loader = self._batches(self.fit_set, False)
        return self._fit_loader

    @property
    def test_batches(self):
        if self._test_batches is None:
            self._test_batches = self._batches(self.test_set, False)
        return self._test_batches

    @property
    def train_batches(self):
        """The training split with the resolved augmentation, built on first use (never with ``epochs == 0``)."""
        if self._train_batches is None:
            train_set = sample_subset(self.data.train_split(self.augmentation.resolved.augment), self.s.train_samples, self.s.seed)
            self._train_batches = self._batches(train_set, True, self.data.train_sampler(train_set))
        return self._train_batches

    # --- activation sources (the fit set; the per-pair path's test set) ------------------------------
    def fit_source(self, stitcher: Stitcher) -> PairSource:
        if self.cache is not None and self.cache["fit"]:
            return self._cached(stitcher, "fit")
        return image_pairs(stitcher, self.fit_loader, self.device)

    def test_source(self, stitcher: Stitcher) -> PairSource:
        if self.cache is not None and self.cache["test"]:
            return self._cached(stitcher, "test")
        return image_pairs(stitcher, self.test_batches, self.device)

    def _cached(self, stitcher: Stitcher, which: str) -> PairSource:
        acts = self.cache[which]
        return cached_pairs(acts[id(self.front_model)], stitcher.front_layer, acts[id(self.end_model)], stitcher.end_layer,
                            self.s.batch_size, self.device)

    def val_data(self, stitcher: Stitcher) -> tuple[Iterable, bool]:
        if self.cache is not None and self.cache["test"]:
            return FrontActivationBatches(self._cached(stitcher, "test")), True
        return self.test_batches, False

    def prepare_cache(self, front_layers: Sequence[str], end_layers: Sequence[str], which: Sequence[str] = ("fit", "test")) -> None:
        """Extract every needed layer of each network once, for the fit set (and the test set)."""
        started = time.perf_counter()
        wanted: dict[int, tuple[nn.Module, list[str]]] = {}
        for model, layers in ((self.front_model, front_layers), (self.end_model, end_layers)):
            entry = wanted.setdefault(id(model), (model, []))
            entry[1].extend(layer for layer in layers if layer not in entry[1])
        for _, (model, layers) in wanted.items():
            order = layered(model).layers
            layers.sort(key=order.index)
        per_image = 0
        for model, layers in wanted.values():
            shapes = layered(model).shapes(self.input_shape, layers)
            per_image += sum(math.prod(shape) for shape in shapes.values()) * 4
        sets = {"fit": self.fit_set, "test": self.test_set}
        total = per_image * sum(len(sets[w]) for w in which)
        store: ActivationCache | None = None
        if total > self.s.memory_limit_gb * 2**30:
            if self.s.cache_dir is None:
                raise StitchkitError("internal: a disk cache needs a folder")  # set by stitch_grid
            self.cache_root = Path(self.s.cache_dir)
            store = ActivationCache(ensure_writable_dir(self.cache_root))
            self.log(f"activations: {total / 2**30:.2f} GiB, memory-mapped under {self.cache_root}")
        self.cache = {"fit": {}, "test": {}}
        for key, (model, layers) in wanted.items():
            for name in which:
                how = ExtractionSettings(device=self.device, batch_size=self.s.batch_size, workers=self.s.workers,
                                         progress=self.s.progress, desc=f"activations {name}")
                if store is not None:
                    acts = store.get(model, layers, sets[name], self.sample_keys[name], how)
                else:
                    acts = extract_activations(model, layers, sets[name], settings=how)
                self.cache[name][key] = acts
        self.extraction_seconds += time.perf_counter() - started

    def close(self) -> None:
        self._layout.close()
        self.cache = None
        if self.remove_cache and self.cache_root is not None:
            shutil.rmtree(self.cache_root, ignore_errors=True)

    # --- the donors' accuracies (the persistent cache) ------------------------------------------------
    def _cached_donor_accuracy(self) -> None:
        record = cached_donor_accuracy(self.shared, self.front, self.end, self.sample_keys["test"], self.n_test)
        if record is not None:
            self.donor_accuracy, self.donor_hits = record[:2], record[2:]

    def _store_donor_accuracy(self, front_accuracy: float | None, end_accuracy: float | None, front_hits: np.ndarray | None,
                              end_hits: np.ndarray | None) -> None:
        self.donor_accuracy = (front_accuracy, end_accuracy)
        self.donor_hits = (front_hits, end_hits)
        store_donor_accuracy(self.shared, self.front, self.end, self.sample_keys["test"], self.n_test, (*self.donor_accuracy, *self.donor_hits))

    def samples(self, evaluation: StitchEvaluation, fit_terms: tuple[np.ndarray, np.ndarray] | None = None) -> PairSamples:
        """One pair's per-image statistics: its evaluation's, with the donors' hits on the same images, and
        the fit images' residual terms (``fit_terms``, the map held fixed)."""
        per = evaluation.per_image
        fit_num, fit_den = fit_terms if fit_terms is not None else (None, None)
        return PairSamples(per["hits"], per["residual_num"], per["residual_den"], end_hits=self.donor_hits[1], front_hits=self.donor_hits[0],
                           images=self.test_images, fit_num=fit_num, fit_den=fit_den)

    # --- one stitcher --------------------------------------------------------------------------------
    def stitcher(self, front_layer: str, end_layer: str) -> Stitcher:
        s = self.s
        set_seed(s.seed)  # the random init and the training of every pair are independent of the pair order
        stitcher = Stitcher(
            self.front_model, self.end_model, front_layer, end_layer, s.stitching_type, input_shape=self.input_shape, init=s.init,
            upsample_mode=s.upsample_mode, c2t_cls=s.c2t_cls, t2c_cls=s.t2c_cls, front_rank=s.front_stitch_rank,
            low_rank_mode=s.low_rank_mode,
        )
        return stitcher.to(self.device)

    def warn_clamped_ranks(self, front_layers: Sequence[str]) -> None:
        """One warning per rank option above a front layer's channel count: that rank is the layer's full
        rank, and it is recorded as ``front_*_rank_used`` in each pair's options (run names keep the
        rank asked for)."""
        options = {"--front-stitch-rank": self.s.front_stitch_rank, "--front-pinv-rank": self.s.front_pinv_rank}
        given = {flag: rank for flag, rank in options.items() if rank is not None}
        if not given:
            return
        shapes = layered(self.front.model).shapes(self.input_shape, list(front_layers))
        if len(set(given.values())) == 1:  # the same rank: one line names both options
            warn_clamped([next(iter(given.values()))], shapes, " and ".join(given))
        else:
            for flag, rank in given.items():
                warn_clamped([rank], shapes, flag)

    def fit(self, stitcher: Stitcher):
        """The fixed low-rank basis (if any) and, with ``init="pinv"``, direct matching on the fit set."""
        fit_pairs = self.fit_source(stitcher)
        if stitcher.reduce.needs_fit:
            stitcher.fit_low_rank(front for front, _, _ in fit_pairs())
        if self.s.init != "pinv":
            return None
        return fit_direct_match(stitcher, fit_pairs, rank=self.s.front_pinv_rank, low_rank_mode=self.s.low_rank_mode, rcond=self.s.rcond,
                                solver=self.s.dm_solver)

    def _fit_residual(self, stitcher: Stitcher, dm) -> tuple[float, tuple[np.ndarray, np.ndarray] | None]:
        """In-sample residual of the installed map on the source the stitched network sees, and each fit
        image's numerator and denominator of it, the map held fixed (:func:`fit_image_terms`)."""
        only_affine = len(stitcher.trainable_parameters()) == 2  # no learned CLS weight whose training would change the source
        try:
            if dm is not None and dm.stats is not None and self.s.front_pinv_rank == self.s.front_stitch_rank and (self.s.epochs == 0 or only_affine):
                _, num, den = fit_image_terms(stitcher, self.fit_source(stitcher))
                return dm.stats.residual(*stitcher.layer.affine()), (num, den)
            acc, num, den = fit_image_terms(stitcher, self.fit_source(stitcher), accumulate=True)
            return acc.residual(*stitcher.layer.affine()), (num, den)
        except StitchkitError:
            return math.nan, None  # e.g. rc2c_post across sizes has no target in the transform's layout

    def execution(self, grouping: str, group_size: int | None = None) -> dict[str, Any]:
        batches = self._train_batches if self._train_batches is not None else self.test_batches
        return {"grouping": grouping, "group_size": group_size, "device": str(self.device), "data_path": describe_batches(batches),
                "amp": "bf16 autocast in TLM training and validation" if self.amp else None, "channels_last": self.channels_last,
                "batchnorm_folded": self.fold,
                "compile": bool(self.s.compile)}

    def result(self, stitcher: Stitcher, name: str, evaluation: StitchEvaluation, dm, history: list[dict[str, float]],
               seconds: dict[str, float], execution: dict[str, Any]) -> StitchResult:
        """The record of one pair (the same fields whichever path computed it)."""
        s = self.s
        lf, le = layered(self.front_model), layered(self.end_model)
        front_layer, end_layer = stitcher.front_layer, stitcher.end_layer
        fit_residual, fit_terms = self._fit_residual(stitcher, dm)
        # the ranks as they act on this front layer: one above its channel count is its full rank
        used = {f"{name}_used": rank_used(rank, stitcher.source_shape) for name, rank in
                (("front_stitch_rank", s.front_stitch_rank), ("front_pinv_rank", s.front_pinv_rank)) if rank is not None}
        return StitchResult(
            front_layer=front_layer, end_layer=end_layer, stitching_type=stitcher.kind, init=s.init, epochs=s.epochs,
            accuracy=evaluation.accuracy, loss=evaluation.loss, residual=evaluation.residual,
            residual_batch_mean=evaluation.residual_batch_mean, fit_residual=fit_residual,
            dm_fit_residual=dm.residual if dm is not None else None, dm_rank=dm.rank if dm is not None else None,
            n_fit=self.n_fit, n_fit_rows=dm.n_rows if dm is not None else None, n_test=evaluation.n,
            front_accuracy=self.donor_accuracy[0], end_accuracy=self.donor_accuracy[1], sparsity=sparsity(stitcher),
            train_history=history, seconds={**seconds, "shared_extraction": self.extraction_seconds},
            front={**self.front.describe(), "layers": list(lf.layers), "layer_index": lf.index(front_layer),
                   "source_shape": list(stitcher.source_shape)},
            end={**self.end.describe(), "layers": list(le.layers), "layer_index": le.index(end_layer),
                 "target_shape": list(stitcher.target_shape)},
            dataset=self.info.name, options={**self.naming_settings.result_options(), "resolved_stitching_type": stitcher.kind, **used},
            config_key=self.key, run_name=name, execution=execution,
            conventions={**s.conventions(), "augmentation": self.augmentation.describe() if s.epochs > 0 else "n/a (nothing trained)",
                         **self.provenance},
            dm_dropped=dm.dropped if dm is not None else None, dm_reported_residual=dm.reported_residual if dm is not None else None,
            samples=self.samples(evaluation, fit_terms),
        )

    # --- the reference: one pair after the other -----------------------------------------------------
    def run_pair(self, front_layer: str, end_layer: str, name: str) -> tuple[StitchResult, Stitcher]:
        s = self.s
        started = time.perf_counter()
        stitcher = self.stitcher(front_layer, end_layer)
        dm = self.fit(stitcher)
        t_fit = time.perf_counter()
        history: list[dict[str, float]] = []
        if s.epochs > 0:
            val, from_acts = self.val_data(stitcher)
            logs = task_loss_match(
                stitcher, self.train_batches, epochs=s.epochs, device=self.device, optim=s.optim, l1=s.l1, grad_clip=s.grad_clip,
                seed=s.seed, val_data=val, val_from_activations=from_acts, progress=s.progress, verbose=s.verbose,
                desc=f"{front_layer}->{end_layer}",
            )
            history = [log.row() for log in logs]
        t_train = time.perf_counter()
        donors = self.donor_accuracy is None
        evaluation = evaluate_stitcher(stitcher, self.test_source(stitcher), donors=donors, keep_samples=True)
        if donors:
            per = evaluation.per_image
            self._store_donor_accuracy(evaluation.front_accuracy, evaluation.end_accuracy, per.get("front_hits"), per.get("end_hits"))
        t_eval = time.perf_counter()
        seconds = {"fit": t_fit - started, "train": t_train - t_fit, "eval": t_eval - t_train, "total": t_eval - started}
        return self.result(stitcher, name, evaluation, dm, history, seconds, self.execution("per-pair")), stitcher

    # --- the default: all pairs at once --------------------------------------------------------------
    def run_grouped(self, todo: Sequence[tuple[str, str]], names: dict[tuple[str, str], str], *,
                    checkpoint: Path | None = None) -> list[tuple[StitchResult, Stitcher]]:
        """Fit, train and evaluate the ``todo`` pairs together (module docstring). ``checkpoint`` is a
        file for the state after each training epoch: an interrupted grid continues from it."""
        s = self.s
        front_order, end_order = layered(self.front_model).layers, layered(self.end_model).layers
        self.prepare_cache(sorted({f for f, _ in todo}, key=front_order.index), sorted({e for _, e in todo}, key=end_order.index),
                           which=("fit",))
        pairs, fits, fit_seconds = [], [], []
        for front_layer, end_layer in todo:
            started = time.perf_counter()
            stitcher = self.stitcher(front_layer, end_layer)
            fits.append(self.fit(stitcher))
            pairs.append(GridPair(front_layer, end_layer, stitcher))
            fit_seconds.append(time.perf_counter() - started)
        group_size = s.group_size or auto_group_size(pairs, s.batch_size, self.device)
        donors = self.donor_accuracy is None
        grid = GridPass(pairs, group_size, donors=donors, channels_last=self.channels_last, compile=s.compile)
        shared = self._shared_activations(grid)
        final: GridEvaluation | None = None
        histories: list[list[EpochLog]] = [[] for _ in pairs]
        started = time.perf_counter()
        if s.epochs > 0:
            def validate(epoch: int) -> list[dict[str, float]]:
                nonlocal final
                last = epoch == s.epochs - 1  # the last validation is the final evaluation (float32, residuals, donors)
                ev = self._evaluate(grid, residuals=last, donors=last and donors, amp=self.amp and not last, shared=shared, keep_samples=last)
                if last:
                    final = ev
                return [{"loss": p.loss() + (s.l1 * float(l1_penalty(pair.stitcher).detach()) if s.l1 else 0.0), "acc": p.accuracy(), "n": p.n}
                        for p, pair in zip(ev.pairs, pairs)]

            resume, identity = self._load_checkpoint(checkpoint, names, todo)
            histories = grouped_task_loss_match(
                grid, self.train_batches, epochs=s.epochs, device=self.device, optim=s.optim, l1=s.l1, grad_clip=s.grad_clip,
                seed=s.seed, amp=self.amp, validate=validate, resume=resume, progress=s.progress, verbose=s.verbose,
                on_epoch_end=(lambda state: self._save_checkpoint(checkpoint, identity, state)) if checkpoint is not None else None,
                desc=f"TLM {len(pairs)} pairs",
            )
        train_seconds = time.perf_counter() - started
        if final is None:
            final = self._evaluate(grid, residuals=True, donors=donors, amp=False, shared=shared, keep_samples=True)
        if donors:
            self._store_donor_accuracy(final.front_accuracy, final.end_accuracy, final.front_hit_images, final.end_hit_images)
        execution = self.execution("grouped", group_size)
        n = len(pairs)
        out = []
        for k, pair in enumerate(pairs):
            res = final.pairs[k]
            num, den = res.residual.per_sample()
            evaluation = StitchEvaluation(accuracy=res.accuracy(), loss=res.loss(), residual=res.residual.pooled,
                                          residual_batch_mean=res.residual.batch_mean, n=res.n,
                                          per_image={"hits": res.hit_images, "residual_num": num, "residual_den": den})
            seconds = {"fit": fit_seconds[k], "train": train_seconds / n, "eval": final.seconds / n,
                       "total": fit_seconds[k] + (train_seconds + final.seconds) / n, "grouped_train": train_seconds,
                       "grouped_eval": final.seconds}
            history = [log.row() for log in histories[k]]
            out.append((self.result(pair.stitcher, names[(pair.front_layer, pair.end_layer)], evaluation, fits[k], history, seconds,
                                    execution), pair.stitcher))
        if checkpoint is not None:
            checkpoint.unlink(missing_ok=True)
        return out

    def _evaluate(self, grid: GridPass, *, residuals: bool, donors: bool, amp: bool, shared: tuple | None,
                  keep_samples: bool = False) -> GridEvaluation:
        fronts_from, ends_from = shared or (None, None)
        if not residuals:  # validation passes only read the cache; the final evaluation fills it
            fronts_from = fronts_from if fronts_from is not None and fronts_from.cached is not None else None
            ends_from = None
        evaluation = grouped_evaluate(grid, self.test_batches, self.device, residuals=residuals, donors=donors, amp=amp,
                                      fronts_from=fronts_from, ends_from=ends_from, progress=self.s.progress, keep_samples=keep_samples)
        wrote = False
        for source in (fronts_from, ends_from):
            if source is not None and source.sink is not None:
                source.cached, source.sink, wrote = source.sink.close(), None, True
        if wrote:
            self.shared.trim(self.s.cache_limit_gb * 2**30)
        return evaluation

    def _shared_activations(self, grid: GridPass) -> tuple[SharedActivations | None, SharedActivations | None] | None:
        if self.shared is None:
            return None
        return shared_activations(self.shared, grid, (self.front.model, self.front_model), (self.end.model, self.end_model), self.input_shape,
                                  self.sample_keys["test"], self.n_test, self.s.cache_limit_gb * 2**30)

    # --- the grouped-training checkpoint -------------------------------------------------------------
    def _load_checkpoint(self, path: Path | None, names: dict, todo: Sequence[tuple[str, str]]):
        identity = checkpoint_identity(self.key, [names[pair] for pair in todo], self.s.epochs)
        return load_grouped_checkpoint(path, identity, self.log), identity

    def _save_checkpoint(self, path: Path, identity: dict, state: GroupedTrainingState) -> None:
        save_grouped_checkpoint(path, identity, state)


__all__ = ["GridSession"]
