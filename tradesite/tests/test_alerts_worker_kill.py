"""A worker killed between "sent to the webhook" and "marked sent": after the restart the
notification is sent again with the same idempotency key, so the receiver takes it once.

A real Celery worker (subprocess) on a private queue against the test database, with the
visibility timeout lowered to 2 s and the alert lease to 1 s; every wait is bounded."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import pytest

from alerts import tasks
from alerts.models import Channel, Notification
from alerts.tests.conftest import Receiver
from markets.tests.database import database_url
from tradesite.tests.test_task_redelivery import wait_for

pytestmark = [pytest.mark.redis, pytest.mark.django_db(transaction=True)]
ROOT = Path(__file__).resolve().parents[2]


def start_worker(queue: str, name: str, log: Path) -> subprocess.Popen:
    env = os.environ | {
        "DATABASE_URL": database_url(), "CELERY_VISIBILITY_TIMEOUT_S": "2",
        "ALERTS_LEASE_S": "1",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "tradesite", "worker", "-Q", queue, "-c", "1",
         "-n", f"{name}-{queue}@test", "--without-gossip", "--without-mingle",
         "--without-heartbeat", "-l", "INFO"],
        cwd=ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def kill(proc: subprocess.Popen, sig=signal.SIGKILL) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, sig)  # the worker and its pool children at once
        proc.wait(15)


def test_a_webhook_send_cut_by_a_killed_worker_is_received_once(
    redis_url, make_trader, tmp_path
):
    receiver = Receiver()
    release = threading.Event()
    first_arrived = threading.Event()
    handler = receiver.server.RequestHandlerClass
    original = handler.do_POST

    def do_post(self):  # the first request is held until its sender has been killed
        if not first_arrived.is_set():
            first_arrived.set()
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            with receiver.lock:
                receiver.requests.append((dict(self.headers), body))
                receiver.accepted.append(self.headers.get("X-Idempotency-Key", ""))
            release.wait(30)
            self.send_response(200)
            self.end_headers()
            return
        original(self)

    handler.do_POST = do_post
    user = make_trader("dora")
    channel = Channel.objects.create(owner=user, name="hook", kind="webhook",
                                     target=receiver.url)
    row = Notification.objects.create(owner=user, channel=channel, dedupe_key="k",
                                      title="Position closed", body="PnL 12.5")
    queue = f"alerts-{uuid.uuid4().hex[:8]}"
    procs = [start_worker(queue, "a", tmp_path / "a.log")]
    try:
        tasks.deliver.apply_async(args=[row.pk], queue=queue)
        assert first_arrived.wait(60), "the first worker never sent the webhook"
        kill(procs[0])  # mid-send: the row stays "sending", the task unacknowledged
        release.set()
        row.refresh_from_db()
        assert row.status == "sending" and row.attempts == 1
        procs.append(start_worker(queue, "b", tmp_path / "b.log"))
        wait_for(lambda: Notification.objects.get(pk=row.pk).status == "sent", timeout_s=90,
                 what="the notification to be sent after the restart")
    finally:
        for proc in procs:
            kill(proc, signal.SIGTERM)
        receiver.close()
    row.refresh_from_db()
    key = f"tradesite-notification-{row.pk}"
    assert row.attempts == 2
    assert [h.get("X-Idempotency-Key") for h, _ in receiver.requests] == [key, key]
    assert receiver.accepted == [key]  # the receiver took it once
