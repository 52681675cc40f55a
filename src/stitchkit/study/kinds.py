"""The built-in unit kinds: each is a thin call into the library, writing its artifacts into the
unit's folder and returning metrics, artifacts, conventions and the content hashes of the networks."""

from __future__ import annotations

import shutil
from dataclasses import replace
from typing import Any

import numpy as np
import torch

from ..activations import model_fingerprint
from ..data import get_dataset
from ..data.augmentation import choice_for, choice_of
from ..models.loading import load_model
from ..ood.matrices import METRIC_KINDS
from ..ood.per_sample import SCORES_CONVENTION
from ..ood.stitched import ResultsOODSettings, evaluate_results_dir
from ..ood.train import DetectorTrainConfig, train_detectors_for_checkpoint
from ..probing.cache import ProbeCache
from ..probing.model import probe_datasets, probe_model
from ..probing.probe import ProbeConfig
from ..ranks import rank_label
from ..sensitivity.run import run_grounding_test
from ..sensitivity.settings import GroundingSettings
from ..similarity import measure_info
from ..similarity.models import compare_models
from ..similarity.pairs import result_matrix
from ..similarity.settings import SimilaritySettings
from ..stitch_methods import METHOD_INIT, METHOD_TITLES
from ..stitching.grid import GridOptions, stitch_grid
from ..stitching.per_sample import PER_SAMPLE_FILE, grid_arrays
from ..stitching.settings import StitchSettings
from ..training.base import TrainSettings, evaluate_model, train_model
from ..training.optim import OptimConfig, describe_schedule
from ..uncertainty.bootstrap import BootstrapSpec
from ..utils.io import json_safe, write_npz_atomic
from .config import SCHEDULE_KEYS
from .ood_records import NORM_DEFINITION, NORM_RATIO_MATRIX, SCORE_TABLE, norm_ratio_matrix, score_table
from .params import (
    DetectorsParams,
    NetworkParams,
    OodParams,
    ProbesParams,
    SensitivityParams,
    SimilarityParams,
    SpecificityParams,
    StitchParams,
    TrainParams,
)
from .uncertainty import FIT_RESIDUAL
from .units import Unit, UnitContext, register_unit_kind

#: batch size of a given network's clean-accuracy pass (no effect on the result)
NETWORK_EVAL_BATCH = 256


def _schedule(p: Any, prefix: str = "") -> dict[str, Any]:
    """A unit's LR schedule options (:data:`~.config.SCHEDULE_KEYS`, stored as ``prefix + key``), as the
    library's configs name them."""
    return {key: getattr(p, prefix + key) for key in SCHEDULE_KEYS}


def load_network(dep: dict[str, Any], device: str | torch.device = "cpu"):
    """The model of a finished ``train`` or ``network`` unit."""
    model, _ = load_model(dep["artifacts"]["checkpoint"])
    return model.to(device).eval()


def _fingerprint(path: str) -> str:
    model, _ = load_model(path)
    return model_fingerprint(model)


@register_unit_kind("train", "train a base network for one seed")
def run_train(unit: Unit, ctx: UnitContext) -> dict[str, Any]:
    p = TrainParams.from_params(unit.params)
    out = ctx.out_dir / "network"
    settings = TrainSettings(
        model=p.model, save_dir=str(out), dataset=p.dataset, epochs=p.epochs, batch_size=p.batch_size,
        optim=OptimConfig(optimizer=p.optimizer, lr=p.lr, weight_decay=p.weight_decay, momentum=p.momentum, milestones=list(p.milestones),
                          **_schedule(p)),
        seed=p.seed, save_frequency=max(1, p.epochs), model_options=dict(p.options), train_subset=p.train_subset, augment=p.augment,
        **vars(ctx.run),
    )
    result = train_model(settings)
    checkpoint = out / "final.pt"
    # the test accuracy's per-image hits (issue 19): one more pass over the test split, as the network kind makes
    clean = evaluate_model(str(checkpoint), run=replace(ctx.run, progress=False), dataset=p.dataset,
                           batch_size=NETWORK_EVAL_BATCH, keep_hits=True)
    return {
        "metrics": result["metrics"],
        "artifacts": {"checkpoint": checkpoint, "logs": out / "training_logs.csv", "per_sample": _write_hits(ctx, clean["hits"])},
        "model_hashes": {"network": _fingerprint(str(checkpoint))},
        "conventions": {"lr_schedule": describe_schedule(settings.optim)},
    }


@register_unit_kind("network", "use a given checkpoint: record its identity and clean accuracy")
def run_network(unit: Unit, ctx: UnitContext) -> dict[str, Any]:
    p, run = NetworkParams.from_params(unit.params), ctx.run
    target = ctx.out_dir / "final.pt"
    shutil.copyfile(p.path, target)  # the study keeps the exact file it measured
    stats = evaluate_model(str(target), run=run, dataset=p.dataset, batch_size=NETWORK_EVAL_BATCH, keep_hits=True)
    return {
        "metrics": {"test_acc": stats["acc"], "test_top5": stats.get("top5"), "test_loss": stats["loss"]},
        "artifacts": {"checkpoint": target, "per_sample": _write_hits(ctx, stats["hits"])},
        "model_hashes": {"network": _fingerprint(str(target))},
    }


def _write_hits(ctx: UnitContext, hits) -> Any:
    """A network's clean hits per test image (``hits``, ``images``): its test accuracy's intervals come from them."""
    path = ctx.out_dir / PER_SAMPLE_FILE
    write_npz_atomic(path, {"hits": hits, "images": np.arange(len(hits), dtype=np.int64)})
    return path


def _matrix(rows: list[str], cols: list[str], cell: dict[tuple[str, str], float | None], kind: str, value_range=None, **labels: str) -> dict[str, Any]:
    return {"rows": rows, "cols": cols, "values": [[cell.get((r, c)) for c in cols] for r in rows], "kind": kind, "range": value_range, **labels}


@register_unit_kind("stitch", "fit and evaluate a layer grid of stitches between two networks (DM, TLM or TLM from DM)")
def run_stitch(unit: Unit, ctx: UnitContext) -> dict[str, Any]:
    p = StitchParams.from_params(unit.params)
    front, end = ctx.deps[unit.deps[0]], ctx.deps[unit.deps[1]]
    method = p.method
    settings = StitchSettings(
        stitching_type=p.type, init=METHOD_INIT[method], epochs=p.epochs, batch_size=p.batch_size,
        optim=OptimConfig(lr=p.lr, weight_decay=p.weight_decay, **_schedule(p)), seed=p.seed, fit_samples=p.fit_samples, test_samples=p.eval_samples,
        train_samples=p.train_subset, dataset=p.dataset, cache_dir=str(ctx.cache_dir / "stitch" / unit.id), amp=p.amp,
        data_path=ctx.data_path, dm_solver=p.dm_solver, group_size=ctx.group_size, augment=choice_of(p.augment),
        activation_cache=str(ctx.cache_dir / "activations"), **vars(ctx.run),
    )
    runs = ctx.out_dir / "runs"
    options = GridOptions(command=f"stitchkit study ({unit.label})", save_dir_label="runs")
    fronts, ends = front["artifacts"]["checkpoint"], end["artifacts"]["checkpoint"]
    results = stitch_grid(fronts, ends, p.front_layers, p.end_layers, settings, options, save_dir=runs)
    rows, cols = list(p.front_layers), list(p.end_layers)
    acc = {(r.front_layer, r.end_layer): r.accuracy for r in results}
    res = {(r.front_layer, r.end_layer): r.residual for r in results}
    fit = {(r.front_layer, r.end_layer): r.fit_residual for r in results}
    name = METHOD_TITLES[method]
    matrices = {
        f"{name} accuracy": _matrix(rows, cols, acc, "accuracy", [0, 1]),
        f"{name} residual (test, pooled)": _matrix(rows, cols, res, "distance", [0, None]),
        f"{name} {FIT_RESIDUAL}": _matrix(rows, cols, fit, "distance", [0, None]),
    }
    first = results[0]
    # every cell's per-image statistics (the (F, E, N) contract of issue 19): intervals come from them later
    per_sample = ctx.out_dir / PER_SAMPLE_FILE
    write_npz_atomic(per_sample, grid_arrays({(r.front_layer, r.end_layer): r.samples for r in results if r.samples is not None}, rows, cols))
    return {
        "metrics": {"matrices": matrices, "front_accuracy": first.front_accuracy, "end_accuracy": first.end_accuracy, "pairs": len(results),
                    "run_names": {f"{r.front_layer}|{r.end_layer}": r.run_name for r in results},
                    "mean_accuracy": sum(acc.values()) / len(acc)},
        "artifacts": {"runs": runs, "per_sample": per_sample},
        "model_hashes": {"front": first.front.get("fingerprint"), "end": first.end.get("fingerprint")},
        "conventions": dict(first.conventions),
    }


@register_unit_kind("similarity", "similarity index matrices (CKA, PWCCA, Procrustes, …) between the layers of two networks")
def run_similarity(unit: Unit, ctx: UnitContext) -> dict[str, Any]:
    p, run = SimilarityParams.from_params(unit.params), ctx.run
    a, b = ctx.deps[unit.deps[0]], ctx.deps[unit.deps[-1]]
    model_a = load_network(a)
    model_b = model_a if unit.deps[0] == unit.deps[-1] else load_network(b)
    test = get_dataset(p.dataset, "test", root=run.data_root)
    settings = SimilaritySettings(measures=p.measures, n_samples=p.n_samples, all_pairs=True, policy=p.policy,
                                  bootstrap=p.bootstrap, permutations=p.permutations, level=p.level,
                                  uncertainty_seed=p.uncertainty_seed, device=run.device, workers=run.workers,
                                  cache_dir=ctx.cache_dir / "activations", progress=run.progress)
    key = f"{p.dataset}/test/eval/first={p.n_samples}"
    report = compare_models(model_a, model_b, p.layers, p.layers, test, settings, sample_key=key)
    paths = report.write(ctx.out_dir)
    matrices = {}
    for measure in p.measures:
        values, rows, cols = result_matrix(report.results, measure)
        info = measure_info(measure)
        matrices[measure] = {"rows": rows, "cols": cols, "values": json_safe(values.tolist()),
                             "kind": info.kind, "range": list(info.range), "row_label": f"layer of {a['label'].split(' ', 1)[1]}",
                             "col_label": f"layer of {b['label'].split(' ', 1)[1]}", **_similarity_bounds(report.results, measure, p)}
    return {
        "metrics": {"matrices": matrices, "n_samples": report.info["n_samples"], "seconds_extract": report.info["extraction_seconds"],
                    "seconds_measures": report.info["measure_seconds"]},
        "artifacts": {"json": paths["json"], "csv": paths["csv"]},
        "model_hashes": {"a": report.info["model1"]["fingerprint"], "b": report.info["model2"]["fingerprint"]},
        "conventions": {"policy": p.policy, "mixed_policies": report.info["mixed_policies"], "samples": report.info["samples"],
                        "low_rank_mode": report.info["low_rank_mode"]},
    }


def _similarity_bounds(results: list[Any], measure: str, p: SimilarityParams) -> dict[str, Any]:
    """A similarity matrix's ``lower`` / ``upper`` (bootstrap) and ``p_value`` (permutation null) grids,
    laid out as its values (:func:`result_matrix`), with the ``interval`` record; none when the unit computed neither."""
    if not p.bootstrap and not p.permutations:
        return {}
    names = (("lower", "upper") if p.bootstrap else ()) + (("p_value",) if p.permutations else ())
    out: dict[str, Any] = {name: json_safe(result_matrix(results, measure, field=name)[0].tolist()) for name in names}
    spec = BootstrapSpec(p.bootstrap, p.level, p.uncertainty_seed)
    out["interval"] = {**(spec.record() if p.bootstrap else {"seed": p.uncertainty_seed}), "permutations": p.permutations}
    return out


@register_unit_kind("probes", "linear probes of one network's layers at full and low ranks")
def run_probes(unit: Unit, ctx: UnitContext) -> dict[str, Any]:
    p, run = ProbesParams.from_params(unit.params), ctx.run
    net = ctx.deps[unit.deps[0]]
    model = load_network(net)
    data = probe_datasets(p.dataset, run.data_root, augment=p.augment)
    ranks = [None] + sorted(p.ranks, reverse=True)
    config = _probe_config(p.epochs, p.train_subset, p.seed, choice_of(p.augment), _schedule(p))
    report = probe_model(model, p.layers, data, ranks=ranks,
                         config=replace(config, device=run.device, workers=run.workers))
    (ctx.out_dir / "probes.csv").write_text(report.to_csv())
    write_npz_atomic(ctx.out_dir / "per_sample.npz", report.per_sample())  # each probe's hits per test image: its accuracy's intervals
    # the sensitivity and specificity tests score representations by these same probes: share them
    cache = ProbeCache(ctx.cache_dir / "probe_cache.json")
    cache.put_results(report.info["model_fingerprint"], p.dataset, report.results, config, net.get("label"))
    cache.save()
    cells = {(r.layer, rank_label(r.rank)): r.val_acc for r in report.results}
    cols = [rank_label(r) for r in ranks]
    return {
        "metrics": {"matrices": {"probe accuracy": _matrix(list(p.layers), cols, cells, "accuracy", [0, 1], row_label="layer", col_label="rank")},
                    "seconds_probes": report.info["seconds"]},
        "artifacts": {"csv": ctx.out_dir / "probes.csv", "per_sample": ctx.out_dir / "per_sample.npz"},
        "model_hashes": {"network": report.info["model_fingerprint"]},
        "conventions": {"probe": "global average pool (conv) / CLS (tokens) → linear",
                        "trained_on": "augmented training images" if p.augment else "un-augmented training features",
                        "augmentation": choice_of(p.augment) + " (probes.augment resolved by the network's record)",
                        "low_rank_mode": report.config.get("low_rank_mode")},
    }


def _probe_config(epochs: int, train_subset: int | None, seed: int, augment: str, schedule: dict[str, Any]):
    """The probes of a study (its probes units and the tests' functional scores share them); ``schedule``:
    :func:`_schedule` of the unit."""
    return ProbeConfig(epochs=epochs, seed=seed, augment=augment, train_subset=train_subset, **schedule)


def _grounding(test: str, unit: Unit, ctx: UnitContext) -> dict[str, Any]:
    """The sensitivity or specificity test of Ding et al. over all the study's networks (its probes
    units, when the study has them, are dependencies only so that their probes are in the cache)."""
    p = (SensitivityParams if test == "sensitivity" else SpecificityParams).from_params(unit.params)
    nets = [ctx.deps[d] for d in unit.deps if ctx.deps[d]["kind"] in ("train", "network")]
    models = {n["label"].split(" ", 1)[1]: load_network(n) for n in nets}
    # the networks' augmentations as the plan resolved them: one choice where they agree, else their records
    probe_augment = choice_for(p.probe_augment) if p.probe_augment else "none"
    tlm_augment = choice_for(p.tlm_augment) if p.tlm_augment else "dataset"
    probe = _probe_config(p.probe_epochs, p.probe_train_subset, p.seed, probe_augment, _schedule(p, "probe_"))
    settings = GroundingSettings(
        measures=list(p.measures), n_samples=p.n_samples, policy=p.policy, probe=probe, probe_cache=str(ctx.cache_dir / "probe_cache.json"),
        stitch_fit_samples=p.fit_samples, tlm_augment=tlm_augment, bootstrap=ctx.settings.get("ranking_resamples", 0),
        bootstrap_seed=ctx.settings.get("uncertainty_seed", 0), **vars(ctx.run),
    )
    if test == "sensitivity":
        report = run_grounding_test(test, models, p.dataset, layers=[p.layer], ranks=p.ranks or (), settings=settings)
    else:
        report = run_grounding_test(test, models, p.dataset, layers=p.layers, reference_layers=[p.reference_layer], settings=settings)
    paths = report.write(ctx.out_dir)
    table = [{k: row[k] for k in ("measure", "scope", "spearman", "spearman_p", "kendall", "kendall_p", "bad_fraction", "n")}
             for row in report.stats if row["group"] == "all"]
    return {
        "metrics": {"tables": {f"{test} test (Spearman ρ, Kendall τ, one-sided p, bad pairs)": table}},
        "artifacts": {name: path for name, path in paths.items()},
        "model_hashes": {name: m for name, m in (report.info.get("fingerprints") or {}).items()},
        "conventions": {"functional_difference": "|Δ probe accuracy|", "dissimilarity": "1 − similarity for similarities, the value for distances",
                        "probe_augmentation": report.info.get("probe_augmentation")},
    }


@register_unit_kind("sensitivity", "the sensitivity test: candidates at decreasing ranks across seeds")
def run_sensitivity(unit: Unit, ctx: UnitContext) -> dict[str, Any]:
    return _grounding("sensitivity", unit, ctx)


@register_unit_kind("specificity", "the specificity test: all layers of all seeds against a reference layer")
def run_specificity(unit: Unit, ctx: UnitContext) -> dict[str, Any]:
    return _grounding("specificity", unit, ctx)


@register_unit_kind("detectors", "energy OOD detectors (representation classifiers, outlier exposure) for every end layer of a network")
def run_detectors(unit: Unit, ctx: UnitContext) -> dict[str, Any]:
    p = DetectorsParams.from_params(unit.params)
    net = ctx.deps[unit.deps[0]]
    registry = ctx.out_dir / "registry"
    config = DetectorTrainConfig(
        save_dir=str(ctx.out_dir / "training"), model_type=p.detector, model_options=dict(p.options), dataset=p.dataset,
        epochs=p.pretrain_epochs, batch_size=p.batch_size, seed=p.seed, ft_id_dataset=p.finetune_id, ft_ood_dataset=p.outliers,
        ft_epochs=p.finetune_epochs, train_subset=p.train_subset, ft_samples=p.train_subset, val_subset=0, final_save_dir=str(registry),
        augment=choice_of(p.augment), ft_id_augment=p.finetune_id_augment, **_schedule(p), **vars(ctx.run),
    )
    trained = train_detectors_for_checkpoint(net["artifacts"]["checkpoint"], None, list(p.layers), config)
    return {
        "metrics": {"layers": list(p.layers), "detectors": len(trained)},
        "artifacts": {"registry": registry},
        "model_hashes": {"network": net["model_hashes"].get("network")},
        "conventions": {"loss": "CE + 0.1·(mean relu(E_in − m_in)² + mean relu(m_out − E_out)²), m_in −25, m_out −7",
                        "lr_schedule": describe_schedule(config.optim("pretrain")),
                        **{k: v for k, v in trained[0].meta["conventions"].items() if k.endswith("augmentation")}},
    }


@register_unit_kind("ood", "the OOD test of a stitch grid: are stitched representations in-distribution for the end network?")
def run_ood(unit: Unit, ctx: UnitContext) -> dict[str, Any]:
    p, run = OodParams.from_params(unit.params), ctx.run
    stitch = ctx.deps[unit.deps[0]]
    detectors = ctx.deps[unit.deps[1]]["artifacts"]["registry"] if len(unit.deps) > 1 else None
    settings = ResultsOODSettings(
        dataset=p.dataset, data_root=run.data_root, sanity_dataset=p.sanity, training_free=list(p.training_free),
        test_samples=p.eval_samples, device=run.device, workers=run.workers, seed=p.seed, progress=run.progress,
        group_size=ctx.group_size,
    )
    experiments = evaluate_results_dir(stitch["artifacts"]["runs"], settings, detector_dir=detectors,
                                       out_dir=ctx.out_dir, log=lambda message: None)
    matrices: dict[str, Any] = {}
    tables: dict[str, Any] = {}
    conventions: dict[str, Any] = {}
    scores: dict[str, Any] = {}  # a stitch unit is one experiment; its keys name every cell
    for exp in experiments:
        m = exp.matrices
        scores.update(exp.score_arrays())
        rows, cols = m.front_layers, m.end_layers
        for detector in m.detectors:
            values = m.matrix("auroc", detector)
            kind, scale = METRIC_KINDS["auroc"]  # the API's convention and colours (results.plot.KIND_CMAPS)
            matrices[f"AUROC ({detector})"] = {"rows": rows, "cols": cols, "values": json_safe(values), "kind": kind, "range": list(scale)}
        matrices[NORM_RATIO_MATRIX] = norm_ratio_matrix(m)  # stored sorted by name, so drawn right after the "AUROC (…)" heatmaps
        conventions.update(m.to_dict().get("conventions", {}))
        conventions["norm ratio"] = NORM_DEFINITION
        if exp.sanity:
            tables["detector sanity check (genuine test activations vs " + str(p.sanity) + ")"] = [
                {"layer": layer, "detector": name, **{k: v for k, v in vals.items() if k in ("auroc", "aupr", "fpr95")}}
                for layer, per in exp.sanity.items() for name, vals in per.items()]
        tables[SCORE_TABLE] = score_table(m)
    write_npz_atomic(ctx.out_dir / "scores.npz", scores)  # every image's scores and norms: the intervals are made from them
    conventions["scores"] = SCORES_CONVENTION
    return {"metrics": {"matrices": matrices, "tables": tables}, "artifacts": {"out": ctx.out_dir, "scores": ctx.out_dir / "scores.npz"},
            "conventions": conventions}
