"""Stitching experiments on models, re-exported from their modules (kept for existing imports):

* :mod:`.settings` — :class:`StitchSettings` and the recorded conventions;
* :mod:`.donors` — :class:`Donor`, :func:`load_donor`, :func:`resolve_layers`;
* :mod:`.records` — :class:`StitchResult`, run names and the original's summary files;
* :mod:`.run_folder` — writing, recognising and reloading run folders (:func:`load_stitcher`);
* :mod:`.session` — the grid runner (:class:`~.session.GridSession`), grouped or pair by pair;
* :mod:`.grid` — :func:`stitch_grid` and :func:`stitch_pair`.
"""

from .donors import Donor, load_donor, resolve_layers
from .grid import stitch_grid, stitch_pair
from .records import BASIS_FILE, CONFIG_FILE, RESULT_FILE, WEIGHTS_FILE, StitchResult, config_key, original_config, run_name, summary_text
from .run_folder import is_finished, load_stitcher, publish
from .settings import CONVENTIONS, GROUPINGS, StitchSettings
from .stitcher import LOW_RANK_MODES

__all__ = [
    "BASIS_FILE", "CONFIG_FILE", "CONVENTIONS", "Donor", "GROUPINGS", "LOW_RANK_MODES", "RESULT_FILE", "StitchResult",
    "StitchSettings", "WEIGHTS_FILE", "config_key", "is_finished", "load_donor", "load_stitcher", "original_config", "publish",
    "resolve_layers", "run_name", "stitch_grid", "stitch_pair", "summary_text",
]
