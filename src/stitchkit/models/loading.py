"""Models from checkpoints: build the architecture a checkpoint describes (or a named one) and load its
weights (:func:`load_model`), and the one check that a model fits a dataset (:func:`load_for_dataset`,
:func:`check_fits_dataset`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from ..data import DatasetInfo, dataset_info
from ..errors import StitchkitError
from .checkpoint import Checkpoint, load_checkpoint, load_state_into
from .registry import build_from_spec, get_model

#: model types that mean "read the architecture from the (self-describing) checkpoint"
AUTO_MODEL_TYPES = (None, "", "-", "auto")


def requested_model_type(model_type: str | None) -> str | None:
    """The architecture asked for, or None for "as the checkpoint says" (:data:`AUTO_MODEL_TYPES`)."""
    return None if model_type in AUTO_MODEL_TYPES else model_type


def load_model(
    path: str | Path,
    model_name: str | None = None,
    *,
    num_classes: int | None = None,
    in_channels: int | None = None,
    input_size: int | tuple[int, int] | None = None,
    dataset: str | None = None,
    **options: Any,
) -> tuple[nn.Module, Checkpoint]:
    """Build the model a checkpoint describes (or ``model_name``) and load its weights.

    For a bare state_dict without a run config, the architecture must be named; the class count,
    channels and input size then come from ``dataset`` (default: the original's ``cifar10``).
    """
    ckpt = load_checkpoint(path)
    if ckpt.self_describing and (model_name is None or model_name == ckpt.model_spec.get("name")):
        spec = dict(ckpt.model_spec)
        if options:
            spec["options"] = {**spec.get("options", {}), **options}
        model = build_from_spec(spec)
    else:
        if model_name is None:
            raise StitchkitError(
                f"{str(path)!r} is a plain state_dict that does not say which architecture it holds; "
                "give the model name too (e.g. `stitchkit eval model_5.pt resnet18 -d cifar10`)"
            )
        if num_classes is None or in_channels is None or input_size is None:
            info = dataset_info(dataset or ckpt.dataset or "cifar10")
            num_classes = num_classes if num_classes is not None else info.num_classes
            in_channels = in_channels if in_channels is not None else info.shape[0]
            input_size = input_size if input_size is not None else tuple(info.shape[1:])
        model = get_model(
            model_name, num_classes=num_classes, in_channels=in_channels, input_size=input_size, **options
        )
    load_state_into(model, ckpt.state_dict, source=f"checkpoint {str(path)!r}")
    # The training record travels with the model (like stitchkit_spec), so that whatever later trains
    # on images fed through it can follow its augmentation (stitchkit.data.augmentation).
    model.stitchkit_augment = ckpt.augment
    return model, ckpt


def recorded_augmentation(model: nn.Module) -> bool | None:
    """Whether ``model`` was trained with its dataset's default augmentation, as the checkpoint it was
    loaded from records (None: it records nothing, or the model was not loaded by :func:`load_model`)."""
    value = getattr(model, "stitchkit_augment", None)
    return value if isinstance(value, bool) else None


def check_model_type(path: str | Path, model_type: str | None) -> None:
    """Refuse an architecture name that differs from the one a self-describing checkpoint records."""
    wanted = requested_model_type(model_type)
    if wanted is None:
        return
    described = (load_checkpoint(path).model_spec or {}).get("name")
    if described is not None and described != wanted:
        raise StitchkitError(
            f"checkpoint {str(path)!r} holds a {described}, not a {wanted}; give its type as {described!r} or '-' "
            "(a stitchkit checkpoint describes itself)"
        )


def check_fits_dataset(model: nn.Module, info: DatasetInfo) -> None:
    """Refuse a model whose input channels or class count differ from the dataset's."""
    spec = getattr(model, "stitchkit_spec", None) or {}
    if spec.get("num_classes") not in (None, info.num_classes) or spec.get("in_channels") not in (None, info.shape[0]):
        raise StitchkitError(
            f"model {spec.get('name')} takes {spec.get('in_channels')}-channel inputs with {spec.get('num_classes')} "
            f"classes, "
            f"but dataset {info.name} has {info.shape[0]} channels and {info.num_classes} classes; pass the dataset "
            f"it was trained on (-d)"
        )


def load_for_dataset(
    path: str | Path,
    model_type: str | None = None,
    *,
    dataset: str | None = None,
    model_options: dict[str, Any] | None = None,
) -> tuple[nn.Module, Checkpoint, DatasetInfo]:
    """Load a checkpoint (``model_type`` None/""/"-"/"auto": as it describes itself) for ``dataset``
    (default: the checkpoint's, else the original's ``cifar10``) and check that it fits that dataset.
    Returns the model, the checkpoint and the dataset's info."""
    model, ckpt = load_model(path, requested_model_type(model_type), dataset=dataset, **(model_options or {}))
    info = dataset_info(dataset or ckpt.dataset or "cifar10")
    check_fits_dataset(model, info)
    return model, ckpt, info
