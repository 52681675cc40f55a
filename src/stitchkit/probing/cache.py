"""Probe accuracies reused across runs and units: a JSON file keyed by what changes a probe's result (with
each probe's hits per test image, packed one bit per image, where its results kept them)."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import StitchkitError
from ..ranks import rank_label
from ..utils.io import check_writable_dir, lock_file, write_json_atomic
from .probe import ProbeConfig


class ProbeCache:
    """Probe accuracies stored as JSON, keyed by what changes them. ``save`` merges with what is on disk
    under a file lock, so units writing the same cache at once (a study's pool executor) lose nothing."""

    def __init__(self, path: str | Path | None):
        self.path = Path(path) if path else None
        self.entries: dict[str, dict[str, Any]] = {}
        if self.path is None:
            return
        if self.path.is_dir():
            raise StitchkitError(
                f"probe cache {str(self.path)!r} is a folder; give a file name (e.g. "
                f"{str(self.path / 'probes.json')!r})"
            )
        check_writable_dir(
            self.path.parent, "folder of the probe cache"
        )  # it is written after the probes: fail before them
        if self.path.is_file():
            try:
                self.entries = json.loads(self.path.read_text())
            except (ValueError, UnicodeDecodeError):
                raise StitchkitError(
                    f"probe cache {str(self.path)!r} is not valid JSON; delete it or choose another file"
                ) from None
            if not isinstance(self.entries, dict) or not all(
                isinstance(e, dict) and "val_acc" in e for e in self.entries.values()
            ):
                raise StitchkitError(
                    f"probe cache {str(self.path)!r} is not a stitchkit probe cache; delete it or choose another file"
                )

    @staticmethod
    def key(fingerprint: str, dataset: str, layer: str, rank: int | None, config: ProbeConfig) -> str:
        return f"{fingerprint}|{dataset}|{layer}|{rank_label(rank)}|{config.key()}"

    def get(self, key: str) -> float | None:
        entry = self.entries.get(key)
        return None if entry is None else float(entry["val_acc"])

    def get_hits(self, key: str) -> np.ndarray | None:
        """The probe's hits per test image (uint8, 1 = right, the test split's order), None where the entry
        keeps none (stored before stitchkit kept them)."""
        entry = self.entries.get(key)
        if entry is None or "test_hits" not in entry:
            return None
        bits = np.unpackbits(np.frombuffer(base64.b64decode(entry["test_hits"]), dtype=np.uint8))
        return bits[: int(entry["test_images"])].copy()

    def put(self, key: str, entry: dict[str, Any]) -> None:
        self.entries[key] = entry

    def put_results(
        self, fingerprint: str, dataset: str, results: Iterable[Any], config: ProbeConfig, network: str | None
    ) -> None:
        """Store the probe results of one network (``ProbeResult``s of :func:`~stitchkit.probing.probe_model`)."""
        for r in results:
            entry = {
                "val_acc": r.val_acc,
                "network": network,
                "layer": r.layer,
                "rank": r.rank,
                "train_acc": r.train_acc,
            }
            if getattr(r, "test_hits", None) is not None:  # the hits, one bit per test image: the accuracy's resamples
                hits = np.asarray(r.test_hits, dtype=np.uint8).reshape(-1)
                entry.update(
                    test_hits=base64.b64encode(np.packbits(hits != 0).tobytes()).decode("ascii"),
                    test_images=int(hits.size),
                )
            self.put(self.key(fingerprint, dataset, r.layer, r.rank, config), entry)

    def save(self) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with lock_file(self.path.with_name(self.path.name + ".lock")):  # removed after use
            on_disk: dict[str, Any] = {}
            if self.path.is_file():
                try:
                    on_disk = json.loads(self.path.read_text())
                except ValueError:
                    on_disk = {}  # a broken cache is rewritten
            self.entries = {**on_disk, **self.entries}
            write_json_atomic(self.path, self.entries)
