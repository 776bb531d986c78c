"""System-health rules, checked by a periodic task (``alerts.tasks.check_health``, beat, the
collector queue): a venue's stream silent for N minutes, workers or beat missing, a
reconciliation difference, a live order whose outcome is still unknown after N minutes.

The stack's checks are ``/health``'s own (``tradesite.health``); ``alerts`` may not import
``tradesite``, so the project registers them here at start (:func:`set_system_checks`, from
``TradesiteConfig.ready``). Each problem is an *episode* with a start time kept in Redis
(``<prefix>alerts:health:since``): a rule fires once per episode (the dedupe key holds the
start), and its cooldown spaces episodes that flap. What this cannot see: when the collector
queue's worker or beat itself is gone, this task does not run (the trader worker missing, a
stream silent, a venue down are seen).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from alerts import events
from alerts.models import AlertRule
from markets import heartbeat

log = logging.getLogger(__name__)
_system_checks: dict[str, Callable[[float], dict]] = {}


def set_system_checks(checks: Callable[[float], dict]) -> None:
    """``checks(now) -> {"workers": {...}, "beat": {...}, "stream": {...}}`` (``/health``'s)."""
    _system_checks["default"] = checks


def _key(name: str) -> str:
    return f"{settings.REDIS_KEY_PREFIX}alerts:health:{name}"


class Episodes:
    """When each ongoing problem started (Redis hash), forgotten once it is over."""

    def __init__(self, client) -> None:
        self.client = client
        self.since = {k: int(v) for k, v in (client.hgetall(_key("since")) or {}).items()}
        self.seen: set[str] = set()

    def start(self, subject: str, now_ms: int, at_ms: int | None = None) -> int:
        self.seen.add(subject)
        if subject not in self.since:
            self.since[subject] = at_ms if at_ms is not None else now_ms
            self.client.hset(_key("since"), subject, self.since[subject])
        return self.since[subject]

    def close_others(self) -> None:
        over = [s for s in self.since if s not in self.seen]
        if over:
            self.client.hdel(_key("since"), *over)


def problems(checks: dict, now_ms: int, client) -> dict[str, tuple[int, str]]:
    """Ongoing problems: subject -> (start ms, what a trader reads)."""
    found: dict[str, tuple[int, str]] = {}
    episodes = Episodes(client)
    for name in ("workers", "beat"):
        check = checks.get(name) or {}
        if not check.get("ok", True):
            since = episodes.start(name, now_ms)
            found[name] = (since, check.get("error") or f"{name} check failed")
    stream = checks.get("stream") or {}
    venues = stream.get("venues") or {}
    last_seen = client.hgetall(_key("stream_last")) or {}
    for slug in sorted(set(stream.get("required") or []) | set(venues)):
        fields = venues.get(slug)
        try:
            last = int(fields["last_message_ms"]) if fields else None
        except (KeyError, TypeError, ValueError):
            last = None
        if last:
            client.hset(_key("stream_last"), slug, last)
        else:  # no heartbeat: the stream process is gone; silent since its last message known
            last = int(last_seen[slug]) if slug in last_seen else None
        subject = f"stream:{slug}"
        since = episodes.start(subject, now_ms, at_ms=last) if last is None or (
            now_ms - last > 60_000) else None
        if since is not None:
            state = (fields or {}).get("state", "no heartbeat: is the stream running?")
            found[subject] = (since, f"no message from {slug} since "
                              f"{_utc(since)} ({state})")
    reconcile = heartbeat.read("reconcile").get("last") or {}
    try:
        mismatches = int(reconcile.get("net_mismatches", 0))
    except ValueError:
        mismatches = 0
    if mismatches:
        since = episodes.start("reconcile", now_ms)
        found["reconcile"] = (since, f"{mismatches} net position(s) differ from the venue's "
                              "(see the reconcile log)")
    episodes.close_others()
    return found


def _utc(ms: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ms / 1000))


def events_for(rule: AlertRule, found: dict, now_ms: int) -> list[events.Event]:
    out = []
    p = rule.params or {}
    if rule.kind == AlertRule.Kind.WORKERS_MISSING:
        for subject in ("workers", "beat"):
            if subject in found:
                since, text = found[subject]
                out.append(events.Event(rule.kind, f"{subject}:{since}", None,
                                        f"System: {subject} missing", text, {"since": since}))
    elif rule.kind == AlertRule.Kind.STREAM_SILENT:
        limit_ms = int(p.get("minutes", 10)) * 60_000
        for subject, (since, text) in found.items():
            venue = subject.partition(":")[2]
            if not subject.startswith("stream:") or p.get("venue") not in (None, venue):
                continue
            if now_ms - since >= limit_ms:
                out.append(events.Event(
                    rule.kind, f"{subject}:{since}", None,
                    f"Stream silent: {venue} for {(now_ms - since) // 60_000} min", text,
                    {"venue": venue, "since": since}))
    elif rule.kind == AlertRule.Kind.RECONCILE_DIFF and "reconcile" in found:
        since, text = found["reconcile"]
        out.append(events.Event(rule.kind, f"reconcile:{since}", None,
                                "Reconciliation difference", text, {"since": since}))
    elif rule.kind == AlertRule.Kind.ORDER_UNKNOWN:
        out += _unknown_orders(rule, int(p.get("minutes", 5)))
    return out


def _unknown_orders(rule: AlertRule, minutes: int) -> list[events.Event]:
    from markets.models import Account
    from orders.models import Order

    old = timezone.now() - timedelta(minutes=minutes)
    rows = (Order.objects.filter(account__owner_id=rule.owner_id,
                                 account__mode=Account.Mode.LIVE,
                                 status=Order.Status.SUBMITTED, created_at__lte=old)
            .select_related("symbol", "account")[:50])
    return [events.Event(
        rule.kind, f"order:{o.pk}:unknown", None,
        f"Order outcome unknown: {o.side} {o.symbol.code}",
        f"Live order {o.pk} on {o.account.label} was sent at {o.created_at:%H:%M:%S} UTC and "
        f"its outcome is still unknown; reconciliation keeps asking the venue.",
        {"order": o.pk}) for o in rows]


def check(now: float | None = None, client=None) -> dict:
    """Evaluate every active health rule once; returns counts."""
    now = now if now is not None else time.time()
    now_ms = int(now * 1000)
    client = client or heartbeat.client()
    rules = list(AlertRule.objects.filter(is_active=True, kind__in=AlertRule.HEALTH_KINDS)
                 .prefetch_related("channels"))
    checks = {}
    provider = _system_checks.get("default")
    if provider is not None:
        checks = provider(now)
    found = problems(checks, now_ms, client)
    created: list[int] = []
    for rule in rules:
        for event in events_for(rule, found, now_ms):
            with transaction.atomic():
                created += events.fire(rule, event)
    events.schedule(created)
    return {"rules": len(rules), "problems": len(found), "notifications": len(created)}
