"""A stitching session: what every pair of a grid shares, as small pieces with explicit inputs.

* :class:`Computing` — the device, mixed precision, memory layout and the frozen donors as computed with;
* :class:`~.grid_data.GridData` and :class:`~.grid_data.GridBatches` — the fit and test subsets and the batches;
* :class:`~.fit_cache.FitActivations` — the fit set's activations, extracted once for every pair;
* :class:`~.shared_cache.DonorAccuracy` — the donors' accuracies (the persistent cache);

and the grid itself runs in one path (:func:`~.grid_run.run_grid`): a grid, grouped, or pair by pair
as groups of one (``StitchSettings(grouping="per-pair")``, ``--per-pair``, the reference).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, replace

import torch
from torch import nn

from ..activations.extract import ActivationCache
from ..data.provenance import note_provenance
from ..data.splits import DataSplits
from ..models.folding import fold_batchnorm
from ..utils.device import channels_last, resolve_device
from ..utils.io import ensure_writable_dir
from .donors import Donor, check_donors_fit, resolve_dataset, stitch_augmentation
from .fit_cache import FitActivations
from .grid_data import BatchOptions, GridBatches, grid_data
from .records import config_key
from .settings import StitchSettings
from .shared_cache import DonorAccuracy


@dataclass(frozen=True)
class Computing:
    """How a grid computes: the device, bf16 autocast (CUDA, while training), channels-last and the
    donors frozen, in eval mode, on the device, their BatchNorms folded (a copy; the same function)."""

    device: torch.device
    amp: bool
    channels_last: bool
    fold: bool
    front_model: nn.Module
    end_model: nn.Module


def computing(front: Donor, end: Donor, settings: StitchSettings, log: Callable[[str], None]) -> Computing:
    """Channels-last convolutions are faster on CPUs (oneDNN) and GPUs alike, and so are frozen donors
    with their BatchNorms folded into the convolutions: every model family is tested to compute the
    same function both ways (tests/test_models_zoo.py)."""
    s = settings
    device = resolve_device(s.device)
    amp = bool(s.amp and device.type == "cuda" and s.epochs > 0)
    if s.amp and not amp and s.epochs > 0:
        log("note: --amp applies on CUDA only; training in float32")
    fold = s.fold_batchnorm is not False

    def frozen(model: nn.Module) -> nn.Module:
        model = fold_batchnorm(model) if fold else model
        return model.requires_grad_(False).eval().to(device)

    front_model = frozen(front.model)
    end_model = front_model if end.model is front.model else frozen(end.model)
    return Computing(
        device, amp, True if s.channels_last is None else bool(s.channels_last), fold, front_model, end_model
    )


class GridSession:
    """Donors, data, device and caches shared by every pair of a grid (see the module docstring).
    ``settings`` is the grid's own copy (the sample counts used are recorded in it)."""

    def __init__(
        self,
        front: Donor,
        end: Donor,
        settings: StitchSettings,
        *,
        log: Callable[[str], None],
        data: DataSplits | None = None,
    ):
        s = self.settings = settings
        self.front, self.end, self.log = front, end, log
        # the data by name (settings.dataset, else the checkpoints'), unless given (e.g. datasets in memory)
        splits = (
            data
            if data is not None
            else DataSplits.from_name(resolve_dataset(s.dataset, front, end), root=s.data_root, download=s.download)
        )
        check_donors_fit(front, end, splits.info)
        # said once per grid, recorded with every pair (data in memory has no name to compare)
        recorded = {"": front.dataset} if end is front else {"front": front.dataset, "end": end.dataset}
        self.provenance = note_provenance(recorded, splits.info.name if splits.named else None)
        self.augmentation = stitch_augmentation(s.augment, front, end, splits.augments)
        if self.augmentation.note and s.epochs > 0:
            log(f"note: {self.augmentation.note}")
        self.compute = c = computing(front, end, s, log)
        self.data = grid_data(splits, s)
        options = BatchOptions(
            batch_size=s.batch_size,
            device=c.device,
            workers=s.workers,
            prefetch=s.prefetch,
            data_path=s.data_path,
            channels_last=c.channels_last,
        )
        self.batches = GridBatches(
            self.data, options, augment=self.augmentation.resolved.augment, train_samples=s.train_samples, seed=s.seed
        )
        self.fit_acts = FitActivations(lambda: self.batches.fit, options)
        self.remove_cache = False
        self.shared = ActivationCache(ensure_writable_dir(s.activation_cache)) if s.activation_cache else None
        self.donors = DonorAccuracy(self.shared, front, end, self.data.sample_keys["test"], self.data.n_test)
        self.key = config_key(front, end, self.data.info.name, self.naming_settings)
        self._layout = contextlib.ExitStack()  # closed by close(): the models go back to their layout
        self._layout.enter_context(channels_last(c.front_model, c.end_model, enabled=c.channels_last))

    @property
    def naming_settings(self) -> StitchSettings:
        """The settings as they act here (``amp`` only where it applies; the augmentation resolved, and
        ``"dataset"`` where the data has none to leave out), for run names and keys."""
        return replace(self.settings, amp=self.compute.amp, augment=self.augmentation.acting)

    @property
    def info(self):
        return self.data.info

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self.data.input_shape

    @property
    def device(self) -> torch.device:
        return self.compute.device

    @property
    def train_batches(self):
        return self.batches.train

    def close(self) -> None:
        self._layout.close()
        self.fit_acts.close(self.remove_cache)


__all__ = ["Computing", "GridSession", "computing"]
