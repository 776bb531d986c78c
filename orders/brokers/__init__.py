"""Brokers: one interface (``base.Broker``) over paper and live execution, chosen by the
account's mode with :func:`broker_for`. Brokers never touch the database: they return the
adapters' plain ``OrderInfo`` / ``FillInfo`` and ``orders.services`` persists them."""

from __future__ import annotations

from orders.brokers.base import Broker, BrokerUnavailable, Costs
from orders.brokers.paper import PaperBroker

__all__ = ["Broker", "BrokerUnavailable", "Costs", "LiveBroker", "PaperBroker", "broker_for"]


def broker_for(account, costs: Costs | None = None) -> Broker:
    """The broker for ``account``: live only when the account is live, has keys and
    ``settings.TRADING_LIVE`` is on; a live account without them raises ``BrokerUnavailable``
    (never silently paper-trades a live account)."""
    from orders.brokers.base import default_costs

    if account.mode == account.Mode.LIVE:
        from orders.brokers.live import LiveBroker, live_allowed

        why = live_allowed(account)
        if why:
            raise BrokerUnavailable(why)
        return LiveBroker.for_account(account)
    return PaperBroker(costs or default_costs())


def __getattr__(name: str):
    # The live broker brings the exchange adapters (requests, websockets): loaded on first use,
    # so importing the trading services (a backtest, the admin) does not load them.
    if name in ("LiveBroker", "live_allowed"):
        from orders.brokers import live

        return getattr(live, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
