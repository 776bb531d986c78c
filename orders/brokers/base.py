"""The broker contract: what paper and live execution both supply.

Money is Decimal; times are int ms UTC. Results are the exchange adapters' dataclasses
(``markets.exchanges.base.OrderInfo`` with its ``FillInfo`` list), so the persistence path in
``orders.services`` is the same for paper and live.
"""

from __future__ import annotations

import dataclasses
from decimal import Decimal

from markets.exchanges.base import OrderInfo, OrderRequest, StopInfo, StopRequest


class BrokerUnavailable(Exception):
    """The account cannot trade through this broker (live trading off, no keys): do not retry;
    the message says what a person must change."""


@dataclasses.dataclass(frozen=True)
class Costs:
    """The fee and slippage model, the same numbers the backtester takes in ``RiskParams``.

    ``fee_rate``/``maker_fee_rate`` are fractions of notional; ``slippage_bps`` basis points of
    the price, against the trader; ``aggressiveness_pct`` is how far past the last price a
    signal's limit order is priced (percent; 0 sends market orders)."""

    fee_rate: float = 0.0005
    maker_fee_rate: float = 0.0002
    slippage_bps: float = 5.0
    aggressiveness_pct: float = 0.15


def default_costs() -> Costs:
    """Costs from settings (``TRADING_FEE_RATE``, ``TRADING_MAKER_FEE_RATE``,
    ``TRADING_SLIPPAGE_BPS``, ``TRADING_LIMIT_AGGRESSIVENESS_PCT``), else the defaults above."""
    from django.conf import settings

    base = Costs()
    return Costs(
        fee_rate=float(getattr(settings, "TRADING_FEE_RATE", base.fee_rate)),
        maker_fee_rate=float(getattr(settings, "TRADING_MAKER_FEE_RATE", base.maker_fee_rate)),
        slippage_bps=float(getattr(settings, "TRADING_SLIPPAGE_BPS", base.slippage_bps)),
        aggressiveness_pct=float(
            getattr(settings, "TRADING_LIMIT_AGGRESSIVENESS_PCT", base.aggressiveness_pct)
        ),
    )


class Broker:
    """What every broker supplies. ``live`` says whether orders reach a venue."""

    live: bool = False
    costs: Costs

    def place(self, request: OrderRequest, *, last_price: Decimal, ts_ms: int) -> OrderInfo:
        """Send ``request`` (already rounded, with its client order id). ``last_price`` is the
        last trade or close the decision saw. Raises the adapters' errors for live venues."""
        raise NotImplementedError

    def cancel(self, symbol: str, client_order_id: str, exchange_order_id: str = "") -> OrderInfo:
        raise NotImplementedError

    def fetch(self, symbol: str, client_order_id: str, exchange_order_id: str = "") -> OrderInfo:
        raise NotImplementedError

    def match(self, order: OrderInfo, *, price: Decimal, ts_ms: int) -> OrderInfo | None:
        """A resting order's state after the market traded at ``price``: None when nothing
        changed. Paper fills limits here; a live venue fills them itself (returns None)."""
        return None

    def prepare_futures(self, symbol: str, leverage: int) -> None:
        """Set leverage and margin type before the first entry (live futures only)."""

    def balances(self):
        """Venue balances (live) or None when the book is ours (paper)."""
        return None

    def positions(self):
        """The venue's futures positions (live; ``PositionInfo``, signed quantity)."""
        raise NotImplementedError("paper positions are this database's own: nothing to compare")

    #: How a market buy may be sized: by base quantity, by the quote amount to spend (Upbit
    #: ``ord_type=price``, Binance spot ``quoteOrderQty``). Paper takes both: it turns a quote
    #: amount into the quantity it buys at its fill price.
    market_buy_by_quantity: bool = True
    market_buy_by_quote: bool = True

    #: Whether stop-loss/take-profit orders can be left with the venue (``place_stop``).
    #: False (paper, spot venues, Upbit/Bithumb): the exit guard is the only protection.
    venue_stops: bool = False

    def place_stop(self, stop: StopRequest) -> StopInfo:
        raise NotImplementedError("this broker leaves stops to the exit guard")

    def cancel_stop(self, symbol: str, client_id: str) -> StopInfo:
        raise NotImplementedError("this broker leaves stops to the exit guard")

    def fetch_stop(self, symbol: str, client_id: str) -> StopInfo:
        raise NotImplementedError("this broker leaves stops to the exit guard")
