"""Sending the outbox: claim a row atomically, send it through its channel, record the result.

A row is claimed by one conditional UPDATE (``new`` and due, or ``sending`` whose lease has
run out → ``sending`` with a fresh lease, attempts + 1): of two workers only one gets it, and
a worker killed mid-send leaves a row that is claimed again once its lease
(``settings.ALERTS_LEASE_S``, 30 s) has passed. A failed send is retried with exponential
backoff (``BACKOFF_S`` doubling, capped)
until ``MAX_ATTEMPTS``; a channel that fails ``FAILING_AFTER`` sends in a row is marked
failing and its owner told in-app.

Exactly once, as far as the channel allows: in-app messages carry the row id (the page shows
one toast per id), webhooks an ``X-Idempotency-Key`` header with the row id, so a receiver
can drop the resend that follows a worker killed between the send and the ``sent`` mark.

Webhooks go through apprise: one URL scheme for many services (``discord://``, ``slack://``,
``json://``, ``ntfy://`` ...), so a trader pastes the URL their service documents and no
HTTP client per service is written here. A plain ``http(s)://`` target is posted as JSON.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlsplit

from asgiref.sync import async_to_sync
from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from alerts import targets
from alerts.models import Channel, Notification
from markets import wire
from markets.fields import CredentialsUnreadable, plain

log = logging.getLogger(__name__)
S = Notification.Status

LEASE_S = 30  # the default of settings.ALERTS_LEASE_S
MAX_ATTEMPTS = 6
BACKOFF_S = 5
BACKOFF_MAX_S = 3600
FAILING_AFTER = 3


class SendError(Exception):
    """A send that did not go through; the message is stored as the row's last error."""


@dataclass
class Outcome:
    status: str  # "sent", "retry", "failed", "skipped" (not claimed)
    retry_in: float | None = None
    error: str = ""


def backoff(attempts: int) -> float:
    """Seconds before attempt ``attempts + 1``: 5, 10, 20, ... capped at an hour."""
    return float(min(BACKOFF_MAX_S, BACKOFF_S * 2 ** max(0, attempts - 1)))


def claim(pk: int, now=None) -> Notification | None:
    """Take the row for sending, or None if it is not due or another worker holds it."""
    now = now or timezone.now()
    due = Q(status__in=(S.NEW, S.SENDING), next_attempt_at__lte=now)
    taken = Notification.objects.filter(due, pk=pk).update(
        status=S.SENDING,
        next_attempt_at=now + timedelta(seconds=getattr(settings, "ALERTS_LEASE_S", LEASE_S)),
        attempts=F("attempts") + 1,
    )
    if not taken:
        return None
    return Notification.objects.select_related("channel").get(pk=pk)


def due_ids(now=None, limit: int = 500) -> list[int]:
    now = now or timezone.now()
    return list(
        Notification.objects.filter(status__in=(S.NEW, S.SENDING), next_attempt_at__lte=now)
        .order_by("next_attempt_at").values_list("pk", flat=True)[:limit]
    )


def deliver(pk: int, now=None) -> Outcome:
    row = claim(pk, now)
    if row is None:
        return Outcome("skipped")
    try:
        send(row)
    except Exception as exc:  # every failure is the row's, never the worker's
        error = str(exc) or exc.__class__.__name__
        return _failed(row, error[:2000])
    sent_at = timezone.now()
    Notification.objects.filter(pk=row.pk, status=S.SENDING, attempts=row.attempts).update(
        status=S.SENT, sent_at=sent_at, last_error=""
    )
    Channel.objects.filter(pk=row.channel_id).update(
        consecutive_failures=0, failing=False, failing_since=None, last_error=""
    )
    return Outcome("sent")


def _failed(row: Notification, error: str) -> Outcome:
    final = row.attempts >= MAX_ATTEMPTS or row.channel.kind not in Channel.DELIVERABLE
    now = timezone.now()
    delay = backoff(row.attempts)
    Notification.objects.filter(pk=row.pk, status=S.SENDING, attempts=row.attempts).update(
        status=S.FAILED if final else S.NEW, last_error=error,
        next_attempt_at=now if final else now + timedelta(seconds=delay),
    )
    log.warning("alerts: notification %s on channel %s failed (attempt %s): %s",
                row.pk, row.channel_id, row.attempts, error)
    _channel_failed(row.channel, error, now)
    return Outcome("failed" if final else "retry", None if final else delay, error)


def _channel_failed(channel: Channel, error: str, now) -> None:
    with transaction.atomic():
        Channel.objects.filter(pk=channel.pk).update(
            consecutive_failures=F("consecutive_failures") + 1, last_error=error[:2000]
        )
        newly = Channel.objects.filter(
            pk=channel.pk, failing=False, consecutive_failures__gte=FAILING_AFTER
        ).update(failing=True, failing_since=now)
    if newly and channel.kind != Channel.Kind.IN_APP:
        tell_in_app(channel.owner_id, {
            "id": f"channel-{channel.pk}-failing-{int(now.timestamp())}",
            "title": f"Alert channel failing: {channel.name}",
            "body": f"{FAILING_AFTER} sends in a row failed; the last said: {error[:300]}. "
                    "Check its URL in the admin and use “send test”.",
            "level": "error",
        })


# ----------------------------------------------------------------------------- channels


def send(row: Notification) -> None:
    kind = row.channel.kind
    if kind == Channel.Kind.IN_APP:
        tell_in_app(row.owner_id, in_app_payload(row), raise_errors=True)
    elif kind == Channel.Kind.WEBHOOK:
        send_webhook(row)
    elif kind == Channel.Kind.TELEGRAM:
        from alerts.telegram.send import send_telegram

        send_telegram(row)
    elif kind == Channel.Kind.EMAIL:
        send_email(row)
    else:
        raise SendError(
            f"{row.channel.get_kind_display()} channels cannot send yet: use an in-app, "
            "webhook, e-mail or Telegram channel"
        )


def in_app_payload(row: Notification) -> dict:
    return {
        "id": row.pk,
        "title": row.title,
        "body": row.body,
        "kind": (row.payload or {}).get("kind", ""),
        "created_at": row.created_at.isoformat() if row.created_at else None,
        "level": "info",
    }


def tell_in_app(user_id: int, payload: dict, *, raise_errors: bool = False) -> None:
    """Push ``alert.created`` to ``user.<id>`` (the pages listening on the user socket show a
    toast)."""
    from channels.layers import get_channel_layer

    layer = get_channel_layer()
    try:
        if layer is None:
            raise SendError("no channel layer is configured")
        async_to_sync(layer.group_send)(
            wire.user_group(user_id), wire.private_message(wire.ALERT_CREATED, payload)
        )
    except Exception as exc:
        if raise_errors:
            raise SendError(f"could not reach the in-app channel: {exc}") from exc
        log.warning("alerts: in-app message to user %s failed", user_id, exc_info=True)


def apprise_url(target: str, idempotency_key: str) -> str:
    """The apprise URL for a channel target: ``http(s)://`` becomes ``json(s)://``; the
    idempotency header is added for the JSON/form/XML webhooks that take headers."""
    target = target.strip()
    parts = urlsplit(target)
    scheme = parts.scheme.lower()
    if scheme in ("http", "https"):
        target = ("jsons" if scheme == "https" else "json") + target[len(scheme):]
        scheme = "jsons" if scheme == "https" else "json"
    if scheme in ("json", "jsons", "form", "forms", "xml", "xmls"):
        sep = "&" if parts.query else "?"
        target = f"{target}{sep}+X-Idempotency-Key={idempotency_key}"
    return target


def send_webhook(row: Notification) -> None:
    import apprise

    try:
        target = plain(row.channel.target)
    except CredentialsUnreadable as exc:
        raise SendError(f"the webhook URL is unreadable: enter it again ({exc})") from None
    if not target:
        raise SendError("the channel has no webhook URL: enter one in the admin")
    try:
        targets.check_webhook_host(target)  # again at send time: a name may now resolve inside
    except targets.TargetError as exc:
        raise SendError(str(exc)) from None
    notifier = apprise.Apprise()
    if not notifier.add(apprise_url(target, f"tradesite-notification-{row.pk}")):
        raise SendError("the webhook URL is not one apprise understands (see apprise's URL list)")
    with apprise.LogCapture(level=logging.WARNING) as captured:
        ok = notifier.notify(title=row.title, body=row.body or row.title)
    if not ok:
        detail = " ".join(line.split(" - ", 2)[-1] for line in captured.getvalue().splitlines())
        raise SendError(detail.strip() or "the webhook did not accept the notification")


def apprise_is_valid(target: str) -> bool:
    import apprise

    try:
        url = apprise_url(target, "check")
    except ValueError:  # urlsplit refuses it, e.g. "http://[" (an unclosed IPv6 address)
        return False
    return bool(apprise.Apprise().add(url))


def send_email(row: Notification) -> None:
    """Django's mail (``EMAIL_*`` settings from the environment; the SMTP password comes from
    ``EMAIL_HOST_PASSWORD`` and is never stored in the database or shown). The row id is the
    ``Message-ID``'s left part, so a resend after a killed worker is recognisable."""
    from django.core.mail import EmailMessage

    try:
        address = plain(row.channel.target)
    except CredentialsUnreadable as exc:
        raise SendError(f"the e-mail address is unreadable: enter it again ({exc})") from None
    if not address:
        raise SendError("the channel has no e-mail address: enter one")
    message = EmailMessage(
        subject=f"[tradesite] {row.title}"[:200], body=row.body or row.title,
        to=[address],
        headers={"Message-ID": f"<tradesite-notification-{row.pk}@{_mail_domain()}>",
                 "X-Idempotency-Key": f"tradesite-notification-{row.pk}"},
    )
    try:
        sent = message.send(fail_silently=False)
    except Exception as exc:
        raise SendError(f"the mail server refused it: {type(exc).__name__}: {exc}") from None
    if not sent:
        raise SendError("the mail server accepted no recipient")


def _mail_domain() -> str:
    sender = getattr(settings, "DEFAULT_FROM_EMAIL", "") or "tradesite@localhost"
    return sender.rpartition("@")[2].strip(">") or "localhost"


def send_test(channel: Channel) -> Outcome:
    """The channel's "send test": a row like any other, sent now (history keeps it)."""
    import uuid

    row = Notification.objects.create(
        owner_id=channel.owner_id, channel=channel, dedupe_key=f"test:{uuid.uuid4().hex}",
        title=f"tradesite test: {channel.name}", body="If you read this, the channel works.",
        payload={"kind": "test"},
    )
    return deliver(row.pk)
