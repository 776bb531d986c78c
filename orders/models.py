"""Orders, fills, positions and equity snapshots. Only ``orders.services`` writes these.

Money is Decimal, rounded to the venue's tick (price) and step (quantity) before it lands here.
"""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import F, Q

from markets.models import Account, Symbol
from strategies.models import Signal, StrategyConfig

MONEY = {"max_digits": 30, "decimal_places": 12}
ZERO = Decimal("0")


class Side(models.TextChoices):
    BUY = "buy", "Buy"
    SELL = "sell", "Sell"


class OwnedQuerySet(models.QuerySet):
    owner_path = "account__owner"

    def owned_by(self, user):
        """What ``user`` may manage in the admin: a superuser everything."""
        return self if user.is_superuser else self.filter(**{self.owner_path: user})

    def own(self, user):
        """``user``'s own rows, a superuser's too: what the trading pages and API show."""
        return self.filter(**{self.owner_path: user})


class FillQuerySet(OwnedQuerySet):
    owner_path = "order__account__owner"


class Order(models.Model):
    """An order as we asked for it and as the venue reported it.

    ``client_order_id`` is made and saved before anything is sent, so a retry after a timeout
    looks the order up instead of sending it twice.
    """

    class Type(models.TextChoices):
        MARKET = "market", "Market"
        LIMIT = "limit", "Limit"

    class Status(models.TextChoices):
        NEW = "new", "New (not sent)"
        SUBMITTED = "submitted", "Submitted (awaiting venue)"
        OPEN = "open", "Open"
        PARTIALLY_FILLED = "partially_filled", "Partially filled"
        FILLED = "filled", "Filled"
        CANCELLED = "cancelled", "Cancelled"
        REJECTED = "rejected", "Rejected"
        EXPIRED = "expired", "Expired"

    OPEN_STATUSES = (Status.NEW, Status.SUBMITTED, Status.OPEN, Status.PARTIALLY_FILLED)

    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="orders")
    config = models.ForeignKey(
        StrategyConfig,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="orders",
        help_text="Empty for manual orders.",
    )
    signal = models.ForeignKey(
        Signal, on_delete=models.SET_NULL, null=True, blank=True, related_name="orders"
    )
    symbol = models.ForeignKey(Symbol, on_delete=models.PROTECT, related_name="orders")
    side = models.CharField(max_length=4, choices=Side.choices)
    type = models.CharField(max_length=8, choices=Type.choices)
    price = models.DecimalField(**MONEY, null=True, blank=True, help_text="Limit price.")
    quantity = models.DecimalField(
        **MONEY, help_text="Base-currency quantity. For a live market buy sized by quote_amount, "
        "the estimate at the last price until the venue reports what it bought.",
    )
    quote_amount = models.DecimalField(
        **MONEY, null=True, blank=True,
        help_text="A market buy sized by the quote currency to spend, fees included (Upbit "
        "ord_type=price, Binance quoteOrderQty).",
    )
    reduce_only = models.BooleanField(default=False)
    trigger_price = models.DecimalField(
        **MONEY, null=True, blank=True,
        help_text="Venue stop: the venue holds this reduce-only order and sends it as a market "
        "order when the last trade price reaches this price (reason stop_loss or take_profit).",
    )
    position = models.ForeignKey(
        "Position", on_delete=models.SET_NULL, null=True, blank=True,
        related_name="protective_orders",
        help_text="Venue stop: the position it protects.",
    )
    client_order_id = models.CharField(max_length=36, unique=True)
    exchange_order_id = models.CharField(max_length=64, blank=True, default="")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.NEW)
    filled_quantity = models.DecimalField(**MONEY, default=ZERO)
    average_price = models.DecimalField(**MONEY, null=True, blank=True)
    fee = models.DecimalField(**MONEY, default=ZERO)
    fee_asset = models.CharField(max_length=16, blank=True, default="")
    reason = models.CharField(
        max_length=64, blank=True, default="", help_text="Why: entry, stop_loss, manual, ..."
    )
    reject_reason = models.TextField(blank=True, default="")
    raw = models.JSONField(default=dict, blank=True, help_text="The venue's last response.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = OwnedQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=Q(quantity__gt=0), name="order_quantity_positive"),
            models.CheckConstraint(
                condition=Q(filled_quantity__gte=0) & Q(filled_quantity__lte=F("quantity")),
                name="order_filled_within_quantity",
            ),
            models.CheckConstraint(
                condition=Q(price__isnull=True) | Q(price__gt=0), name="order_price_positive"
            ),
            models.CheckConstraint(
                condition=~Q(type="limit") | Q(price__isnull=False),
                name="order_limit_has_price",
            ),
            models.CheckConstraint(condition=Q(fee__gte=0), name="order_fee_non_negative"),
            models.CheckConstraint(
                condition=Q(quote_amount__isnull=True)
                | (Q(quote_amount__gt=0) & Q(type="market") & Q(side="buy")),
                name="order_quote_amount_market_buy",
            ),
            models.CheckConstraint(condition=Q(side__in=["buy", "sell"]), name="order_side_known"),
            models.CheckConstraint(
                condition=Q(trigger_price__isnull=True)
                | (Q(trigger_price__gt=0) & Q(reduce_only=True)),
                name="order_venue_stop_reduce_only",
            ),
        ]
        indexes = [
            models.Index(fields=["account", "status"]),
            models.Index(fields=["symbol", "-created_at"]),
            # The dashboard's recent orders: newest first, stop after a page.
            models.Index(fields=["-created_at", "-id"], name="order_newest"),
        ]

    def __str__(self) -> str:
        return f"{self.side} {self.quantity} {self.symbol_id} ({self.status})"

    @property
    def is_open(self) -> bool:
        return self.status in self.OPEN_STATUSES

    @property
    def is_venue_stop(self) -> bool:
        """A stop-loss/take-profit held by the venue (``orders.venue_stops``)."""
        return self.trigger_price is not None


class Fill(models.Model):
    """One execution of an order. Unique per order and venue trade id, so replays are harmless."""

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="fills")
    trade_id = models.CharField(max_length=64)
    price = models.DecimalField(**MONEY)
    quantity = models.DecimalField(**MONEY)
    fee = models.DecimalField(**MONEY, default=ZERO)
    fee_asset = models.CharField(max_length=16, blank=True, default="")
    is_maker = models.BooleanField(default=False)
    ts = models.DateTimeField(help_text="Execution time, UTC.")

    objects = FillQuerySet.as_manager()

    class Meta:
        ordering = ["-ts", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["order", "trade_id"], name="fill_unique_trade"),
            models.CheckConstraint(condition=Q(price__gt=0), name="fill_price_positive"),
            models.CheckConstraint(condition=Q(quantity__gt=0), name="fill_quantity_positive"),
            models.CheckConstraint(condition=Q(fee__gte=0), name="fill_fee_non_negative"),
        ]
        # A trade-history page's fills: a time window (orders.performance.with_fills).
        indexes = [models.Index(fields=["ts"], name="fill_ts")]

    def __str__(self) -> str:
        return f"{self.quantity} @ {self.price}"


def keep_open_positions(collector, field, sub_objs, using):
    """``on_delete`` of ``Position.config``: a config with an open position cannot be deleted
    (its position would silently become a manual one, or collide with the account's manual
    position on the symbol); its closed positions keep their history with ``config`` empty."""
    still_open = [p for p in sub_objs if p.closed_at is None]
    if still_open:
        raise models.ProtectedError(
            f"this config still has {len(still_open)} open position(s) "
            f"({', '.join(str(p) for p in still_open)}); close them first (the kill switch "
            "with close positions), then delete the config",
            still_open,
        )
    models.SET_NULL(collector, field, sub_objs, using)


class Position(models.Model):
    """A position of one config (or of the account's manual orders: ``config`` empty) on one
    symbol: at most one open per (account, config, symbol), and one manual per (account,
    symbol). Fills are attributed by their order's config, so a config's exit closes only its
    own quantity. The venue sees the account's net position per symbol: the sum of the signed
    open quantities over configs and manual (``orders.positions.net_positions``).

    Stop and target are prices derived from the config's percentages at entry; ``best_price``
    drives the trailing stop."""

    class PositionSide(models.TextChoices):
        LONG = "long", "Long"
        SHORT = "short", "Short"

    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="positions")
    config = models.ForeignKey(
        StrategyConfig, on_delete=keep_open_positions, null=True, blank=True,
        related_name="positions", help_text="The config that owns it; empty for manual orders.",
    )
    symbol = models.ForeignKey(Symbol, on_delete=models.PROTECT, related_name="positions")
    side = models.CharField(max_length=5, choices=PositionSide.choices)
    quantity = models.DecimalField(**MONEY)
    entry_price = models.DecimalField(**MONEY)
    leverage = models.PositiveSmallIntegerField(default=1)
    margin = models.DecimalField(**MONEY, default=ZERO, help_text="Quote currency committed.")
    stop_price = models.DecimalField(**MONEY, null=True, blank=True)
    target_price = models.DecimalField(**MONEY, null=True, blank=True)
    trailing_stop_pct = models.DecimalField(max_digits=8, decimal_places=4, null=True, blank=True)
    best_price = models.DecimalField(
        **MONEY, null=True, blank=True, help_text="Best price since entry (trailing stop)."
    )
    liquidation_price = models.DecimalField(**MONEY, null=True, blank=True)
    realized_pnl = models.DecimalField(**MONEY, default=ZERO)
    opened_at = models.DateTimeField()
    closed_at = models.DateTimeField(null=True, blank=True)
    close_reason = models.CharField(max_length=32, blank=True, default="")
    updated_at = models.DateTimeField(auto_now=True)

    objects = OwnedQuerySet.as_manager()

    class Meta:
        ordering = ["-opened_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["account", "config", "symbol"],
                condition=Q(closed_at__isnull=True, config__isnull=False),
                name="position_one_open_per_config_symbol",
            ),
            models.UniqueConstraint(
                fields=["account", "symbol"],
                condition=Q(closed_at__isnull=True, config__isnull=True),
                name="position_one_open_manual_per_symbol",
            ),
            models.CheckConstraint(condition=Q(quantity__gte=0), name="position_quantity"),
            models.CheckConstraint(condition=Q(entry_price__gt=0), name="position_entry_positive"),
            models.CheckConstraint(
                condition=Q(leverage__gte=1) & Q(leverage__lte=125), name="position_leverage_range"
            ),
            models.CheckConstraint(condition=Q(margin__gte=0), name="position_margin"),
            models.CheckConstraint(
                condition=Q(stop_price__isnull=True) | Q(stop_price__gt=0),
                name="position_stop_positive",
            ),
            models.CheckConstraint(
                condition=Q(target_price__isnull=True) | Q(target_price__gt=0),
                name="position_target_positive",
            ),
            models.CheckConstraint(
                condition=Q(side__in=["long", "short"]), name="position_side_known"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.side} {self.quantity} {self.symbol_id}"

    @property
    def is_open(self) -> bool:
        return self.closed_at is None


class FundingPayment(models.Model):
    """A perpetual's funding settled on an open paper position at a funding time: ``amount``
    (quote currency, + received, - paid) = -(+1 long / -1 short) x quantity x mark x rate,
    moved on the account's quote balance and added to the position's realized PnL; no Fill.
    One per position and funding time (``orders.funding`` books it once)."""

    position = models.ForeignKey(
        Position, on_delete=models.CASCADE, related_name="funding_payments"
    )
    funding_time = models.DateTimeField(help_text="The venue's funding time (UTC).")
    rate = models.DecimalField(max_digits=16, decimal_places=10)
    mark_price = models.DecimalField(**MONEY)
    quantity = models.DecimalField(**MONEY)
    amount = models.DecimalField(**MONEY, help_text="+ received, - paid (quote currency).")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-funding_time", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["position", "funding_time"], name="funding_once_per_time"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.position_id} {self.funding_time:%Y-%m-%d %H:%M} {self.amount}"


class EquitySnapshot(models.Model):
    """Account equity (cash + positions marked to the last close) at a point in time."""

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="equity_snapshots")
    ts = models.DateTimeField()
    equity = models.DecimalField(**MONEY)
    cash = models.DecimalField(**MONEY)

    objects = OwnedQuerySet.as_manager()

    class Meta:
        ordering = ["-ts"]
        constraints = [
            models.UniqueConstraint(fields=["account", "ts"], name="equity_unique_ts"),
        ]

    def __str__(self) -> str:
        return f"{self.account_id} {self.ts:%Y-%m-%d %H:%M} {self.equity}"


class ApiToken(models.Model):
    """A user's key for the JSON API. Only a SHA-256 hash is stored: the token is shown once,
    when it is made (``manage.py api_token``), and cannot be read back."""

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    name = models.CharField(max_length=64, help_text="What the token is for.")
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    prefix = models.CharField(
        max_length=8, editable=False, help_text="First characters, to tell tokens apart."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["owner_id", "-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["owner", "name"], name="api_token_unique_name"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}...)"

    @staticmethod
    def hash(key: str) -> str:
        import hashlib

        return hashlib.sha256(key.encode()).hexdigest()

    @classmethod
    def issue(cls, owner, name: str) -> tuple[ApiToken, str]:
        """A new token for ``owner``: ``(row, key)``; the key is not stored."""
        import secrets

        key = secrets.token_urlsafe(32)
        row = cls.objects.create(owner=owner, name=name, key_hash=cls.hash(key), prefix=key[:8])
        return row, key
