"""Entry gates and sizing: whether a config may enter or add (``orders.risk``), how much
(``strategies.sizing`` on the account's equity, the ATR or the config's trade returns), rounded
to the venue's step, and the paper reserve. Decides; the caller saves."""

from __future__ import annotations

import math
from decimal import ROUND_CEILING, Decimal

from django.conf import settings

from markets.exchanges import rounding
from markets.models import Account, Symbol
from orders import positions as net
from orders import risk
from orders.brokers import Broker
from orders.brokers.base import Costs, default_costs
from orders.models import Order, Position, Side
from orders.services.common import (
    RESERVE_PLACES,
    ZERO,
    dec,
    limit_price,
    now_ms,
    symbol_info,
)
from orders.services.equity import day_start_equity
from orders.services.ledger import free_balance
from strategies import sizing, trade_math
from strategies.models import StrategyConfig


def risk_params(config: StrategyConfig, costs: Costs | None = None, ts_ms: int | None = None):
    """The backtester's ``RiskParams`` for ``config``: its leverage and percentages, the
    broker's fee and slippage, the trading day of ``settings.TIME_ZONE``."""
    costs = costs or default_costs()
    offset = risk.utc_offset_hours(settings.TIME_ZONE, ts_ms if ts_ms is not None else now_ms())
    return trade_math.RiskParams(
        fee_rate=costs.fee_rate,
        maker_fee_rate=costs.maker_fee_rate,
        slippage_bps=costs.slippage_bps,
        leverage=float(config.leverage),
        stop_loss_pct=float(config.stop_loss_pct or 0),
        take_profit_pct=float(config.take_profit_pct or 0),
        trailing_stop_pct=float(config.trailing_stop_pct or 0),
        daily_target_pct=float(config.daily_target_pct or 0),
        daily_max_loss_pct=float(config.daily_max_loss_pct or 0),
        day_offset_hours=offset,
    )


# ------------------------------------------------------------------------ payloads


class Rejected(Exception):
    """A gate said no; the message is the trader-readable reason."""


def _trade_returns(config: StrategyConfig) -> list[float]:
    rows = Position.objects.filter(config=config, closed_at__isnull=False).values_list(
        "realized_pnl", "entry_price", "quantity", "margin"
    )
    out = []
    for pnl, entry, _qty, margin in rows:
        cost = margin if margin else entry
        if cost:
            out.append(float(pnl / cost))
    return out


def _atr(config: StrategyConfig, params, at_ms: int) -> float | None:
    if not isinstance(params, sizing.AtrUnit):
        return None
    from markets.candles import load_candles
    from strategies import indicators

    candles = load_candles(
        config.symbol_id, config.timeframe, end_ms=at_ms, limit=params.atr_period * 12 + 2
    )
    if len(candles) <= params.atr_period:
        return None
    values = indicators.atr(candles.high, candles.low, candles.close, params.atr_period)
    value = float(values[-1])
    return value if math.isfinite(value) else None


def _entry_order(
    account: Account,
    config: StrategyConfig,
    position: Position | None,
    side_int: int,
    last_price: Decimal,
    size_mult: float,
    at_ms: int,
    costs: Costs,
    broker: Broker,
) -> tuple[Decimal, Decimal | None, Decimal]:
    """Gates, sizing and rounding for an entry or add: ``(quantity, limit price, reserve)``;
    ``Rejected`` with the reason otherwise. Runs under the account's row lock; reads the facts
    one query at a time (:func:`execute_signals` reads them for a whole bar at once)."""
    from orders.equity import value_account

    equity = value_account(account).equity
    return _decide_entry(
        account, config, side_int, last_price, size_mult, costs, broker.live,
        equity=equity,
        day_start=lambda: day_start_equity(account, at_ms, equity),
        open_order=lambda: Order.objects.filter(
            account=account, symbol=config.symbol, status__in=Order.OPEN_STATUSES,
            reduce_only=False, config=config,
        ).exists(),
        available=lambda: free_balance(account, config.symbol.quote),
        atr=lambda params: _atr(config, params, at_ms),
        others=lambda: net.others_on_symbol(account.pk, config.symbol_id, config.pk),
    )


def _decide_entry(
    account: Account,
    config: StrategyConfig,
    side_int: int,
    last_price: Decimal,
    size_mult: float,
    costs: Costs,
    live: bool,
    *,
    equity: Decimal,
    day_start,
    open_order,
    available,
    atr,
    others,
) -> tuple[Decimal, Decimal | None, Decimal]:
    """The entry gates (``risk.entry_reason``), sizing (``strategies.sizing``) and the venue's
    rounding, on facts the caller gathered under the account's row lock: ``equity`` (quote
    currency), and callables for the rest, asked only when a gate needs them — ``day_start()``
    the day's start equity, ``open_order()`` whether the config has an entry order open on the
    symbol, ``available()`` the free quote balance, ``atr(params)`` the ATR for ATR sizing,
    ``others()`` the other configs' open positions and entry orders on the account and symbol
    (``orders.positions.opposite_reason``: one net position per symbol at the venue). Equity,
    balance and the daily limits are the whole account's. Returns
    ``(quantity, limit price or None, paper reserve)``; raises ``Rejected`` with the reason."""
    symbol = config.symbol
    side = Side.BUY if side_int == trade_math.LONG else Side.SELL
    facts = risk.EntryFacts(
        halted=account.halted,
        halted_reason=account.halted_reason,
        config_active=config.is_active,
        leverage=config.leverage,
        max_leverage=symbol.max_leverage,
        symbol=str(symbol),
        day_start_equity=day_start(),
        equity=equity,
        daily_target_pct=config.daily_target_pct,
        daily_max_loss_pct=config.daily_max_loss_pct,
        open_order_for_symbol=open_order(),
    )
    why = risk.entry_reason(facts)
    if why:
        raise Rejected(why)
    why = net.opposite_reason(symbol, side_int, others()) if (
        symbol.market_type == Symbol.MarketType.PERPETUAL) else ""
    if why:
        raise Rejected(why)
    if symbol.quote != account.quote_asset:
        raise Rejected(
            f"{symbol} is quoted in {symbol.quote} but account {account.label} measures equity "
            f"in {account.quote_asset}; use an account whose quote asset is {symbol.quote}"
        )
    leverage = config.leverage if symbol.market_type == Symbol.MarketType.PERPETUAL else 1
    limit = limit_price(symbol, side, last_price, costs)
    fill_estimate = trade_math.slipped_price(float(last_price), side_int, costs.slippage_bps)
    worst = float(limit) if limit is not None else fill_estimate
    params = config.sizing()
    wanted = sizing.quantity(
        params,
        equity=float(equity),
        price=fill_estimate,
        leverage=float(leverage),
        atr=atr(params),
        trade_returns=_trade_returns(config) if isinstance(params, sizing.Kelly) else (),
    ) * size_mult
    available = available()
    room = trade_math.affordable_quantity(float(available), worst, float(leverage), costs.fee_rate)
    info = symbol_info(symbol)
    want_qty = rounding.round_quantity(dec(max(wanted, 0.0)), info)
    qty = rounding.round_quantity(dec(max(min(wanted, room), 0.0)), info)
    price_for_checks = dec(worst)
    minimum = dict(
        min_qty=symbol.min_qty, min_notional=symbol.min_notional, quote=symbol.quote,
        symbol=str(symbol),
    )
    why = risk.min_order_reason(want_qty, price_for_checks, **minimum)
    if why:
        raise Rejected(why)
    if risk.min_order_reason(qty, price_for_checks, **minimum):
        needed_qty = max(symbol.min_notional / price_for_checks, symbol.min_qty, info.step_size)
        needed = needed_qty * price_for_checks * (
            1 / Decimal(leverage) + Decimal(repr(costs.fee_rate))
        )
        raise Rejected(
            risk.balance_reason(available, needed.quantize(Decimal("0.01"), ROUND_CEILING),
                                account.quote_asset, what="the smallest order the venue takes")
            or "insufficient balance"
        )
    reserve = ZERO
    if not live:
        reserve = (qty * dec(worst) * (1 / Decimal(leverage) + Decimal(repr(costs.fee_rate))))
        reserve = min(reserve.quantize(RESERVE_PLACES, ROUND_CEILING), available)
    return qty, limit, reserve
