"""The adapter interface every venue supplies, its capabilities as data, and the plain dataclasses
adapters return. No Django: URLs and credentials are passed in; results are these dataclasses.

Units: times are int ms UTC; market data (candles, trades, klines) are floats; money (balances,
order prices/quantities, fills, fees, positions) is ``Decimal``. Symbols are slash-free venue
codes: ``KRW-BTC`` (Upbit, Bithumb), ``BTCUSDT`` (Binance).
"""
from __future__ import annotations

import re
import threading
import time
from collections.abc import AsyncIterator

from markets.exchanges.types import (  # noqa: F401 - re-exported: adapters import them from here
    CANCELLED,
    EXPIRED,
    FILLED,
    FINAL_STATUSES,
    NEW,
    OPEN,
    ORDER_STATUSES,
    PARTIALLY_FILLED,
    REJECTED,
    STOP_FINAL_STATUSES,
    STOP_FINISHED,
    STOP_LOSS,
    STOP_OPEN,
    STOP_TRIGGERED,
    TAKE_PROFIT,
    Balance,
    BalanceUpdate,
    CandleRow,
    Capabilities,
    FillInfo,
    Kline,
    MarketType,
    MarkPrice,
    OrderInfo,
    OrderRequest,
    OrderType,
    OrderUpdate,
    PositionInfo,
    PositionUpdate,
    RateGroup,
    Side,
    StopInfo,
    StopRequest,
    StopUpdate,
    StreamNotice,
    SymbolInfo,
    Trade,
    UserEvent,
)


class ExchangeAdapter:
    """What every venue supplies. Subclasses fill in ``capabilities`` and the methods below.

    Construction never touches the network. Public methods raise ``errors.ExchangeError``
    subclasses; a method a venue does not have raises ``NotImplementedError`` with a reason.
    ``stream_stats`` / ``user_stream_stats`` (``ws.StreamStats``) count messages, malformed
    ones skipped, connects and planned reconnects while a stream runs.
    """

    key: str = ""
    capabilities: Capabilities

    _symbols: dict[str, SymbolInfo] | None = None  # set by ``list_symbols``

    def symbol_info(self, symbol: str) -> SymbolInfo:
        """The symbol's trading rules: from the venue's symbol list, fetched once and kept
        for ``SYMBOL_RULES_TTL_S`` by every adapter of the same venue and URL in this process
        (a broker is built per account and bar: without it each live account's first order of
        a bar downloaded the whole list, weight 20 on Binance). A symbol not in the list
        reloads it once, for a listing since."""
        if self._symbols is None:
            self._symbols = _shared_rules(self)
        if self._symbols is None or symbol not in self._symbols:
            self.list_symbols()
            _share_rules(self)
        try:
            return self._symbols[symbol]
        except KeyError:
            raise ValueError(f"{self.key}: unknown or untradable symbol {symbol!r}") from None

    # market data -----------------------------------------------------------------------
    def list_symbols(self) -> list[SymbolInfo]:
        raise NotImplementedError

    def fetch_candles(self, symbol: str, timeframe: str, start_ms: int, end_ms: int
                      ) -> list[CandleRow]:
        """Closed candles with ``start_ms <= open_time < end_ms``, oldest first, paginated."""
        raise NotImplementedError

    def server_time_ms(self) -> int:
        raise NotImplementedError(f"{self.key} has no server-time endpoint")

    def stream_trades(self, symbols: list[str]) -> AsyncIterator[Trade]:
        raise NotImplementedError

    def stream_klines(self, symbols: list[str], timeframe: str) -> AsyncIterator[Kline]:
        raise NotImplementedError(f"{self.key} has no kline stream; build bars from trades")

    def mark_prices(self, symbols: list[str] | None = None) -> list[MarkPrice]:
        """The latest mark price of ``symbols`` (None: every perpetual), over REST."""
        raise NotImplementedError(f"{self.key} has no mark price")

    def stream_mark_prices(self, symbols: list[str]) -> AsyncIterator[MarkPrice]:
        raise NotImplementedError(f"{self.key} has no mark price stream")

    # private ---------------------------------------------------------------------------
    def balances(self) -> list[Balance]:
        raise NotImplementedError

    def place_order(self, order: OrderRequest) -> OrderInfo:
        raise NotImplementedError

    def cancel_order(self, symbol: str, client_order_id: str | None = None,
                     exchange_order_id: str | None = None) -> OrderInfo:
        raise NotImplementedError

    def fetch_order(self, symbol: str, client_order_id: str | None = None,
                    exchange_order_id: str | None = None) -> OrderInfo:
        raise NotImplementedError

    def open_orders(self, symbol: str | None = None) -> list[OrderInfo]:
        raise NotImplementedError

    def positions(self) -> list[PositionInfo]:
        raise NotImplementedError(f"{self.key} is spot only: no positions")

    def set_leverage(self, symbol: str, leverage: int) -> int:
        raise NotImplementedError(f"{self.key} is spot only: no leverage")

    def set_margin_type(self, symbol: str, margin_type: str) -> None:
        raise NotImplementedError(f"{self.key} is spot only: no margin type")

    # venue stops (``capabilities.supports_venue_stops``) ---------------------------------
    def place_stop(self, stop: StopRequest) -> StopInfo:
        """Place a conditional reduce-only stop-loss or take-profit (market when triggered)."""
        raise NotImplementedError(f"{self.key} does not hold stop orders for us; the exit "
                                  "guard protects positions here")

    def cancel_stop(self, symbol: str, client_id: str) -> StopInfo:
        raise NotImplementedError(f"{self.key} does not hold stop orders")

    def fetch_stop(self, symbol: str, client_id: str) -> StopInfo:
        raise NotImplementedError(f"{self.key} does not hold stop orders")

    def open_stops(self, symbol: str | None = None) -> list[StopInfo]:
        raise NotImplementedError(f"{self.key} does not hold stop orders")

    def user_stream(self) -> AsyncIterator[UserEvent]:
        raise NotImplementedError

    def close(self) -> None:
        """Release the HTTP session."""

    def check_order_request(self, order: OrderRequest) -> None:
        """ValueError for a request this venue cannot express (a programming error, not a
        venue rejection): bad side/type, a client order id the venue would refuse, a market
        buy sized the way the venue does not support, reduce-only on spot."""
        caps = self.capabilities
        if order.side not in ("buy", "sell") or order.type not in ("market", "limit"):
            raise ValueError(f"side must be buy|sell and type market|limit, got "
                             f"{order.side!r}/{order.type!r}")
        if not re.fullmatch(caps.client_order_id_pattern, order.client_order_id or ""):
            raise ValueError(f"{caps.venue}: client_order_id {order.client_order_id!r} must "
                             f"match {caps.client_order_id_pattern}")
        if order.type == "market" and order.side == "buy":
            if order.quantity is None and not caps.supports_quote_amount_market_buy:
                raise ValueError(f"{caps.venue}: a market buy needs a quantity")
            if order.quantity is not None and not caps.market_buy_by_quantity:
                raise ValueError(f"{caps.venue}: a market buy is sized by quote_amount "
                                 "(quote currency to spend), not quantity")
        if order.reduce_only and not caps.supports_reduce_only:
            raise ValueError(f"{caps.venue}: reduce_only is not supported on this venue")


#: How long a venue's symbol list (tick, step, minimum notional) is reused across adapters.
SYMBOL_RULES_TTL_S = 600.0
_rules: dict[tuple[str, str], tuple[float, dict]] = {}
_rules_lock = threading.Lock()


def _rules_key(adapter) -> tuple[str, str]:
    return adapter.key, getattr(adapter, "rest_url", "")


def _shared_rules(adapter) -> dict | None:
    with _rules_lock:
        found = _rules.get(_rules_key(adapter))
    if found is None or time.monotonic() - found[0] > SYMBOL_RULES_TTL_S:
        return None
    return dict(found[1])


def _share_rules(adapter) -> None:
    if adapter._symbols is not None:
        with _rules_lock:
            _rules[_rules_key(adapter)] = (time.monotonic(), dict(adapter._symbols))


def forget_symbol_rules() -> None:
    """Drop every venue's shared symbol list (tests; a venue's rules known to have changed)."""
    with _rules_lock:
        _rules.clear()
