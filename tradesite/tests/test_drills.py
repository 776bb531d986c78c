"""The fault-drill runner end to end (issue 21): ``python -m tradesite.drills --only rate-limit``,
its fastest drill, starts a scratch stack (private Redis, scratch SQLite, the simulator with a
budget of 3 requests a window, another client taking most of it, two concurrent
``manage.py backfill`` runs), prints its one line
and exits 0. The other drills wait for real 1m bars to close and run in ``make drills`` only."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


@pytest.mark.skipif(os.environ.get("DATABASE_URL", "").startswith("postgres"),
                    reason="the drill runs on a scratch SQLite of its own whatever the suite's "
                           "database: the SQLite pass of the suite runs it")
def test_the_rate_limit_drill_runs_end_to_end_and_passes():
    run = subprocess.run([sys.executable, "-m", "tradesite.drills", "--only", "rate-limit"],
                         cwd=ROOT, capture_output=True, text=True, timeout=240)
    lines = [line for line in run.stdout.splitlines() if line.startswith("drill ")]
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert len(lines) == 1 and lines[0].startswith("drill rate-limit: "), run.stdout
    assert lines[0].endswith(": PASS")
    figures = re.search(r"missing (\d+), extra (\d+), differing (\d+) of (\d+) candles", lines[0])
    assert figures and figures.groups()[:3] == ("0", "0", "0")
    assert int(figures[4]) == 2 * (400 + 80)  # 2 symbols, 400 minutes of 1m and 5m
    refused = re.search(r"429 answers \d+ \((\d+) to the backfills\)", lines[0])
    assert refused and int(refused[1]) > 0, "no backfill request was refused: proves nothing"
    assert "failed runs 0" in lines[0] and "pending ranges 0" in lines[0]
