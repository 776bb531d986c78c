"""Live execution through the venue's exchange adapter (``markets.exchanges``).

Only for an account in live mode, with readable keys, and ``settings.TRADING_LIVE`` on. Safety
against doubles lives in the adapters: ``place_order`` looks an order up by its client order id
after a timeout or 5xx and raises ``OrderStatusUnknown`` rather than re-send; this broker never
retries a placement itself. Futures leverage and isolated margin are set before the first entry.
Where the venue holds conditional orders (``capabilities.supports_venue_stops``: Binance
USDⓈ-M futures) the position's stop-loss and take-profit are left with it (``place_stop``;
``orders.venue_stops`` decides when).
"""

from __future__ import annotations

import logging
from decimal import Decimal

from markets.adapters import adapter_for
from markets.exchanges.base import (
    ExchangeAdapter,
    OrderInfo,
    OrderRequest,
    StopInfo,
    StopRequest,
)
from markets.fields import UNREADABLE, CredentialsUnreadable
from orders.brokers.base import Broker, BrokerUnavailable, Costs, default_costs

log = logging.getLogger(__name__)


def live_allowed(account) -> str | None:
    """Why ``account`` may not trade live, or None."""
    from django.conf import settings

    if not getattr(settings, "TRADING_LIVE", False):
        return "live trading is off on this server (set TRADING_LIVE=1 to allow it)"
    if account.mode != account.Mode.LIVE:
        return "the account is in paper mode"
    state = account.credentials_state
    if state == account.CREDENTIALS_UNREADABLE:
        return UNREADABLE
    if state != account.CREDENTIALS_STORED:
        return "the live account has no API key and secret"
    return None


class LiveBroker(Broker):
    live = True

    def __init__(self, adapter: ExchangeAdapter, costs: Costs | None = None,
                 margin_type: str = "ISOLATED") -> None:
        self.adapter = adapter
        self.costs = costs or Costs()
        self.margin_type = margin_type
        self._prepared: set[tuple[str, int]] = set()

    @classmethod
    def for_account(cls, account) -> LiveBroker:
        try:
            api_key, api_secret = account.credentials()
        except CredentialsUnreadable as exc:
            raise BrokerUnavailable(str(exc)) from None
        # The venue's shared limiter: orders spend from the budget market data spends from.
        return cls(adapter_for(account.exchange, api_key=api_key, api_secret=api_secret),
                   default_costs())

    @property
    def market_buy_by_quantity(self) -> bool:
        return self.adapter.capabilities.market_buy_by_quantity

    @property
    def market_buy_by_quote(self) -> bool:
        return self.adapter.capabilities.supports_quote_amount_market_buy

    def place(self, request: OrderRequest, *, last_price: Decimal, ts_ms: int) -> OrderInfo:
        return self.adapter.place_order(request)

    def cancel(self, symbol: str, client_order_id: str, exchange_order_id: str = "") -> OrderInfo:
        return self.adapter.cancel_order(
            symbol, client_order_id=None if exchange_order_id else client_order_id,
            exchange_order_id=exchange_order_id or None,
        )

    def fetch(self, symbol: str, client_order_id: str, exchange_order_id: str = "") -> OrderInfo:
        return self.adapter.fetch_order(
            symbol, client_order_id=None if exchange_order_id else client_order_id,
            exchange_order_id=exchange_order_id or None,
        )

    def prepare_futures(self, symbol: str, leverage: int) -> None:
        if not self.adapter.capabilities.supports_leverage:
            return
        if (symbol, leverage) in self._prepared:
            return
        # The adapter treats "no need to change margin type" as success; other errors raise.
        self.adapter.set_margin_type(symbol, self.margin_type)
        self.adapter.set_leverage(symbol, int(leverage))
        self._prepared.add((symbol, leverage))

    def balances(self):
        return self.adapter.balances()

    def positions(self):
        """The venue's futures positions (signed quantity, one net per symbol in one-way
        mode): ``orders.positions.reconcile_net_positions`` compares them with the sum over
        the account's configs."""
        return self.adapter.positions()

    @property
    def venue_stops(self) -> bool:
        return self.adapter.capabilities.supports_venue_stops

    def place_stop(self, stop: StopRequest) -> StopInfo:
        return self.adapter.place_stop(stop)

    def cancel_stop(self, symbol: str, client_id: str) -> StopInfo:
        return self.adapter.cancel_stop(symbol, client_id)

    def fetch_stop(self, symbol: str, client_id: str) -> StopInfo:
        return self.adapter.fetch_stop(symbol, client_id)

    def close(self) -> None:
        self.adapter.close()
