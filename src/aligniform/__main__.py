"""``python -m aligniform`` (and ``torchrun -m aligniform``) runs the command line."""

import sys

from .cli import main

sys.exit(main())
