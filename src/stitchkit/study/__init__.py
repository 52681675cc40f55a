"""Studies: a whole comparison from one config — planned into units of work, run resumably by an
executor (in-process, process pool or Ray), stored in SQLite, and reported as figures."""

from .config import load_config, validate
from .runner import StudySummary, run_study, study_status
from .store import Store, UnitRecord
from .units import Unit, register_unit_kind

__all__ = [
    "Store",
    "StudySummary",
    "Unit",
    "UnitRecord",
    "load_config",
    "register_unit_kind",
    "run_study",
    "study_status",
    "validate",
]
