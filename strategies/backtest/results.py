"""What a backtest produced: the trades (as columns, and as :class:`Trade` objects on demand),
the equity curve, the statistics and the daily and monthly returns."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from strategies.trade_math import LONG, REASON_NAMES


@dataclasses.dataclass(slots=True)
class Trade:
    """One round trip (entries and adds merged), JSON-ready through ``dataclasses.asdict``.

    Times are the open times (ms UTC) of the candles in which the entry and the exit filled;
    ``entry_price`` is the average entry, ``size`` the total quantity (base currency), ``fees``
    all fees paid in quote currency, ``pnl`` net of fees, ``entries`` 1 + the number of adds.
    """

    entry_time_ms: int
    exit_time_ms: int
    side: str
    entry_price: float
    exit_price: float
    size: float
    fees: float
    pnl: float
    reason: str
    entries: int


TRADE_COLUMNS = tuple(field.name for field in dataclasses.fields(Trade))


class BacktestResult:
    """What a run produced. ``trades`` are built on first access from ``trade_columns`` (numpy
    arrays, one per :class:`Trade` field, ``side`` as +1/-1 and ``reason`` as a code), so a run
    with tens of thousands of trades does not pay for objects nobody reads."""

    def __init__(
        self,
        trade_columns: dict[str, np.ndarray],
        open_time_ms: np.ndarray,
        equity: np.ndarray,
        stats: dict[str, Any],
        daily_returns: dict[str, float],
        monthly_returns: dict[str, float],
    ) -> None:
        self.trade_columns = trade_columns
        self.open_time_ms = open_time_ms
        self.equity = equity
        self.stats = stats
        self.daily_returns = daily_returns
        self.monthly_returns = monthly_returns
        self._trades: list[Trade] | None = None

    def _rows(self) -> list[list]:
        cols = [self.trade_columns[name].tolist() for name in TRADE_COLUMNS]
        cols[2] = ["long" if sd == LONG else "short" for sd in cols[2]]
        cols[8] = [REASON_NAMES[r] for r in cols[8]]
        return cols

    @property
    def trades(self) -> list[Trade]:
        if self._trades is None:
            self._trades = [Trade(*row) for row in zip(*self._rows())]
        return self._trades

    def trade_dicts(self) -> list[dict[str, Any]]:
        """The trades as JSON-ready dicts (``dataclasses.asdict`` of each :class:`Trade`), built
        straight from the columns: no ``Trade`` objects kept, no deep copies."""
        return [dict(zip(TRADE_COLUMNS, row)) for row in zip(*self._rows())]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data; the equity curve as ``[[open_time_ms, equity], ...]``."""
        return {
            "stats": self.stats,
            "trades": self.trade_dicts(),
            "equity_curve": [
                [t, e] for t, e in zip(self.open_time_ms.tolist(), self.equity.tolist())
            ],
            "daily_returns": self.daily_returns,
            "monthly_returns": self.monthly_returns,
        }
