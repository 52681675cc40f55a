"""How a run is carried out, as opposed to what it computes: one record shared by every settings class
(stitching, training, detector training, the sensitivity and specificity tests) and by a study's units.

None of these options changes a result: they never name a run or enter an identity hash.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from ..errors import StitchkitError


@dataclass(kw_only=True)
class RunOptions:
    """Where the data are, which device computes, how batches are loaded and what is shown.

    A settings class inherits these fields (keyword-only, after its own) and may give one another
    default (``workers: int = field(default=1, kw_only=True)``)."""

    data_root: str | None = None  # None: $STITCHKIT_DATA or ./data
    device: str = "auto"  # auto, cpu, cuda, cuda:N
    workers: int = 0  # data loader worker processes
    prefetch: int = 1  # batches each worker prepares ahead
    progress: bool = True  # progress bars on stderr
    verbose: bool = True  # a line per epoch or step on stdout

    def check_run_options(self) -> None:
        checks = [
            (self.workers >= 0, f"loader workers must be non-negative, got {self.workers}"),
            (self.prefetch >= 1, f"prefetch factor must be at least 1, got {self.prefetch}"),
        ]
        for ok, message in checks:
            if not ok:
                raise StitchkitError(message)

    def run_options(self) -> RunOptions:
        """These options alone (e.g. to hand on to another settings class: ``**vars(s.run_options())``)."""
        return RunOptions(**{f.name: getattr(self, f.name) for f in fields(RunOptions)})


RUN_OPTION_NAMES = tuple(f.name for f in fields(RunOptions))
