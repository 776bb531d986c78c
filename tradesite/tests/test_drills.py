"""The fault-drill runner end to end (issue 21): ``python -m tradesite.drills --only rate-limit``,
its fastest drill, starts a scratch stack (private Redis, scratch SQLite, the simulator with a
budget of 3 requests a window, another client taking most of it, two concurrent
``manage.py backfill`` runs), prints its one line
and exits 0; so does ``--only order-delays --orders 5`` (5 live orders whose answers are held
past the client's timeout). The other drills wait for real 1m bars to close and run in ``make
drills`` only."""

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


@pytest.mark.skipif(os.environ.get("DATABASE_URL", "").startswith("postgres"),
                    reason="the drill runs on a scratch SQLite of its own whatever the suite's "
                           "database: the SQLite pass of the suite runs it")
def test_the_order_delays_drill_settles_every_held_order_once():
    """5 live orders (sent at once) whose answers the simulator holds past the client's 10 s
    timeout: each is looked up by its client order id, none is sent twice, all end final."""
    run = subprocess.run([sys.executable, "-m", "tradesite.drills", "--only", "order-delays",
                          "--orders", "5"],
                         cwd=ROOT, capture_output=True, text=True, timeout=240)
    lines = [line for line in run.stdout.splitlines() if line.startswith("drill ")]
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert len(lines) == 1 and lines[0].startswith("drill order-delays: "), run.stdout
    assert lines[0].endswith(": PASS")
    assert "held 12 s; 5 live orders" in lines[0]
    assert "5 final: venue orders 5, order rows at the venue 5 " in lines[0]
    assert "(only at the venue 0, only here 0), doubled 0, not final 0" in lines[0]
    assert "timed out" in run.stderr, "no answer was held past the timeout: proves nothing"
