"""Commands that used to fail or print the wrong thing only after their work: the OOD test writes an
experiment's files only once it is complete, and the probe command says which rank it used."""

import pytest
import torch

from stitchkit.cli import main
from stitchkit.errors import StitchkitError
from stitchkit.models import get_model
from stitchkit.models.checkpoint import save_checkpoint
from stitchkit.ood import grouped as ood_grouped
from stitchkit.ood.stitched import ResultsOODSettings, evaluate_results_dir
from stitchkit.stitching import StitchSettings, stitch_grid


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    model = get_model("resnet18", num_classes=10, in_channels=1, input_size=28, width=4).eval()
    return save_checkpoint(
        tmp_path_factory.mktemp("late") / "final.pt", model, dataset="digits", input_shape=(1, 28, 28)
    )


def test_an_ood_test_that_fails_half_way_leaves_no_output(checkpoint, tmp_path, monkeypatch):
    settings = StitchSettings(
        init="pinv",
        epochs=0,
        fit_samples=40,
        test_samples=32,
        dataset="digits",
        device="cpu",
        workers=0,
        progress=False,
        verbose=False,
    )
    stitch_grid(str(checkpoint), str(checkpoint), ["layer4.0"], ["layer4.1"], settings, save_dir=tmp_path / "stitches")

    def fail(*args, **kwargs):  # after the ID and sanity scores are computed
        raise StitchkitError("the stitched pass failed")

    monkeypatch.setattr(ood_grouped, "grouped_stitch_scores", fail)
    settings = ResultsOODSettings(
        training_free=["knn"],
        training_free_options={"knn": {"k": 5}},
        fit_samples=40,
        test_samples=32,
        sanity_dataset="noise",
        device="cpu",
        batch_size=32,
    )
    with pytest.raises(StitchkitError, match="the stitched pass failed"):
        evaluate_results_dir(tmp_path / "stitches", settings, out_dir=tmp_path / "ood", log=lambda m: None)
    assert not (tmp_path / "ood").exists()
    monkeypatch.undo()
    [exp] = evaluate_results_dir(tmp_path / "stitches", settings, out_dir=tmp_path / "ood", log=lambda m: None)
    assert (tmp_path / "ood" / "ood_matrices.json").is_file() and (
        tmp_path / "ood" / "energies" / "id" / "layer4.1" / "knn.npy"
    ).is_file()


def test_probe_prints_the_rank_it_used_and_no_argv(checkpoint, capsys):
    code = main(
        [
            "probe",
            str(checkpoint),
            "-l",
            "layer1.0",
            "-ranks",
            "999",
            "2",
            "-e",
            "1",
            "-b",
            "256",
            "--no-augment",
            "-gpu",
            "-1",
            "-workers",
            "0",
            "--no-progress",
        ]
    )
    out, err = capsys.readouterr()
    assert code == 0
    lines = out.splitlines()
    assert (
        lines[0] == f"probe test accuracy of {checkpoint}"
    )  # nothing printed before the results (the stray print(sys.argv))
    assert (
        lines[1].split() == ["layer", "rank", "999", "rank", "2"]
        and lines[2].split()[1].endswith("*")
        and not lines[2].endswith("*")
    )
    assert lines[3] == "(* a rank above the layer's channels: all of them were used)"
    code = main(
        [
            "probe",
            str(checkpoint),
            "-l",
            "layer1.0",
            "-ranks",
            "999",
            "2",
            "-e",
            "1",
            "-b",
            "256",
            "--no-augment",
            "-gpu",
            "-1",
            "-workers",
            "0",
            "--no-progress",
            "--original-output",
        ]
    )
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"{checkpoint} -- layer1.0"
    assert lines[1].startswith("Rank 999 (used 4: all of the layer's channels): ") and lines[2].startswith("Rank 2: ")
    assert "999 at layer1.0 (4 channels)" in err
