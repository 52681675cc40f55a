"""Is a checkpoint a fair start for this training run? (``stitchkit train --resume``)

Resuming from another run's ``last.pt`` — a different seed, dataset, model or recipe — would produce a
mixed run whose ``config.json`` describes only one of them. :func:`resume_mismatches` lists what
differs between the checkpoint's recorded training settings and the run's; the trainer refuses a
checkpoint with any difference unless the user asks for it explicitly (``--force-resume``), and then
records the differences in ``config.json``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: Settings that change the trained weights (what must agree). The epoch count may grow on resume;
#: folders, devices, loader workers and display options do not change the result.
RESULT_SETTINGS = ("seed", "batch_size", "optim", "grad_clip", "amp", "train_subset", "augment")


def _show(value: Any) -> str:
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k}: {value[k]!r}" for k in sorted(value)) + "}"
    return repr(value)


def resume_mismatches(
    checkpoint_spec: Mapping[str, Any] | None,
    checkpoint_dataset: str | None,
    checkpoint_settings: Mapping[str, Any],
    spec: Mapping[str, Any],
    dataset: str,
    settings: Mapping[str, Any],
) -> list[str]:
    """What differs between a checkpoint and the run that would resume from it, one phrase each
    (empty: they agree). ``*_settings`` are ``asdict(TrainSettings)``; a checkpoint without recorded
    settings (not written by ``stitchkit train``) only has its model and dataset compared."""
    out: list[str] = []
    if checkpoint_spec is not None and dict(checkpoint_spec) != dict(spec):
        out.append(
            f"model {checkpoint_spec.get('name')} with {_show(checkpoint_spec.get('options', {}))} "
            f"(this run: {spec.get('name')} with {_show(spec.get('options', {}))})"
        )
    if checkpoint_dataset is not None and checkpoint_dataset != dataset:
        out.append(f"dataset {checkpoint_dataset} (this run: {dataset})")
    if not checkpoint_settings:
        return out
    for key in RESULT_SETTINGS:
        theirs, ours = checkpoint_settings.get(key), settings.get(key)
        if isinstance(theirs, Mapping) and isinstance(ours, Mapping):
            keys = sorted(set(theirs) | set(ours))
            diff = [k for k in keys if theirs.get(k) != ours.get(k)]
            out += [f"{key}.{k} {theirs.get(k)!r} (this run: {ours.get(k)!r})" for k in diff]
        elif theirs != ours:
            out.append(f"{key} {theirs!r} (this run: {ours!r})")
    return out
