"""End to end on the simulator: a price alert fires within 2 s of the simulator's price
crossing its level and reaches every receiver exactly once.

Real processes: the stream (``manage.py stream``, subprocess, its market watch evaluating the
rule), a Celery worker on the collector queue (subprocess, the delivery task), the web server
(subprocess, ``/ws/alerts/``), Redis (``with-redis``), the simulator (a thread here, so the
test can move its price) and Chromium on the alerts page. The delay is measured from the
crossing trade's time on the simulator's tape to the receiver's arrival time (wall clock;
the simulator runs on the wall clock here).

Receivers share one small interface (``channel(owner)`` makes its channel, ``arrivals()`` gives
``[(notification id, arrival ms)]``): the open page's toasts, a local webhook receiver and the
user's linked chat on a local fake Telegram Bot API server."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from alerts import tasks
from alerts.models import AlertRule, Channel, Notification
from alerts.telegram.models import TelegramLink
from alerts.tests.conftest import Receiver
from alerts.tests.fake_telegram import fake_telegram, telegram_settings  # noqa: F401 (fixtures)
from markets.tests.database import database_url
from markets.tests.stream.conftest import make_sim_venue, sim_config
from simulator.server import SimulatorThread
from tradesite.tests.test_alerts_worker_kill import kill, start_worker
from tradesite.tests.test_browser_chart import log_in, trader, web  # noqa: F401
from tradesite.tests.test_task_redelivery import wait_for

pytestmark = [pytest.mark.browser, pytest.mark.redis, pytest.mark.django_db(transaction=True)]
ROOT = Path(__file__).resolve().parents[2]
MAX_DELAY_MS = 2000
TOAST_TIMES = """
window.__toasts = [];
new MutationObserver((changes) => {
  for (const change of changes) for (const node of change.addedNodes)
    if (node.dataset && node.dataset.alertId)
      window.__toasts.push([node.dataset.alertId, Date.now()]);
}).observe(document, { childList: true, subtree: true });
"""


class WebhookReceiver:
    def __init__(self) -> None:
        self.receiver = Receiver()
        self.times: list[tuple[str, int]] = []
        handler = self.receiver.server.RequestHandlerClass
        original, times = handler.do_POST, self.times

        def do_post(handler_self):
            times.append((handler_self.headers.get("X-Idempotency-Key", ""),
                          int(time.time() * 1000)))
            original(handler_self)

        handler.do_POST = do_post

    def channel(self, owner) -> Channel:
        return Channel.objects.create(owner=owner, name="hook", kind="webhook",
                                      target=self.receiver.url)

    def arrivals(self) -> list[tuple[int, int]]:
        prefix = "tradesite-notification-"
        return [(int(key[len(prefix):]), at) for key, at in list(self.times)
                if key.startswith(prefix)]

    def close(self) -> None:
        self.receiver.close()


class ToastReceiver:
    """The in-app channel, as toasts on an open alerts page."""

    def __init__(self, page) -> None:
        self.page = page

    def channel(self, owner) -> Channel:
        return Channel.objects.create(owner=owner, name="toasts", kind="in_app")

    def arrivals(self) -> list[tuple[int, int]]:
        return [(int(i), at) for i, at in self.page.evaluate("window.__toasts")
                if str(i).isdigit()]

    def close(self) -> None:
        pass


class TelegramReceiver:
    """The Telegram channel: the user's linked chat on a local fake Bot API server (the worker
    process is pointed at it through its environment)."""

    CHAT = 4242

    def __init__(self, fake) -> None:
        self.fake = fake
        self.channel_row: Channel | None = None

    def channel(self, owner) -> Channel:
        TelegramLink.objects.create(user=owner, chat_id=self.CHAT)
        self.channel_row = Channel.objects.create(owner=owner, name="tg", kind="telegram")
        return self.channel_row

    def arrivals(self) -> list[tuple[int, int]]:
        # A Telegram message carries no key: it is matched to its row by the row's title.
        rows = list(Notification.objects.filter(channel=self.channel_row)
                    .values_list("pk", "title"))
        return [(pk, m.at_ms) for m in self.fake.messages_to(self.CHAT)
                for pk, title in rows if title and title in m.text]

    def close(self) -> None:
        pass


def start_stream(log: Path) -> subprocess.Popen:
    env = os.environ | {"DATABASE_URL": database_url(), "ALERTS_ALLOW_PRIVATE_WEBHOOKS": "true"}
    return subprocess.Popen([sys.executable, "manage.py", "stream", "--venue", "sim"], cwd=ROOT,
                            env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT,
                            start_new_session=True)


def test_a_price_alert_reaches_every_receiver_once_within_two_seconds_of_the_crossing(
        web, page, screenshot, trader, tmp_path, clean_redis, fake_telegram, telegram_settings,  # noqa: F811
        monkeypatch):
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", fake_telegram.token)  # the worker's environment
    monkeypatch.setenv("TELEGRAM_API_BASE_URL", fake_telegram.base_url)
    sim = SimulatorThread(sim_config(now_ms=None, trade_rate=5.0, history_days=0.05))
    receivers = [WebhookReceiver(), ToastReceiver(page), TelegramReceiver(fake_telegram)]
    procs: list[subprocess.Popen] = []
    try:
        _, (symbol,) = make_sim_venue(sim)
        channels = [r.channel(trader) for r in receivers]
        market = sim.sim.market("upbit", "KRW-BTC")
        price = sim.call(lambda: market.last_price)
        level = round(price * 1.01)
        rule = AlertRule(owner=trader, name="BTC +1 %", kind="price_cross", symbol=symbol,
                         params={"level": str(level), "direction": "up"})
        rule.full_clean()
        rule.save()
        rule.channels.set(channels)

        page.add_init_script(TOAST_TIMES)
        log_in(page, web, "/alerts/")
        page.wait_for_function(
            "() => document.getElementById('alerts-page')?.dataset.socket === 'subscribed'")
        procs.append(start_worker("collector", "e2e", tmp_path / "worker.log"))
        stream_log = tmp_path / "stream.log"
        procs.append(start_stream(stream_log))
        # Warm the worker's delivery path (imports, connections) with one row per channel.
        warm = [Notification.objects.create(owner=trader, channel=c, dedupe_key="warm",
                                            title="warming up") for c in channels]
        for row in warm:
            tasks.deliver.delay(row.pk)
        wait_for(lambda: all(r.arrivals() for r in receivers), 30, "the warm-up deliveries")
        wait_for(lambda: "alerts: watching sim KRW-BTC" in stream_log.read_text(), 30,
                 "the stream's market watch to see a price")

        jumped_ms = sim.call(sim.sim.clock_ms)
        sim.call(lambda: setattr(market.feed, "price", level * 1.01))  # the crossing
        fired = Notification.objects.filter(rule=rule)

        def sent_everywhere() -> bool:
            rows = list(fired.all())  # a new query each time (a QuerySet caches)
            return len(rows) == len(receivers) and all(n.status == "sent" for n in rows)

        try:
            wait_for(sent_everywhere, 15, "the alert to be sent everywhere")
        except AssertionError:
            print(list(Notification.objects.values_list("id", "rule_id", "status", "title")))
            print(stream_log.read_text()[-3000:])
            raise

        tape = sim.call(market.trades)
        crossing_ms = next(int(ts) for ts, p in zip(tape["ts"], tape["price"], strict=True)
                           if ts >= jumped_ms and p >= level)
        for receiver, channel in zip(receivers, channels, strict=True):
            row = fired.get(channel=channel)
            got = [(pk, at) for pk, at in receiver.arrivals() if pk == row.pk]
            assert len(got) == 1, f"{type(receiver).__name__} received {len(got)} copies"
            delay = got[0][1] - crossing_ms
            print(f"{type(receiver).__name__}: {delay} ms after the crossing trade")
            assert 0 <= delay < MAX_DELAY_MS, f"{type(receiver).__name__}: {delay} ms"
        toast = page.locator(f"#toasts [data-alert-id='{fired.get(channel=channels[1]).pk}']")
        assert f"KRW-BTC crossed above {level:,}" in toast.inner_text()
        page.reload()  # the history now lists the notifications
        assert page.locator(f"#history [data-notification='{fired.first().pk}']").is_visible()
        screenshot("alerts-page")
    finally:
        for proc in procs:
            kill(proc, 15)
        for receiver in receivers:
            receiver.close()
        sim.stop()
