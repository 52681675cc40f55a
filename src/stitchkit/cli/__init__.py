"""The ``stitchkit`` command: a thin layer over the library.

Each subcommand lives in its own module with ``register(subparsers)`` and a ``run(args)`` that calls
one library function and prints. User errors (:class:`~stitchkit.errors.StitchkitError`, and every
argument error, see :mod:`.parser`) print one line and exit with code 2; ``--debug`` shows the
traceback instead.

Building the parsers imports nothing heavy: the command modules read their choices from the torch-free
:mod:`stitchkit.choices` and catalogues, and import the library inside ``run()``, so ``--help``,
``stitchkit models`` and ``stitchkit datasets`` answer without loading torch.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from collections.abc import Sequence

from .. import __version__
from ..errors import StitchkitError, StitchkitWarning
from . import catalog
from . import collect as collect_cmd
from . import detector as detector_cmd
from . import eval as eval_cmd
from . import layers as layers_cmd
from . import ood as ood_cmd
from . import probe as probe_cmd
from . import sensitivity as sensitivity_cmd
from . import similarity as similarity_cmd
from . import stitch as stitch_cmd
from . import study as study_cmd
from . import train as train_cmd
from .parser import Parser

COMMANDS = [
    study_cmd,
    train_cmd,
    eval_cmd,
    layers_cmd,
    catalog,
    stitch_cmd,
    collect_cmd,
    detector_cmd,
    ood_cmd,
    similarity_cmd,
    probe_cmd,
    sensitivity_cmd,
]

EPILOG = """\
examples:
  stitchkit train resnet18 -d fashion --width 16 -e 3 -dir runs/r18_s0
  stitchkit eval runs/r18_s0/final.pt
  stitchkit layers resnet18 -d fashion

Run `stitchkit COMMAND --help` for the options of each command.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="stitchkit",
        description="Measure how similar two networks' internal representations are: train and cut models, "
        "stitch layers, test stitched representations for OOD, compute similarity indices.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"stitchkit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for module in COMMANDS:
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv or os.environ.get("STITCHKIT_DEBUG") == "1"
    argv = [a for a in argv if a != "--debug"]
    parser = build_parser()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("always", StitchkitWarning)  # each says something about this run's result
            warnings.showwarning = _show_warning
            args = parser.parse_args(argv)  # in here: an option value's deprecation warning is one line too
            return int(args.handler(args) or 0)
    except StitchkitError as exc:
        if debug:
            raise
        message = " ".join(str(exc).split())  # one line, whatever the library's wording
        print(f"stitchkit: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("stitchkit: interrupted; finished files are kept, unfinished ones were not written", file=sys.stderr)
        return 130


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """A :class:`StitchkitWarning` as one line on stderr; other warnings as Python prints them."""
    if issubclass(category, StitchkitWarning):
        print(f"stitchkit: warning: {' '.join(str(message).split())}", file=sys.stderr)
    else:
        sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))


def console_main() -> None:  # pragma: no cover - entry point
    sys.exit(main())
