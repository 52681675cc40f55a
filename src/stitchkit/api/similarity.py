"""Similarity indices from Python: :func:`compare`, over :func:`stitchkit.similarity.models.compare_models`
(what ``stitchkit similarity`` runs), returning a :class:`ComparisonResult` of layer × layer matrices."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from ..data.provenance import note_provenance
from ..data.splits import check_unnamed
from ..errors import unknown_name
from ..models.layers import layered
from ..results import Matrix, Table
from ..results.display import Described, Description, inline, labels
from ..results.plot import heatmaps
from ..similarity.models import SimilarityReport, compare_models, sample_key
from ..similarity.settings import SimilaritySettings
from ..stitching.donors import Donor
from ..utils.numbers import check_seed
from .arguments import check_types
from .inputs import loader_batch_size, network_text, resolve_data, resolve_model, same_source, split_options


@dataclass(repr=False)
class ComparisonResult(Described):
    """Every measure on the layer pairs of two networks: the library's :class:`SimilarityReport` (one
    record per measure, layer pair and rank pair: ``report.results``) and its matrices."""

    report: SimilarityReport
    layers_a: list[str]
    layers_b: list[str]
    model_a: Donor = field(repr=False)
    model_b: Donor = field(repr=False)

    @property
    def measures(self) -> list[str]:
        return list(self.report.info["measures"])

    def matrix(self, measure: str | None = None, *, rank_a: int | None = None, rank_b: int | None = None) -> Matrix:
        """Layers of ``model_a`` (rows) × layers of ``model_b`` (columns) of one measure at one rank pair
        (default: the first measure, full ranks)."""
        measure = measure or self.measures[0]
        if measure not in self.measures:
            raise unknown_name("measure of this comparison", measure, self.measures)
        return self.report.matrix(measure, rank_x=rank_a, rank_y=rank_b)

    @property
    def mixed_policies(self) -> dict[str, list[str]]:
        """``{measure: [concrete policies]}`` for the measures whose matrices mix computations (only under
        ``policy="auto_original"``; the default ``pool`` computes every cell one way): empty when none does."""
        return self.report.mixed_policies

    @property
    def matrices(self) -> dict[str, Matrix]:
        """One matrix per measure at full ranks."""
        return {measure: self.matrix(measure) for measure in self.measures}

    def table(self) -> Table:
        """One row per measure, layer pair and rank pair."""
        return self.report.table()

    def to_pandas(self):
        return self.table().to_pandas()

    def plot(self, measure: str | None = None, ax=None):
        """The heatmap of ``measure``, or of every measure side by side (a figure a notebook shows by itself)."""
        if measure is not None:
            return self.matrix(measure).plot(ax=ax)
        return inline(heatmaps(list(self.matrices.values())))

    def description(self) -> Description:
        """What :meth:`summary`, ``repr`` and a notebook show: the networks, the layers, and each measure at
        full ranks."""
        info = self.report.info
        facts = {"networks": f"a {network_text(self.model_a)}, b {network_text(self.model_b)}"}
        if self.layers_a == self.layers_b:
            facts["layers"] = labels(self.layers_a) + " (of both)"
        else:
            facts.update({"layers of a": labels(self.layers_a), "layers of b": labels(self.layers_b)})
        notes = [
            f"activations as data matrices: policy {info.get('policy')}; ranks {info.get('model1', {}).get('ranks')} × "
            f"{info.get('model2', {}).get('ranks')} (None: full)",
            "one row per measure, layer pair and rank: .to_pandas()",
        ]
        return Description(
            f"ComparisonResult: {len(self.measures)} measures on {len(self.layers_a)} × {len(self.layers_b)} layer "
            f"pairs, {info.get('dataset')} ({info.get('n_samples')} test images)",
            facts,
            self.matrices,
            notes,
        )

    def to_dict(self) -> dict[str, Any]:
        return {"matrices": {k: m.to_dict() for k, m in self.matrices.items()}, **self.report.to_dict()}


def compare(
    model_a: Any,
    model_b: Any,
    layers: str | Sequence[str],
    data: Any,
    *,
    layers_b: str | Sequence[str] | None = None,
    settings: SimilaritySettings | None = None,
    model_options: dict[str, Any] | None = None,
    seed: int = 0,
    num_classes: int | None = None,
    **options: Any,
) -> ComparisonResult:
    """Similarity ``measures`` (default CKA, PWCCA, Procrustes) between the layers of two networks, on
    the first ``n_samples`` items of the data's test split (the original: the first 1000 test images).

    ``layers`` (names, comma-separated or ``"all"``) of ``model_a`` against ``layers_b`` (default: the
    same names) of ``model_b``: every pair (``all_pairs``, the default here) or i-th with i-th. Models and
    data as in :func:`stitch_grid` (a registered name is built seeded with ``seed``, the second with
    ``seed + 1``; ``model_options`` go to its builder or checkpoint loader).

    ``options`` are the fields of :class:`~stitchkit.similarity.settings.SimilaritySettings` (documented
    there: ``measures``, ``n_samples``, ``all_pairs``, ``ranks_x``, ``ranks_y``, ``policy``, ``low_rank_mode``,
    ``bootstrap`` / ``permutations`` / ``level`` / ``uncertainty_seed``, ``device``, ``batch_size``, ``workers``,
    ``cache_dir`` (named data only), ``progress``, ``data_root``, ``download``), applied to ``settings``
    (default: the record's defaults with ``all_pairs=True`` and a DataLoader's batch size).
    ``policy`` (default ``pool``) converts every cell of a matrix one way; ``auto_original`` (the original's
    positions or pooling by shape) mixes them, warns and is marked (:attr:`ComparisonResult.mixed_policies`).
    """
    check_types(compare, locals(), "stitchkit.compare")
    options = split_options(options, SimilaritySettings, "stitchkit.compare")
    check_types(SimilaritySettings, options, "stitchkit.compare")
    if settings is None:
        options.setdefault("all_pairs", True)  # a notebook sees whole matrices unless it asks for i-th with i-th
        batch = loader_batch_size(data)
        if batch is not None:
            options.setdefault("batch_size", batch)
    s = replace(settings or SimilaritySettings(), **options)
    check_seed(seed)
    splits = resolve_data(data, data_root=s.data_root, download=s.download, num_classes=num_classes)
    check_unnamed(splits, cache_dir=s.cache_dir)
    a = resolve_model(model_a, splits, seed=seed, model_options=model_options, role="model a")
    b = (
        a
        if same_source(model_a, model_b)
        else resolve_model(model_b, splits, seed=seed + 1, model_options=model_options, role="model b")
    )
    recorded = {"": a.dataset} if b is a else {"first": a.dataset, "second": b.dataset}
    provenance = note_provenance(recorded, splits.info.name if splits.named else None)
    layers_a = layered(a.model).resolve(layers)
    layers_b = layered(b.model).resolve(layers if layers_b is None else layers_b)
    key = sample_key(splits.info.name, s.data_root, "test", s.n_samples) if splits.named else None
    report = compare_models(a.model, b.model, layers_a, layers_b, splits.test, s, sample_key=key)
    report.info.update(dataset=splits.info.name, split="test", conventions=provenance)
    return ComparisonResult(report, layers_a, layers_b, a, b)


__all__ = ["ComparisonResult", "compare"]
