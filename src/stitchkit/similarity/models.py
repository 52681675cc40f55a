"""Similarity of two networks' layers: the model-level convenience over :mod:`.pairs`.

:func:`compare_models` extracts the activations of every requested layer of each network in one pass
of its prefix over the first ``n_samples`` items of a dataset (the original's first 1000 test images),
once, and computes every measure on every layer pair and rank pair from them
(:func:`~.pairs.similarity_table`). The same network on both sides (the same object, or the same
weights by content hash) is extracted once. :func:`compare_checkpoints` loads the two checkpoints and
the dataset first; it is what ``stitchkit similarity`` calls.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn
from torch.utils.data import Dataset

from ..activations.extract import (
    ActivationCache,
    ExtractionSettings,
    extract_activations,
    model_fingerprint,
    sample_subset,
)
from ..choices import DEFAULT_SIMILARITY_MEASURES  # torch-free home (the CLI reads it)
from ..data import get_dataset, resolve_data_root
from ..data.loading import item_shape, make_batches
from ..errors import StitchkitError, warn
from ..models.layers import layered
from ..models.loading import load_for_dataset, requested_model_type
from ..ranks import warn_clamped
from ..results import Matrix, Provenance, Table
from ..uncertainty.similarity import UNCERTAINTY_FIELDS
from ..utils.device import resolve_device
from ..utils.io import ensure_writable_dir, write_csv_atomic, write_json_atomic
from ..utils.seed import set_seed
from .pairs import PairResult, describe_mixed, mixed_policies, result_matrix, similarity_table
from .registry import measure_info
from .settings import CheckpointOptions, SimilaritySettings

DEFAULT_MEASURES = DEFAULT_SIMILARITY_MEASURES  # the original script's three


@dataclass(repr=False)
class SimilarityReport:
    """Results of :func:`compare_models` with everything needed to reproduce them."""

    results: list[PairResult]
    info: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        """One line of what it holds (the records: ``report.results``; the numbers: :meth:`matrix`, :meth:`table`)."""
        return (
            f"SimilarityReport: {len(self.results)} results of {', '.join(self.info.get('measures', []))} between "
            f"{len(self.info.get('model1', {}).get('layers', []))} and "
            f"{len(self.info.get('model2', {}).get('layers', []))} layers "
            f"on {self.info.get('n_samples')} images; .matrix(measure), .table()"
        )

    def to_dict(self) -> dict[str, Any]:
        return {"info": self.info, "results": [r.to_dict() for r in self.results]}

    #: the columns of ``similarity.csv``
    CSV_COLUMNS = (
        "measure",
        "network_x",
        "layer_x",
        "rank_x",
        "network_y",
        "layer_y",
        "rank_y",
        "value",
        "kind",
        "dissimilarity",
        "policy",
        "resolved_policy",
        "policy_mixed",
        "low_rank_mode",
        "matrix_shape_x",
        "matrix_shape_y",
        "rank_used_x",
        "rank_used_y",
    )

    @property
    def mixed_policies(self) -> dict[str, list[str]]:
        """``{measure: [concrete policies]}`` for the measures whose matrices mix computations (empty: none does)."""
        return self.info.get("mixed_policies", mixed_policies(self.results))

    def mixed_note(self) -> str:
        """A sentence saying which matrices mix computations ('' when none does)."""
        return describe_mixed(self.mixed_policies, str(self.info.get("policy")))

    def provenance(self, what: str) -> Provenance:
        info = self.info
        return Provenance(
            what,
            {"a": info.get("model1", {}).get("fingerprint"), "b": info.get("model2", {}).get("fingerprint")},
            {
                k: info.get(k)
                for k in ("measures", "n_samples", "all_pairs", "policy", "low_rank_mode", "dataset", "split")
            },
            {"samples": str(info.get("samples", "")), **info.get("conventions", {})},
        )

    def matrix(self, measure: str, *, rank_x: int | None = None, rank_y: int | None = None) -> Matrix:
        """Layers of model 1 (rows) × layers of model 2 (columns) of one measure at one rank pair (NaN
        where a pair was not compared)."""
        values, rows, cols = result_matrix(self.results, measure, rank_x=rank_x, rank_y=rank_y)
        sure = self.info.get("uncertainty") or {}
        if not rows:
            raise StitchkitError(
                f"no {measure} values at ranks ({rank_x}, {rank_y}) in this report; it has measures "
                f"{', '.join(self.info.get('measures', []))} at ranks {self.info.get('model1', {}).get('ranks')} × "
                f"{self.info.get('model2', {}).get('ranks')}"
            )
        info = measure_info(measure)
        ranks = "" if rank_x is None and rank_y is None else f" (ranks {rank_x or 'full'}, {rank_y or 'full'})"
        what = f"{measure}{ranks}"
        mixed = self.mixed_policies.get(measure)
        if mixed:
            what += f" (mixed: {' and '.join(mixed)})"
        provenance = self.provenance(what)
        provenance.conventions["measure"] = info.description
        if mixed:
            provenance.conventions["mixed_policy"] = describe_mixed({measure: mixed}, str(self.info.get("policy")))
        bounds = {}
        if sure.get("resamples"):
            bounds.update(
                {
                    f: result_matrix(self.results, measure, rank_x=rank_x, rank_y=rank_y, field=f)[0]
                    for f in ("lower", "upper")
                }
            )
        if sure.get("permutations"):
            bounds["p_value"] = result_matrix(self.results, measure, rank_x=rank_x, rank_y=rank_y, field="p_value")[0]
        return Matrix(
            rows,
            cols,
            values,
            kind=info.kind,
            range=info.range,
            row_label="layer of model a",
            col_label="layer of model b",
            name=what,
            provenance=provenance,
            interval=sure,
            **bounds,
        )

    def calibrated(self, measure: str, *, rank_x: int | None = None, rank_y: int | None = None) -> Matrix:
        """The null-calibrated scores of one measure (1 − dissimilarity / mean null dissimilarity: 1 for
        identical representations, 0 at the level of unrelated ones); needs permutations."""
        if not (self.info.get("uncertainty") or {}).get("permutations"):
            raise StitchkitError("null-calibrated scores need a permutation null; compare with permutations > 0")
        base = self.matrix(measure, rank_x=rank_x, rank_y=rank_y)
        values = result_matrix(self.results, measure, rank_x=rank_x, rank_y=rank_y, field="calibrated")[0]
        return Matrix(
            base.rows,
            base.cols,
            values,
            kind="similarity",
            range=None,
            row_label=base.row_label,
            col_label=base.col_label,
            name=f"{base.name} (null-calibrated)",
            provenance=base.provenance,
            interval=base.interval,
        )

    def table(self) -> Table:
        """One row per measure, layer pair and rank pair (every field of the records)."""
        return Table(
            [r.to_dict() for r in self.results], name="similarity", provenance=self.provenance("similarity indices")
        )

    def csv_columns(self) -> tuple[str, ...]:
        """:attr:`CSV_COLUMNS`, and the uncertainty's columns when it was computed."""
        return self.CSV_COLUMNS + (UNCERTAINTY_FIELDS if self.info.get("uncertainty") else ())

    def csv_rows(self) -> list[dict[str, Any]]:
        """The rows of ``similarity.csv``: ranks ``full`` where not reduced, shapes as ``NxD``, values to 8 digits."""
        rows, mixed = [], self.mixed_policies
        for r in self.results:
            row = r.to_dict()
            row.update(row.pop("uncertainty", None) or {})
            row["policy_mixed"] = r.result.measure in mixed  # this measure's matrices mix computations
            for key in ("rank_x", "rank_y", "rank_used_x", "rank_used_y"):
                row[key] = "full" if row[key] is None else row[key]
            for key in ("matrix_shape_x", "matrix_shape_y"):
                row[key] = "x".join(map(str, row[key]))
            for key in ("value", "dissimilarity") + tuple(f for f in UNCERTAINTY_FIELDS if f in row):
                row[key] = f"{row[key]:.8g}"
            rows.append(row)
        return rows

    def write(self, out_dir: str | Path) -> dict[str, Path]:
        folder = ensure_writable_dir(out_dir)
        paths = {"json": folder / "similarity.json", "csv": folder / "similarity.csv"}
        write_json_atomic(paths["json"], self.to_dict())
        write_csv_atomic(paths["csv"], self.csv_rows(), self.csv_columns())
        return paths


def _clamped_ranks(
    model_x: nn.Module,
    model_y: nn.Module,
    layers_x: list[str],
    layers_y: list[str],
    input_shape: tuple[int, ...],
    ranks_x: Sequence[int | None],
    ranks_y: Sequence[int | None],
) -> dict[str, list]:
    """Ranks above a layer's channel count are that layer's full rank: warned about before anything is
    extracted, and recorded (each result also records its ``rank_used``)."""
    out = {}
    for side, model, layers, ranks, label in (
        ("model1", model_x, layers_x, ranks_x, "model 1 rank (-m1r)"),
        ("model2", model_y, layers_y, ranks_y, "model 2 rank (-m2r)"),
    ):
        found = (
            warn_clamped(ranks, layered(model).shapes(input_shape, layers), label)
            if any(r is not None for r in ranks)
            else []
        )
        out[side] = [{"layer": layer, "rank": r, "rank_used": limit} for layer, r, limit in found]
    return out


def _pair_activations(
    extract: Callable[[nn.Module, list[str]], Any],
    model_x: nn.Module,
    model_y: nn.Module,
    layers_x: list[str],
    layers_y: list[str],
    same: bool,
) -> tuple[dict, dict]:
    """Both sides' activations by layer; one network compared with itself is run once, for the union of its layers."""
    if same:
        acts = extract(model_x, list(dict.fromkeys(layers_x + layers_y))).layers
        return acts, acts
    return extract(model_x, layers_x).layers, extract(model_y, layers_y).layers


def _side_info(
    model: nn.Module, fingerprint: str, layers: list[str], ranks: Sequence[int | None], clamped: list[dict]
) -> dict[str, Any]:
    """What the report records of one side of a comparison."""
    return {
        "name": layered(model).model_name,
        "fingerprint": fingerprint,
        "layers": layers,
        "ranks": list(ranks),
        "clamped_ranks": clamped,
    }


def compare_models(
    model_x: nn.Module,
    model_y: nn.Module,
    layers_x: Sequence[str] | None,
    layers_y: Sequence[str] | None,
    data: Dataset,
    settings: SimilaritySettings | None = None,
    *,
    sample_key: str | None = None,
) -> SimilarityReport:
    """Every measure on the layer pairs of two networks (``layers``: names, or None / ["all"] for all
    stitchable layers; matching pairs i-i unless ``settings.all_pairs``) at every rank pair; the options
    are :class:`~.settings.SimilaritySettings` (default: its defaults).

    With ``settings.cache_dir`` activations go to an :class:`~stitchkit.activations.ActivationCache` keyed by
    the model's content hash and ``sample_key`` (default: a description of ``data`` and n).

    ``settings.bootstrap`` resamples of the images give each value a percentile interval and
    ``settings.permutations`` a p-value and a null-calibrated score (:mod:`stitchkit.uncertainty.similarity`);
    :meth:`SimilarityReport.matrix` then carries ``lower``/``upper``/``p_value``.
    """
    s = settings or SimilaritySettings()
    started = time.perf_counter()
    dev = resolve_device(s.device)
    layers_x, layers_y = layered(model_x).resolve(layers_x or None), layered(model_y).resolve(layers_y or None)
    if not s.all_pairs and len(layers_x) != len(layers_y):
        raise StitchkitError(
            f"got {len(layers_x)} layers of model 1 and {len(layers_y)} of model 2; pair them one to one or ask for "
            f"all pairs"
        )
    subset = sample_subset(data, s.n_samples, clamp="--n-samples (n_samples): the data compared")
    clamped = _clamped_ranks(model_x, model_y, layers_x, layers_y, item_shape(subset), s.ranks_x, s.ranks_y)
    fp_x, fp_y = model_fingerprint(model_x), model_fingerprint(model_y)
    same = model_x is model_y or (
        fp_x == fp_y and getattr(model_x, "stitchkit_spec", None) == getattr(model_y, "stitchkit_spec", None)
    )
    key = sample_key or f"{type(data).__name__}/{len(data)}/n={len(subset)}"

    def extract(model: nn.Module, layers: list[str]):
        model.to(dev)
        if s.cache_dir is not None:
            how = ExtractionSettings(device=dev, batch_size=s.batch_size, workers=s.workers, progress=s.progress)
            return ActivationCache(s.cache_dir).get(model, layers, subset, key, how)
        loader = make_batches(subset, s.batch_size, shuffle=False, workers=s.workers, prefetch=s.prefetch, device=dev)
        return extract_activations(model, layers, loader, settings=ExtractionSettings(device=dev, progress=s.progress))

    t0 = time.perf_counter()
    acts_x, acts_y = _pair_activations(extract, model_x, model_y, layers_x, layers_y, same)
    extraction_seconds = time.perf_counter() - t0
    t1 = time.perf_counter()
    results = similarity_table(
        s.measures, acts_x, None if same else acts_y, layers_x=layers_x, layers_y=layers_y, settings=s
    )
    info = {
        "model1": _side_info(model_x, fp_x, layers_x, s.ranks_x, clamped["model1"]),
        "model2": _side_info(model_y, fp_y, layers_y, s.ranks_y, clamped["model2"]),
        "same_network": same,
        "measures": [str(m) for m in s.measures],
        "n_samples": len(subset),
        "samples": "the first n items of the split (the original: the first 1000 test images)",
        "all_pairs": s.all_pairs,
        "policy": s.policy,
        # : {measure: [concrete policies]} where a matrix mixes computations (auto_original on layers of different
        # shapes)
        "mixed_policies": mixed_policies(results),
        "low_rank_mode": s.low_rank_mode,
        "device": str(dev),
        "extraction_seconds": extraction_seconds,
        "measure_seconds": time.perf_counter() - t1,
        "seconds": time.perf_counter() - started,
    }
    plan = s.uncertainty()
    if plan.enabled:
        info["uncertainty"] = plan.record()
    if info["mixed_policies"]:
        warn(describe_mixed(info["mixed_policies"], s.policy))
    return SimilarityReport(results, info)


def sample_key(dataset: str, data_root: str | None, split: str, n_samples: int | None) -> str:
    """The activation cache's key of the first ``n_samples`` items of a named dataset's split, as
    :func:`compare_models` reads them (the data root is part of it: a persistent cache must not mix two
    copies of a dataset)."""
    return f"{dataset}|{resolve_data_root(data_root)}|{split}|eval|n={n_samples}"


def compare_checkpoints(
    model1_path: str,
    model2_path: str,
    model1_type: str | None = None,
    model2_type: str | None = None,
    layers1: Sequence[str] | None = None,
    layers2: Sequence[str] | None = None,
    *,
    options: CheckpointOptions | None = None,
    settings: SimilaritySettings | None = None,
) -> SimilarityReport:
    """``stitchkit similarity``: load both checkpoints (types may be None for self-describing ones) and
    the dataset's split (:class:`~.settings.CheckpointOptions`; from ``settings.data_root``), then
    :func:`compare_models` with ``settings``."""
    s = settings or SimilaritySettings()
    o = options or CheckpointOptions()
    dataset, split = o.dataset, o.split
    model_options = None if o.model_options is None else dict(o.model_options)
    set_seed(0)  # the original's set_random_seed(0); nothing here is random, but keep it for parity
    model1, _, info1 = load_for_dataset(model1_path, model1_type, dataset=dataset, model_options=model_options)
    name1 = info1.name
    same_type = requested_model_type(model2_type) == requested_model_type(model1_type)
    if str(Path(model2_path).resolve()) == str(Path(model1_path).resolve()) and same_type:
        model2, name2 = model1, name1
    else:
        model2, _, info2 = load_for_dataset(
            model2_path, model2_type, dataset=dataset or name1, model_options=model_options
        )
        name2 = info2.name
    if name1 != name2:
        raise StitchkitError(
            f"the two checkpoints were trained on different datasets ({name1} and {name2}); choose one with -d"
        )
    data = get_dataset(name1, split, root=s.data_root)
    key = sample_key(name1, s.data_root, split, s.n_samples)
    report = compare_models(model1, model2, layers1, layers2, data, s, sample_key=key)
    report.info.update(model1_path=str(model1_path), model2_path=str(model2_path), dataset=name1, split=split)
    return report
