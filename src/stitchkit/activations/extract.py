"""Extracting activations of named layers: once per (model, layers, sample set), in one pass.

Every method that compares representations (stitching grids, similarity indices, probes, OOD tests)
asks for activations through :func:`extract_activations`. It runs the model's prefix up to the last
requested layer only (never the layers after it), collects all requested layers from the same forward
pass, and can keep the results in memory or stream them into memory-mapped ``.npy`` files, so a large
sample set never has to fit in RAM. :class:`ActivationCache` adds a content-addressed cache on top, so
the same activations are never computed twice within a study.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset

from ..errors import StitchkitError
from ..models.layers import layered


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


def sample_subset(dataset: Dataset, n_samples: int | None, seed: int | None = None) -> Dataset:
    """The first ``n_samples`` items (seed None, like the original's test-set measures) or a seeded
    random subset of that size (like the original's K training images for direct matching)."""
    if n_samples is None or n_samples >= len(dataset):
        return dataset
    if n_samples < 1:
        raise StitchkitError(f"number of samples must be at least 1, got {n_samples}")
    if seed is None:
        return Subset(dataset, list(range(n_samples)))
    generator = torch.Generator().manual_seed(seed)
    return Subset(dataset, torch.randperm(len(dataset), generator=generator)[:n_samples].tolist())


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
            yield data[start:start + batch_size], self.labels[start:start + batch_size]


def _loader(data: Dataset | DataLoader, batch_size: int, workers: int) -> DataLoader:
    if isinstance(data, DataLoader):
        return data
    kwargs: dict[str, Any] = {"prefetch_factor": 2} if workers > 0 else {}
    return DataLoader(data, batch_size=batch_size, shuffle=False, num_workers=workers, **kwargs)


@torch.no_grad()
def extract_activations(
    model: nn.Module,
    layers: Sequence[str],
    data: Dataset | DataLoader,
    *,
    device: torch.device | str = "cpu",
    batch_size: int = 256,
    workers: int = 0,
    out_dir: str | os.PathLike | None = None,
    dtype: torch.dtype = torch.float32,
    progress: bool = False,
    desc: str = "activations",
) -> Activations:
    """Activations of ``layers`` for every item of ``data`` (in order), from one pass of the model's
    prefix up to the last of them. With ``out_dir`` the arrays are written to ``<layer>.npy`` memmaps
    there (atomically: a partial extraction leaves no file behind) and returned memory-mapped."""
    from ..training.loop import progress_bar

    layers = list(dict.fromkeys(layers))
    device = torch.device(device)
    was_training = model.training
    model.eval()
    extractor = layered(model).extractor(layers)
    loader = _loader(data, batch_size, workers)
    n_total = len(loader.dataset)  # type: ignore[arg-type]
    arrays: dict[str, Any] = {}
    tmp_paths: dict[str, Path] = {}
    labels = torch.empty(n_total, dtype=torch.long)
    position = 0
    np_dtype = torch.empty(0, dtype=dtype).numpy().dtype
    try:
        for inputs, targets in progress_bar(loader, desc, progress):
            out = extractor(inputs.to(device, non_blocking=True))
            n = inputs.shape[0]
            for name in layers:
                value = out[name].to(dtype)
                if name not in arrays:
                    shape = (n_total, *value.shape[1:])
                    if out_dir is not None:
                        Path(out_dir).mkdir(parents=True, exist_ok=True)
                        tmp_paths[name] = Path(out_dir) / f".{name}.npy.partial"
                        arrays[name] = np.lib.format.open_memmap(tmp_paths[name], mode="w+", dtype=np_dtype, shape=shape)
                    else:
                        arrays[name] = torch.empty(shape, dtype=dtype)
                target = arrays[name]
                if isinstance(target, torch.Tensor):
                    target[position:position + n] = value.cpu()
                else:
                    target[position:position + n] = value.cpu().numpy()
            labels[position:position + n] = torch.as_tensor(targets)
            position += n
    except BaseException:
        for path in tmp_paths.values():
            path.unlink(missing_ok=True)
        raise
    finally:
        model.train(was_training)
    result: dict[str, torch.Tensor] = {}
    for name in layers:
        if name in tmp_paths:
            arrays[name].flush()
            del arrays[name]
            final = Path(out_dir) / f"{name}.npy"  # type: ignore[arg-type]
            os.replace(tmp_paths[name], final)
            result[name] = torch.from_numpy(np.load(final, mmap_mode="r+"))
        else:
            result[name] = arrays[name]
    return Activations(result, labels)


class ActivationCache:
    """Content-addressed activations on disk: ``root/<model hash>/<sample-set key>/<layer>.npy``.

    ``get`` extracts only the layers not cached yet for that (model, sample set), in one pass, and
    returns memory-mapped tensors. The sample-set key is any string that identifies the data and its
    transform (e.g. ``"fashion/test/eval/n=1000"``).
    """

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    def folder(self, model: nn.Module, sample_key: str) -> Path:
        safe = hashlib.sha256(sample_key.encode()).hexdigest()[:12]
        return self.root / model_fingerprint(model) / safe

    def get(self, model: nn.Module, layers: Sequence[str], data: Dataset | DataLoader, sample_key: str, **kwargs: Any) -> Activations:
        folder = self.folder(model, sample_key)
        missing = [layer for layer in layers if not (folder / f"{layer}.npy").is_file() or not (folder / "labels.npy").is_file()]
        if missing:
            fresh = extract_activations(model, missing, data, out_dir=folder, **kwargs)
            np.save(folder / "labels.tmp.npy", fresh.labels.numpy())
            os.replace(folder / "labels.tmp.npy", folder / "labels.npy")
            (folder / "key.txt").write_text(sample_key + "\n")
        labels = torch.from_numpy(np.load(folder / "labels.npy"))
        return Activations({layer: torch.from_numpy(np.load(folder / f"{layer}.npy", mmap_mode="r+")) for layer in layers}, labels)
