"""What the Python API's functions take, resolved once into what the library runs on.

* **models** (:func:`resolve_model`): an ``nn.Module`` (any model that ``torch.fx`` can trace), a
  checkpoint path (a stitchkit checkpoint describes itself), or a registered model name (``resnet18``,
  ``torchvision:resnet18``, ``timm:…``; ``stitchkit models`` lists them), built untrained for the data's
  channels, classes and image size with ``model_options`` and a seed;
* **data** (:func:`resolve_data`): a dataset name (``fashion``, ``digits``, ``folder:PATH``, …), a torch
  ``Dataset`` or a ``DataLoader`` (used for everything), a pair ``(train, test)``, or a dict with ``train``,
  ``test`` and optionally ``train_augmented``, all giving one :class:`~stitchkit.data.splits.DataSplits`.
  A DataLoader stands for its dataset: stitchkit makes its own batches (seeded subsets, shuffling, the
  device path), taking the loader's batch size unless one is given (:func:`loader_batch_size`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from ..data.splits import DataSplits, as_dataset
from ..errors import StitchkitError, warn
from ..models import get_model, is_known_model
from ..models.outputs import logits_of
from ..stitching.donors import Donor, load_donor

#: what ``data`` may be, for the error message
DATA_FORMS = "a dataset name, a torch Dataset, a DataLoader, a pair (train, test) or a dict with 'train' and 'test'"


def resolve_data(
    data: Any, *, data_root: str | None = None, download: bool = True, num_classes: int | None = None
) -> DataSplits:
    """``data`` as :class:`DataSplits` (module docstring)."""
    if isinstance(data, DataSplits):
        return data
    if isinstance(data, (str, os.PathLike)):
        return DataSplits.from_name(str(data), root=data_root, download=download)
    if data is None:
        raise StitchkitError(f"no data: give {DATA_FORMS}")
    if isinstance(data, Mapping):
        unknown = sorted(set(data) - {"train", "test", "train_augmented"})
        if unknown or "train" not in data:
            raise StitchkitError(
                f"a data dict takes the keys 'train', 'test' and 'train_augmented' (train required); got "
                f"{', '.join(map(str, data))}"
            )
        return DataSplits.from_datasets(
            data["train"], data.get("test"), train_augmented=data.get("train_augmented"), num_classes=num_classes
        )
    if isinstance(data, (tuple, list)):
        if len(data) != 2:
            raise StitchkitError(f"data as a sequence is a pair (train, test); got {len(data)} items")
        return DataSplits.from_datasets(data[0], data[1], num_classes=num_classes)
    return DataSplits.from_datasets(as_dataset(data, "data"), num_classes=num_classes)


def network_text(donor: Donor) -> str:
    """A network as results describe it: its checkpoint path (else its model type) and the first
    characters of its content hash, e.g. ``runs/fm_s0/final.pt (3f2a9c1e)``."""
    return f"{donor.path or donor.model_type} ({str(donor.fingerprint)[:8]})"


def loader_batch_size(data: Any) -> int | None:
    """The batch size of a DataLoader given as data (the default batch size then), else None."""
    loaders = (
        list(data.values()) if isinstance(data, Mapping) else list(data) if isinstance(data, (tuple, list)) else [data]
    )
    sizes = [d.batch_size for d in loaders if isinstance(d, DataLoader) and isinstance(d.batch_size, int)]
    return sizes[0] if sizes else None


def resolve_model(
    source: Any, data: DataSplits, *, seed: int = 0, model_options: Mapping[str, Any] | None = None, role: str = "model"
) -> Donor:
    """A :class:`~stitchkit.stitching.donors.Donor` (the model with its content hash) from a module, a
    checkpoint path or a registered name (built untrained, its initialisation seeded with ``seed``)."""
    if isinstance(source, (Donor, nn.Module)):
        _check_weights(source.model if isinstance(source, Donor) else source, role)
        donor = load_donor(source)
    elif isinstance(source, (str, os.PathLike)) and Path(source).is_file():
        donor = load_donor(
            source, dataset=data.info.name if data.named else None, model_options=dict(model_options or {})
        )
    elif isinstance(source, str) and is_known_model(source):
        info = data.info
        if len(info.shape) != 3:
            raise StitchkitError(
                f"a registered model is built for images (C, H, W), but the {role}'s data has items of shape "
                f"{info.shape}"
            )
        with torch.random.fork_rng(devices=[]):  # a seeded initialisation that leaves the caller's random state alone
            torch.manual_seed(seed)
            model = get_model(
                source,
                num_classes=info.num_classes,
                in_channels=info.shape[0],
                input_size=tuple(info.shape[1:]),
                **dict(model_options or {}),
            )
        donor = load_donor(model.eval())
    else:
        raise StitchkitError(
            f"the {role} {source!r} is neither an nn.Module, nor a checkpoint file, nor a registered model name "
            "(`stitchkit models` lists them)"
        )
    _check_fits(donor, data, role)
    _check_runs(donor, data, role)
    return donor


def _check_weights(model: nn.Module, role: str) -> None:
    """A model built on the meta device (``torch.device("meta")``, ``init_empty_weights``, a lazy
    loader) has shapes but no numbers; nothing could be computed from it."""
    meta = next((name for name, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta), None)
    if meta is not None:
        raise StitchkitError(
            f"the {role} model has no weights: it is on the meta device ({meta} and others hold no values); "
            "load its weights first, e.g. model.to_empty(device='cpu') then model.load_state_dict(...)"
        )


def _check_fits(donor: Donor, data: DataSplits, role: str) -> None:
    """A model that describes itself must take the data's channels and give its classes (data in memory,
    whose class count is read from its labels, may lack the last classes); a model built for another
    image size runs on the data's, but is said to."""
    spec = getattr(donor.model, "stitchkit_spec", None) or {}
    channels, classes = spec.get("in_channels"), spec.get("num_classes")
    if channels is not None and len(data.info.shape) == 3 and channels != data.info.shape[0]:
        raise StitchkitError(
            f"the {role} model takes {channels}-channel inputs but the data ({data.info.name}) has "
            f"{data.info.shape[0]} channels"
        )
    size = spec.get("input_size")
    if size is not None and len(data.info.shape) == 3 and tuple(size) != tuple(data.info.shape[1:]):
        warn(
            f"the {role} model was built for {size[0]}×{size[1]} images but the data ({data.info.name}) has "
            f"{data.info.shape[1]}×{data.info.shape[2]}; it runs on them, on inputs of a size it was not made for"
        )
    if classes is not None and (
        classes < data.info.num_classes if not data.named else classes != data.info.num_classes
    ):
        raise StitchkitError(
            f"the {role} model has {classes} classes but the data ({data.info.name}) has {data.info.num_classes}"
        )


def _check_runs(donor: Donor, data: DataSplits, role: str) -> None:
    """Run the model on one test item, so that data it cannot take (wrong channels or size for a plain
    module, which states neither) is one clear error here rather than a traceback deep inside a run."""
    x = data.test[0][0]  # an (image tensor, label) pair: named data gives them, data in memory is checked (data.items)
    model = donor.model
    parameter = next(model.parameters(), None)
    was_training = model.training
    try:
        with torch.no_grad():
            model.eval()  # eval: a trial forward must not move batch-norm statistics
            out = logits_of(
                model(x.unsqueeze(0).to(parameter.device if parameter is not None else "cpu"))
            )  # ModelOutput: .logits
    except StitchkitError:
        raise
    except Exception as exc:  # any failure of the user's forward: report its first line, not the traceback
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise StitchkitError(
            f"the {role} model cannot run on the data's items of shape {tuple(x.shape)} ({data.info.name}): {message}"
        ) from None
    finally:
        model.train(was_training)
    if not isinstance(out, torch.Tensor) or out.dim() != 2:
        raise StitchkitError(
            f"the {role} model must return logits of shape (batch, classes); it returned {type(out).__name__}"
            f"{' of shape ' + str(tuple(out.shape)) if isinstance(out, torch.Tensor) else ''}"
        )
    if out.shape[1] < data.info.num_classes:
        raise StitchkitError(
            f"the {role} model gives {out.shape[1]} logits but the data ({data.info.name}) has "
            f"{data.info.num_classes} classes"
        )


def with_model_classes(data: DataSplits, *donors: Donor) -> DataSplits:
    """Data in memory takes the class count of the models that state one (its labels may not show the
    last classes); named data keeps its own."""
    stated = {(getattr(d.model, "stitchkit_spec", None) or {}).get("num_classes") for d in donors} - {None}
    if data.named or not stated or stated == {data.info.num_classes}:
        return data
    return data.with_num_classes(max(stated))


def same_source(front: Any, end: Any) -> bool:
    """One network on both sides: the same object, or the same checkpoint file (a name builds two)."""
    if isinstance(front, (nn.Module, Donor)):
        return end is front
    if isinstance(front, (str, os.PathLike)) and isinstance(end, (str, os.PathLike)) and Path(front).is_file():
        return Path(end).is_file() and Path(front).resolve() == Path(end).resolve()
    return False


@dataclass(frozen=True, kw_only=True)
class InputOptions:
    """How a function of the Python API turns its model and data arguments into networks and splits
    (:func:`resolve_model`, :func:`resolve_data`)."""

    model_options: dict[str, Any] | None = None  # keywords of a registered model's builder or checkpoint loader
    num_classes: int | None = None  # the classes of data given as datasets (None: from their labels)


def split_options(
    options: Mapping[str, Any], record: type | tuple[type, ...], what: str, *, refused: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """``options`` checked against the fields of the dataclass ``record`` (or of several records: the
    function sorts them out; one clear error for an unknown name, or for one the function sets itself:
    ``refused`` maps it to the reason)."""
    for name, reason in (refused or {}).items():
        if name in options:
            raise StitchkitError(f"{what} does not take {name}=: {reason}")
    records = record if isinstance(record, tuple) else (record,)
    known = {f.name for r in records for f in fields(r)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise StitchkitError(
            f"unknown option {unknown[0]!r} of {what}; known options: {', '.join(sorted(known - set(refused or {})))}"
        )
    return dict(options)


__all__ = [
    "DATA_FORMS",
    "InputOptions",
    "loader_batch_size",
    "network_text",
    "resolve_data",
    "resolve_model",
    "same_source",
    "split_options",
    "with_model_classes",
]
