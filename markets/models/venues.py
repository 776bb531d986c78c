"""Venues and the symbols they list, with the timeframes collected.

Times are aware UTC; order sizes and prices are Decimal (money).
"""

from __future__ import annotations

from decimal import Decimal

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q

from markets.timeframes import TIMEFRAMES

MONEY = {"max_digits": 30, "decimal_places": 12}

#: Django keeps a DecimalField in SQLite as a REAL (a double): about 15 significant digits of
#: an amount survive a write. PostgreSQL's numeric keeps all 30. Shown where live money meets
#: SQLite (``/health``, the account admin); ``markets/tests/test_money_precision.py`` checks
#: the example on both databases.
SQLITE_MONEY_WARNING = (
    "This database is SQLite, which keeps about 15 significant digits of an amount "
    "(a balance of 12345678.123456789 is stored as 12345678.1234568). Live money belongs on "
    "PostgreSQL: set DATABASE_URL=postgresql://... (README, Configuration)."
)


def money_is_approximate(connection) -> bool:
    """The database rounds money to about 15 significant digits (SQLite)."""
    return connection.vendor == "sqlite"


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
    follow_all_symbols = models.BooleanField(
        default=False,
        help_text="Follow every symbol the venue lists: the symbol sync job adds new listings "
        "(active, 1m..1d) and deactivates delisted symbols, and the stream follows them all.",
    )
    follow_quotes = models.CharField(
        max_length=64, blank=True, default="",
        help_text="With 'follow all symbols': only symbols quoted in these assets, "
        "comma-separated (e.g. KRW, or USDT); empty: every quote.",
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        if self.ws_url and not self.ws_url.startswith(("ws://", "wss://")):
            raise ValidationError({"ws_url": "A WebSocket URL starts with ws:// or wss://."})
        bad = [q for q in self.follow_quote_set() if not q.isalnum()]
        if bad:
            raise ValidationError({"follow_quotes": f"Use asset codes separated by commas, "
                                                    f"e.g. KRW,USDT; not {', '.join(bad)}."})

    def follow_quote_set(self) -> set[str]:
        """The quotes ``follow_quotes`` names, upper-cased (empty: every quote)."""
        return {q.strip().upper() for q in (self.follow_quotes or "").split(",") if q.strip()}

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
