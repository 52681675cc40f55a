"""Run folders on disk: written whole into a hidden temporary folder and renamed into place
(:func:`publish`), recognised when finished (:func:`is_finished`), and read back into a stitched
network (:func:`load_stitcher`)."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .. import __version__
from ..errors import StitchkitError
from ..utils.io import ensure_writable_dir, torch_save_atomic, write_csv_atomic, write_json_atomic, write_text_atomic
from .donors import Donor, load_donor
from .per_sample import PER_SAMPLE_FILE
from .records import BASIS_FILE, CONFIG_FILE, RESULT_FILE, WEIGHTS_FILE, StitchResult, original_config, summary_text
from .settings import StitchSettings
from .stitcher import Stitcher, StitcherOptions


def publish(final_dir: Path, write: Callable[[Path], None], overwrite: bool) -> None:
    """Write a run into a hidden temporary folder beside ``final_dir`` and rename it into place, so a
    run folder is complete or absent (an interrupted run leaves only a hidden ``.*.partial`` folder)."""
    parent = ensure_writable_dir(final_dir.parent)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final_dir.name}.", suffix=".partial", dir=parent))
    try:
        write(tmp)
        if final_dir.exists():
            if not overwrite:
                raise StitchkitError(f"{str(final_dir)!r} appeared while this run was computed; not overwriting it")
            trash = Path(tempfile.mkdtemp(prefix=f".{final_dir.name}.", suffix=".old", dir=parent))
            os.replace(final_dir, trash / final_dir.name)
            os.replace(tmp, final_dir)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.replace(tmp, final_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def is_finished(run_dir: Path) -> bool:
    return (run_dir / RESULT_FILE).is_file()


@dataclass(frozen=True)
class RunContext:
    """What every run folder of a grid records besides the pair's own result: the donors, the settings,
    the input shape and device, the command and the ``save_dir`` label of the original's ``config.txt``."""

    front: Donor
    end: Donor
    settings: StitchSettings
    input_shape: tuple[int, ...]
    device: Any
    command: str
    save_dir_label: str


def write_run(final_dir: Path, result: StitchResult, stitcher: Stitcher, context: RunContext) -> None:
    """The run folder of one pair: the original's ``summary.txt``, ``config.txt``, ``final_model.pt`` and
    ``training_logs.csv``, plus ``config.json`` (everything needed to rebuild the stitch), the fixed
    low-rank basis and ``result.json``."""
    s, front, end, command = context.settings, context.front, context.end, context.command
    input_shape, device, save_dir_label = context.input_shape, context.device, context.save_dir_label
    config = original_config(front, end, result.front_layer, result.end_layer, result.dataset, s, save_dir_label)
    full_config = {
        "command": "stitch",
        "stitchkit_version": __version__,
        "front": front.describe(),
        "end": end.describe(),
        "front_layer": result.front_layer,
        "end_layer": result.end_layer,
        "dataset": result.dataset,
        "input_shape": list(input_shape),
        "settings": s.to_dict(),
        "run_name": result.run_name,
        "config_key": result.config_key,
        "device": str(device),
    }

    def write(folder: Path) -> None:
        write_text_atomic(folder / "summary.txt", summary_text(result, command))
        write_json_atomic(folder / "config.txt", config)
        write_json_atomic(folder / CONFIG_FILE, full_config)
        if s.save_weights:
            torch_save_atomic(stitcher.stitching_state_dict(), folder / WEIGHTS_FILE)
            basis = stitcher.reduce.basis
            if basis is not None:
                torch_save_atomic(
                    {"rank": basis.rank, "mean": basis.mean.cpu(), "basis": basis.basis.cpu()}, folder / BASIS_FILE
                )
        if result.train_history:
            write_csv_atomic(folder / "training_logs.csv", result.train_history)
        if result.samples is not None:
            result.samples.save(folder / PER_SAMPLE_FILE)
        write_json_atomic(folder / RESULT_FILE, result.to_dict())

    publish(final_dir, write, s.overwrite)
    result.run_dir = str(final_dir)


def load_stitcher(
    run_dir: str | os.PathLike,
    *,
    device: str | torch.device = "cpu",
    front: nn.Module | None = None,
    end: nn.Module | None = None,
) -> Stitcher:
    """Rebuild the stitched network of a finished run folder: the donors from their recorded checkpoints
    (or the given models), the stitching layer from ``final_model.pt`` and a fixed low-rank basis from
    ``low_rank_basis.pt``."""
    run_dir = Path(run_dir)
    try:
        config = json.loads((run_dir / CONFIG_FILE).read_text())
    except (OSError, ValueError) as exc:
        raise StitchkitError(f"{str(run_dir)!r} is not a stitch run folder ({exc})") from None
    settings = StitchSettings.from_dict(config["settings"])
    models = []
    for given, role in ((front, "front"), (end, "end")):
        if given is not None:
            models.append(given)
            continue
        desc = config[role]
        path = desc.get("path")
        if path and not Path(path).exists() and desc.get("abs_path"):
            path = desc["abs_path"]
        if not path:
            raise StitchkitError(f"the {role} model of {str(run_dir)!r} was given in memory; pass it as {role}=")
        models.append(load_donor(path, desc.get("model_type"), dataset=config["dataset"]).model)
    if config["front"]["fingerprint"] == config["end"]["fingerprint"] and front is None and end is None:
        models[1] = models[0]
    stitcher = Stitcher(
        models[0],
        models[1],
        config["front_layer"],
        config["end_layer"],
        settings.stitching_type,
        input_shape=config["input_shape"],
        options=StitcherOptions.of(settings),
    )
    weights = run_dir / WEIGHTS_FILE
    if not weights.is_file():
        raise StitchkitError(f"{str(run_dir)!r} has no {WEIGHTS_FILE} (was it run with --no-save?)")
    stitcher.layer.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    if stitcher.reduce.basis is not None:
        saved = torch.load(run_dir / BASIS_FILE, map_location="cpu", weights_only=True)
        stitcher.reduce.basis.mean = saved["mean"]
        stitcher.reduce.basis.basis = saved["basis"]
    return stitcher.to(device)
