"""Alert rules, delivery channels and the notification outbox (one row per rule firing and
channel, sent by ``alerts.delivery``)."""

from __future__ import annotations

import json

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone

from alerts import conditions
from markets import jsonlimits
from markets.fields import EncryptedTextField

#: Longest cooldown a rule may have (a week): longer would read as "never again".
MAX_COOLDOWN_S = 7 * 24 * 3600
#: What rule parameters may hold (bytes of JSON, levels of nesting).
PARAMS_MAX_BYTES = 4096
PARAMS_MAX_DEPTH = 4


class AlertRule(models.Model):
    class Kind(models.TextChoices):
        SIGNAL_FIRED = "signal_fired", "signal fired"
        ORDER_FILLED = "order_filled", "order filled"
        ORDER_REJECTED = "order_rejected", "order rejected"
        POSITION_OPENED = "position_opened", "position opened"
        POSITION_CLOSED = "position_closed", "position closed"
        STOP_LOSS_HIT = "stop_loss_hit", "stop-loss hit"
        TAKE_PROFIT_HIT = "take_profit_hit", "take-profit hit"
        LIQUIDATION_HIT = "liquidation_hit", "liquidation hit"
        ACCOUNT_HALTED = "account_halted", "account halted"
        DAILY_LIMIT_HIT = "daily_limit_hit", "daily target or daily max loss reached"
        PRICE_CROSS = "price_cross", "price crosses a level"
        PRICE_MOVE = "price_move", "price moves X % within a window"
        INDICATOR = "indicator", "indicator condition on closed bars"
        VOLUME_SPIKE = "volume_spike", "volume spike on a closed bar"
        STREAM_SILENT = "stream_silent", "a venue's stream silent for N minutes"
        WORKERS_MISSING = "workers_missing", "workers or beat missing"
        RECONCILE_DIFF = "reconcile_diff", "reconciliation difference"
        ORDER_UNKNOWN = "order_unknown", "live order in an unknown state"

    #: Kinds evaluated by the stream (``alerts.market``) and by the health task.
    MARKET_KINDS = conditions.MARKET_KINDS
    HEALTH_KINDS = conditions.HEALTH_KINDS
    #: Kinds fired by trading events (no per-tick evaluation, no parameters).
    TRADING_KINDS = frozenset(Kind.values) - MARKET_KINDS - HEALTH_KINDS

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="alert_rules"
    )
    name = models.CharField(max_length=100)
    kind = models.CharField(max_length=32, choices=Kind.choices)
    symbol = models.ForeignKey(
        "markets.Symbol", null=True, blank=True, on_delete=models.CASCADE,
        related_name="alert_rules", help_text="Only events on this symbol; blank: every symbol.",
    )
    params = models.JSONField(
        default=dict, blank=True,
        help_text="Parameters of the condition (trading-event rules take none).",
    )
    channels = models.ManyToManyField(
        "alerts.Channel", blank=True, related_name="rules",
        help_text="Where to send it; none selected: every active channel of yours.",
    )
    cooldown_s = models.PositiveIntegerField(
        default=0,
        help_text="Seconds after firing during which the rule stays quiet (0: every event).",
    )
    is_active = models.BooleanField(default=True)
    last_fired_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["owner", "name"]
        indexes = [models.Index(fields=["owner", "is_active", "kind"])]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(cooldown_s__lte=MAX_COOLDOWN_S), name="alertrule_cooldown_max"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_kind_display()})"

    def clean(self) -> None:
        super().clean()
        if self.cooldown_s is not None and self.cooldown_s > MAX_COOLDOWN_S:
            raise ValidationError(
                {"cooldown_s": f"at most {MAX_COOLDOWN_S:,} seconds (7 days)"}
            )
        params = self.params if self.params is not None else {}
        try:
            jsonlimits.loads_object(
                json.dumps(params), what="the rule's parameters",
                max_bytes=PARAMS_MAX_BYTES, max_depth=PARAMS_MAX_DEPTH,
            )
        except (jsonlimits.JsonLimitError, TypeError, ValueError) as exc:
            raise ValidationError({"params": str(exc)}) from None
        if self.kind in self.TRADING_KINDS and params:
            raise ValidationError(
                {"params": "trading-event rules take no parameters: leave it as {}"}
            )
        try:
            self.params = conditions.check(self.kind, params)
        except conditions.ParamError as exc:
            raise ValidationError({"params": str(exc)}) from None
        if conditions.needs_symbol(self.kind) and self.symbol_id is None:
            raise ValidationError({"symbol": "a market rule watches one symbol: choose it"})


class Channel(models.Model):
    class Kind(models.TextChoices):
        IN_APP = "in_app", "in-app (toast on open pages)"
        WEBHOOK = "webhook", "webhook (apprise URL or http(s) JSON endpoint)"
        EMAIL = "email", "e-mail (the address; sent through the server's SMTP settings)"
        TELEGRAM = "telegram", "Telegram (your linked chat)"

    #: Kinds this version can deliver to.
    DELIVERABLE = frozenset({
        Kind.IN_APP,
        Kind.WEBHOOK,
        Kind.EMAIL,
        Kind.TELEGRAM,
    })

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="alert_channels"
    )
    name = models.CharField(max_length=100)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    #: The URL (with any token in it) or address: encrypted at rest, never rendered back.
    target = EncryptedTextField(blank=True, default="")
    is_active = models.BooleanField(default=True)
    failing = models.BooleanField(default=False, editable=False)
    failing_since = models.DateTimeField(null=True, blank=True, editable=False)
    consecutive_failures = models.PositiveIntegerField(default=0, editable=False)
    last_error = models.TextField(blank=True, default="", editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["owner", "name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.kind})"


class Notification(models.Model):
    """The outbox row: stored with the event, then sent by a worker (``alerts.delivery``).

    While ``sending``, ``next_attempt_at`` is the claim's lease: a worker that dies mid-send
    leaves the row to be claimed again once it has passed."""

    class Status(models.TextChoices):
        NEW = "new"
        SENDING = "sending"
        SENT = "sent"
        FAILED = "failed"
        #: Not sent: its rule was in its cooldown. Kept so the history says why, and so a later
        #: push of the same event (a position's next update) is not taken for a new one.
        SUPPRESSED = "suppressed"

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notifications"
    )
    rule = models.ForeignKey(
        AlertRule, null=True, blank=True, on_delete=models.SET_NULL, related_name="notifications"
    )
    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="notifications")
    dedupe_key = models.CharField(max_length=200)
    title = models.CharField(max_length=200)
    body = models.TextField(blank=True, default="")
    payload = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.NEW)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["channel", "dedupe_key"], name="notification_dedupe_per_channel"
            ),
        ]
        indexes = [models.Index(fields=["status", "next_attempt_at"])]

    def __str__(self) -> str:
        return f"{self.title} → {self.channel_id} ({self.status})"


# The linked Telegram chat and its one-time codes (registered in this app).
from alerts.telegram.models import TelegramLink, TelegramLinkCode  # noqa: E402, F401
