"""The detector registry: trained OOD detectors stored by identity, safe for concurrent writers.

Layout (the original's, extended): ``<fdir>/<id>.pt`` holds the detector's bare state_dict (readable
by the original's loaders) and ``<fdir>/meta.json`` maps ``"<id>.pt"`` to its metadata. The original's
keys are kept — ``model_type``, ``source_model_type``, ``source_model_path`` (as typed),
``source_layer``, ``id_dataset``, ``orig_input_shape``, ``required_input_shape``, ``training_loc`` —
with two fixes and some additions:

* ``id_dataset`` is the *fine-tuning* ID set (the original stored the pre-training set ``-d``; that one
  is ``pretrain_dataset`` here); ``ood_dataset`` is the auxiliary outlier set;
* ``source_model_hash`` (:func:`stitchkit.activations.model_fingerprint`, a content hash of the
  weights) and ``source_model_realpath`` identify the source network whatever path spelling was used;
* ``model_spec`` rebuilds the detector exactly; ``num_classes``, ``training_config``, ``conventions``,
  ``metrics``, ``stitchkit_version`` and ``created`` record how it was made.

Identifiers are deterministic: a hash of (source hash, layer, result-relevant training configuration),
so retraining the same detector replaces its entry instead of adding a duplicate. ``meta.json`` is
updated read-modify-write under an exclusive ``fcntl`` lock on ``<fdir>/.meta.json.lock`` (removed after use) and
replaced
by an atomic rename, so concurrent trainings cannot lose each other's entries and readers never see a
half-written file.

Lookup (:meth:`DetectorRegistry.lookup`) matches the source by content hash first, then (for entries
written by the original code, which have no hash) by the resolved path; among several matches the
newest wins, and the choice is reported.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from .. import __version__
from ..activations.extract import model_fingerprint
from ..choices import DEFAULT_DETECTOR_DIR  # torch-free home (the CLI reads it)
from ..data import dataset_info
from ..errors import StitchkitError
from ..models import build_from_spec, get_model
from ..models.checkpoint import load_checkpoint, load_state_into
from ..utils.io import lock_file, torch_save_atomic, write_json_atomic
from .detectors import EnergyDetector

META_FILE = "meta.json"
LOCK_FILE = ".meta.json.lock"


def detector_id(source_hash: str, layer: str, config: Mapping[str, Any]) -> str:
    """The deterministic id of a detector: 32 hex digits of sha256(source hash, layer, config)."""
    payload = json.dumps({"source": source_hash, "layer": layer, "config": config}, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:32]


def _realpath(path: str | os.PathLike | None) -> str | None:
    return None if path is None else os.path.realpath(os.path.expanduser(str(path)))


class DetectorRegistry:
    """Detectors in a folder (``-fdir``); see the module docstring."""

    def __init__(self, root: str | os.PathLike = DEFAULT_DETECTOR_DIR):
        self.root = Path(root)

    @property
    def meta_path(self) -> Path:
        return self.root / META_FILE

    # -- reading ---------------------------------------------------------------------------------
    def entries(self) -> dict[str, dict[str, Any]]:
        """All entries, keyed ``"<id>.pt"`` (an empty dict when the folder has no registry yet)."""
        if self.root.exists() and not self.root.is_dir():
            raise StitchkitError(f"detector registry {str(self.root)!r} is a file, not a folder")
        if self.meta_path.is_dir():
            raise StitchkitError(
                f"detector registry {str(self.root)!r} has a folder named {META_FILE}, not the registry file"
            )
        if not self.meta_path.is_file():
            return {}
        try:
            data = json.loads(self.meta_path.read_text())
        except ValueError as exc:
            raise StitchkitError(f"detector registry {str(self.meta_path)!r} is not valid JSON ({exc})") from None
        if not isinstance(data, dict):
            raise StitchkitError(
                f"detector registry {str(self.meta_path)!r} must hold a JSON object keyed by '<id>.pt'"
            )
        return data

    def find(
        self,
        layer: str,
        *,
        source_hash: str | None = None,
        source_path: str | os.PathLike | None = None,
        id_dataset: str | None = None,
    ) -> list[tuple[str, dict[str, Any]]]:
        """Entries for ``layer`` whose source matches by hash, else (entries without a hash) by
        resolved path; newest first."""
        real = _realpath(source_path)
        found = []
        for key, meta in self.entries().items():
            if meta.get("source_layer") != layer:
                continue
            if id_dataset is not None and meta.get("id_dataset") != id_dataset:
                continue
            entry_hash = meta.get("source_model_hash")
            if source_hash is not None and entry_hash is not None:
                match = entry_hash == source_hash
            elif real is not None:
                match = real in (meta.get("source_model_realpath"), _realpath(meta.get("source_model_path")))
            else:
                match = False
            if match:
                found.append((key, meta))
        found.sort(key=lambda item: str(item[1].get("created", "")), reverse=True)
        return found

    def lookup(
        self,
        layer: str,
        *,
        model: Any = None,
        source_hash: str | None = None,
        source_path: str | os.PathLike | None = None,
        id_dataset: str | None = None,
    ) -> tuple[str, dict[str, Any]]:
        """The detector for ``(source network, layer)``: the newest match (see :meth:`find`).

        The source is a model (hashed here), a content hash, or a checkpoint path.
        """
        if model is not None and source_hash is None:
            source_hash = model_fingerprint(model)
        matches = self.find(layer, source_hash=source_hash, source_path=source_path, id_dataset=id_dataset)
        if not matches:
            same_layer = sorted(
                {str(m.get("source_model_path")) for m in self.entries().values() if m.get("source_layer") == layer}
            )
            hint = f"; detectors for layer {layer!r} exist for: {', '.join(same_layer)}" if same_layer else ""
            who = f"hash {source_hash}" if source_hash else f"path {str(source_path)!r}"
            raise StitchkitError(
                f"no OOD detector in {str(self.root)!r} for layer {layer!r} of the model with {who}{hint}; "
                "train one with `stitchkit detector train MODEL_PATH MODEL_TYPE LAYER -fdir ...`"
            )
        key, meta = matches[0]
        return key, {**meta, "id": key[:-3] if key.endswith(".pt") else key, "n_matches": len(matches)}

    def load(self, key: str, device: Any = None):
        """Rebuild the detector of entry ``key`` (``"<id>.pt"`` or ``"<id>"``) as an
        :class:`~stitchkit.ood.detectors.EnergyDetector`."""
        key = key if key.endswith(".pt") else key + ".pt"
        meta = self.entries().get(key)
        if meta is None:
            raise StitchkitError(f"detector {key!r} is not in the registry {str(self.meta_path)!r}")
        if meta.get("model_spec"):
            model = build_from_spec(meta["model_spec"])
        else:  # an entry written by the original code: rebuild it the way it did
            shape = list(meta["required_input_shape"])
            in_channels = shape[0] if len(shape) == 3 else shape[-1]
            orig = list(meta["orig_input_shape"])
            model = get_model(
                meta["model_type"],
                num_classes=dataset_info(meta["id_dataset"]).num_classes,
                in_channels=in_channels,
                input_size=tuple(orig[1:]),
            )
        ckpt = load_checkpoint(self.root / key)
        load_state_into(model, ckpt.state_dict, source=f"detector {str(self.root / key)!r}")
        return EnergyDetector(model, device=device, meta={**meta, "id": key[:-3]})

    def lookup_and_load(self, layer: str, *, model: Any = None, source_path: Any = None, device: Any = None, **kw: Any):
        key, _ = self.lookup(layer, model=model, source_path=source_path, **kw)
        return self.load(key, device=device)

    # -- writing ---------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with lock_file(self.root / LOCK_FILE):  # removed after use
            yield

    def update(self, key: str, meta: Mapping[str, Any] | None) -> None:
        """Set (or, with ``meta=None``, remove) one entry under the lock, atomically."""
        with self._locked():
            entries = self.entries()
            if meta is None:
                entries.pop(key, None)
            else:
                entries[key] = dict(meta)
            write_json_atomic(self.meta_path, entries)

    def register(self, state_dict: Mapping[str, Any], meta: Mapping[str, Any], detector_id: str) -> str:
        """Store a detector's weights as ``<id>.pt`` and its metadata in ``meta.json``; returns the key."""
        key = f"{detector_id}.pt"
        torch_save_atomic(dict(state_dict), self.root / key)
        record = dict(meta)
        record.setdefault("stitchkit_version", __version__)
        record.setdefault("created", _dt.datetime.now(_dt.UTC).isoformat(timespec="microseconds"))
        if record.get("source_model_path") is not None:
            record.setdefault("source_model_realpath", _realpath(record["source_model_path"]))
        self.update(key, record)
        return key

    def remove(self, key: str) -> None:
        key = key if key.endswith(".pt") else key + ".pt"
        self.update(key, None)
        (self.root / key).unlink(missing_ok=True)
