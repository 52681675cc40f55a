"""Extracting activations of named layers: once per (model, layers, sample set), in one pass.

Every method that compares representations (stitching grids, similarity indices, probes, OOD tests)
asks for activations through :func:`extract_activations`. It runs the model's prefix up to the last
requested layer only (never the layers after it), collects all requested layers from the same forward
pass, and can keep the results in memory or stream them into memory-mapped ``.npy`` files, so a large
sample set never has to fit in RAM. :class:`ActivationCache` adds a content-addressed cache on top, so
the same activations are never computed twice within a study.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from ..data.loading import batches_of, sample_subset  # noqa: F401 (sample_subset: re-exported, its old home)
from ..errors import StitchkitError
from ..models.layers import layered
from ..utils.device import channels_last as channels_last_layout
from ..utils.progress import progress_bar


def model_fingerprint(model: nn.Module) -> str:
    """A content hash of the model's weights and buffers (sha256, first 16 hex digits): the identity of
    a network in results, independent of the path its checkpoint was loaded from."""
    digest = hashlib.sha256()
    spec = getattr(model, "stitchkit_spec", None)
    if spec is not None:
        digest.update(json.dumps(spec, sort_keys=True).encode())
    for key, value in sorted(model.state_dict().items()):
        tensor = value.detach().cpu().contiguous().reshape(-1)
        digest.update(f"{key}:{tensor.dtype}:{tuple(value.shape)}".encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()[:16]


@dataclass
class Activations:
    """Activations of several layers for one sample set, plus the labels (tensors or memmaps)."""

    layers: dict[str, torch.Tensor]
    labels: torch.Tensor

    def __getitem__(self, layer: str) -> torch.Tensor:
        return self.layers[layer]

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def batches(self, layer: str, batch_size: int) -> Iterable[tuple[torch.Tensor, torch.Tensor]]:
        """``(activation batch, label batch)`` in order; slices of a memmap are read lazily."""
        data = self.layers[layer]
        for start in range(0, len(self), batch_size):
            yield data[start : start + batch_size], self.labels[start : start + batch_size]


class ActivationWriter:
    """Activations of several layers written batch by batch, in order, into memory-mapped
    ``<layer>.npy`` files of ``n_total`` rows (with ``labels_file``, plus ``labels.npy``). The files are written under
    temporary names and renamed by :meth:`close`, so an interrupted extraction leaves no file behind
    (:meth:`abort` removes the partial ones)."""

    def __init__(
        self, out_dir: str | os.PathLike, n_total: int, dtype: torch.dtype = torch.float32, *, labels_file: bool = False
    ):
        self.out_dir = Path(out_dir)
        self.labels_file = labels_file
        self.n_total = int(n_total)
        self.dtype = dtype
        self.np_dtype = torch.empty(0, dtype=dtype).numpy().dtype
        self.arrays: dict[str, np.memmap] = {}
        self.labels = np.empty(self.n_total, dtype=np.int64)
        self.position = 0

    def _partial(self, name: str) -> Path:
        return self.out_dir / f".{name}.npy.partial"

    def write(self, outputs: dict[str, torch.Tensor], labels: torch.Tensor) -> None:
        """Append one batch: ``outputs[layer]`` of shape ``(B, ...)`` for each layer, and its labels."""
        n = int(labels.shape[0])
        for name, value in outputs.items():
            value = value.detach().to(self.dtype)
            if name not in self.arrays:
                self.out_dir.mkdir(parents=True, exist_ok=True)
                self.arrays[name] = np.lib.format.open_memmap(
                    self._partial(name), mode="w+", dtype=self.np_dtype, shape=(self.n_total, *value.shape[1:])
                )
            self.arrays[name][self.position : self.position + n] = value.cpu().numpy()
        self.labels[self.position : self.position + n] = torch.as_tensor(labels).cpu().numpy()
        self.position += n

    def close(self) -> Activations:
        """Finish: rename the files into place and return them memory-mapped."""
        if self.position != self.n_total:
            self.abort()
            raise StitchkitError(f"activation extraction stopped after {self.position} of {self.n_total} samples")
        result: dict[str, torch.Tensor] = {}
        for name, array in list(self.arrays.items()):
            array.flush()
            del self.arrays[name]
            final = self.out_dir / f"{name}.npy"
            os.replace(self._partial(name), final)
            result[name] = torch.from_numpy(np.load(final, mmap_mode="r+"))
        if self.labels_file:
            _save_npy_atomic(self.out_dir / "labels.npy", self.labels)
        return Activations(result, torch.from_numpy(self.labels))

    def abort(self) -> None:
        for name in list(self.arrays):
            del self.arrays[name]
            self._partial(name).unlink(missing_ok=True)


def _save_npy_atomic(path: Path, values: np.ndarray) -> None:
    tmp = path.with_name(f".{path.stem}.tmp.npy")
    np.save(tmp, values)
    os.replace(tmp, path)


@dataclass(frozen=True, kw_only=True)
class ExtractionSettings:
    """How an extraction pass runs: on ``device``, in batches of ``batch_size`` with ``workers`` loader
    processes, a progress bar (``progress``, labelled ``desc``), the arrays kept as ``dtype``, and the
    pass in the ``channels_last`` layout (faster convolutions; the values are returned in the usual layout)."""

    device: torch.device | str = "cpu"
    batch_size: int = 256
    workers: int = 0
    progress: bool = False
    desc: str = "activations"
    dtype: torch.dtype = torch.float32
    channels_last: bool = True


@torch.no_grad()
def extract_activations(
    model: nn.Module,
    layers: Sequence[str],
    data: Dataset | DataLoader,
    *,
    out_dir: str | os.PathLike | None = None,
    settings: ExtractionSettings | None = None,
) -> Activations:
    """Activations of ``layers`` for every item of ``data`` (in order), from one pass of the model's
    prefix up to the last of them (run as ``settings`` says, default :class:`ExtractionSettings`). With
    ``out_dir`` the arrays are written to ``<layer>.npy`` memmaps there (atomically: a partial extraction
    leaves no file behind) and returned memory-mapped."""
    s = settings or ExtractionSettings()
    dtype, channels_last = s.dtype, s.channels_last
    layers = list(dict.fromkeys(layers))
    device = torch.device(s.device)
    was_training = model.training
    model.eval()
    extractor = layered(model).extractor(layers)
    loader = batches_of(data, s.batch_size, workers=s.workers, prefetch=2, device=device)
    n_total = len(loader.dataset)  # type: ignore[arg-type]
    writer = ActivationWriter(out_dir, n_total, dtype) if out_dir is not None else None
    arrays: dict[str, torch.Tensor] = {}
    labels = torch.empty(n_total, dtype=torch.long)
    position = 0
    layout = contextlib.ExitStack()
    layout.enter_context(channels_last_layout(model, enabled=channels_last))
    try:
        for inputs, targets in progress_bar(loader, s.desc, s.progress):
            x = inputs.to(device, non_blocking=True)
            out = extractor(x.contiguous(memory_format=torch.channels_last) if channels_last and x.dim() == 4 else x)
            targets = torch.as_tensor(targets)
            if writer is not None:
                writer.write({name: out[name] for name in layers}, targets)
                continue
            n = inputs.shape[0]
            for name in layers:
                value = out[name].to(dtype)
                if name not in arrays:
                    arrays[name] = torch.empty((n_total, *value.shape[1:]), dtype=dtype)
                arrays[name][position : position + n] = value.cpu()
            labels[position : position + n] = targets
            position += n
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    finally:
        layout.close()
        model.train(was_training)
    if writer is not None:
        return writer.close()
    return Activations({name: arrays[name] for name in layers}, labels)


class ActivationCache:
    """Content-addressed activations on disk: ``root/<model hash>/<sample-set key>/<layer>.npy``.

    ``get`` extracts only the layers not cached yet for that (model, sample set), in one pass, and
    returns memory-mapped tensors. The sample-set key is any string that identifies the data and its
    transform (e.g. ``"fashion/test/eval/n=1000"``). The same folder also keeps a network's accuracy on
    the sample set (:meth:`accuracy`), so that runs in later processes need not measure it again.
    """

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    def folder(self, model: nn.Module, sample_key: str) -> Path:
        safe = hashlib.sha256(sample_key.encode()).hexdigest()[:12]
        return self.root / model_fingerprint(model) / safe

    def _mark(self, folder: Path, sample_key: str) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "key.txt").write_text(sample_key + "\n")  # also its last use, for trim()

    def lookup(self, model: nn.Module, layers: Sequence[str], sample_key: str) -> Activations | None:
        """The cached activations of ``layers`` (memory-mapped), or None unless all of them are there."""
        folder = self.folder(model, sample_key)
        if not (folder / "labels.npy").is_file() or any(not (folder / f"{layer}.npy").is_file() for layer in layers):
            return None
        self._mark(folder, sample_key)
        labels = torch.from_numpy(np.load(folder / "labels.npy"))
        return Activations(
            {layer: torch.from_numpy(np.load(folder / f"{layer}.npy", mmap_mode="r+")) for layer in layers}, labels
        )

    def writer(self, model: nn.Module, sample_key: str, n_total: int) -> ActivationWriter:
        """A writer whose :meth:`~ActivationWriter.close` adds its layers to this cache entry."""
        folder = self.folder(model, sample_key)
        self._mark(folder, sample_key)
        return ActivationWriter(folder, n_total, labels_file=True)

    def get(
        self,
        model: nn.Module,
        layers: Sequence[str],
        data: Dataset | DataLoader,
        sample_key: str,
        settings: ExtractionSettings | None = None,
    ) -> Activations:
        """The activations of ``layers``, extracted (as ``settings`` says) where the cache lacks them."""
        folder = self.folder(model, sample_key)
        missing = [
            layer
            for layer in layers
            if not (folder / f"{layer}.npy").is_file() or not (folder / "labels.npy").is_file()
        ]
        if missing:
            fresh = extract_activations(model, missing, data, out_dir=folder, settings=settings)
            _save_npy_atomic(folder / "labels.npy", fresh.labels.numpy())
            self._mark(folder, sample_key)
        cached = self.lookup(model, layers, sample_key)
        assert cached is not None
        return cached

    # --- accuracies --------------------------------------------------------------------------------
    def accuracy(self, model: nn.Module, sample_key: str) -> dict[str, Any] | None:
        """The accuracy record stored by :meth:`put_accuracy`, or None."""
        path = self.folder(model, sample_key) / "accuracy.json"
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            return None

    def put_accuracy(self, model: nn.Module, sample_key: str, accuracy: float | None, n: int) -> None:
        folder = self.folder(model, sample_key)
        self._mark(folder, sample_key)
        tmp = folder / ".accuracy.json.tmp"
        tmp.write_text(json.dumps({"accuracy": accuracy, "n": n, "sample_key": sample_key}))
        os.replace(tmp, folder / "accuracy.json")

    # --- size ----------------------------------------------------------------------------------------
    def size_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.root.rglob("*") if p.is_file()) if self.root.is_dir() else 0

    def trim(self, limit_bytes: float) -> list[Path]:
        """Remove the least recently used entries until the cache is at most ``limit_bytes``; returns
        the removed folders."""
        entries = [p for p in self.root.glob("*/*") if p.is_dir()] if self.root.is_dir() else []
        sizes = {p: sum(f.stat().st_size for f in p.rglob("*") if f.is_file()) for p in entries}
        total = sum(sizes.values())
        removed = []
        for entry in sorted(
            entries, key=lambda p: (p / "key.txt").stat().st_mtime if (p / "key.txt").exists() else 0.0
        ):
            if total <= limit_bytes:
                break
            shutil.rmtree(entry, ignore_errors=True)
            total -= sizes[entry]
            removed.append(entry)
        return removed
