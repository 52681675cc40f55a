"""The sensitivity and specificity tests (Ding, Denain & Steinhardt 2021, as adapted by Balogh & Jelasity 2025).

Both tests compare *representations* — a layer of a network at a rank, :class:`~stitchkit.similarity.Rep`
— in (reference, candidate) pairs. For every pair and every measure they record the measure's
dissimilarity d (turned from a similarity or distance by the measure's metadata,
:meth:`~stitchkit.similarity.MeasureInfo.dissimilarity`: ``hi − value`` for a similarity with range
[lo, hi], ``value − lo`` for a distance) and the functional difference f = |acc(reference) −
acc(candidate)|, with acc the test accuracy of a linear probe on the representation
(:mod:`stitchkit.probing`). A measure passes when d orders the pairs as f does
(:func:`~.stats.rank_agreement`: Spearman ρ, Kendall τ, one-sided p-values, the fraction of badly
ordered pairs).

* **Sensitivity** (one group per layer ℓ): references are layer ℓ of every network at full rank;
  the candidates of a reference are layer ℓ of every network (the reference's own network included)
  at every rank in the list and at full rank — low-rank versions of the representation, which lose
  information that the probe may need — except the reference itself.
* **Specificity** (one group per reference layer): references are each reference layer of every
  network at full rank; candidates are every layer of every network at full rank except the reference
  itself: different layers and different seeds, which a good measure should tell apart only as much
  as their function differs.

Asymmetric measures are computed from the candidate to the reference: X = candidate (the source, the
front of a stitch), Y = reference (the target, the end of a stitch), as the paper's low-rank stitching
truncates the source. Array measures run on the first ``n_samples`` test images (the original's 1000);
``dm_accuracy`` / ``tlm_accuracy`` stitch the candidate's network into the reference's
(:func:`stitchkit.stitching.stitch_grid`, the candidate's rank as ``front_stitch_rank``) and use the
stitched accuracy.

Statistics are reported per group and for all groups together (``all``), in two scopes: ``pooled``
(every pair of the group in one ranking) and ``mean_over_references`` (the statistic computed over the
candidates of each reference, then averaged, as Ding et al. average over references; its p-values are
left empty).
"""

from __future__ import annotations

import csv
import fcntl
import io
import json
import math
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np
from torch import nn

from ..choices import DEFAULT_GROUNDING_MEASURES  # torch-free home (the CLI reads it)
from ..errors import StitchkitError
from ..probing.probe import ProbeConfig, check_ranks, rank_label
from ..similarity.pairs import Rep, RepresentationBank
from ..similarity.registry import get_measure, measure_info
from ..utils.io import check_writable_dir, ensure_writable_dir, json_safe, write_json_atomic, write_text_atomic
from .stats import RankAgreement, rank_agreement

TESTS = ("sensitivity", "specificity")
STITCH_MEASURES = ("dm_accuracy", "tlm_accuracy")
DEFAULT_MEASURES = DEFAULT_GROUNDING_MEASURES
ALL = "all"


@dataclass(frozen=True)
class Comparison:
    """One (reference, candidate) pair of a test, in a group (the layer or reference layer)."""

    group: str
    reference: Rep
    candidate: Rep


def sensitivity_comparisons(networks: Sequence[str], layers: Sequence[str], ranks: Iterable[int | None]) -> list[Comparison]:
    """For each layer: every network's full-rank layer as a reference against that layer of every
    network at every rank (and full rank), except the reference itself."""
    ranks = check_ranks(list(ranks) + [None])
    _check_names(networks, layers)
    out = []
    for layer in layers:
        for ref_net in networks:
            ref = Rep(ref_net, layer, None)
            for net in networks:
                for r in ranks:
                    cand = Rep(net, layer, r)
                    if cand != ref:
                        out.append(Comparison(layer, ref, cand))
    return out


def specificity_comparisons(networks: Sequence[str], layers: Sequence[str], reference_layers: Sequence[str] | None = None) -> list[Comparison]:
    """For each reference layer: every network's reference layer against every layer of every network
    (all at full rank), except the reference itself."""
    reference_layers = list(reference_layers) if reference_layers else list(layers)
    _check_names(networks, layers)
    unknown = [layer for layer in reference_layers if layer not in layers]
    if unknown:
        raise StitchkitError(f"reference layers {', '.join(unknown)} are not among the compared layers {', '.join(layers)}")
    out = []
    for ref_layer in reference_layers:
        for ref_net in networks:
            ref = Rep(ref_net, ref_layer, None)
            for net in networks:
                for layer in layers:
                    cand = Rep(net, layer, None)
                    if cand != ref:
                        out.append(Comparison(ref_layer, ref, cand))
    return out


def _check_names(networks: Sequence[str], layers: Sequence[str]) -> None:
    if len(networks) < 1 or len(set(networks)) != len(networks):
        raise StitchkitError(f"the tests need at least one network with distinct names, got {list(networks)}")
    if not layers:
        raise StitchkitError("the tests need at least one layer")


# -- the report -------------------------------------------------------------------------------------

@dataclass
class GroundingReport:
    """Points (one per comparison and measure), statistics and provenance of a sensitivity or specificity test."""

    test: str
    points: list[dict[str, Any]]
    stats: list[dict[str, Any]]
    per_reference: list[dict[str, Any]]
    info: dict[str, Any] = field(default_factory=dict)

    def measures(self) -> list[str]:
        return list(dict.fromkeys(p["measure"] for p in self.points))

    def stat(self, measure: str, group: str = ALL, scope: str = "pooled") -> dict[str, Any]:
        for row in self.stats:
            if row["measure"] == measure and row["group"] == group and row["scope"] == scope:
                return row
        raise StitchkitError(f"no {scope} statistics for measure {measure!r} in group {group!r}")

    def to_dict(self) -> dict[str, Any]:
        return {"test": self.test, "info": self.info, "stats": self.stats, "per_reference": self.per_reference, "points": self.points}

    def stats_csv(self) -> str:
        return _csv(self.stats, STAT_COLUMNS)

    def points_csv(self) -> str:
        return _csv(self.points, POINT_COLUMNS)

    def table(self, group: str = ALL) -> str:
        """The statistics of one group as a text table (one row per measure and scope)."""
        lines = [f"{'measure':<14}{'scope':<22}{'Spearman ρ':>11}{'p (1-sided)':>13}{'Kendall τ':>11}{'p (1-sided)':>13}"
                 f"{'bad pairs':>11}{'refs':>6}{'pairs':>7}"]
        for row in self.stats:
            if row["group"] != group:
                continue
            lines.append(
                f"{row['measure']:<14}{row['scope']:<22}{_fmt(row['spearman']):>11}{_fmt_p(row['spearman_p']):>13}"
                f"{_fmt(row['kendall']):>11}{_fmt_p(row['kendall_p']):>13}{_fmt(row['bad_fraction']):>11}{row['references']:>6}{row['n']:>7}"
            )
        return "\n".join(lines)

    def write(self, out_dir: str | Path, *, figure: bool = True) -> dict[str, Path]:
        """``<test>_stats.csv``, ``<test>_points.csv``, ``<test>.json`` and ``<test>.png`` (when matplotlib is there)."""
        folder = ensure_writable_dir(out_dir)
        paths = {"stats": folder / f"{self.test}_stats.csv", "points": folder / f"{self.test}_points.csv", "json": folder / f"{self.test}.json"}
        write_text_atomic(paths["stats"], self.stats_csv())
        write_text_atomic(paths["points"], self.points_csv())
        write_json_atomic(paths["json"], json_safe(self.to_dict()))
        if figure:
            from .figure import plot_report

            png = plot_report(self, folder / f"{self.test}.png")
            if png is not None:
                paths["figure"] = png
        return paths


STAT_COLUMNS = ["test", "measure", "group", "scope", "n", "references", "spearman", "spearman_p", "kendall", "kendall_p", "bad_fraction",
                "ordered_pairs"]
POINT_COLUMNS = ["test", "group", "measure", "reference", "candidate", "reference_network", "reference_layer", "candidate_network",
                 "candidate_layer", "candidate_rank", "value", "dissimilarity", "reference_acc", "candidate_acc", "functional_difference"]


def _fmt(v: float) -> str:
    return "nan" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.3f}"


def _fmt_p(v: float) -> str:
    return "" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.2g}"


def _csv(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if v is None or (isinstance(v, float) and math.isnan(v)) else v) for k, v in row.items()})
    return buffer.getvalue()


def grounding_report(
    test: str,
    comparisons: Sequence[Comparison],
    scores: Mapping[Rep, float],
    values: Mapping[str, Sequence[float]],
    info: dict[str, Any] | None = None,
) -> GroundingReport:
    """Turn measure values (``{measure: [value per comparison]}``) and functional scores (probe
    accuracy per representation) into points and statistics."""
    if test not in TESTS:
        raise StitchkitError(f"test must be one of {', '.join(TESTS)}, got {test!r}")
    missing = sorted({c.reference.label() for c in comparisons if c.reference not in scores} | {c.candidate.label() for c in comparisons if c.candidate not in scores})
    if missing:
        raise StitchkitError(f"no functional score (probe accuracy) for {', '.join(missing[:5])}")
    points, stats, per_ref = [], [], []
    f = np.array([abs(scores[c.reference] - scores[c.candidate]) for c in comparisons], dtype=np.float64)
    groups = list(dict.fromkeys(c.group for c in comparisons))
    for measure, vals in values.items():
        info_m = measure_info(measure)
        if len(vals) != len(comparisons):
            raise StitchkitError(f"measure {measure!r}: {len(vals)} values for {len(comparisons)} comparisons")
        d = np.array([info_m.dissimilarity(v) for v in vals], dtype=np.float64)
        for c, v, di, fi in zip(comparisons, vals, d, f):
            points.append({
                "test": test, "group": c.group, "measure": measure, "reference": c.reference.label(), "candidate": c.candidate.label(),
                "reference_network": c.reference.network, "reference_layer": c.reference.layer, "candidate_network": c.candidate.network,
                "candidate_layer": c.candidate.layer, "candidate_rank": rank_label(c.candidate.rank), "value": float(v),
                "dissimilarity": float(di), "reference_acc": float(scores[c.reference]), "candidate_acc": float(scores[c.candidate]),
                "functional_difference": float(fi),
            })
        for group in groups + [ALL]:
            idx = [i for i, c in enumerate(comparisons) if group == ALL or c.group == group]
            refs = list(dict.fromkeys(comparisons[i].reference for i in idx))
            pooled = rank_agreement(d[idx], f[idx])
            stats.append(_stat_row(test, measure, group, "pooled", pooled, len(refs)))
            ref_stats: list[RankAgreement] = []
            for ref in refs:
                ridx = [i for i in idx if comparisons[i].reference == ref]
                agreement = rank_agreement(d[ridx], f[ridx])
                ref_stats.append(agreement)
                if group != ALL:
                    per_ref.append({"test": test, "measure": measure, "group": group, "reference": ref.label(), **agreement.to_dict()})
            stats.append(_mean_row(test, measure, group, ref_stats, len(idx)))
    return GroundingReport(test, points, stats, per_ref, dict(info or {}))


def _stat_row(test: str, measure: str, group: str, scope: str, a: RankAgreement, references: int) -> dict[str, Any]:
    return {"test": test, "measure": measure, "group": group, "scope": scope, "references": references, **a.to_dict()}


def _mean_row(test: str, measure: str, group: str, parts: Sequence[RankAgreement], n: int) -> dict[str, Any]:
    def mean(name: str) -> float:
        vals = [getattr(p, name) for p in parts if not math.isnan(getattr(p, name))]
        return float(np.mean(vals)) if vals else math.nan

    return {"test": test, "measure": measure, "group": group, "scope": "mean_over_references", "references": len(parts), "n": n,
            "spearman": mean("spearman"), "spearman_p": math.nan, "kendall": mean("kendall"), "kendall_p": math.nan,
            "bad_fraction": mean("bad_fraction"), "ordered_pairs": int(sum(p.ordered_pairs for p in parts))}


# -- measures on the comparisons --------------------------------------------------------------------

def array_measure_values(
    bank: RepresentationBank,
    comparisons: Sequence[Comparison],
    measures: Sequence[str],
    *,
    policy: str = "auto_original",
) -> dict[str, list[float]]:
    """Each array measure on every comparison (X = candidate, Y = reference), each representation
    truncated and prepared once per measure."""
    out: dict[str, list[float]] = {}
    for name in measures:
        m = get_measure(name)
        out[m.name] = [bank.compare(m, c.candidate, c.reference, policy=policy).value for c in comparisons]
        bank.forget(prepared_only=True)  # the next measure prepares differently; keep the truncations
    return out


def split_measures(measures: Sequence[str]) -> tuple[list[str], list[str]]:
    """(array measures, stitching measures) by the measures' metadata; unknown names raise."""
    array, stitch = [], []
    for name in measures:
        info = measure_info(name)
        (stitch if info.requires_models else array).append(info.name)
    return list(dict.fromkeys(array)), list(dict.fromkeys(stitch))


# -- model level ------------------------------------------------------------------------------------

@dataclass
class GroundingSettings:
    """Options of the model-level tests (defaults: the original's probe and similarity settings)."""

    measures: list[str] = field(default_factory=lambda: list(DEFAULT_MEASURES))
    n_samples: int | None = 1000
    policy: str = "auto_original"
    low_rank_mode: str = "fixed"
    probe: ProbeConfig = field(default_factory=ProbeConfig)
    #: JSON file of probe results reused across runs (keyed by model hash, dataset, layer, rank and probe options)
    probe_cache: str | None = None
    #: stitching measures: test images used for the stitched accuracy (None: all), K of direct matching,
    #: epochs / batch size / learning rate of task loss matching (the paper: 30, 256, 1e-3)
    stitch_test_samples: int | None = 1000
    stitch_fit_samples: int | None = 100
    tlm_epochs: int = 30
    tlm_batch_size: int = 256
    tlm_lr: float = 1e-3
    #: TLM trains on a fixed random subset of this many training images (None: all)
    tlm_train_samples: int | None = None
    device: str = "auto"
    batch_size: int = 256
    workers: int = 0
    prefetch: int = 1
    progress: bool = False
    verbose: bool = True

    def validate(self) -> "GroundingSettings":
        self.low_rank_mode = str(self.low_rank_mode).replace("-", "_")  # the stitching commands spell it per-batch
        self.probe.validate()
        array, stitch = split_measures(self.measures)
        if not array and not stitch:
            raise StitchkitError("no measures given")
        if self.n_samples is not None and self.n_samples < 3:
            raise StitchkitError(f"the tests need at least 3 samples for the measures, got {self.n_samples}")
        if self.tlm_epochs < 1:
            raise StitchkitError(f"task loss matching needs at least 1 epoch, got {self.tlm_epochs}")
        if self.tlm_lr <= 0 or self.tlm_batch_size < 1:
            raise StitchkitError(f"task loss matching needs a positive learning rate and batch size, got {self.tlm_lr} and {self.tlm_batch_size}")
        if self.tlm_train_samples is not None and self.tlm_train_samples < 1:
            raise StitchkitError(f"task loss matching needs at least 1 training image, got {self.tlm_train_samples}")
        if self.workers < 0:
            raise StitchkitError(f"loader workers must be non-negative, got {self.workers}")
        return self


class ProbeCache:
    """Probe accuracies stored as JSON, keyed by what changes them. ``save`` merges with what is on disk
    under a file lock, so units writing the same cache at once (a study's pool executor) lose nothing."""

    def __init__(self, path: str | Path | None):
        self.path = Path(path) if path else None
        self.entries: dict[str, dict[str, Any]] = {}
        if self.path is None:
            return
        if self.path.is_dir():
            raise StitchkitError(f"probe cache {str(self.path)!r} is a folder; give a file name (e.g. {str(self.path / 'probes.json')!r})")
        check_writable_dir(self.path.parent, "folder of the probe cache")  # it is written after the probes: fail before them
        if self.path.is_file():
            try:
                self.entries = json.loads(self.path.read_text())
            except (ValueError, UnicodeDecodeError):
                raise StitchkitError(f"probe cache {str(self.path)!r} is not valid JSON; delete it or choose another file") from None
            if not isinstance(self.entries, dict) or not all(isinstance(e, dict) and "val_acc" in e for e in self.entries.values()):
                raise StitchkitError(f"probe cache {str(self.path)!r} is not a stitchkit probe cache; delete it or choose another file")

    @staticmethod
    def key(fingerprint: str, dataset: str, layer: str, rank: int | None, config: ProbeConfig) -> str:
        return f"{fingerprint}|{dataset}|{layer}|{rank_label(rank)}|{config.key()}"

    def get(self, key: str) -> float | None:
        entry = self.entries.get(key)
        return None if entry is None else float(entry["val_acc"])

    def put(self, key: str, entry: dict[str, Any]) -> None:
        self.entries[key] = entry

    def put_results(self, fingerprint: str, dataset: str, results: Iterable[Any], config: ProbeConfig, network: str | None) -> None:
        """Store the probe results of one network (``ProbeResult``s of :func:`~stitchkit.probing.probe_model`)."""
        for r in results:
            self.put(self.key(fingerprint, dataset, r.layer, r.rank, config),
                     {"val_acc": r.val_acc, "network": network, "layer": r.layer, "rank": r.rank, "train_acc": r.train_acc})

    def save(self) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_name(self.path.name + ".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            on_disk: dict[str, Any] = {}
            if self.path.is_file():
                try:
                    on_disk = json.loads(self.path.read_text())
                except ValueError:
                    on_disk = {}  # a broken cache is rewritten
            self.entries = {**on_disk, **self.entries}
            write_json_atomic(self.path, self.entries)


def network_names(paths: Sequence[str]) -> list[str]:
    """Short unique names for checkpoints: the folder name (``runs/r18_s0/final.pt`` → ``r18_s0``), the
    file stem, or ``net<i>``."""
    for candidates in ([Path(p).parent.name for p in paths], [Path(p).stem for p in paths]):
        if all(candidates) and len(set(candidates)) == len(candidates):
            return candidates
    return [f"net{i}" for i in range(len(paths))]


def _check_distinct(fingerprints: Mapping[str, str], paths: Mapping[str, str]) -> None:
    """The same network given twice would count as two seeds (every statistic gains pairs of zero
    difference): refuse it, naming both."""
    seen: dict[str, str] = {}
    for name, fp in fingerprints.items():
        if fp in seen:
            first = seen[fp]
            where = f" ({paths[first]} and {paths[name]})" if first in paths and name in paths else ""
            raise StitchkitError(f"networks {first} and {name} are the same network{where}: their weights are identical; give each network once")
        seen[fp] = name


def run_grounding_test(
    test: str,
    models: Mapping[str, nn.Module],
    dataset: str,
    *,
    layers: Sequence[str] | None = None,
    ranks: Sequence[int | None] = (),
    reference_layers: Sequence[str] | None = None,
    settings: GroundingSettings | None = None,
    data_root: str | None = None,
    paths: Mapping[str, str] | None = None,
) -> GroundingReport:
    """Run the sensitivity or specificity test on ``models`` (``{name: model}``, e.g. several seeds).

    Sensitivity needs ``layers`` and ``ranks``; specificity uses ``layers`` (default: every stitchable
    layer) and ``reference_layers`` (default: each of ``layers`` in turn).
    """
    from ..activations.extract import extract_activations, model_fingerprint, sample_subset
    from ..data import dataset_info, get_dataset
    from ..probing.ranks import check_ranks_fit
    from ..models.layers import layered
    from ..probing.model import probe_datasets, probe_model
    from ..data.loading import make_batches
    from ..utils.device import resolve_device

    settings = (settings or GroundingSettings()).validate()
    if test not in TESTS:
        raise StitchkitError(f"test must be one of {', '.join(TESTS)}, got {test!r}")
    started = time.perf_counter()
    say = (lambda line: print(line, flush=True)) if settings.verbose else (lambda line: None)
    names = list(models)
    if not names:
        raise StitchkitError("the tests need at least one network")
    if test == "sensitivity" and len(names) < 2:
        raise StitchkitError("the sensitivity test needs at least two networks (e.g. two seeds of one architecture): its statistics "
                             "rank every network's low-rank versions against the other networks, and with one network they are undefined")
    fingerprints = {name: model_fingerprint(models[name]) for name in names}
    _check_distinct(fingerprints, paths or {})
    first = layered(models[names[0]])
    layers = list(dict.fromkeys(layers)) if layers else list(first.layers)
    for name in names:
        lm = layered(models[name])
        for layer in layers:
            lm.check_layer(layer)
    if test == "sensitivity":
        ranks = [r for r in check_ranks(ranks) if r is not None]
        if not ranks:
            raise StitchkitError("the sensitivity test needs at least one rank (-ranks), e.g. -ranks 32 16 8 4 2 1")
        check_ranks_fit(ranks, first.shapes(dataset_info(dataset).shape, layers), "-ranks")
        comparisons = sensitivity_comparisons(names, layers, ranks)
        needed_ranks = check_ranks([None] + list(ranks))
    else:
        comparisons = specificity_comparisons(names, layers, reference_layers)
        needed_ranks = [None]
    array_measures, stitch_measures = split_measures(settings.measures)
    dev = resolve_device(settings.device)

    # 1. probes: the functional score of every representation (network and data loaded once per network)
    cache = ProbeCache(settings.probe_cache)
    scores: dict[Rep, float] = {}
    data = None
    probe_seconds = 0.0
    for name in names:
        todo = [(layer, r) for layer in layers for r in needed_ranks]
        keys = {lr: ProbeCache.key(fingerprints[name], dataset, lr[0], lr[1], settings.probe) for lr in todo}
        for (layer, r), key in keys.items():
            acc = cache.get(key)
            if acc is not None:
                scores[Rep(name, layer, r)] = acc
        missing = [lr for lr in todo if Rep(name, *lr) not in scores]
        if not missing:
            say(f"probes of {name}: all {len(todo)} from the cache")
            continue
        if data is None:
            data = probe_datasets(dataset, data_root, augment=settings.probe.augment)
        t0 = time.perf_counter()
        miss_layers = list(dict.fromkeys(layer for layer, _ in missing))
        miss_ranks = check_ranks(list(dict.fromkeys(r for _, r in missing)))
        say(f"probes of {name}: {len(miss_layers)} layer(s) × {len(miss_ranks)} rank(s)")
        report = probe_model(models[name], miss_layers, data["train"], data["test"], ranks=miss_ranks,
                             augmented_train_data=data.get("train_augmented"), config=settings.probe, device=dev,
                             workers=settings.workers, prefetch=settings.prefetch)
        probe_seconds += time.perf_counter() - t0
        for res in report.results:
            scores[Rep(name, res.layer, res.rank)] = res.val_acc
        cache.put_results(fingerprints[name], dataset, report.results, settings.probe, name)
        cache.save()

    # 2. array measures on the first n test images, activations extracted once per network
    values: dict[str, list[float]] = {}
    extraction_seconds = measure_seconds = 0.0
    if array_measures:
        test_set = sample_subset(get_dataset(dataset, "test", root=data_root), settings.n_samples)
        acts = {}
        t0 = time.perf_counter()
        for name in names:
            models[name].to(dev)
            loader = make_batches(test_set, settings.batch_size, shuffle=False, workers=settings.workers, prefetch=settings.prefetch, device=dev)
            acts[name] = extract_activations(models[name], layers, loader, device=dev, progress=settings.progress).layers
        extraction_seconds = time.perf_counter() - t0
        t0 = time.perf_counter()
        bank = RepresentationBank(acts, low_rank_mode=settings.low_rank_mode)
        for measure in array_measures:
            say(f"{measure}: {len(comparisons)} pairs")
            values.update(array_measure_values(bank, comparisons, [measure], policy=settings.policy))
        measure_seconds = time.perf_counter() - t0
        del bank, acts

    # 3. stitching measures: stitch the candidate's network into the reference's
    stitch_seconds = 0.0
    if stitch_measures:
        t0 = time.perf_counter()
        values.update(stitching_measure_values(models, comparisons, stitch_measures, dataset, settings, data_root=data_root, say=say))
        stitch_seconds = time.perf_counter() - t0

    ordered = {m: values[m] for m in [get_measure(x).name for x in settings.measures] if m in values}
    info = {
        "test": test,
        "dataset": dataset,
        "networks": {name: {"fingerprint": fingerprints[name], **({"path": paths[name]} if paths and name in paths else {})} for name in names},
        "layers": layers,
        "ranks": [rank_label(r) for r in needed_ranks],
        "reference_layers": list(reference_layers) if reference_layers else (layers if test == "specificity" else None),
        "measures": list(ordered),
        "n_samples": settings.n_samples,
        "policy": settings.policy,
        "low_rank_mode": settings.low_rank_mode,
        "probe": asdict(settings.probe) | {"milestones": settings.probe.resolved_milestones},
        "probe_accuracy": {rep.label(): acc for rep, acc in scores.items()},
        "stitching": {"test_samples": settings.stitch_test_samples, "fit_samples": settings.stitch_fit_samples,
                      "tlm_epochs": settings.tlm_epochs, "tlm_batch_size": settings.tlm_batch_size, "tlm_lr": settings.tlm_lr,
                      "tlm_train_samples": settings.tlm_train_samples}
        if stitch_measures else None,
        "conventions": {
            "dissimilarity": "hi − value for similarities with range [lo, hi]; value − lo for distances (measure metadata)",
            "functional_difference": "|probe accuracy(reference) − probe accuracy(candidate)| on the test split",
            "direction": "asymmetric measures: X = candidate (source), Y = reference (target)",
            "measure_samples": "the first n_samples test images; a rank truncates the activation over that whole set",
            "probe_low_rank": "basis estimated on the un-augmented training set (fixed) or per mini-batch (per_batch)",
        },
        "device": str(dev),
        "seconds": {"probes": probe_seconds, "extraction": extraction_seconds, "measures": measure_seconds, "stitching": stitch_seconds,
                    "total": time.perf_counter() - started},
    }
    return grounding_report(test, comparisons, scores, ordered, info)


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
    try:
        from ..stitching.experiment import StitchSettings, load_donor, stitch_grid
    except ImportError as exc:  # pragma: no cover - depends on the stitching package
        raise StitchkitError(f"the stitching measures need stitchkit.stitching.stitch_grid, which is not available ({exc})") from None
    from ..training.optim import OptimConfig

    donors = {name: load_donor(model) for name, model in models.items()}
    out: dict[str, list[float]] = {}
    for measure in measures:
        if measure == "dm_accuracy":
            base = StitchSettings(init="pinv", epochs=0)
        else:
            base = StitchSettings(init="rand", epochs=settings.tlm_epochs, batch_size=settings.tlm_batch_size, train_samples=settings.tlm_train_samples,
                                  optim=OptimConfig(optimizer="adam", lr=settings.tlm_lr, weight_decay=1e-5))
        base = replace(base, fit_samples=settings.stitch_fit_samples, test_samples=settings.stitch_test_samples, dataset=dataset,
                       data_root=data_root, device=settings.device, workers=settings.workers, prefetch=settings.prefetch,
                       low_rank_mode=settings.low_rank_mode.replace("_", "-"), save_weights=False, progress=settings.progress, verbose=False)
        groups: dict[tuple[str, str, int | None], list[int]] = {}
        for i, c in enumerate(comparisons):
            groups.setdefault((c.candidate.network, c.reference.network, c.candidate.rank), []).append(i)
        values = [math.nan] * len(comparisons)
        for n_group, ((front, end, rank), idx) in enumerate(groups.items()):
            fls = list(dict.fromkeys(comparisons[i].candidate.layer for i in idx))
            els = list(dict.fromkeys(comparisons[i].reference.layer for i in idx))
            say(f"{measure}: {front} -> {end} at rank {rank_label(rank)}: {len(fls)}×{len(els)} layer pair(s) [{n_group + 1}/{len(groups)}]")
            results = stitch_grid(donors[front], donors[end], fls, els, replace(base, front_stitch_rank=rank))
            by_pair = {(r.front_layer, r.end_layer): r.accuracy for r in results}
            for i in idx:
                values[i] = float(by_pair[(comparisons[i].candidate.layer, comparisons[i].reference.layer)])
        out[measure] = values
    return out


def grounding_test_checkpoints(
    test: str,
    checkpoints: Sequence[str],
    *,
    model_type: str | None = None,
    dataset: str | None = None,
    data_root: str | None = None,
    names: Sequence[str] | None = None,
    model_options: dict[str, Any] | None = None,
    **kwargs: Any,
) -> GroundingReport:
    """Load the checkpoints (e.g. several seeds of one architecture) and run :func:`run_grounding_test`."""
    from ..probing.model import load_for_probing
    from ..utils.seed import set_seed

    if not checkpoints:
        raise StitchkitError("give at least one checkpoint")
    names = list(names) if names else network_names(checkpoints)
    if len(names) != len(checkpoints) or len(set(names)) != len(names):
        raise StitchkitError(f"need one distinct name per checkpoint, got {names} for {len(checkpoints)} checkpoints")
    settings: GroundingSettings | None = kwargs.get("settings")
    set_seed(settings.probe.seed if settings else 0)
    models, datasets = {}, set()
    for name, path in zip(names, checkpoints):
        models[name], ds = load_for_probing(path, model_type, dataset=dataset, model_options=model_options)
        datasets.add(ds)
    if len(datasets) > 1:
        raise StitchkitError(f"the checkpoints were trained on different datasets ({', '.join(sorted(datasets))}); choose one with -d")
    return run_grounding_test(test, models, datasets.pop(), data_root=data_root, paths=dict(zip(names, map(str, checkpoints))), **kwargs)
