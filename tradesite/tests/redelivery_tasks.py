"""A task for the redelivery tests only (the worker imports it with ``--include``): it writes
a line per start to a file and waits for a release file, so a test can kill it mid-run."""

from __future__ import annotations

import os
import time
from pathlib import Path

from celery import shared_task


@shared_task(name="tradesite.tests.redelivery_tasks.record_and_wait")
def record_and_wait(log_path: str, release_path: str, limit_s: float = 120.0) -> str:
    log = Path(log_path)
    with log.open("a") as f:
        f.write(f"start {os.getpid()}\n")
    deadline = time.monotonic() + limit_s
    while not Path(release_path).exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    with log.open("a") as f:
        f.write(f"done {os.getpid()}\n")
    return "done"
