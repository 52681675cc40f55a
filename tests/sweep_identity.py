"""Grown bad-input cases of a study's identity (see tests/grown_sweep.py for the contract): which
network is the front, networks given twice or changed, studies moved, stores of an earlier version."""

from __future__ import annotations

import json
import os
import shutil
import textwrap
from pathlib import Path

import torch
from bad_inputs import STUDY, Case
from grown_sweep import ApiCase

SECTIONS_OFF = "\n".join(f"[{s}]\nenabled = false" for s in ("ood", "probes", "sensitivity", "specificity"))
# the version-1 fixture's similarity units were computed without intervals or a null: with them off they keep their
# identity
SECTIONS_OFF += "\n[uncertainty]\nsimilarity_bootstrap = 0\npermutations = 0"
FIXTURE = Path(__file__).parent / "fixtures" / "store_v1"


def _config(path: Path, checkpoints: list[str], pairs: str = "all") -> Path:
    path.write_text(
        textwrap.dedent(f"""
        [study]
        name = "identity"
        dataset = "digits"
        device = "cpu"
        [networks]
        checkpoints = {json.dumps([str(c) for c in checkpoints])}
        [layers]
        front = ["layer4.1"]
        end = ["layer4.1"]
        [stitching]
        methods = ["dm"]
        pairs = "{pairs}"
        fit_samples = 32
        eval_samples = 32
        [similarity]
        pairs = "{pairs}"
        n_samples = 32
        measures = ["cka"]
    """)
        + SECTIONS_OFF
        + "\n"
    )
    return path


def build(world: Path) -> None:
    """Checkpoints that share a file name, a symlink to one, a third network, and the configs of the CLI cases."""
    from stitchkit.models import get_model
    from stitchkit.models.checkpoint import save_checkpoint

    for i in range(2):
        target = world / "same_name" / f"run{i}" / "final.pt"
        target.parent.mkdir(parents=True)
        shutil.copyfile(world / f"ck{i}" / "final.pt", target)
    os.symlink(world / "ck0" / "final.pt", world / "ck0_link.pt")
    torch.manual_seed(2)
    model = get_model("resnet18", num_classes=10, in_channels=1, input_size=(28, 28), width=4)
    save_checkpoint(world / "identity_ck2" / "final.pt", model, dataset="digits", input_shape=(1, 28, 28))
    cfg = world / "cfg_identity"
    cfg.mkdir()
    _config(cfg / "link_and_target.toml", [world / "ck0_link.pt", world / "ck0" / "final.pt"])
    _config(cfg / "copy_under_other_name.toml", [world / "ck0" / "final.pt", world / "same_name" / "run0" / "final.pt"])


def _nets(world: Path) -> list[str]:
    return [str(world / "same_name" / f"run{i}" / "final.pt") for i in range(2)]


def _run(config: Path, study: Path):
    from stitchkit.study import run_study

    return run_study(config, study, progress=False)


def _done(study: Path) -> list:
    from stitchkit.study import Store

    with Store(study / "study.sqlite", readonly=True) as store:
        return store.all(status="done")


def _roles_kept(study: Path) -> None:
    records = _done(study)
    hashes = {r.id: r.model_hashes.get("network") for r in records if r.kind == "network"}
    for r in records:
        if r.kind == "stitch":
            assert (r.model_hashes["front"], r.model_hashes["end"]) == (hashes[r.deps[0]], hashes[r.deps[1]]), r.label


def both_directions(world: Path, out: Path) -> None:
    summary = _run(_config(out / "c.toml", _nets(world)), out / "s")
    assert summary.counts["done"] == 6, summary.counts
    assert sorted(r.label for r in _done(out / "s") if r.kind == "stitch") == [
        "stitch dm run0→run1",
        "stitch dm run1→run0",
    ]
    _roles_kept(out / "s")


def reversed_config_in_the_same_folder(world: Path, out: Path) -> None:
    nets = _nets(world)
    _run(_config(out / "ab.toml", nets, "reference"), out / "s")
    assert _run(_config(out / "ba.toml", nets[::-1], "reference"), out / "s").ran == 2
    _roles_kept(out / "s")


def checkpoint_changed_in_place(world: Path, out: Path) -> None:
    """The same path with other weights is another network: nothing stored is handed over."""
    net = out / "net" / "final.pt"
    net.parent.mkdir()
    shutil.copyfile(_nets(world)[0], net)
    config = _config(out / "c.toml", [net, _nets(world)[1]], "reference")
    _run(config, out / "s")
    shutil.copyfile(world / "identity_ck2" / "final.pt", net)  # retrained in place
    assert _run(config, out / "s").ran == 3  # the new network, its stitch grid and its similarity
    _roles_kept(out / "s")


def moved_study(world: Path, out: Path) -> None:
    config = _config(out / "c.toml", _nets(world), "reference")
    _run(config, out / "s")
    os.replace(out / "s", out / "moved")
    assert _run(config, out / "moved").ran == 0


def moved_checkpoints(world: Path, out: Path) -> None:
    nets = _nets(world)
    _run(_config(out / "c.toml", nets, "reference"), out / "s")
    copies = []
    for i, net in enumerate(nets):
        copies.append(out / "elsewhere" / f"net{i}.pt")
        copies[-1].parent.mkdir(exist_ok=True)
        shutil.copyfile(net, copies[-1])
    assert _run(_config(out / "c.toml", copies, "reference"), out / "s").ran == 0  # same content: same networks


def version_1_store(world: Path, out: Path) -> None:
    import sqlite3

    study = out / "s"
    shutil.copytree(FIXTURE, study)
    with sqlite3.connect(study / "study.sqlite") as db:
        rows = db.execute("SELECT id FROM units WHERE kind = 'network' ORDER BY label").fetchall()
    nets = [str(study / "units" / f"network-{unit_id}" / "final.pt") for (unit_id,) in rows]
    for i, net in enumerate(nets):  # the config names copies (the unit folders move in the upgrade)
        shutil.copyfile(net, out / f"n{i}.pt")
    text = (
        (FIXTURE / "study.toml")
        .read_text()
        .replace('"nets/n0/final.pt", "nets/n1/final.pt"', f'"{out}/n0.pt", "{out}/n1.pt"')
    )
    text = text.replace(
        'measures = ["cka"]', 'measures = ["cka"]\npolicy = "auto_original"'
    )  # the default policy when it ran
    (out / "c.toml").write_text(
        text + "\n[uncertainty]\nsimilarity_bootstrap = 0\npermutations = 0\n"
    )  # as the old store's similarity ran
    summary = _run(out / "c.toml", study)
    assert summary.ran == 2 and summary.counts["done"] == 6, summary
    _roles_kept(study)


def labels_of_same_named_files(world: Path, out: Path) -> None:
    from stitchkit.study.config import load_config
    from stitchkit.study.plan import plan_study

    units = plan_study(load_config(_config(out / "c.toml", _nets(world))), out / "s")
    labels = [u.label for u in units if u.kind == "network"]
    assert labels == ["network run0", "network run1"], labels


CLI_CASES: list[Case] = [
    Case("study/identity", STUDY % "../cfg_identity/link_and_target.toml", "same file"),
    Case("study/identity", STUDY % "../cfg_identity/copy_under_other_name.toml", "same file"),
]

API_CASES: list[ApiCase] = [
    ApiCase(
        "study", "identity", "pairs = all over two networks computes both directions", both_directions, expect="ok"
    ),
    ApiCase(
        "study",
        "identity",
        "a config with the networks in the other order gets its own grids",
        reversed_config_in_the_same_folder,
        expect="ok",
    ),
    ApiCase(
        "study",
        "identity",
        "a checkpoint retrained in place is a new network",
        checkpoint_changed_in_place,
        expect="ok",
    ),
    ApiCase(
        "study", "identity", "a finished study moved to another folder is still finished", moved_study, expect="ok"
    ),
    ApiCase(
        "study", "identity", "checkpoints moved (same content) keep the study finished", moved_checkpoints, expect="ok"
    ),
    ApiCase("study", "identity", "a store of version 1 keeps its unambiguous results", version_1_store, expect="ok"),
    ApiCase(
        "checkpoint",
        "identity",
        "checkpoints that share a file name get distinct labels",
        labels_of_same_named_files,
        expect="ok",
    ),
]
