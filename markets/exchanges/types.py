"""The plain values adapters take and return, and a venue's capabilities as data (no Django).

Units: times are int ms UTC; market data (candles, trades, klines) are floats; money (balances,
order prices/quantities, fills, fees, positions) is ``Decimal``. Symbols are slash-free venue
codes: ``KRW-BTC`` (Upbit, Bithumb), ``BTCUSDT`` (Binance). ``markets.exchanges.base``
re-exports every name here beside the adapter interface.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from decimal import Decimal
from typing import Any, Literal

from markets.candle_contract import CandleRow  # noqa: F401 - the one candle row, re-exported

Side = Literal["buy", "sell"]
OrderType = Literal["market", "limit"]
MarketType = Literal["spot", "perpetual"]

#: Normalised order statuses.
NEW, OPEN, PARTIALLY_FILLED, FILLED = "new", "open", "partially_filled", "filled"
CANCELLED, REJECTED, EXPIRED = "cancelled", "rejected", "expired"
ORDER_STATUSES = (NEW, OPEN, PARTIALLY_FILLED, FILLED, CANCELLED, REJECTED, EXPIRED)
FINAL_STATUSES = frozenset({FILLED, CANCELLED, REJECTED, EXPIRED})


@dataclasses.dataclass(frozen=True)
class RateGroup:
    """A venue's budget: at most ``capacity`` weight per ``window_s`` seconds."""

    capacity: int
    window_s: float


@dataclasses.dataclass(frozen=True)
class Capabilities:
    """What a venue offers, as data, so callers never branch on the venue's name.

    ``timeframes`` maps product timeframes to the venue's own name for them (an Upbit candle
    path, a Binance interval); a timeframe missing from it is not served natively, and
    ``unsupported_timeframes`` says why (aggregate it from a smaller one instead).
    """

    venue: str
    market_types: tuple[str, ...]
    max_candles_per_request: int
    timeframes: Mapping[str, str]
    rate_groups: Mapping[str, RateGroup]
    supports_reduce_only: bool = False
    supports_leverage: bool = False
    supports_quote_amount_market_buy: bool = False
    market_buy_by_quantity: bool = True  # False: a market buy must give quote_amount (Upbit)
    candles_skip_empty_intervals: bool = False
    has_server_time: bool = False
    ws_kline_stream: bool = False
    ws_max_lifetime_s: float | None = None
    #: Streams one WebSocket connection may carry (Binance: 1024 spot, 200 futures); None: no
    #: limit, every symbol on one connection.
    ws_streams_per_connection: int | None = None
    #: The streams are named in the connection's URL (Binance's combined streams): keep each
    #: URL under this many characters (a common HTTP request-line limit is 8 KB; the
    #: simulator's, aiohttp's, is 8190 bytes), splitting into more connections. None: no bound.
    ws_url_max_chars: int | None = None
    #: The venue closes a quiet connection unless the client sends a text ``PING`` (Upbit,
    #: Bithumb); the adapter's ``ws_text_ping_s`` option sets how often it is sent.
    ws_text_ping: bool = False
    client_order_id_unique_forever: bool = False
    client_order_id_pattern: str = r"^[A-Za-z0-9_-]{1,36}$"
    #: Conditional reduce-only stop-loss/take-profit orders held and triggered by the venue
    #: (``place_stop``). False: the exit guard is the position's only protection.
    supports_venue_stops: bool = False
    #: The venue publishes a mark price and funding rate for its perpetuals (REST
    #: ``mark_prices``, stream ``stream_mark_prices``); liquidation and unrealized PnL of
    #: perpetual positions use it. False: no mark price (spot venues).
    mark_price: bool = False
    #: Price-band tick tables by quote currency (``rounding.UPBIT_KRW_TICKS`` ...) for symbols
    #: listed without a fixed tick; ``rounding.band_table`` picks one. Empty: fixed ticks only.
    price_bands: Mapping[str, tuple[tuple[Decimal, Decimal], ...]] = dataclasses.field(
        default_factory=dict)
    unsupported_timeframes: Mapping[str, str] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class SymbolInfo:
    code: str
    base: str
    quote: str
    market_type: MarketType
    tick_size: Decimal | None  # None: a price-band table applies (Upbit/Bithumb KRW)
    step_size: Decimal | None
    min_qty: Decimal | None
    min_notional: Decimal | None  # in quote currency
    max_leverage: int = 1
    min_price: Decimal | None = None  # Binance PRICE_FILTER.minPrice (tick grid origin)


@dataclasses.dataclass(slots=True)
class Trade:
    """A public trade. ``side`` is the aggressor's (taker's) side.

    Not frozen on purpose: it is built per WebSocket message, and a frozen dataclass costs
    about 4 us to construct against 0.6 us here. Treat it as immutable."""

    symbol: str
    trade_id: str
    ts_ms: int
    price: float
    quantity: float
    side: Side


@dataclasses.dataclass(slots=True)
class Kline:
    """A streamed kline; ``closed`` is True on the final update for ``open_time_ms``.
    Not frozen for the same reason as ``Trade``; treat it as immutable."""

    symbol: str
    timeframe: str
    open_time_ms: int
    open: float
    high: float
    low: float
    close: float
    volume: float
    quote_volume: float | None
    closed: bool
    event_ms: int = 0


@dataclasses.dataclass(frozen=True)
class MarkPrice:
    """A perpetual's mark price with its index and funding. ``funding_rate`` is the rate
    settled at ``next_funding_ms`` (per funding interval, a fraction: 0.0001 = 0.01 %); both are
    None for a contract without funding. ``ts_ms``: when the venue computed it."""

    symbol: str
    mark_price: Decimal
    index_price: Decimal | None
    funding_rate: Decimal | None
    next_funding_ms: int | None
    ts_ms: int


@dataclasses.dataclass(frozen=True)
class Balance:
    asset: str
    free: Decimal
    locked: Decimal

    @property
    def total(self) -> Decimal:
        return self.free + self.locked


@dataclasses.dataclass(frozen=True)
class OrderRequest:
    """An order to send. ``quote_amount``: quote currency to spend on a market buy (Upbit
    ``ord_type=price``, Binance spot ``quoteOrderQty``) instead of ``quantity``."""

    symbol: str
    side: Side
    type: OrderType
    quantity: Decimal | None
    price: Decimal | None
    client_order_id: str
    quote_amount: Decimal | None = None
    reduce_only: bool = False


@dataclasses.dataclass(frozen=True)
class FillInfo:
    trade_id: str
    price: Decimal
    quantity: Decimal
    fee: Decimal | None
    fee_asset: str | None
    ts_ms: int
    is_maker: bool | None = None


@dataclasses.dataclass(frozen=True)
class OrderInfo:
    exchange_order_id: str
    client_order_id: str | None
    symbol: str
    side: Side
    type: str
    status: str
    price: Decimal | None
    quantity: Decimal | None
    filled_quantity: Decimal
    average_price: Decimal | None
    fee: Decimal | None
    fills: list[FillInfo] = dataclasses.field(default_factory=list)
    raw: dict[str, Any] = dataclasses.field(default_factory=dict, repr=False)
    reduce_only: bool = False
    created_ms: int | None = None

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATUSES


#: A venue stop's kinds and normalised states. ``triggered``: the trigger price was reached
#: and the market order is (being) placed; ``finished``: that order is done (filled or not:
#: read it with ``fetch_order(exchange_order_id=StopInfo.order_id)``).
STOP_LOSS, TAKE_PROFIT = "stop_loss", "take_profit"
STOP_OPEN, STOP_TRIGGERED, STOP_FINISHED = "open", "triggered", "finished"
STOP_FINAL_STATUSES = frozenset({STOP_FINISHED, CANCELLED, REJECTED, EXPIRED})


@dataclasses.dataclass(frozen=True)
class StopRequest:
    """A conditional reduce-only market order the venue holds: when the last trade price
    reaches ``trigger_price`` it sends a market order for ``quantity`` (reduce-only)."""

    symbol: str
    side: Side
    kind: Literal["stop_loss", "take_profit"]
    trigger_price: Decimal
    quantity: Decimal
    client_id: str


@dataclasses.dataclass(frozen=True)
class StopInfo:
    """A venue stop as the venue reports it. ``order_id`` is the market order it placed once
    triggered ("" before)."""

    stop_id: str
    client_id: str
    symbol: str
    side: Side
    kind: str
    status: str
    trigger_price: Decimal | None
    quantity: Decimal | None
    order_id: str = ""
    filled_quantity: Decimal = Decimal(0)
    average_price: Decimal | None = None
    raw: dict[str, Any] = dataclasses.field(default_factory=dict, repr=False)
    updated_ms: int | None = None

    @property
    def is_final(self) -> bool:
        return self.status in STOP_FINAL_STATUSES


@dataclasses.dataclass(frozen=True)
class PositionInfo:
    """A futures position. ``quantity`` is signed: negative = short (one-way mode)."""

    symbol: str
    side: Literal["long", "short", "flat"]
    quantity: Decimal
    entry_price: Decimal
    leverage: int
    margin_type: str
    unrealized_pnl: Decimal
    liquidation_price: Decimal | None = None
    mark_price: Decimal | None = None
    position_side: str = "BOTH"


# ------------------------------------------------------------------ user-data stream events


@dataclasses.dataclass(frozen=True)
class OrderUpdate:
    """An order changed (new, fill, cancel); ``fill`` is set when this event is a trade."""

    venue: str
    order: OrderInfo
    fill: FillInfo | None
    ts_ms: int


@dataclasses.dataclass(frozen=True)
class BalanceUpdate:
    """Balances that changed (only the assets listed). ``wallet_totals``: each ``free`` is the
    asset's wallet total, its held part not given (Binance futures ``ACCOUNT_UPDATE``)."""

    venue: str
    balances: list[Balance]
    ts_ms: int
    wallet_totals: bool = False


@dataclasses.dataclass(frozen=True)
class PositionUpdate:
    venue: str
    positions: list[PositionInfo]
    reason: str
    ts_ms: int


@dataclasses.dataclass(frozen=True)
class StreamNotice:
    """Stream-level news the consumer should react to (``listen_key_expired``,
    ``stream_terminated``, ``reconnected``): re-sync state from REST."""

    venue: str
    kind: str
    ts_ms: int
    detail: str = ""


@dataclasses.dataclass(frozen=True)
class StopUpdate:
    """A venue stop changed (placed, triggered, finished, cancelled)."""

    venue: str
    stop: StopInfo
    ts_ms: int


UserEvent = OrderUpdate | BalanceUpdate | PositionUpdate | StopUpdate | StreamNotice
