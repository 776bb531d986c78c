"""Trading events → notification rows, inside the event's own transaction.

``on_private_event`` is registered with ``orders.push`` (see ``AlertsConfig.ready``): it sees
every private event a user is sent. Which owners have active rules of which kinds is cached
per process (``RULE_INDEX_S``, and dropped at once when this process saves or deletes a rule):
an event of an owner without such a rule costs a dictionary lookup, no query and no
savepoint (measured: ~1.5 ms per event on SQLite before the cache). A rule created in another
process is seen within ``RULE_INDEX_S``.

Deduplication: each event has a key (rule id + object + what happened, e.g.
``12:order:345:filled``), unique per channel in the database, so an event pushed twice (a
reconciliation re-applying a fill) is one notification. Cooldown: a rule that fired less than
``cooldown_s`` ago stays quiet (a conditional update of ``last_fired_at``, so two writers
cannot both fire it); its rows are stored ``suppressed``, so the history says why and a later
push of the same event (the position's next update) is not notified late. The rows are
written in a savepoint: whatever goes wrong here is logged and never undoes the trading event.
Delivery is sent to the worker once the rows commit."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from alerts.models import AlertRule, Channel, Notification
from markets import wire
from markets.models import Account

log = logging.getLogger(__name__)
K = AlertRule.Kind
RULE_INDEX_S = 2.0
_clock = time.monotonic
_index: dict = {"expires": 0.0, "kinds": {}}
#: The rule kinds each private event type can be an instance of.
POSSIBLE = {
    wire.SIGNAL_CREATED: frozenset({K.SIGNAL_FIRED}),
    wire.ORDER_UPDATED: frozenset({K.ORDER_FILLED, K.ORDER_REJECTED}),
    wire.POSITION_UPDATED: frozenset({K.POSITION_OPENED, K.POSITION_CLOSED, K.STOP_LOSS_HIT,
                                      K.TAKE_PROFIT_HIT, K.LIQUIDATION_HIT}),
    wire.ACCOUNT_UPDATED: frozenset({K.ACCOUNT_HALTED}),
    wire.EQUITY_UPDATED: frozenset({K.DAILY_LIMIT_HIT}),
}
DAILY_LIMIT_TITLES = {"target": "Daily target reached", "max_loss": "Daily max loss hit"}
CLOSE_KINDS = {"stop_loss": K.STOP_LOSS_HIT, "take_profit": K.TAKE_PROFIT_HIT,
               "liquidation": K.LIQUIDATION_HIT}


@dataclass(frozen=True)
class Event:
    kind: str  # an AlertRule.Kind
    key: str  # what happened, unique per occurrence: "order:345:filled"
    symbol: str | None  # "<venue slug>:<code>"
    title: str
    body: str
    data: dict


def describe(kind: str, payload: dict) -> list[Event]:
    """The trading-event kinds a private event is an instance of (pure)."""
    symbol = payload.get("symbol")
    pk = payload.get("id")
    if kind == wire.SIGNAL_CREATED:
        action = str(payload.get("action", "")).replace("_", " ")
        execution = payload.get("execution") or {}
        outcome = execution.get("status") or "not acted on yet"
        if execution.get("reason"):
            outcome = f"{outcome}: {execution['reason']}"
        bar = datetime.fromtimestamp(payload.get("bar_time", 0) / 1000, UTC)
        return [Event(K.SIGNAL_FIRED, f"signal:{pk}", symbol,
                      f"Signal: {action} {symbol} {payload.get('timeframe')}",
                      f"{payload.get('config_name')}: {action} on {symbol} "
                      f"{payload.get('timeframe')}, bar {bar:%Y-%m-%d %H:%M} UTC, close "
                      f"{format(Decimal(payload.get('price')).normalize(), 'f')} -> {outcome}.",
                      payload)]
    if kind == wire.EQUITY_UPDATED:
        hit = payload.get("daily_limit")
        if not hit:
            return []
        label = payload.get("label")
        return [Event(K.DAILY_LIMIT_HIT,
                      f"account:{payload.get('account')}:daily:{hit['day']}:{hit['which']}",
                      None, f"{DAILY_LIMIT_TITLES[hit['which']]}: {label}",
                      f"{label}: {hit['reason']} (configs: {', '.join(hit['configs'])}).",
                      payload)]
    if kind == wire.ORDER_UPDATED:
        status = payload.get("status")
        what = f"{payload.get('side', '')} {payload.get('quantity') or payload.get('quote_amount')}"
        if status == "filled":
            price = payload.get("average_price")
            return [Event(K.ORDER_FILLED, f"order:{pk}:filled", symbol,
                          f"Order filled: {what} {symbol}",
                          f"Order {pk} ({payload.get('reason') or 'order'}) filled "
                          f"{payload.get('filled_quantity')} at {price}.", payload)]
        if status == "rejected":
            reason = payload.get("reject_reason") or "no reason given"
            return [Event(K.ORDER_REJECTED, f"order:{pk}:rejected", symbol,
                          f"Order rejected: {what} {symbol}",
                          f"Order {pk} was rejected: {reason}", payload)]
        return []
    if kind == wire.POSITION_UPDATED:
        who = payload.get("config_name") or "manual"
        side = payload.get("side")
        if payload.get("open"):
            return [Event(K.POSITION_OPENED, f"position:{pk}:opened", symbol,
                          f"Position opened: {side} {symbol}",
                          f"{who}: {side} {payload.get('quantity')} at "
                          f"{payload.get('entry_price')} (stop {payload.get('stop_price')}, "
                          f"target {payload.get('target_price')}).", payload)]
        reason = payload.get("close_reason") or "signal"
        pnl = payload.get("realized_pnl")
        body = f"{who}: {side} {symbol} closed ({reason}), realized PnL {pnl}."
        events = [Event(K.POSITION_CLOSED, f"position:{pk}:closed", symbol,
                        f"Position closed: {side} {symbol}, PnL {pnl}", body, payload)]
        if reason in CLOSE_KINDS:
            label = AlertRule.Kind(CLOSE_KINDS[reason]).label
            events.append(Event(CLOSE_KINDS[reason], f"position:{pk}:{reason}", symbol,
                                f"{label.capitalize()}: {side} {symbol}, PnL {pnl}", body,
                                payload))
        return events
    if kind == wire.ACCOUNT_UPDATED and payload.get("halted"):
        halted_at = Account.objects.filter(pk=pk).values_list("halted_at", flat=True).first()
        stamp = halted_at.isoformat() if halted_at else "unknown"
        return [Event(K.ACCOUNT_HALTED, f"account:{pk}:halted:{stamp}", None,
                      f"Account halted: {payload.get('label')}",
                      f"Trading on {payload.get('label')} is halted: "
                      f"{payload.get('halted_reason') or 'no reason given'}.", payload)]
    return []


def invalidate(**_kwargs) -> None:
    """Forget the rule index (connected to AlertRule's post_save and post_delete)."""
    _index["expires"] = 0.0


def rule_kinds(user_id: int) -> frozenset:
    """The kinds of the owner's active rules, from the per-process index."""
    now = _clock()
    if now >= _index["expires"]:
        kinds: dict[int, set] = {}
        with transaction.atomic():  # a savepoint: a failed read never aborts the caller's
            rows = AlertRule.objects.filter(is_active=True).values_list("owner_id", "kind")
            for owner_id, rule_kind in rows.distinct():
                kinds.setdefault(owner_id, set()).add(rule_kind)
        _index["kinds"] = {owner: frozenset(v) for owner, v in kinds.items()}
        _index["expires"] = now + RULE_INDEX_S
    return _index["kinds"].get(user_id, frozenset())


def on_private_event(user_id: int, kind: str, payload: dict) -> None:
    if kind not in POSSIBLE:
        return
    try:
        wanted = rule_kinds(user_id) & POSSIBLE[kind]
        if not wanted:
            return
        pure = kind != wire.ACCOUNT_UPDATED  # describe() reads the account's halt time
        events = [e for e in describe(kind, payload) if e.kind in wanted] if pure else None
        if events == []:
            return
        with transaction.atomic():  # a savepoint inside the service's transaction
            if events is None:
                events = [e for e in describe(kind, payload) if e.kind in wanted]
            created = record(user_id, events) if events else []
    except Exception:
        log.warning("alerts: could not record %s for user %s", kind, user_id, exc_info=True)
        return
    if created:
        transaction.on_commit(lambda: schedule(created))


def record(user_id: int, events: list[Event], now=None) -> list[int]:
    """Write the notification rows the owner's rules ask for; returns their ids."""
    now = now or timezone.now()
    rules = list(
        AlertRule.objects.filter(
            owner_id=user_id, is_active=True, kind__in={e.kind for e in events}
        ).select_related("symbol__exchange").prefetch_related("channels")
    )
    if not rules:
        return []
    created: list[int] = []
    for event in events:
        for rule in rules:
            if rule.kind != event.kind or not _symbol_matches(rule, event):
                continue
            created += fire(rule, event, now)
    return created


def fire(rule: AlertRule, event: Event, now=None) -> list[int]:
    """Store the rule's notification rows for ``event`` (one per channel: the rule's own, or
    every active channel of its owner); returns the ids to send, [] when the event was already
    stored (dedupe) or the rule is in its cooldown (rows stored ``suppressed``)."""
    now = now or timezone.now()
    channels = [c for c in rule.channels.all() if c.is_active]
    if not rule.channels.all():
        channels = list(Channel.objects.filter(owner_id=rule.owner_id, is_active=True))
    if not channels:
        return []
    key = f"{rule.pk}:{event.key}"[:200]
    if Notification.objects.filter(rule=rule, dedupe_key=key).exists():
        return []  # the same event again
    fires = _take_cooldown(rule, now)
    status = Notification.Status.NEW if fires else Notification.Status.SUPPRESSED
    created: list[int] = []
    for channel in channels:
        try:
            with transaction.atomic():
                row = Notification.objects.create(
                    owner_id=rule.owner_id, rule=rule, channel=channel, dedupe_key=key,
                    title=event.title[:200], body=event.body,
                    payload={"kind": event.kind, "rule": rule.name, "event": event.data},
                    next_attempt_at=now, status=status,
                    last_error="" if fires else "not sent: the rule was in its cooldown",
                )
        except IntegrityError:
            continue  # another writer stored it first
        if fires:
            created.append(row.pk)
    return created


def _symbol_matches(rule: AlertRule, event: Event) -> bool:
    if rule.symbol_id is None:
        return True
    return event.symbol == f"{rule.symbol.exchange.slug}:{rule.symbol.code}"


def _take_cooldown(rule: AlertRule, now) -> bool:
    """Mark the rule fired unless it fired within its cooldown (atomic: one winner)."""
    quiet = Q(last_fired_at__isnull=True) | Q(last_fired_at__lte=now - timedelta(
        seconds=rule.cooldown_s))
    return bool(AlertRule.objects.filter(quiet, pk=rule.pk).update(last_fired_at=now))


def schedule(ids: list[int]) -> None:
    """Ask a worker to send these rows now (the periodic sweep is the safety net)."""
    from alerts import tasks

    for pk in ids:
        try:
            tasks.deliver.delay(pk)
        except Exception:  # broker down: the sweep sends it
            log.warning("alerts: could not queue notification %s", pk, exc_info=True)
