"""Parity: replay stored candles bar by bar through evaluation + paper execution + the exit
guard, and compare the trades with ``strategies.backtest`` on the same candles.

The replay runs inside one database transaction that is rolled back at the end: it trades a
scratch paper account (a copy of the config on it, funded with ``initial_cash``), so nothing of
the user's is touched and no message is pushed. On SQLite that transaction holds the write
lock for the replay's duration (seconds per thousand bars).

Per bar ``i`` (as the backtester orders it): the exit guard checks bar ``i``'s open/high/low
against positions opened at or before its open, then the strategy decides on bar ``i``'s close
and the signal fills at that close, timed at bar ``i``'s close (= bar ``i+1``'s open, the
backtester's fill time). A signal on the last bar is not filled (the backtester cannot fill
it either). Candles whose open equals the previous close give identical prices; otherwise the
difference is the gap between a close and the next open.
"""

from __future__ import annotations

import dataclasses
import uuid
from decimal import Decimal

from django.db import transaction

from markets.candles import load_candles
from markets.models import Account, Balance, Symbol
from markets.timeframes import timeframe_ms
from orders import evaluation, exits, services
from orders.brokers.base import default_costs
from orders.models import Position
from strategies import backtest
from strategies.base import HOLD
from strategies.models import StrategyConfig


@dataclasses.dataclass
class ParityReport:
    bars: int
    backtest_trades: list[dict]
    paper_trades: list[dict]
    mismatches: list[str]

    @property
    def ok(self) -> bool:
        return not self.mismatches


def _backtest_trades(result) -> list[dict]:
    return [
        {
            "side": t.side,
            "entry_time_ms": int(t.entry_time_ms),
            "exit_time_ms": None if t.reason == "end_of_data" else int(t.exit_time_ms),
            "entry_price": float(t.entry_price),
            "exit_price": None if t.reason == "end_of_data" else float(t.exit_price),
            "reason": "open" if t.reason == "end_of_data" else t.reason,
        }
        for t in result.trades
    ]


def _paper_trades(account: Account) -> list[dict]:
    out = []
    for position in Position.objects.filter(account=account).order_by("opened_at", "pk"):
        exit_fill = None
        if position.closed_at is not None:
            order = position.account.orders.filter(
                reduce_only=True, status="filled", symbol=position.symbol
            ).filter(fills__ts=position.closed_at).first()
            exit_fill = order.average_price if order else None
        out.append(
            {
                "side": position.side,
                "entry_time_ms": int(position.opened_at.timestamp() * 1000),
                "exit_time_ms": (
                    int(position.closed_at.timestamp() * 1000) if position.closed_at else None
                ),
                "entry_price": float(position.entry_price),
                "exit_price": None if exit_fill is None else float(exit_fill),
                "reason": position.close_reason or "open",
            }
        )
    return out


def compare(bt: list[dict], paper: list[dict], slippage_bps: float) -> list[str]:
    """Mismatches between trades: count, sides, entry/exit bars and reasons exactly; prices
    within the slippage model (one slippage either way, plus float rounding)."""
    problems = []
    if len(bt) != len(paper):
        problems.append(f"backtest has {len(bt)} trades, paper has {len(paper)}")
    tolerance = slippage_bps / 10_000 + 1e-9
    for k, (b, p) in enumerate(zip(bt, paper)):
        for key in ("side", "entry_time_ms", "exit_time_ms", "reason"):
            if b[key] != p[key]:
                problems.append(f"trade {k}: {key} backtest {b[key]} != paper {p[key]}")
        for key in ("entry_price", "exit_price"):
            if b[key] is None or p[key] is None:
                continue
            if abs(p[key] - b[key]) > tolerance * b[key] + 1e-9:
                problems.append(f"trade {k}: {key} backtest {b[key]} vs paper {p[key]}")
    return problems


def replay(
    config: StrategyConfig, start_ms: int, end_ms: int, *, initial_cash: Decimal | None = None
) -> ParityReport:
    """Replay ``config`` on its stored candles with ``start_ms <= open time < end_ms`` and
    compare with the backtester. Nothing is kept."""
    symbol = Symbol.objects.select_related("exchange").get(pk=config.symbol_id)
    candles = load_candles(symbol.pk, config.timeframe, start_ms=start_ms, end_ms=end_ms)
    costs = default_costs()
    cash = initial_cash or Decimal("10000000")
    # Daily limits are left out of the comparison: the backtester measures them at bar closes
    # from the day's first open, the trader from the day's first equity snapshot.
    risk = dataclasses.replace(
        services.risk_params(config, costs, ts_ms=start_ms),
        daily_target_pct=0.0, daily_max_loss_pct=0.0,
    )
    strategy = config.build_strategy()
    perpetual = symbol.market_type == Symbol.MarketType.PERPETUAL
    result = backtest.run(
        strategy,
        candles,
        backtest.BacktestConfig(
            initial_cash=float(cash), risk=risk, sizing=config.sizing(), allow_short=perpetual,
            timeframe=config.timeframe,
        ),
    )
    step = timeframe_ms(config.timeframe)
    with transaction.atomic():
        account = Account.objects.create(
            owner_id=config.owner_id, exchange_id=symbol.exchange_id,
            label=f"parity-{uuid.uuid4().hex[:12]}", quote_asset=symbol.quote,
        )
        Balance.objects.create(account=account, asset=symbol.quote, free=cash)
        clone = StrategyConfig.objects.get(pk=config.pk)
        clone.pk = None
        clone.name = account.label
        clone.account = account
        clone.is_active = True
        clone.daily_target_pct = clone.daily_max_loss_pct = None  # see the report
        clone.save()
        clone = StrategyConfig.objects.select_related("symbol__exchange", "account").get(
            pk=clone.pk
        )
        strategy = clone.build_strategy()
        n = len(candles)
        for i in range(n):
            t = int(candles.open_time_ms[i])
            if i > 0:
                exits.guard_range(
                    symbol, float(candles.open[i]), float(candles.high[i]),
                    float(candles.low[i]), t, account_ids=[account.pk],
                )
            if i == n - 1:
                break
            window, signals = evaluation._signals(clone, strategy, candles[: i + 1])
            action = int(signals.actions[-1])
            if action == HOLD:
                continue
            score = None if signals.score is None else float(signals.score[-1])
            size = None if signals.size is None else float(signals.size[-1])
            signal, _ = evaluation._store_signal(
                clone, symbol, config.timeframe, window, action, score, size
            )
            services.execute_signal(
                signal, at_ms=t + step, last_price=Decimal(repr(float(candles.close[i]))),
            )
        paper = _paper_trades(account)
        transaction.set_rollback(True)
    bt = _backtest_trades(result)
    return ParityReport(
        bars=len(candles), backtest_trades=bt, paper_trades=paper,
        mismatches=compare(bt, paper, costs.slippage_bps),
    )
