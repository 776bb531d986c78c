"""Tasks killed with their worker run again within the visibility timeout (issue 21), and a
task running longer than that timeout is not sent to a second worker (its lease is renewed).

Real Celery workers (subprocesses) on a private queue, with the visibility timeout lowered to
2 s through ``CELERY_VISIBILITY_TIMEOUT_S``; every wait is bounded."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

pytestmark = pytest.mark.redis

ROOT = Path(__file__).resolve().parents[2]
TASK = "tradesite.tests.redelivery_tasks.record_and_wait"
VISIBILITY_S = 2.0


def wait_for(condition, timeout_s=60.0, what="condition"):
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}")
        time.sleep(0.05)


class Workers:
    def __init__(self, queue: str, tmp: Path) -> None:
        self.queue, self.tmp, self.procs = queue, tmp, []

    def start(self, name: str) -> subprocess.Popen:
        env = os.environ | {"CELERY_VISIBILITY_TIMEOUT_S": str(VISIBILITY_S)}
        out = (self.tmp / f"{name}.log").open("wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "tradesite", "worker", "-Q", self.queue,
             "-c", "1", "-n", f"{name}-{self.queue}@test", "--include",
             "tradesite.tests.redelivery_tasks", "--without-gossip", "--without-mingle",
             "--without-heartbeat", "-l", "INFO"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        self.procs.append(proc)
        return proc

    def kill(self, proc: subprocess.Popen) -> None:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)  # the worker and its pool children at once
            proc.wait(10)

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill(proc)


@pytest.fixture
def workers(redis_url, tmp_path):
    w = Workers(f"redelivery-{uuid.uuid4().hex[:8]}", tmp_path)
    yield w
    w.stop_all()


def lines(path: Path) -> list[str]:
    return path.read_text().split("\n")[:-1] if path.exists() else []


def send(queue: str, log: Path, release: Path):
    from tradesite.celery import app

    return app.send_task(TASK, args=[str(log), str(release)], queue=queue)


def test_a_task_killed_with_its_worker_runs_again_after_the_restart(workers, tmp_path):
    log, release = tmp_path / "runs.txt", tmp_path / "release"
    first = workers.start("a")
    send(workers.queue, log, release)
    wait_for(lambda: len(lines(log)) == 1, what="the task to start")

    workers.kill(first)  # SIGKILL mid-task: nothing is acknowledged
    workers.start("b")
    wait_for(lambda: len(lines(log)) == 2, timeout_s=60,
             what="the task to run again (redelivered after the visibility timeout)")
    release.touch()
    wait_for(lambda: any(line.startswith("done") for line in lines(log)), what="the task to end")

    starts = [line for line in lines(log) if line.startswith("start")]
    assert len(starts) == 2 and starts[0] != starts[1]  # once per worker, in two processes


def test_a_task_running_longer_than_the_visibility_timeout_is_not_sent_twice(workers, tmp_path):
    log, release = tmp_path / "runs.txt", tmp_path / "release"
    workers.start("a")
    workers.start("b")  # idle and sweeping the unacked set every few seconds
    send(workers.queue, log, release)
    wait_for(lambda: len(lines(log)) == 1, what="the task to start")
    started = time.monotonic()
    # Four visibility timeouts and two sweeps later, still one run.
    wait_for(lambda: time.monotonic() - started > 4 * VISIBILITY_S + 10
             or len(lines(log)) > 1, timeout_s=60, what="four visibility timeouts")
    assert len(lines(log)) == 1, lines(log)
    release.touch()
    wait_for(lambda: any(line.startswith("done") for line in lines(log)), what="the task to end")
    assert [line.split()[0] for line in lines(log)] == ["start", "done"]
