"""``python -m onair.cli``: the ``onair`` command."""

import sys

from onair.cli import main

sys.exit(main())
