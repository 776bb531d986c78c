"""An alert's in-app notification is a toast on the open chart page, once per notification."""

from __future__ import annotations

import threading
import time

import pytest

from alerts import delivery
from alerts.models import Channel, Notification
from markets.timeframes import floor_ms
from tradesite.tests.test_browser_chart import (  # noqa: F401 (fixtures)
    MINUTE,
    log_in,
    store,
    trader,
    web,
    web_server,
)

pytestmark = [pytest.mark.browser, pytest.mark.redis, pytest.mark.django_db(transaction=True)]


def in_thread(fn, *args):
    """Channel-layer sends from a thread: Playwright's sync API owns this thread's loop."""
    result, errors = [], []

    def run():
        try:
            result.append(fn(*args))
        except BaseException as exc:  # re-raised in the test thread
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(30)
    if errors:
        raise errors[0]
    return result[0] if result else None


def test_an_in_app_notification_is_one_toast_on_the_chart_page(
    web, page, screenshot, symbol, trader  # noqa: F811
):
    store(symbol, floor_ms(int(time.time() * 1000), "1m") - 100 * MINUTE, 100)
    log_in(page, web, "/chart/sim/KRW-BTC/")
    page.wait_for_function("() => window.tradesiteChart?.badge() === 'live'")
    channel = Channel.objects.create(owner=trader, name="toasts", kind="in_app")
    row = Notification.objects.create(
        owner=trader, channel=channel, dedupe_key="k", title="Stop-loss hit: long sim:KRW-BTC",
        body="script: long sim:KRW-BTC closed (stop_loss), realized PnL -1234.5.",
    )

    assert in_thread(delivery.deliver, row.pk).status == "sent"
    toast = page.locator(f"#toasts [data-alert-id='{row.pk}']")
    toast.wait_for()
    assert "Stop-loss hit: long sim:KRW-BTC" in toast.inner_text()
    assert "realized PnL -1234.5" in toast.inner_text()
    screenshot("toast")

    # The same notification again (a resend after a worker died mid-send): still one toast.
    row.refresh_from_db()
    in_thread(delivery.tell_in_app, trader.pk, delivery.in_app_payload(row))
    marker = Notification.objects.create(owner=trader, channel=channel, dedupe_key="k2",
                                         title="second")
    in_thread(delivery.deliver, marker.pk)
    page.locator(f"#toasts [data-alert-id='{marker.pk}']").wait_for()
    assert page.locator(f"#toasts [data-alert-id='{row.pk}']").count() == 1
    page.click(f"#toasts [data-alert-id='{row.pk}'] .toast-close")
    assert page.locator(f"#toasts [data-alert-id='{row.pk}']").count() == 0
