"""The names the library's options accept, in one module that imports nothing heavy (only :mod:`.errors`
and :mod:`.declarations`).

The command line offers these as choices and lists them in ``--help`` without importing torch (the
modules that implement them do), so each list lives here once and the implementing modules import it.
``tests/test_cli_startup.py`` checks that every implementation knows exactly these names. Similarity
measures, OOD detectors and stitching-layer types are not listed here: each is declared where it is
defined (:mod:`stitchkit.declarations`), and their names are read from those declarations.
"""

from __future__ import annotations

from .declarations import names

# --------------------------------------------------------------------------------------------------
# training (stitchkit.training.optim)

OPTIMIZERS = ("adam", "adamw", "sgd")

SCHEDULERS = {
    "none": "constant learning rate (with -rlre: ×gamma at those epochs, like the original)",
    "multistep": "×gamma at each epoch listed in -rlre/--milestones",
    "step": "×gamma every --step-size epochs (the ImageNet recipe: 30)",
    "cosine": "cosine decay to 0 over the run",
    "linear": "linear decay to 0 over the run",
    "onecycle": "per-step only: cosine rise from lr/25 to lr over the warm-up steps, then cosine decay to ~0 (the "
    "one-cycle policy)",
}
#: when an LR schedule advances (stitchkit.training.optim.OptimConfig.schedule_unit)
SCHEDULE_UNITS = {
    "epoch": "after every epoch (the original's; warm-up with --warmup-epochs)",
    "step": "after every optimizer step, over epochs × batches steps (warm-up over --warmup-fraction of them)",
}
#: the LR schedule's options, as every settings class and study section that trains names them
SCHEDULE_KEYS = ("scheduler", "schedule_unit", "warmup_fraction")

# --------------------------------------------------------------------------------------------------
# cutting models into layers (stitchkit.models.layers.layered)

#: how a model is cut: ``auto`` traces it with torch.fx and falls back to forward hooks when tracing
#: fails (with a warning); ``fx`` and ``hooks`` force one way (stitchkit.models.hooks)
CUT_METHODS = ("auto", "fx", "hooks")

# --------------------------------------------------------------------------------------------------
# augmentation of what trains on images fed through a trained network (stitchkit.data.augmentation):
# task loss matching, detector pre-training and the ID half of its fine-tuning, probes

AUGMENTATIONS = {
    "network": "what the network's checkpoint records (the dataset's default when it records nothing; "
    "task loss matching follows the end network)",
    "dataset": "the dataset's default training augmentation",
    "none": "no augmentation",
}
DEFAULT_AUGMENTATION = "network"

# --------------------------------------------------------------------------------------------------
# layer requests (stitchkit.models.layers.LayeredModel.resolve): wherever layers are asked for

#: every stitchable layer that is a feature of its own, in forward order (the default)
ALL_LAYERS = "all"
#: every stitchable layer, also those that are not features (an activation alone, dropout, the logits)
EVERY_LAYER = "every"
#: the layer requests in words (help texts)
LAYER_REQUESTS = (
    f"{ALL_LAYERS} (the feature layers), {EVERY_LAYER} (also an activation alone, dropout and the logits), "
    "or a list of names"
)

# --------------------------------------------------------------------------------------------------
# stitching (stitchkit.stitching.layers, .stitcher, .collect)

UPSAMPLE_MODES = ("bilinear", "nearest")
C2T_CLS_MODES = (None, "pool", "learn")
T2C_CLS_MODES = (None, "drop", "add", "only")
#: matrices built by ``stitchkit collect``
COLLECT_METRICS = ("accuracy", "residual", "residual_batch_mean", "fit_residual")
#: initialisations of a stitching layer (pinv = direct matching)
INITS = ("rand", "eye", "pinv")
#: how a grid trains and evaluates its pairs: all at once sharing every batch, or one after the other
GROUPINGS = ("grouped", "per-pair")
# (the stitching methods and the direct-matching solvers: stitchkit.stitch_methods)

# --------------------------------------------------------------------------------------------------
# data (stitchkit.data.loading)

#: how batches are made: auto (the device path where it reproduces the loader), device, loader
DATA_PATHS = ("auto", "device", "loader")

# --------------------------------------------------------------------------------------------------
# OOD detection (stitchkit.ood)

DEFAULT_DETECTOR_DIR = "./models/repr_cls_ood_detectors"
POSITIVE_CLASSES = {
    "id": "in-distribution samples are positives, scored by −(outlier score) (the original's convention)",
    "ood": "OOD samples are positives, scored by the outlier score (OpenOOD / pytorch-ood convention)",
}
FPR_RULES = {
    "closest": "the threshold whose TPR is closest to the level (the original's rule; ties to the higher TPR)",
    "at_least": "the highest threshold whose TPR reaches the level",
}
OOD_SCORES = {
    "energy": "CE + energy_weight·(mean relu(E_in − m_in)² + mean relu(m_out − E_out)²) (Liu et al. 2020)",
    "OE": "CE + oe_weight·CE(outliers, uniform) (outlier exposure, Hendrycks et al. 2019)",
}

# --------------------------------------------------------------------------------------------------
# similarity, probes, sensitivity (stitchkit.similarity, .probing, .sensitivity)

#: how activations become data matrices; ``auto_original`` mixes positions and pooling as the original did
POLICIES = ("flatten", "positions", "pool", "cls", "auto_original")
#: the policy of every similarity grid (``stitchkit similarity``, :func:`stitchkit.compare`, the study's
#: similarity, sensitivity and specificity units): one conversion for every cell of a matrix. The original's
#: ``auto_original`` computes same-shape pairs over spatial positions and other pairs over pooled channels,
#: so one matrix mixes two computations; it stays available by name (and single pairs, ``similarity.compute``,
#: keep it as their default, for parity with the original)
DEFAULT_POLICY = "pool"
#: the similarity command's measures (the original script's three)
DEFAULT_SIMILARITY_MEASURES = ("cka", "pwcca", "procrustes")
#: the measures the sensitivity and specificity tests rank by default
DEFAULT_GROUNDING_MEASURES = ("cka", "pwcca", "procrustes", "dm_residual")
# (low-rank modes: stitchkit.ranks, the torch-free home of everything about ranks)
TOKEN_POOLS = ("cls", "mean")


def array_measures() -> list[str]:
    """The declared measures computed from activation arrays (what ``stitchkit similarity`` offers)."""
    return list(names("measure", requires_models=False))
