"""``python -m tradesite.drills [--only NAME ...]``: run the fault drills (``make drills``)."""

from __future__ import annotations

import sys

from tradesite.drills.runner import main

if __name__ == "__main__":
    sys.exit(main())
