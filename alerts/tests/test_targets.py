"""Channel targets: webhooks may not reach internal addresses (SSRF) unless
``ALERTS_ALLOW_PRIVATE_WEBHOOKS``; e-mail through Django's mail; targets are shown back only as
a masked hint."""

from __future__ import annotations

import socket

import pytest
from django.core import mail
from django.test import Client

from alerts import delivery, targets
from alerts.models import Channel, Notification

pytestmark = pytest.mark.django_db


@pytest.fixture
def no_private(settings):
    settings.ALERTS_ALLOW_PRIVATE_WEBHOOKS = False


def fake_resolve(address):
    def resolve(host, port, **_kw):
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]
    return resolve


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:8000/hook", "https://10.1.2.3/x", "json://192.168.0.5/h",
    "http://169.254.169.254/latest/meta-data", "http://[::1]/h", "http://0.0.0.0/",
    "http://[::ffff:127.0.0.1]/h", "forms://172.16.0.1/h",
])
def test_webhooks_to_internal_addresses_are_refused_with_a_reason(no_private, url):
    with pytest.raises(targets.TargetError, match="private or local address"):
        targets.check_webhook_host(url)


def test_a_host_name_resolving_inside_is_refused_and_a_public_one_passes(no_private):
    with pytest.raises(targets.TargetError, match=r"hooks\.example\.org is a private"):
        targets.check_webhook_host("https://hooks.example.org/x",
                                   resolve=fake_resolve("10.0.0.8"))
    targets.check_webhook_host("https://hooks.example.org/x", resolve=fake_resolve("93.184.215.14"))
    targets.check_webhook_host("discord://1234/token")  # the service's own host: no check


def test_the_setting_allows_private_webhooks(settings):
    settings.ALERTS_ALLOW_PRIVATE_WEBHOOKS = True
    targets.check_webhook_host("http://127.0.0.1:9/hook")


def test_the_admin_refuses_an_internal_webhook_with_a_trader_readable_error(
        no_private, make_trader):
    user = make_trader("eve")
    client = Client()
    client.force_login(user)
    response = client.post("/admin/alerts/channel/add/", {
        "name": "inside", "kind": "webhook", "new_target": "http://127.0.0.1:6379/",
        "is_active": "on"})
    assert "is a private or local address (127.0.0.1)" in response.content.decode()
    assert not Channel.objects.filter(name="inside").exists()


def test_a_stored_internal_webhook_is_refused_at_send_time(no_private, make_trader):
    user = make_trader("eve")
    channel = Channel.objects.create(owner=user, name="old", kind="webhook",
                                     target="http://127.0.0.1:6379/")
    row = Notification.objects.create(owner=user, channel=channel, dedupe_key="k", title="t")
    outcome = delivery.deliver(row.pk)
    assert outcome.status == "retry" and "private or local address" in outcome.error


def test_an_email_channel_sends_through_djangos_mail_with_its_test_button(make_trader):
    user = make_trader("eve")
    channel = Channel.objects.create(owner=user, name="mail", kind="email",
                                     target="eve@example.org")
    outcome = delivery.send_test(channel)
    assert outcome.status == "sent"
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["eve@example.org"] and "tradesite test: mail" in message.subject
    row = Notification.objects.get(channel=channel)
    assert message.extra_headers["X-Idempotency-Key"] == f"tradesite-notification-{row.pk}"


def test_a_failing_mail_server_marks_the_channel_failing_after_three_sends(
        make_trader, settings, monkeypatch):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", 9, 2
    told = []
    monkeypatch.setattr(delivery, "tell_in_app", lambda uid, payload, **kw: told.append(payload))
    user = make_trader("eve")
    channel = Channel.objects.create(owner=user, name="mail", kind="email",
                                     target="eve@example.org")
    for _ in range(3):
        outcome = delivery.send_test(channel)
        assert outcome.status == "retry" and "mail server refused it" in outcome.error
    channel.refresh_from_db()
    assert channel.failing and len(told) == 1
    assert "Alert channel failing: mail" in told[0]["title"]


@pytest.mark.parametrize("kind,target,shown,hidden", [
    ("webhook", "https://hooks.slack.com/services/T000/B000/SECRETTOKEN", "https://hooks.slack.com/…",
     "SECRETTOKEN"),
    ("webhook", "discord://1234/SECRETTOKEN", "discord://", "SECRETTOKEN"),
    ("email", "trader@example.org", "t…@example.org", "trader@"),
])
def test_a_hint_never_shows_the_secret_part(kind, target, shown, hidden):
    hint = targets.hint(kind, target)
    assert hint.startswith(shown) and hidden not in hint
