"""The sections every study config has, whatever unit kinds it runs: ``[study]``, ``[networks]`` and
``[layers]`` first, ``[uncertainty]`` and ``[findings]`` last (each unit kind's own section sits
between them, declared in its module; :data:`stitchkit.study.config.SCHEMA` puts them together).
"""

from __future__ import annotations

from ..choices import ALL_LAYERS, DATA_PATHS, LAYER_REQUESTS, OPTIMIZERS
from ..uncertainty.bootstrap import DEFAULT_LEVEL, DEFAULT_RESAMPLES
from .config_checks import SEED_RANGE, seed_in_range
from .config_keys import COUNT, Key, below_one, non_negative, positive, probability, schedule_keys, unit_fraction

#: the sections every study has, listed first (the unit kinds' own sections follow, :class:`Schema`)
LEADING_SECTIONS: dict[str, dict[str, Key]] = {
    "study": {
        "name": Key(str, "study", "a name for the study (used in the report)"),
        "dataset": Key(
            str,
            "fashion",
            "dataset of every network and method; also your own data: folder:PATH or npz:PATH (optionally @HxW)",
        ),
        "data_root": Key((str, type(None)), None, "data root (default $STITCHKIT_DATA or ./data)"),
        "device": Key(str, "auto", "auto, cpu, cuda, cuda:N"),
        "seed": Key(
            int,
            0,
            "seed of everything that is not a network seed",
            check=seed_in_range,
            check_text=f"must be in {SEED_RANGE}",
        ),
        "workers": Key(int, 0, "data loader workers inside a unit", check=non_negative, check_text="must be ≥ 0"),
        "data_path": Key(
            str,
            "auto",
            "how batches are made: auto, device (images kept on the device, augmented there in batches) or loader "
            "(a DataLoader); the same batches either way",
            choices=DATA_PATHS,
        ),
        "group_size": Key(
            (int, type(None)),
            None,
            "stitches per end-suffix pass of a grouped grid (default: what the memory holds)",
            check=lambda v: v is None or v >= 1,
            check_text="must be ≥ 1",
        ),
    },
    "networks": {
        "model": Key(str, "resnet18", "architecture to train (ignored when checkpoints are given)"),
        "options": Key(dict, {}, "architecture options, e.g. { width = 8 }"),
        "seeds": Key(list, [0, 1, 2], "one network is trained per seed"),
        "checkpoints": Key(list, [], "use these checkpoints instead of training (paths)"),
        "names": Key(
            list,
            [],
            "the networks' names in labels, figures and file names, one per network (per seed, or per checkpoint) in "
            "order; letters, digits and . _ + = - (default: the checkpoints' run folders, e.g. fm_r18_s0, or the "
            "model and seed); names only label: renaming recomputes nothing",
        ),
        "allow_other_dataset": Key(
            bool,
            False,
            "use checkpoints that record a dataset other than study.dataset (refused by default: their "
            "results would describe them on data they were not trained on; recorded with each result when allowed)",
        ),
        "weights": Key(
            (str, type(None)),
            None,
            "local pretrained weights (a state_dict file) a torchvision:/timm: model starts from, "
            "instead of a download (the same as options.weights; paths relative to the working folder)",
        ),
        "epochs": Key(int, 3, "training epochs", check=positive, check_text="must be ≥ 1"),
        "batch_size": Key(int, 128, "training batch size", check=positive, check_text="must be ≥ 1"),
        "lr": Key((int, float), 2e-3, "learning rate", check=positive, check_text="must be > 0"),
        "optimizer": Key(str, "adam", "optimizer", choices=OPTIMIZERS),
        "weight_decay": Key((int, float), 1e-5, "weight decay", check=non_negative, check_text="must be ≥ 0"),
        "momentum": Key((int, float), 0.0, "SGD momentum", check=below_one, check_text="must be in [0, 1)"),
        **schedule_keys("the networks' training", "constant, or ×0.1 at the milestones when given"),
        "milestones": Key(list, [], "multistep LR milestones (epochs)"),
        "augment": Key(
            bool,
            True,
            "use the dataset's training augmentation (recorded in the checkpoint; what trains through the network "
            "follows it by default: stitching.augment, ood.augment, probes.augment)",
        ),
        "train_subset": Key((int, type(None)), None, "train on a fixed random subset of this many images", **COUNT),
    },
    "layers": {
        "front": Key((str, list), ALL_LAYERS, f"front (source) layers: {LAYER_REQUESTS}"),
        "end": Key((str, list), ALL_LAYERS, f"end (target) layers: {LAYER_REQUESTS}"),
    },
}

#: the sections every study has, listed last
TRAILING_SECTIONS: dict[str, dict[str, Key]] = {
    # How sure each number is (issue 19). Intervals of the stitch, OOD and probe matrices and the verdicts'
    # robustness are computed at report time from the per-sample statistics the units always store, so
    # these keys are not part of those units' identities (switching them on re-runs none of them); the
    # similarity units compute their intervals and nulls themselves, so there they are (only when non-zero).
    # The sensitivity and specificity tests keep their indices' values on the first min(verdict_resamples,
    # similarity_bootstrap) verdict resamples (seed), passed through the unit context (not their identity), for
    # C6's robustness.
    "uncertainty": {
        "bootstrap": Key(
            int,
            DEFAULT_RESAMPLES,
            "bootstrap resamples of the test images behind each interval (0: no intervals); percentile "
            "intervals, the same resampled images for every cell of a grid and every unit on the same images",
            check=non_negative,
            check_text="must be ≥ 0",
        ),
        "similarity_bootstrap": Key(
            int,
            50,
            "bootstrap resamples of the similarity indices (0: none): each resample refits the index "
            "(an SVD per resample and layer pair for PWCCA and Procrustes), hence fewer than `bootstrap` by default; "
            "the similarity units run again when it changes",
            check=non_negative,
            check_text="must be ≥ 0",
        ),
        "permutations": Key(
            int,
            50,
            "permutations of the sample correspondence giving each similarity index's null distribution and "
            "p-value (0: none; the smallest p-value is 1/(permutations + 1))",
            check=non_negative,
            check_text="must be ≥ 0",
        ),
        "level": Key(
            float,
            DEFAULT_LEVEL,
            "confidence level of the intervals",
            check=lambda v: 0 < v < 1,
            check_text="must be in (0, 1)",
        ),
        "seed": Key(
            int,
            0,
            "seed of the resamples and permutations (recorded with every interval)",
            check=seed_in_range,
            check_text=f"must be in {SEED_RANGE}",
        ),
        "verdict_resamples": Key(
            int,
            200,
            "bootstrap resamples on which each finding's verdict is recomputed to say how often it comes out "
            "the same (0: not measured); a verdict holding in fewer than 90% of them is marked fragile",
            check=non_negative,
            check_text="must be ≥ 0",
        ),
    },
    # The thresholds of the report's findings (see stitchkit.study.findings). They are read from the stored
    # results only: no unit depends on them, so changing them recomputes nothing but the findings. Each help
    # text is the rationale the report prints beside the value.
    "findings": {
        "match": Key(
            (int, float),
            0.90,
            "\"reproduces the end network's accuracy\" = at least this fraction of the end network's own accuracy "
            "(relative, so that it means the same for an 85% and a 95% network)",
            check=unit_fraction,
            check_text="must be in (0, 1]",
        ),
        "high": Key(
            (int, float),
            0.90,
            '"rated highly similar" by a stitching method = at least this fraction of the end network\'s accuracy '
            "(the same relative criterion)",
            check=unit_fraction,
            check_text="must be in (0, 1]",
        ),
        "most": Key(
            (int, float),
            0.75,
            '"on the corresponding layers" / "for most layers" = at least this fraction of the layers (allows the '
            "first block or two to fail, as the paper's own figures show for the earliest layers)",
            check=unit_fraction,
            check_text="must be in (0, 1]",
        ),
        "often": Key(
            (int, float),
            0.5,
            '"often" = at least this fraction of the cases',
            check=unit_fraction,
            check_text="must be in (0, 1]",
        ),
        "near": Key(
            int,
            1,
            '"near the corresponding layer" = at most this many layer indices away',
            check=non_negative,
            check_text="must be ≥ 0",
        ),
        "tie": Key(
            (int, float),
            0.005,
            "two relative accuracies within this (absolute difference) are a tie, counted in favour of the "
            "corresponding layer",
            check=non_negative,
            check_text="must be ≥ 0",
        ),
        "far": Key(
            (int, float),
            0.5,
            '"distant late → early pairs" = front index − end index ≥ ceil(far · n) for n layers',
            check=unit_fraction,
            check_text="must be in (0, 1]",
        ),
        "ood_auroc": Key(
            (int, float),
            0.75,
            '"flagged OOD" = detector AUROC ≥ this (clearly separable, far above 0.5)',
            check=probability,
            check_text="must be in [0, 1]",
        ),
        "id_auroc": Key(
            (int, float),
            0.65,
            '"in-distribution" = detector AUROC ≤ this (close to chance); between id_auroc and ood_auroc is neither',
            check=probability,
            check_text="must be in [0, 1]",
        ),
        "detector_sanity": Key(
            (int, float),
            0.90,
            "a layer's detector is used only if its sanity-check AUROC (genuine test activations vs the sanity set) "
            "is at least this",
            check=probability,
            check_text="must be in [0, 1]",
        ),
        "alpha": Key(
            (int, float),
            0.05,
            "significance level of the one-sided rank correlations of the sensitivity and specificity tests",
            check=lambda v: 0 < v < 1,
            check_text="must be in (0, 1)",
        ),
        "rho_tolerance": Key(
            (int, float),
            0.05,
            'C6: direct matching tracks functional differences "at least as well as" the indices when, in '
            "each test, its Spearman ρ is not below the HIGHEST index ρ by more than this (a smaller gap is within "
            "the noise of a rank correlation)",
            check=non_negative,
            check_text="must be ≥ 0",
        ),
        "detector_support": Key(
            (int, float),
            0.5,
            "C5's overall verdict: supported when MORE than this fraction of the detectors that can test the "
            "claim support it, not supported otherwise (0.5: a strict majority; a tie does not support). A detector "
            "can test it when it passes its sanity check (AUROC ≥ detector_sanity) on some end layer of both OOD "
            "tests and those layers have accurate TLM and matching DM stitches; each such detector's own verdict is "
            "reported beside the overall one",
            check=below_one,
            check_text="must be in [0, 1)",
        ),
        "pair_support": Key(
            (int, float),
            0.5,
            "with several network pairs (or self-pairs for C4) a claim is supported when it holds for MORE than "
            "this fraction of the pairs on which it is testable (0.5: a strict majority), not supported otherwise; "
            "the verdict "
            'says "holds for k of n pairs" with each pair\'s numbers. One pair decides alone',
            check=below_one,
            check_text="must be in [0, 1)",
        ),
    },
}
