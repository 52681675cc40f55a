"""Self-describing checkpoints, and loading of the original's plain state_dict files.

A stitchkit checkpoint is a dict of plain data and tensors::

    {"stitchkit_checkpoint": 1, "stitchkit_version": "...", "model": {name, num_classes, in_channels,
     input_size, options}, "dataset": "fashion", "input_shape": [1, 28, 28], "training": {...},
     "epoch": 5, "metrics": {...}, "state_dict": {...}, optional "optimizer"/"scheduler"/"scaler"}

so later commands need only its path. Files are always read with ``torch.load(weights_only=True)``:
users load checkpoints they did not make, and a pickle can execute arbitrary code. A file that would
need full unpickling is refused with an explanation instead.

Bare ``state_dict`` files (the original's ``model_<epoch>.pt``, and ours, which we keep readable by the
original's loaders) load when the model is named, or when a stitchkit ``config.json`` beside the file
describes it.
"""

from __future__ import annotations

import json
import pickle
import re
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .. import __version__
from ..data.augmentation import recorded_augment
from ..errors import StitchkitError
from ..utils.io import torch_save_atomic

FORMAT_VERSION = 1
RUN_CONFIG = "config.json"  # written by `stitchkit train` into its output folder
#: the training states a checkpoint may keep to resume from (:attr:`Checkpoint.extra`)
RESUME_STATES = ("optimizer", "scheduler", "scaler")


@dataclass
class Checkpoint:
    """What a checkpoint file holds; ``model_spec`` is None for a bare state_dict."""

    path: Path
    state_dict: dict[str, torch.Tensor]
    model_spec: dict[str, Any] | None = None
    dataset: str | None = None
    input_shape: tuple[int, ...] | None = None
    training: dict[str, Any] = field(default_factory=dict)
    epoch: int | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)  # optimizer / scheduler / scaler states

    @property
    def self_describing(self) -> bool:
        return self.model_spec is not None

    @property
    def augment(self) -> bool | None:
        """Whether the network was trained with its dataset's default augmentation, as the training
        record says (None: it says nothing, e.g. a plain state_dict)."""
        return recorded_augment(self.training)


def plain_data(obj: Any) -> Any:
    """JSON-like data only (what weights-only loading accepts besides tensors)."""
    if isinstance(obj, Mapping):
        return {str(k): plain_data(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain_data(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, (str, int, float, bool)) or obj is None or isinstance(obj, torch.Tensor):
        return obj
    if hasattr(obj, "item") and callable(obj.item):  # numpy scalars
        return obj.item()
    return str(obj)


def unwrap(model: nn.Module) -> nn.Module:
    """The model inside DistributedDataParallel / DataParallel / torch.compile wrappers."""
    while True:
        if isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
            model = model.module
        elif hasattr(model, "_orig_mod"):
            model = model._orig_mod
        else:
            return model


def plain_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The state_dict without wrapper prefixes, on the CPU."""
    return {k: v.detach().cpu() for k, v in unwrap(model).state_dict().items()}


def save_checkpoint(
    path: str | Path,
    model: nn.Module,
    *,
    dataset: str | None = None,
    input_shape: tuple[int, ...] | None = None,
    training: Mapping[str, Any] | None = None,
    epoch: int | None = None,
    metrics: Mapping[str, Any] | None = None,
    resume: Mapping[str, Any] | None = None,
) -> Path:
    """Write a self-describing checkpoint atomically. ``resume`` maps any of :data:`RESUME_STATES`
    (``optimizer``, ``scheduler``, ``scaler``) to the object whose ``state_dict()`` is kept to resume from."""
    unknown = sorted(set(resume or {}) - set(RESUME_STATES))
    if unknown:
        raise StitchkitError(
            f"a checkpoint keeps the states of {', '.join(RESUME_STATES)} to resume from, not {', '.join(unknown)}"
        )
    inner = unwrap(model)
    spec = getattr(inner, "stitchkit_spec", None)
    if spec is None:
        raise StitchkitError(
            f"{type(inner).__name__} was not built by stitchkit.models.get_model, so its checkpoint cannot describe it"
        )
    payload: dict[str, Any] = {
        "stitchkit_checkpoint": FORMAT_VERSION,
        "stitchkit_version": __version__,
        "model": plain_data(spec),
        "dataset": dataset,
        "input_shape": list(input_shape) if input_shape is not None else None,
        "training": plain_data(dict(training or {})),
        "epoch": epoch,
        "metrics": plain_data(dict(metrics or {})),
        "state_dict": plain_state_dict(inner),
    }
    for name, owner in (resume or {}).items():
        if owner is not None:  # the optimizer's state holds tensors as they are; the others are plain data
            payload[name] = owner.state_dict() if name == "optimizer" else plain_data(owner.state_dict())
    torch_save_atomic(payload, path)
    return Path(path)


def save_state_dict(path: str | Path, model: nn.Module) -> Path:
    """A bare state_dict (the original's ``model_<epoch>.pt``), atomically."""
    torch_save_atomic(plain_state_dict(model), path)
    return Path(path)


def read_checkpoint_file(path: Path) -> Any:
    """The object a checkpoint file holds, read weights-only (tensors and plain data); a missing, corrupt or
    unsafe file is a :class:`~stitchkit.errors.StitchkitError` that says which."""
    if not path.exists():
        raise StitchkitError(f"checkpoint {str(path)!r} does not exist")
    if path.is_dir():
        raise StitchkitError(f"checkpoint {str(path)!r} is a folder; give the .pt file inside it")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        refused = refused_global(exc)
        if refused is not None:
            what = f"the Python object {refused}" if refused else "Python objects besides tensors and plain data"
            raise StitchkitError(
                f"refusing to load {str(path)!r}: it holds {what}, and unpickling it could run arbitrary code. "
                "Re-save only the state_dict (torch.save(model.state_dict(), path)) from code you trust."
            ) from None
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise StitchkitError(f"checkpoint {str(path)!r} is corrupt or not a PyTorch file ({first})") from None
    except (
        RuntimeError,
        EOFError,
        zipfile.BadZipFile,
        OSError,
        ValueError,
        AttributeError,
        IndexError,
        KeyError,
        TypeError,
    ) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise StitchkitError(f"checkpoint {str(path)!r} is corrupt or not a PyTorch file ({first})") from None


# torch's weights-only unpickler names what it refused in several wordings across versions
# ("Unsupported global: GLOBAL os.system was not an allowed global", "Trying to load unsupported
# GLOBAL posix.system whose module posix is blocked", "Unsupported class ..."), so match loosely, and
# case-insensitively. Every weights-only failure starts "Weights only load failed", also plain garbage
# ("Unsupported operand 110"): that one is a corrupt file, not a refused object.
_GLOBAL_NAME = re.compile(r"\bGLOBAL\s+([A-Za-z_][\w.]*)", re.IGNORECASE)
_REFUSAL = re.compile(r"unsupported (global|class)|not an allowed global", re.IGNORECASE)


def refused_global(exc: BaseException) -> str | None:
    """For an error of weights-only loading that refused a Python object: the object's dotted name
    (``""`` when the message does not say); ``None`` for any other unpickling error."""
    text = str(exc)
    if not _REFUSAL.search(text):
        return None
    match = _GLOBAL_NAME.search(text)
    return match.group(1).rstrip(".") if match else ""


def _looks_like_state_dict(obj: Any) -> bool:
    return (
        isinstance(obj, Mapping)
        and len(obj) > 0
        and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())
    )


def strip_prefixes(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """DataParallel/DDP (``module.``) and torch.compile (``_orig_mod.``) prefixes, as the original's
    ImageNet script saved them."""
    out = dict(state)
    for prefix in ("module.", "_orig_mod."):
        if out and all(k.startswith(prefix) for k in out):
            out = {k[len(prefix) :]: v for k, v in out.items()}
    return out


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Read a stitchkit checkpoint or a bare state_dict file (weights only)."""
    path = Path(path)
    obj = read_checkpoint_file(path)
    if isinstance(obj, Mapping) and "stitchkit_checkpoint" in obj:
        version = obj.get("stitchkit_checkpoint")
        if not isinstance(version, int) or version > FORMAT_VERSION:
            raise StitchkitError(
                f"checkpoint {str(path)!r} has format {version!r}, newer than this stitchkit understands "
                f"({FORMAT_VERSION}); upgrade stitchkit"
            )
        state = obj.get("state_dict")
        if not _looks_like_state_dict(state):
            raise StitchkitError(f"checkpoint {str(path)!r} has no usable state_dict")
        shape = obj.get("input_shape")
        return Checkpoint(
            path=path,
            state_dict=strip_prefixes(state),
            model_spec=dict(obj["model"]) if obj.get("model") else None,
            dataset=obj.get("dataset"),
            input_shape=tuple(shape) if shape else None,
            training=dict(obj.get("training") or {}),
            epoch=obj.get("epoch"),
            metrics=dict(obj.get("metrics") or {}),
            extra={k: obj[k] for k in RESUME_STATES if k in obj},
        )
    if isinstance(obj, Mapping) and _looks_like_state_dict(obj.get("state_dict")):
        obj = obj["state_dict"]  # {"state_dict": ..., "epoch": ...} files of other trainers
    if not _looks_like_state_dict(obj):
        raise StitchkitError(
            f"{str(path)!r} is a PyTorch file but holds neither a stitchkit checkpoint nor a state_dict"
        )
    ckpt = Checkpoint(path=path, state_dict=strip_prefixes(obj))
    _describe_from_run_config(ckpt)
    return ckpt


def _describe_from_run_config(ckpt: Checkpoint) -> None:
    """A bare ``model_<e>.pt`` written by ``stitchkit train`` is described by the run's config.json."""
    config_path = ckpt.path.parent / RUN_CONFIG
    if not config_path.is_file():
        return
    try:
        config = json.loads(config_path.read_text())
    except (OSError, ValueError):
        return
    if isinstance(config, dict) and isinstance(config.get("model_spec"), dict):
        ckpt.model_spec = config["model_spec"]
        ckpt.dataset = config.get("dataset")
        shape = config.get("input_shape")
        ckpt.input_shape = tuple(shape) if shape else None
        ckpt.training = config


def load_state_into(model: nn.Module, state: Mapping[str, torch.Tensor], source: str = "checkpoint") -> None:
    """``load_state_dict(strict=True)`` with an error that names the mismatched keys."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    wrong = [
        f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}"
        for k in own
        if k in state and state[k].shape != own[k].shape
    ]
    if missing or unexpected or wrong:
        parts = []
        for label, keys in (
            ("missing keys", missing),
            ("unexpected keys", unexpected),
            ("shape mismatches (file vs model)", wrong),
        ):
            if keys:
                shown = ", ".join(keys[:6]) + (f", … ({len(keys)} in all)" if len(keys) > 6 else "")
                parts.append(f"{label}: {shown}")
        name = getattr(model, "stitchkit_spec", {}).get("name", type(model).__name__)
        raise StitchkitError(f"{source} does not fit model {name}: " + "; ".join(parts))
    model.load_state_dict(state, strict=True)
