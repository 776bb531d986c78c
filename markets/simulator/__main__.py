"""``python -m markets.simulator --help``."""

import sys

from markets.simulator.cli import main

sys.exit(main())
