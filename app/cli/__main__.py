"""``python -m app.cli`` (and ``torchrun -m app.cli``): the ``lungsam`` command."""

import sys

from app.cli import main

sys.exit(main())
