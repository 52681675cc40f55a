"""What the report says about each of its sections: a title per unit kind and one sentence on what the
rows, columns and colours of its figures and tables mean (the colours are those of
:data:`stitchkit.results.plot.KIND_CMAPS`, the same in the API's figures)."""

from __future__ import annotations

from .findings import Thresholds

#: the section title of each unit kind
KIND_TITLES = {"train": "Base networks", "network": "Base networks", "stitch": "Stitching", "ood": "OOD test of stitched activations",
               "similarity": "Similarity indices", "probes": "Linear probes", "sensitivity": "Sensitivity test", "specificity": "Specificity test",
               "detectors": "OOD detectors"}


def kind_intro(kind: str, thresholds: Thresholds | None = None) -> str:
    """One sentence (plain text) on how to read a kind's figures and tables; empty for a kind without one.
    ``thresholds``: the study's (the OOD section names the sanity check's); the defaults without them."""
    sanity = thresholds.detector_sanity if thresholds is not None else Thresholds.defaults()["detector_sanity"]
    intros = {
        "base": "One row per network: its top-1 and top-5 accuracy on the study's test set, the seconds it took and the hash of its "
                "weights (what identifies it; its name only labels it).",
        "stitch": "Each heatmap is one stitch grid: rows are the front network's layers where it is cut, columns the end network's layers "
                  "where the stitched activations enter; the accuracy heatmaps run from dark purple (0) to yellow (1), the residuals from "
                  "yellow (small) to dark purple (large), and beside each accuracy heatmap its relative accuracy (the stitched accuracy "
                  "divided by the end network's own, as the findings use it): white is 1, blue below, red above; grey panels are the "
                  "widths of the confidence intervals.",
        "ood": "Rows are the stitches' front layers and columns their end layers; each AUROC heatmap tells how well a detector separates "
               "the stitched activations from the end network's genuine ones, on one colour scale everywhere (as in the API's "
               "ood.plot()): dark purple is 1 (flagged OOD), teal 0.5 (indistinguishable), yellow 0; the norm ratio is white at 1, red "
               "above, blue below; in the sanity-check table a red row is a detector that fails its check there (AUROC below "
               f"detector_sanity = {sanity:g}), so the findings do not use it on that layer.",
        "similarity": "Rows are the first network's layers and columns the second's; colour is the index's value with yellow always "
                      "meaning more alike (a distance's scale is reversed); the grey panel is the width of each cell's confidence "
                      "interval, and × marks a cell not above the permutation null.",
        "probes": "Rows are layers and columns the probe's rank (full: no low-rank bottleneck); colour is the linear probe's test accuracy, "
                  "from dark purple (0) to yellow (1).",
        "sensitivity": "Each panel is one measure: a dot is a pair of representations, placed by the measure's dissimilarity (x) and "
                       "their difference in probe accuracy (y), one colour per network group; a measure that tracks function rises "
                       "from left to right (Spearman ρ and Kendall τ high, few bad pairs); the table gives these per measure, pooled "
                       "and as the mean over references.",
        "specificity": "As in the sensitivity test, one panel per measure and one dot per pair of layers (x: the measure's "
                       "dissimilarity, y: the difference in probe accuracy); the table gives the rank correlations per measure.",
        "units": "One row per kind of unit: how many are done, failed and left, and the seconds they took.",
    }
    return intros.get(kind, "")
