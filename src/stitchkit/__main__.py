"""``python -m stitchkit`` (used with ``torchrun -m stitchkit train ...``)."""

import sys

from .cli import main

sys.exit(main())
