"""Self-describing checkpoints, plain state_dicts, and refusal of unsafe or broken files."""

import json
import pickle

import pytest
import torch

from stitchkit.errors import StitchkitError
from stitchkit.models import get_model
from stitchkit.models.checkpoint import RUN_CONFIG, load_checkpoint, save_checkpoint, save_state_dict
from stitchkit.models.loading import load_model


def small_model(**kw):
    return get_model("resnet18", num_classes=10, in_channels=1, input_size=28, width=4, **kw)


def same_weights(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_self_describing_roundtrip(tmp_path):
    model = small_model()
    path = save_checkpoint(
        tmp_path / "m.pt",
        model,
        dataset="fashion",
        input_shape=(1, 28, 28),
        training={"lr": 0.1},
        epoch=3,
        metrics={"acc": 0.5},
    )
    loaded, ckpt = load_model(path)
    assert same_weights(model, loaded)
    assert ckpt.dataset == "fashion" and ckpt.epoch == 3 and ckpt.training["lr"] == 0.1
    assert ckpt.input_shape == (1, 28, 28)
    assert loaded.stitchkit_spec == model.stitchkit_spec
    raw = torch.load(path, weights_only=True)
    assert raw["stitchkit_version"] and raw["model"]["name"] == "resnet18"


def test_a_checkpoint_keeps_the_states_to_resume_from_by_name(tmp_path):
    model = small_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=2)
    path = save_checkpoint(tmp_path / "m.pt", model, epoch=1, resume={"optimizer": optimizer, "scheduler": scheduler})
    extra = load_checkpoint(path).extra
    assert set(extra) == {"optimizer", "scheduler"} and extra["scheduler"]["step_size"] == 2
    assert extra["optimizer"]["param_groups"][0]["momentum"] == 0.9
    with pytest.raises(StitchkitError, match="states of optimizer, scheduler, scaler to resume from, not optimiser"):
        save_checkpoint(tmp_path / "n.pt", model, resume={"optimiser": optimizer})
    assert not (tmp_path / "n.pt").exists()


def test_plain_state_dict_needs_a_model_name(tmp_path):
    model = small_model()
    path = tmp_path / "model_5.pt"
    torch.save(model.state_dict(), path)
    with pytest.raises(StitchkitError, match="give the model name"):
        load_model(path)
    loaded, _ = load_model(path, "resnet18", dataset="fashion", width=4)
    assert same_weights(model, loaded)


def test_plain_state_dict_in_a_run_folder_is_described_by_config_json(tmp_path):
    model = small_model()
    save_state_dict(tmp_path / "model_1.pt", model)
    (tmp_path / RUN_CONFIG).write_text(
        json.dumps({"model_spec": model.stitchkit_spec, "dataset": "fashion", "input_shape": [1, 28, 28]})
    )
    loaded, ckpt = load_model(tmp_path / "model_1.pt")
    assert same_weights(model, loaded) and ckpt.dataset == "fashion"


def test_ddp_prefixes_are_stripped(tmp_path):
    model = small_model()
    torch.save({f"module.{k}": v for k, v in model.state_dict().items()}, tmp_path / "ddp.pt")
    loaded, _ = load_model(tmp_path / "ddp.pt", "resnet18", dataset="fashion", width=4)
    assert same_weights(model, loaded)


def test_mismatched_keys_are_named(tmp_path):
    state = small_model().state_dict()
    state.pop("fc.bias")
    state["extra.weight"] = torch.zeros(1)
    torch.save(state, tmp_path / "bad.pt")
    with pytest.raises(StitchkitError) as info:
        load_model(tmp_path / "bad.pt", "resnet18", dataset="fashion", width=4)
    text = str(info.value)
    assert "fc.bias" in text and "extra.weight" in text and "\n" not in text


def test_wrong_architecture_names_shape_mismatches(tmp_path):
    torch.save(small_model().state_dict(), tmp_path / "w4.pt")
    with pytest.raises(StitchkitError, match="shape mismatches"):
        load_model(tmp_path / "w4.pt", "resnet18", dataset="fashion", width=8)


class Payload:
    def __reduce__(self):  # would run code when unpickled without weights_only
        return (print, ("owned",))


def test_arbitrary_pickles_are_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"state_dict": small_model().state_dict(), "payload": Payload()}, path)
    with pytest.raises(StitchkitError, match="arbitrary code"):
        load_checkpoint(path)


@pytest.mark.parametrize("content", [b"", b"not a checkpoint at all", pickle.dumps([1, 2, 3])[:5]])
def test_corrupt_files_give_a_clear_error(tmp_path, content):
    path = tmp_path / "broken.pt"
    path.write_bytes(content)
    with pytest.raises(StitchkitError, match="corrupt|not a PyTorch"):
        load_checkpoint(path)


def test_truncated_checkpoint(tmp_path):
    path = save_checkpoint(tmp_path / "m.pt", small_model(), dataset="fashion")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(StitchkitError):
        load_checkpoint(path)


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(StitchkitError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.pt")
    with pytest.raises(StitchkitError, match="folder"):
        load_checkpoint(tmp_path)


def test_non_model_content(tmp_path):
    torch.save({"a": 1}, tmp_path / "x.pt")
    with pytest.raises(StitchkitError, match="neither"):
        load_checkpoint(tmp_path / "x.pt")
