"""Notifications to a Telegram channel: sent by the outbox worker to the owner's linked chat,
once, through python-telegram-bot pointed at the local fake Bot API server; failures say what
to do and never show the bot token."""

from __future__ import annotations

import pytest
from django.test import Client

from alerts import delivery, tasks
from alerts.models import Channel, Notification
from alerts.telegram.models import TelegramLink

pytestmark = pytest.mark.django_db
CHAT = 4242


@pytest.fixture
def telegram(owner, telegram_settings):
    TelegramLink.objects.create(user=owner, chat_id=CHAT)
    return Channel.objects.create(owner=owner, name="phone", kind=Channel.Kind.TELEGRAM)


def row(channel, key="k1", title="Position closed", body="KRW-BTC long closed, PnL +1,000 KRW"):
    return Notification.objects.create(owner_id=channel.owner_id, channel=channel,
                                       dedupe_key=key, title=title, body=body)


def test_a_notification_reaches_the_linked_chat_exactly_once(telegram, fake_telegram):
    n = row(telegram)
    assert delivery.deliver(n.pk).status == "sent"
    # The safety net and a duplicate task find nothing more to send.
    assert tasks.deliver_due() == {}
    assert delivery.deliver(n.pk).status == "skipped"
    sent = fake_telegram.messages_to(CHAT)
    assert [m.text for m in sent] == ["Position closed\nKRW-BTC long closed, PnL +1,000 KRW"]
    assert len(fake_telegram.sent) == 1
    n.refresh_from_db()
    assert n.status == "sent" and n.attempts == 1


def test_a_long_message_is_cut_to_telegrams_limit(telegram, fake_telegram):
    n = row(telegram, body="x" * 5000)
    assert delivery.deliver(n.pk).status == "sent"
    (sent,) = fake_telegram.messages_to(CHAT)
    assert len(sent.text) == 4096 and sent.text.endswith("…")


def test_without_a_linked_chat_the_send_fails_with_what_to_do(telegram, fake_telegram):
    TelegramLink.objects.all().delete()
    outcome = delivery.deliver(row(telegram).pk)
    assert outcome.status == "retry"
    assert "no Telegram chat is linked" in outcome.error
    assert fake_telegram.sent == []


def test_a_blocked_bot_is_reported(telegram, fake_telegram):
    fake_telegram.blocked.add(CHAT)
    outcome = delivery.deliver(row(telegram).pk)
    assert outcome.status == "retry" and "bot was blocked" in outcome.error


def test_a_wrong_token_is_reported_without_the_token(telegram, fake_telegram, settings):
    settings.TELEGRAM_BOT_TOKEN = "987654:WRONG-secret-token"
    n = row(telegram)
    outcome = delivery.deliver(n.pk)
    assert outcome.status == "retry"
    assert "check TELEGRAM_BOT_TOKEN" in outcome.error
    n.refresh_from_db()
    assert "WRONG-secret" not in n.last_error
    assert "WRONG-secret" not in Channel.objects.get(pk=telegram.pk).last_error


def test_no_bot_configured(telegram, settings):
    settings.TELEGRAM_BOT_TOKEN = ""
    outcome = delivery.deliver(row(telegram).pk)
    assert "TELEGRAM_BOT_TOKEN is not set" in outcome.error


def test_the_admin_creates_a_telegram_channel_and_its_test_reaches_the_chat(
        telegram, fake_telegram, owner):
    client = Client()
    client.force_login(owner)
    response = client.post("/admin/alerts/channel/add/", {
        "name": "second phone", "kind": "telegram", "new_target": "", "is_active": "on",
    })
    assert response.status_code == 302, response.content.decode()[:2000]
    added = Channel.objects.get(name="second phone")
    refused = client.post("/admin/alerts/channel/add/", {
        "name": "with url", "kind": "telegram", "new_target": "https://x.test/", "is_active": "on",
    })
    assert "a Telegram channel takes no URL" in refused.content.decode()
    assert not Channel.objects.filter(name="with url").exists()
    assert added.target == ""
    response = client.post("/admin/alerts/channel/", {
        "action": "send_test", "_selected_action": [added.pk],
    }, follow=True)
    assert "Test sent to second phone" in response.content.decode()
    (sent,) = fake_telegram.messages_to(CHAT)
    assert sent.text.startswith("tradesite test: second phone")
    assert fake_telegram.token not in response.content.decode()
