"""The one run-options record (device, workers, prefetch, progress, verbose, data root) of every settings class."""

from dataclasses import fields

import pytest

from stitchkit.errors import StitchkitError
from stitchkit.ood.train_config import DetectorTrainConfig
from stitchkit.sensitivity.settings import GroundingSettings
from stitchkit.stitching.settings import StitchSettings
from stitchkit.training.base import TrainSettings
from stitchkit.utils.run_options import RUN_OPTION_NAMES, RunOptions

SETTINGS = [
    (StitchSettings, {}),
    (TrainSettings, {"model": "resnet18", "save_dir": "x"}),
    (DetectorTrainConfig, {"save_dir": "x"}),
    (GroundingSettings, {}),
]


@pytest.mark.parametrize("cls, required", SETTINGS)
def test_every_settings_class_has_the_run_options_and_checks_them(cls, required):
    assert issubclass(cls, RunOptions) and set(RUN_OPTION_NAMES) <= {f.name for f in fields(cls)}
    s = cls(**required, workers=3, device="cpu", data_root="/data", prefetch=2, progress=False, verbose=False)
    assert s.run_options() == RunOptions(
        data_root="/data", device="cpu", workers=3, prefetch=2, progress=False, verbose=False
    )
    with pytest.raises(StitchkitError, match="loader workers must be non-negative"):
        cls(**required, workers=-1).validate()
    with pytest.raises(StitchkitError, match="prefetch factor must be at least 1"):
        cls(**required, prefetch=0).validate()


def test_the_classes_keep_their_own_defaults():
    assert StitchSettings().workers == 1 and TrainSettings("resnet18", "x").workers == 1  # the original's
    assert GroundingSettings().progress is False and GroundingSettings().workers == 0
    assert DetectorTrainConfig("x").progress is True
