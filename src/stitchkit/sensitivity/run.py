"""Running the sensitivity or specificity test on networks: probes for the functional scores (shared
through the probe cache), the measures on the comparisons, and the report."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import Subset

from ..activations.extract import Activations, ExtractionSettings, extract_activations, model_fingerprint
from ..data import dataset_info, get_dataset
from ..data.loading import make_batches, sample_subset
from ..errors import StitchkitError
from ..models.layers import layered
from ..models.loading import load_for_dataset
from ..probing.cache import ProbeCache
from ..probing.model import (
    feature_pass,
    low_rank_layers,
    pooled_features,
    probe_datasets,
    probe_model,
    resolve_probe_config,
    runs_features_once,
)
from ..ranks import check_ranks, check_ranks_fit, rank_label
from ..similarity.pairs import Rep, RepresentationBank
from ..similarity.registry import get_measure
from ..uncertainty.bootstrap import resample_counts
from ..utils.device import resolve_device
from ..utils.names import network_names
from ..utils.progress import printer
from ..utils.seed import set_seed
from .comparisons import TESTS, Comparison, sensitivity_comparisons, specificity_comparisons, split_measures
from .measures import array_measure_values, stitching_measure_values
from .per_sample import sample_arrays
from .report import GroundingReport, grounding_report
from .settings import GroundingSettings


def _check_distinct(fingerprints: Mapping[str, str], paths: Mapping[str, str]) -> None:
    """The same network given twice would count as two seeds (every statistic gains pairs of zero
    difference): refuse it, naming both."""
    seen: dict[str, str] = {}
    for name, fp in fingerprints.items():
        if fp in seen:
            first = seen[fp]
            where = f" ({paths[first]} and {paths[name]})" if first in paths and name in paths else ""
            raise StitchkitError(
                f"networks {first} and {name} are the same network{where}: their weights are identical; give each "
                f"network once"
            )
        seen[fp] = name


@dataclass
class _Plan:
    """What a test compares: the networks (with their content hashes), layers, ranks and comparisons."""

    names: list[str]
    fingerprints: dict[str, str]
    layers: list[str]
    reference_layers: list[str] | None
    comparisons: list[Comparison]
    needed_ranks: list[int | None]


def _plan(
    test: str,
    models: Mapping[str, nn.Module],
    dataset: str,
    layers: Sequence[str] | None,
    ranks: Sequence[int | None],
    reference_layers: Sequence[str] | None,
    paths: Mapping[str, str],
) -> _Plan:
    """Every check of the request, before any work: the networks, their layers and the comparisons."""
    if test not in TESTS:
        raise StitchkitError(f"test must be one of {', '.join(TESTS)}, got {test!r}")
    names = list(models)
    if not names:
        raise StitchkitError("the tests need at least one network")
    if test == "sensitivity" and len(names) < 2:
        raise StitchkitError(
            "the sensitivity test needs at least two networks (e.g. two seeds of one architecture): its statistics "
            "rank every network's low-rank versions against the other networks, and with one network they are undefined"
        )
    fingerprints = {name: model_fingerprint(models[name]) for name in names}
    _check_distinct(fingerprints, paths)
    first = layered(models[names[0]])
    layers = first.resolve(layers or None)
    for name in names:
        lm = layered(models[name])
        for layer in layers:
            lm.check_layer(layer)
    reference_layers = first.resolve(reference_layers) if reference_layers else None
    if test == "sensitivity":
        ranks = [r for r in check_ranks(ranks) if r is not None]
        if not ranks:
            raise StitchkitError("the sensitivity test needs at least one rank (-ranks), e.g. -ranks 32 16 8 4 2 1")
        check_ranks_fit(ranks, first.shapes(dataset_info(dataset).shape, layers), "-ranks")
        return _Plan(
            names,
            fingerprints,
            layers,
            reference_layers,
            sensitivity_comparisons(names, layers, ranks),
            check_ranks([None] + list(ranks)),
        )
    return _Plan(
        names, fingerprints, layers, reference_layers, specificity_comparisons(names, layers, reference_layers), [None]
    )


class _Network:
    """One network's part of a test: its probe accuracies (from the cache or trained, on the augmentation
    the network's own record gives by default) and its activations of the measures' test images, from
    one pass over the test split where the probes train on features."""

    def __init__(
        self,
        name: str,
        model: nn.Module,
        plan: _Plan,
        dataset: str,
        data_root: str | None,
        settings: GroundingSettings,
        device,
        seconds: dict[str, float],
        say: Callable[[str], None],
    ):
        self.name, self.model, self.plan, self.dataset, self.data_root = name, model, plan, dataset, data_root
        self.settings, self.device, self.seconds, self.say = settings, device, seconds, say
        config, self.augmentation = resolve_probe_config(settings.probe, model)
        # the probes run where the test runs (the tests' run options; none of them is part of a probe's key)
        self.probe_config = replace(config, device=str(device), workers=settings.workers, prefetch=settings.prefetch)

    def cached_scores(
        self, cache: ProbeCache, scores: dict[Rep, float], hits: dict[Rep, np.ndarray]
    ) -> list[tuple[str, int | None]]:
        """Fill ``scores`` (and ``hits``, where the cache kept them) from the cache; the (layer, rank) probes still
        missing."""
        todo = [(layer, r) for layer in self.plan.layers for r in self.plan.needed_ranks]
        for layer, r in todo:
            key = ProbeCache.key(self.plan.fingerprints[self.name], self.dataset, layer, r, self.probe_config)
            acc = cache.get(key)
            if acc is not None:
                scores[Rep(self.name, layer, r)] = acc
                kept = cache.get_hits(key)
                if kept is not None:
                    hits[Rep(self.name, layer, r)] = kept
        missing = [lr for lr in todo if Rep(self.name, *lr) not in scores]
        if not missing:
            self.say(f"probes of {self.name}: all {len(todo)} from the cache")
        return missing

    def measure_activations(self, test_set) -> Activations:
        """The raw activations of every layer for the first ``n_samples`` test images (the measures' set)."""
        t0 = time.perf_counter()
        self.model.to(self.device)
        s = self.settings
        loader = make_batches(
            sample_subset(test_set, s.n_samples),
            s.batch_size,
            shuffle=False,
            workers=s.workers,
            prefetch=s.prefetch,
            device=self.device,
        )
        how = ExtractionSettings(device=self.device, progress=s.progress)
        acts = extract_activations(self.model, self.plan.layers, loader, settings=how)
        self.seconds["extraction"] += time.perf_counter() - t0
        return acts

    def shares_test_pass(self, missing: list[tuple[str, int | None]], data: dict[str, Any]) -> bool:
        """Whether the probes' test features can come from the measures' pass (they train on features)."""
        miss_layers = list(dict.fromkeys(layer for layer, _ in missing))
        shapes = layered(self.model).shapes(dataset_info(self.dataset).shape, miss_layers)
        miss_ranks = check_ranks(list(dict.fromkeys(r for _, r in missing)))
        return runs_features_once(self.probe_config, self.augmentation.augment, low_rank_layers(shapes, miss_ranks))

    def test_features(self, miss_layers: list[str], acts: Activations, test_set) -> tuple[dict[str, Tensor], Tensor]:
        """The probes' pooled test features: the measures' images from their activations, the rest of
        the test split from one more pass over it (so every test image runs once)."""
        probe = self.probe_config
        head = pooled_features(
            acts.layers, miss_layers, token_pool=probe.token_pool, batch_size=probe.feature_batch_size
        )
        rest = Subset(test_set, range(len(acts), len(test_set)))
        labels = acts.labels.long()
        if len(rest) == 0:
            return head, labels
        tail, _, tail_labels = feature_pass(self.model, miss_layers, rest, config=probe, desc="test features")
        return {layer: torch.cat([head[layer], tail[layer]]) for layer in miss_layers}, torch.cat([labels, tail_labels])

    def probe(self, missing: list[tuple[str, int | None]], data: dict[str, Any], test_features=None):
        """Train the missing probes (one network and data load for all of them)."""
        t0 = time.perf_counter()
        miss_layers = list(dict.fromkeys(layer for layer, _ in missing))
        miss_ranks = check_ranks(list(dict.fromkeys(r for _, r in missing)))
        self.say(f"probes of {self.name}: {len(miss_layers)} layer(s) × {len(miss_ranks)} rank(s)")
        splits = {"train": data["train"], "test": data["test"]}
        if self.augmentation.augment:
            splits["train_augmented"] = data["train_augmented"]
        report = probe_model(
            self.model, miss_layers, splits, ranks=miss_ranks, config=self.probe_config, test_features=test_features
        )
        self.seconds["probes"] += time.perf_counter() - t0
        return report


def _scores_and_activations(
    models: Mapping[str, nn.Module],
    plan: _Plan,
    dataset: str,
    data_root: str | None,
    settings: GroundingSettings,
    device,
    with_activations: bool,
    seconds: dict[str, float],
    say: Callable[[str], None],
):
    """The functional score (probe accuracy) of every representation, its probe's hits per test image
    (where kept) and, for the array measures, every network's activations of the first ``n_samples`` test
    images: each network and its data loaded once, its test images run once where the probes train on features."""
    cache = ProbeCache(settings.probe_cache)
    scores: dict[Rep, float] = {}
    hits: dict[Rep, np.ndarray] = {}
    acts: dict[str, Activations] = {}
    data: dict[str, Any] | None = None
    test_set = None
    nets = [
        _Network(name, models[name], plan, dataset, data_root, settings, device, seconds, say) for name in plan.names
    ]
    for net in nets:
        name = net.name
        missing = net.cached_scores(cache, scores, hits)
        if missing and data is None:
            data = probe_datasets(dataset, data_root, augment=any(n.augmentation.augment for n in nets))
            test_set = data["test"]
        if with_activations and test_set is None:
            test_set = get_dataset(dataset, "test", root=data_root)
        if with_activations:
            acts[name] = net.measure_activations(test_set)
        if not missing:
            continue
        shared = None
        if with_activations and net.shares_test_pass(missing, data):
            shared = net.test_features(list(dict.fromkeys(layer for layer, _ in missing)), acts[name], data["test"])
        report = net.probe(missing, data, test_features=shared)
        for res in report.results:
            scores[Rep(name, res.layer, res.rank)] = res.val_acc
            if res.test_hits is not None:
                hits[Rep(name, res.layer, res.rank)] = np.asarray(res.test_hits, dtype=np.uint8)
        cache.put_results(plan.fingerprints[name], dataset, report.results, net.probe_config, name)
        cache.save()
    return (
        scores,
        hits,
        {name: a.layers for name, a in acts.items()},
        {net.name: net.augmentation.describe() for net in nets},
    )


def _array_values(
    acts: dict[str, dict[str, Tensor]],
    comparisons: Sequence[Comparison],
    measures: Sequence[str],
    settings: GroundingSettings,
    seconds: dict[str, float],
    say: Callable[[str], None],
    resamples: dict[str, np.ndarray],
) -> dict[str, list[float]]:
    """Each array measure on every comparison; with ``settings.bootstrap``, also on every resample of the
    measures' images (into ``resamples``, :mod:`.per_sample`)."""
    t0 = time.perf_counter()
    bank = RepresentationBank(acts, low_rank_mode=settings.low_rank_mode)
    images = int(next(iter(next(iter(acts.values())).values())).shape[0])
    counts = resample_counts(images, settings.bootstrap, settings.bootstrap_seed) if settings.bootstrap else None
    values: dict[str, list[float]] = {}
    for measure in measures:
        say(f"{measure}: {len(comparisons)} pairs")
        values.update(
            array_measure_values(
                bank, comparisons, [measure], policy=settings.policy, counts=counts, resamples=resamples
            )
        )
    seconds["measures"] = time.perf_counter() - t0
    return values


def _info(
    test: str,
    dataset: str,
    plan: _Plan,
    settings: GroundingSettings,
    measures: list[str],
    scores: Mapping[Rep, float],
    stitching: bool,
    paths: Mapping[str, str],
    device,
    seconds: dict[str, float],
    probe_augmentation: Mapping[str, str],
) -> dict[str, Any]:
    """The provenance recorded with the report."""
    return {
        "test": test,
        "dataset": dataset,
        "networks": {
            name: {"fingerprint": plan.fingerprints[name], **({"path": paths[name]} if name in paths else {})}
            for name in plan.names
        },
        "layers": plan.layers,
        "ranks": [rank_label(r) for r in plan.needed_ranks],
        "reference_layers": list(plan.reference_layers)
        if plan.reference_layers
        else (plan.layers if test == "specificity" else None),
        "measures": measures,
        "n_samples": settings.n_samples,
        "policy": settings.policy,
        "low_rank_mode": settings.low_rank_mode,
        "probe": settings.probe.recorded() | {"milestones": settings.probe.resolved_milestones},
        "probe_augmentation": dict(probe_augmentation),
        "probe_accuracy": {rep.label(): acc for rep, acc in scores.items()},
        "stitching": {
            "test_samples": settings.stitch_test_samples,
            "fit_samples": settings.stitch_fit_samples,
            "tlm_epochs": settings.tlm_epochs,
            "tlm_batch_size": settings.tlm_batch_size,
            "tlm_lr": settings.tlm_lr,
            "tlm_train_samples": settings.tlm_train_samples,
            "tlm_augment": settings.tlm_augment,
        }
        if stitching
        else None,
        "conventions": CONVENTIONS,
        "device": str(device),
        "seconds": seconds,
    }


CONVENTIONS = {
    "dissimilarity": "hi − value for similarities with range [lo, hi]; value − lo for distances (measure metadata)",
    "functional_difference": "|probe accuracy(reference) − probe accuracy(candidate)| on the test split",
    "direction": "asymmetric measures: X = candidate (source), Y = reference (target)",
    "measure_samples": "the first n_samples test images; a rank truncates the activation over that whole set",
    "probe_low_rank": "basis estimated on the un-augmented training set (fixed) or per mini-batch (per_batch)",
}


def run_grounding_test(
    test: str,
    models: Mapping[str, nn.Module],
    dataset: str,
    *,
    layers: Sequence[str] | None = None,
    ranks: Sequence[int | None] = (),
    reference_layers: Sequence[str] | None = None,
    settings: GroundingSettings | None = None,
    paths: Mapping[str, str] | None = None,
) -> GroundingReport:
    """Run the sensitivity or specificity test on ``models`` (``{name: model}``, e.g. several seeds).

    Sensitivity needs ``layers`` and ``ranks``; specificity uses ``layers`` (default: every stitchable
    layer) and ``reference_layers`` (default: each of ``layers`` in turn). Layers may be ``"all"``,
    comma lists or lists. ``settings.data_root`` is where the dataset is.
    """
    settings = (settings or GroundingSettings()).validate()
    data_root = settings.data_root
    started = time.perf_counter()
    say = printer(settings.verbose)
    plan = _plan(test, models, dataset, layers, ranks, reference_layers, paths or {})
    array_measures, stitch_measures = split_measures(settings.measures)
    dev = resolve_device(settings.device)
    seconds = {"probes": 0.0, "extraction": 0.0, "measures": 0.0, "stitching": 0.0}
    # 1. the functional scores and the array measures' activations, each network once
    scores, hits, acts, probe_augmentation = _scores_and_activations(
        models, plan, dataset, data_root, settings, dev, bool(array_measures), seconds, say
    )
    # 2. array measures on the first n test images (and on their resamples)
    resamples: dict[str, np.ndarray] = {}
    values = (
        _array_values(acts, plan.comparisons, array_measures, settings, seconds, say, resamples)
        if array_measures
        else {}
    )
    del acts
    # 3. stitching measures: stitch the candidate's network into the reference's
    if stitch_measures:
        t0 = time.perf_counter()
        values.update(
            stitching_measure_values(
                models, plan.comparisons, stitch_measures, dataset, settings, data_root=data_root, say=say
            )
        )
        seconds["stitching"] = time.perf_counter() - t0
    ordered = {m: values[m] for m in [get_measure(x).name for x in settings.measures] if m in values}
    seconds["total"] = time.perf_counter() - started
    info = _info(
        test,
        dataset,
        plan,
        settings,
        list(ordered),
        scores,
        bool(stitch_measures),
        paths or {},
        dev,
        seconds,
        probe_augmentation,
    )
    report = grounding_report(test, plan.comparisons, scores, ordered, info)
    report.samples = sample_arrays(plan.comparisons, scores, hits, resamples, seed=settings.bootstrap_seed)
    return report


def grounding_test_checkpoints(
    test: str,
    checkpoints: Sequence[str],
    *,
    model_type: str | None = None,
    dataset: str | None = None,
    names: Sequence[str] | None = None,
    model_options: dict[str, Any] | None = None,
    **kwargs: Any,
) -> GroundingReport:
    """Load the checkpoints (e.g. several seeds of one architecture) and run :func:`run_grounding_test`
    (``kwargs``: its keywords, the data from ``settings.data_root``)."""
    if not checkpoints:
        raise StitchkitError("give at least one checkpoint")
    names = list(names) if names else network_names(checkpoints)
    if len(names) != len(checkpoints) or len(set(names)) != len(names):
        raise StitchkitError(f"need one distinct name per checkpoint, got {names} for {len(checkpoints)} checkpoints")
    settings: GroundingSettings | None = kwargs.get("settings")
    set_seed(settings.probe.seed if settings else 0)
    models, datasets = {}, set()
    for name, path in zip(names, checkpoints):
        models[name], _, info = load_for_dataset(path, model_type, dataset=dataset, model_options=model_options)
        datasets.add(info.name)
    if len(datasets) > 1:
        raise StitchkitError(
            f"the checkpoints were trained on different datasets ({', '.join(sorted(datasets))}); choose one with -d"
        )
    return run_grounding_test(test, models, datasets.pop(), paths=dict(zip(names, map(str, checkpoints))), **kwargs)
