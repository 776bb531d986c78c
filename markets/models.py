"""Venues, symbols, stored candles, and a user's accounts at a venue.

Candle prices are floats (analytics data); balances are Decimal (money). Times are aware UTC.
"""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import F, Q

from markets.fields import EncryptedTextField, Sealed, plain
from markets.timeframes import TIMEFRAMES

MONEY = {"max_digits": 30, "decimal_places": 12}


class Timeframe(models.TextChoices):
    M1 = "1m", "1 minute"
    M3 = "3m", "3 minutes"
    M5 = "5m", "5 minutes"
    M15 = "15m", "15 minutes"
    M30 = "30m", "30 minutes"
    H1 = "1h", "1 hour"
    H4 = "4h", "4 hours"
    D1 = "1d", "1 day"


assert tuple(Timeframe.values) == TIMEFRAMES, "Timeframe choices must follow markets.timeframes"


def default_timeframes() -> list[str]:
    return list(TIMEFRAMES)


class Exchange(models.Model):
    """A venue: which wire protocol (adapter) and where (URLs). The simulator is just a venue
    whose URLs point at 127.0.0.1."""

    class Adapter(models.TextChoices):
        UPBIT = "upbit", "Upbit"
        BITHUMB = "bithumb", "Bithumb"
        BINANCE_SPOT = "binance_spot", "Binance spot"
        BINANCE_FUTURES = "binance_futures", "Binance USDⓈ-M futures"

    slug = models.SlugField(max_length=32, unique=True, help_text="Short name used in URLs.")
    name = models.CharField(max_length=64)
    adapter = models.CharField(max_length=32, choices=Adapter.choices)
    rest_url = models.URLField(
        max_length=200, help_text="REST root URL without a path, e.g. https://api.upbit.com."
    )
    ws_url = models.CharField(
        max_length=200, help_text="WebSocket root URL without a path, e.g. wss://api.upbit.com."
    )
    is_active = models.BooleanField(
        default=True, help_text="Collect candles and stream this venue."
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        if self.ws_url and not self.ws_url.startswith(("ws://", "wss://")):
            raise ValidationError({"ws_url": "A WebSocket URL starts with ws:// or wss://."})

    def quote_assets(self) -> list[str]:
        """The quote assets of this venue's active symbols, the main quote first."""
        quotes = set(
            self.symbols.filter(is_active=True).values_list("quote", flat=True).distinct()
        )
        main = MAIN_QUOTE.get(self.adapter)
        return sorted(quotes, key=lambda q: (q != main, q))

    def main_quote(self) -> str:
        """What an account on this venue measures equity in unless told otherwise: the
        adapter's usual quote (KRW at Upbit and Bithumb, USDT at Binance) when the venue trades
        symbols in it or has none yet, else the quote of most of its active symbols."""
        main = MAIN_QUOTE.get(self.adapter, "KRW")
        quotes = self.quote_assets()
        if not quotes or main in quotes:
            return main
        counts = models.Count("id")
        top = (
            self.symbols.filter(is_active=True).values("quote").annotate(n=counts)
            .order_by("-n", "quote").first()
        )
        return top["quote"]


#: The quote an adapter's venue trades most in: a new account's default quote asset.
MAIN_QUOTE = {
    Exchange.Adapter.UPBIT: "KRW",
    Exchange.Adapter.BITHUMB: "KRW",
    Exchange.Adapter.BINANCE_SPOT: "USDT",
    Exchange.Adapter.BINANCE_FUTURES: "USDT",
}


class SymbolQuerySet(models.QuerySet):
    def active(self):
        return self.filter(is_active=True, exchange__is_active=True)


class Symbol(models.Model):
    """A tradable instrument at a venue, with the venue's price and quantity rules."""

    class MarketType(models.TextChoices):
        SPOT = "spot", "Spot"
        PERPETUAL = "perpetual", "Perpetual futures"

    exchange = models.ForeignKey(Exchange, on_delete=models.CASCADE, related_name="symbols")
    code = models.CharField(
        max_length=32, help_text="Venue code without slashes, e.g. KRW-BTC or BTCUSDT."
    )
    base = models.CharField(max_length=16)
    quote = models.CharField(max_length=16)
    market_type = models.CharField(
        max_length=16, choices=MarketType.choices, default=MarketType.SPOT
    )
    tick_size = models.DecimalField(
        **MONEY,
        null=True,
        blank=True,
        help_text="Price step. Empty for venues with a price-band table (Upbit, Bithumb).",
    )
    step_size = models.DecimalField(**MONEY, default=Decimal("0.00000001"))
    min_qty = models.DecimalField(**MONEY, default=Decimal("0"))
    min_notional = models.DecimalField(
        **MONEY, default=Decimal("0"), help_text="Smallest order value in the quote currency."
    )
    max_leverage = models.PositiveSmallIntegerField(default=1)
    is_active = models.BooleanField(default=True, help_text="Collect and stream this symbol.")
    timeframes = models.JSONField(
        default=default_timeframes, help_text='Timeframes to collect, e.g. ["1m", "1h"].'
    )
    updated_at = models.DateTimeField(auto_now=True)

    objects = SymbolQuerySet.as_manager()

    class Meta:
        ordering = ["exchange__slug", "code"]
        constraints = [
            models.UniqueConstraint(fields=["exchange", "code"], name="symbol_unique_code"),
            models.CheckConstraint(condition=~Q(code__contains="/"), name="symbol_code_slash_free"),
            models.CheckConstraint(
                condition=Q(max_leverage__gte=1) & Q(max_leverage__lte=125),
                name="symbol_max_leverage_range",
            ),
            models.CheckConstraint(condition=Q(step_size__gt=0), name="symbol_step_positive"),
            models.CheckConstraint(
                condition=Q(tick_size__isnull=True) | Q(tick_size__gt=0),
                name="symbol_tick_positive",
            ),
            models.CheckConstraint(
                condition=Q(min_notional__gte=0) & Q(min_qty__gte=0),
                name="symbol_minimums_non_negative",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.exchange.slug}:{self.code}"

    def clean(self) -> None:
        bad = [tf for tf in self.timeframes or [] if tf not in TIMEFRAMES]
        if not isinstance(self.timeframes, list) or bad:
            raise ValidationError(
                {
                    "timeframes": f"Use a list of {', '.join(TIMEFRAMES)}; "
                    f"not {bad or self.timeframes}."
                }
            )


class Candle(models.Model):
    """A closed candle. The forming bar never lands here; it lives on the wire."""

    # No index of its own: the unique (symbol, timeframe, open_time) index starts with it, and
    # a second index would cost every candle written (the bulk upsert is the hot path). No
    # database constraint either: the database would check the same symbol once per candle
    # (525,600 times for a year of 1m); ``markets.candles.upsert_candles``, the only writer,
    # checks it once per call and key-share locks the symbol row as the constraint would.
    # Deleting a symbol deletes its candles (Django's cascade).
    symbol = models.ForeignKey(
        Symbol, on_delete=models.CASCADE, related_name="candles", db_index=False,
        db_constraint=False,
    )
    timeframe = models.CharField(max_length=3, choices=Timeframe.choices)
    open_time = models.DateTimeField(help_text="UTC open time of the candle.")
    open = models.FloatField()
    high = models.FloatField()
    low = models.FloatField()
    close = models.FloatField()
    volume = models.FloatField()
    quote_volume = models.FloatField(null=True, blank=True)

    class Meta:
        ordering = ["symbol", "timeframe", "open_time"]
        constraints = [
            # Also the index behind "latest candles of a symbol and timeframe" (read backwards).
            models.UniqueConstraint(
                fields=["symbol", "timeframe", "open_time"], name="candle_unique_open_time"
            ),
            models.CheckConstraint(
                condition=Q(high__gte=F("open")) & Q(high__gte=F("close")),
                name="candle_high_is_highest",
            ),
            models.CheckConstraint(
                condition=Q(low__lte=F("open")) & Q(low__lte=F("close")),
                name="candle_low_is_lowest",
            ),
            models.CheckConstraint(condition=Q(low__gt=0), name="candle_prices_positive"),
            models.CheckConstraint(condition=Q(volume__gte=0), name="candle_volume_non_negative"),
            models.CheckConstraint(
                condition=Q(quote_volume__isnull=True) | Q(quote_volume__gte=0),
                name="candle_quote_volume_non_negative",
            ),
            models.CheckConstraint(
                condition=Q(timeframe__in=TIMEFRAMES), name="candle_timeframe_known"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.symbol_id} {self.timeframe} {self.open_time:%Y-%m-%d %H:%M}"


class MarkPrice(models.Model):
    """The latest mark price of a perpetual symbol, with its funding rate and next funding time,
    as the venue last published it (``markets.markprice``: the stream's ``@markPrice@1s``, the
    collector's REST ``premiumIndex`` when the stream is down). One row per symbol, upserted.

    Its own table rather than fields on :class:`Symbol`: it is written every second, and a
    Symbol save is an admin edit that bumps the stream's symbol-set stamp. ``last_funding_*``
    keep the settlement before ``next_funding_time`` (kept when the venue moves it on), which
    paper funding books (``orders.funding``)."""

    symbol = models.OneToOneField(
        Symbol, on_delete=models.CASCADE, primary_key=True, related_name="mark"
    )
    price = models.DecimalField(**MONEY)
    index_price = models.DecimalField(**MONEY, null=True, blank=True)
    funding_rate = models.DecimalField(
        max_digits=16, decimal_places=10, null=True, blank=True,
        help_text="Rate settled at the next funding time (fraction: 0.0001 = 0.01 %).",
    )
    next_funding_time = models.DateTimeField(null=True, blank=True)
    last_funding_time = models.DateTimeField(null=True, blank=True)
    last_funding_rate = models.DecimalField(
        max_digits=16, decimal_places=10, null=True, blank=True
    )
    last_funding_price = models.DecimalField(**MONEY, null=True, blank=True)
    venue_time = models.DateTimeField(help_text="When the venue computed it (UTC).")
    updated_at = models.DateTimeField(help_text="When it was stored here (UTC).")

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(price__gt=0), name="markprice_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.symbol_id} mark {self.price}"


class PendingRange(models.Model):
    """Candles a job set out to store and has not stored yet: ``[start, end)`` of one series.

    A backfill writes one row per series before its first request and moves ``start`` forward
    after each chunk it stores, so whatever stops it (an exception, Ctrl-C, SIGTERM, SIGKILL)
    leaves exactly its unfinished range here, including the part before the first stored
    candle (``start`` is where the request began). ``collect_candles`` fills rows whose lease
    ran out. In the database rather than Redis: the private Redis keeps nothing across a
    restart, and a hole must not be forgotten because Redis was.
    """

    class Source(models.TextChoices):
        BACKFILL = "backfill", "backfill"
        STREAM = "stream", "stream (not filled before it stopped)"
        COLLECT = "collect", "collection"

    symbol = models.ForeignKey(Symbol, on_delete=models.CASCADE, related_name="pending_ranges")
    timeframe = models.CharField(max_length=3, choices=Timeframe.choices)
    start = models.DateTimeField(help_text="UTC: the first open time not yet stored.")
    end = models.DateTimeField(help_text="UTC: end of the range (exclusive).")
    source = models.CharField(max_length=16, choices=Source.choices, default=Source.BACKFILL)
    lease_until = models.DateTimeField(
        help_text="The job filling it owns it until then; afterwards the collector may fill it."
    )
    note = models.TextField(blank=True, help_text="Why the last job stopped, when it said.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["lease_until", "id"]
        indexes = [models.Index(fields=["lease_until"], name="pendingrange_lease")]
        constraints = [
            models.CheckConstraint(condition=Q(end__gt=F("start")), name="pendingrange_not_empty"),
        ]

    def __str__(self) -> str:
        return f"{self.symbol_id} {self.timeframe} {self.start:%Y-%m-%d %H:%M}–{self.end:%H:%M}"


class AccountQuerySet(models.QuerySet):
    def owned_by(self, user):
        """What ``user`` may manage in the admin: a superuser every account."""
        return self if user.is_superuser else self.filter(owner=user)

    def own(self, user):
        """``user``'s own accounts, a superuser's too: what the trading pages and API show."""
        return self.filter(owner=user)


class Account(models.Model):
    """A user's access to a venue. Paper accounts trade against stored balances; live accounts
    need keys, ``mode=live`` and the TRADING_LIVE setting. ``halted`` is the kill switch."""

    class Mode(models.TextChoices):
        PAPER = "paper", "Paper"
        LIVE = "live", "Live"

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="accounts"
    )
    exchange = models.ForeignKey(Exchange, on_delete=models.PROTECT, related_name="accounts")
    label = models.CharField(max_length=64)
    mode = models.CharField(max_length=8, choices=Mode.choices, default=Mode.PAPER)
    quote_asset = models.CharField(
        max_length=16, blank=True, default="",
        help_text="Currency equity is measured in, and the quote of every symbol this account "
        "trades: one of the venue's quote assets (KRW, USDT). Blank: the venue's main quote.",
    )
    api_key = EncryptedTextField(blank=True, default="")
    api_secret = EncryptedTextField(blank=True, default="")
    halted = models.BooleanField(
        default=False, help_text="Kill switch: no new orders until a person resumes the account."
    )
    halted_reason = models.CharField(max_length=255, blank=True, default="")
    halted_at = models.DateTimeField(null=True, blank=True)
    venue_confirmed_at = models.DateTimeField(
        null=True, blank=True, editable=False,
        help_text="Live accounts: when the venue last told us this account's balances (user-data "
        "stream or reconciliation's fetch). Empty: never.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = AccountQuerySet.as_manager()

    class Meta:
        ordering = ["owner_id", "label"]
        constraints = [
            models.UniqueConstraint(fields=["owner", "label"], name="account_unique_label"),
        ]

    def __str__(self) -> str:
        return f"{self.label} ({self.exchange.slug}, {self.mode})"

    def save(self, *args, **kwargs):
        if not self.quote_asset and self.exchange_id:
            self.quote_asset = self.exchange.main_quote()
        super().save(*args, **kwargs)

    #: ``credentials_state`` values.
    CREDENTIALS_NONE, CREDENTIALS_STORED, CREDENTIALS_UNREADABLE = "none", "stored", "unreadable"

    @property
    def credentials_state(self) -> str:
        """``"none"`` (no key and secret), ``"stored"`` (both, readable) or ``"unreadable"``
        (stored, but FIELD_ENCRYPTION_KEY cannot decrypt them: they must be entered again)."""
        values = [v for v in (self.api_key, self.api_secret) if v]
        if any(isinstance(v, Sealed) and not v.readable for v in values):
            return self.CREDENTIALS_UNREADABLE
        return self.CREDENTIALS_STORED if len(values) == 2 else self.CREDENTIALS_NONE

    @property
    def has_keys(self) -> bool:
        """A key and secret are stored and readable (a live adapter can be built)."""
        return self.credentials_state == self.CREDENTIALS_STORED

    def credentials(self) -> tuple[str, str]:
        """``(api_key, api_secret)`` in plain text, for building this account's live adapter
        only. Raises :class:`~markets.fields.CredentialsUnreadable`."""
        return plain(self.api_key), plain(self.api_secret)

    def clean(self) -> None:
        # Unreadable keys are stored keys: the account can still be saved (halted, switched to
        # paper); it cannot trade live until they are entered again.
        if self.mode == self.Mode.LIVE and self.credentials_state == self.CREDENTIALS_NONE:
            raise ValidationError("A live account needs an API key and secret.")
        if (
            self.owner_id
            and self.label
            and Account.objects.filter(owner_id=self.owner_id, label=self.label)
            .exclude(pk=self.pk)
            .exists()
        ):
            raise ValidationError({"label": "You already have an account with this label."})
        self._clean_quote_asset()

    def _clean_quote_asset(self) -> None:
        if not self.exchange_id:
            return
        self.quote_asset = (self.quote_asset or "").strip().upper() or self.exchange.main_quote()
        quotes = self.exchange.quote_assets()
        if quotes and self.quote_asset not in quotes:
            raise ValidationError({"quote_asset": (
                f"{self.exchange} trades symbols quoted in {', '.join(quotes)}; an account "
                f"measuring equity in {self.quote_asset} could trade none of them."
            )})
        if self.pk:
            clash = (
                self.strategy_configs.exclude(symbol__quote=self.quote_asset)
                .select_related("symbol").first()
            )
            if clash is not None:
                raise ValidationError({"quote_asset": (
                    f"Config {clash.name} trades {clash.symbol}, quoted in {clash.symbol.quote}; "
                    f"this account cannot measure equity in {self.quote_asset} while it does."
                )})


class Balance(models.Model):
    """An asset balance of an account: the book for paper accounts, the last fetched state for
    live ones. Written only by ``orders.services``."""

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="balances")
    asset = models.CharField(max_length=16)
    free = models.DecimalField(**MONEY, default=Decimal("0"))
    locked = models.DecimalField(**MONEY, default=Decimal("0"))
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["account_id", "asset"]
        constraints = [
            models.UniqueConstraint(fields=["account", "asset"], name="balance_unique_asset"),
            models.CheckConstraint(
                condition=Q(free__gte=0) & Q(locked__gte=0), name="balance_non_negative"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.asset} {self.free}"

    @property
    def total(self) -> Decimal:
        return self.free + self.locked
