"""Position sizing: how much to buy or sell on an entry. Pure, shared by the backtester and brokers.

Every method is declared like a strategy's parameters (``Params`` with bounds) so the admin and
the API validate them the same way. Functions return a quantity in base-currency units as a float;
brokers round it down to the venue's step with Decimal (see ``markets.exchanges`` rounding).

Units: ``equity`` and ``amount`` are in the quote currency (KRW, USDT); ``fraction`` is a fraction
(0.25 = 25%); ``risk_pct`` is a percent (1.0 = 1%).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

from strategies.params import ParamError, Params, param

FIXED_QUOTE = "fixed_quote"
FRACTION = "fraction"
ATR_UNIT = "atr_unit"
KELLY = "kelly"


@dataclasses.dataclass(frozen=True)
class FixedQuote(Params):
    """Spend the same quote amount on every entry (margin, before leverage)."""

    label = "sizing 'fixed_quote'"
    amount: float = param(100_000.0, min=0.0, help="quote currency per entry, e.g. 100000 KRW")

    def check(self) -> None:
        if self.amount <= 0:
            raise ParamError("amount must be more than 0 (quote currency per entry)")


@dataclasses.dataclass(frozen=True)
class Fraction(Params):
    """Spend a fixed fraction of current equity on every entry (margin, before leverage)."""

    label = "sizing 'fraction'"
    fraction: float = param(1.0, min=0.0001, max=1.0, help="fraction of equity, 0.25 = 25%")


@dataclasses.dataclass(frozen=True)
class AtrUnit(Params):
    """Turtle unit: a 1-ATR move against the position costs ``risk_pct`` percent of equity."""

    label = "sizing 'atr_unit'"
    risk_pct: float = param(1.0, min=0.01, max=100.0, help="percent of equity risked per 1 ATR")
    atr_period: int = param(20, min=2, max=500, help="bars in the ATR average")


@dataclasses.dataclass(frozen=True)
class Kelly(Params):
    """Kelly fraction f* = W - (1 - W) / R, scaled by ``fraction`` (half-Kelly by default).

    With ``win_rate`` = 0 the win rate and payoff ratio are estimated from the past trades given
    to :func:`quantity` (at least ``min_trades`` of them; fewer gives ``fallback`` of equity).
    """

    label = "sizing 'kelly'"
    win_rate: float = param(0.0, min=0.0, max=1.0, help="W, 0..1; 0 = estimate from past trades")
    payoff: float = param(1.0, min=0.01, max=100.0, help="R = average win / average loss")
    fraction: float = param(0.5, min=0.01, max=1.0, help="share of the full Kelly bet")
    min_trades: int = param(20, min=1, max=10_000, help="trades needed to estimate W and R")
    fallback: float = param(0.1, min=0.0, max=1.0, help="fraction of equity until then")


METHODS: dict[str, type[Params]] = {
    FIXED_QUOTE: FixedQuote,
    FRACTION: Fraction,
    ATR_UNIT: AtrUnit,
    KELLY: Kelly,
}


def validate(method: str, params: dict | None) -> Params:
    """Validated sizing parameters for ``method``; ParamError names the problem."""
    try:
        cls = METHODS[method]
    except KeyError:
        raise ParamError(
            f"unknown sizing method {method!r}; use one of {', '.join(METHODS)}"
        ) from None
    return cls.from_dict(params)


def kelly_fraction(win_rate: float, payoff: float) -> float:
    """Full Kelly fraction of equity, clipped to [0, 1]. ``payoff`` = average win / average loss."""
    if payoff <= 0:
        return 0.0
    f = win_rate - (1.0 - win_rate) / payoff
    return min(max(f, 0.0), 1.0)


def estimate_win_payoff(trade_returns: Sequence[float]) -> tuple[float, float] | None:
    """(win rate, payoff ratio) from past trade returns, or None without wins and losses."""
    wins = [r for r in trade_returns if r > 0]
    losses = [-r for r in trade_returns if r < 0]
    if not wins or not losses:
        return None
    win_rate = len(wins) / (len(wins) + len(losses))
    payoff = (sum(wins) / len(wins)) / (sum(losses) / len(losses))
    return win_rate, payoff


def margin_fraction(params: Params, trade_returns: Sequence[float] = ()) -> float | None:
    """Fraction of equity to commit for the fraction and Kelly methods (None for the others)."""
    if isinstance(params, Fraction):
        return params.fraction
    if isinstance(params, Kelly):
        if params.win_rate > 0:
            return kelly_fraction(params.win_rate, params.payoff) * params.fraction
        if len(trade_returns) < params.min_trades:
            return params.fallback
        estimate = estimate_win_payoff(trade_returns)
        if estimate is None:
            return params.fallback
        return kelly_fraction(*estimate) * params.fraction
    return None


def quantity(
    params: Params,
    *,
    equity: float,
    price: float,
    leverage: float = 1.0,
    atr: float | None = None,
    trade_returns: Sequence[float] = (),
) -> float:
    """Base-currency quantity for one entry at ``price``.

    ``equity`` is in quote currency. Margin-based methods (fixed quote, fraction, Kelly) buy
    ``margin * leverage / price``; the ATR unit sizes so a 1-ATR move costs ``risk_pct`` of equity
    (times leverage, as the turtle rules do for leveraged accounts). Returns 0.0 when nothing
    sensible can be bought (no equity, no price, no ATR yet).
    """
    if not (price > 0 and math.isfinite(price)) or not (equity > 0 and math.isfinite(equity)):
        return 0.0
    if isinstance(params, FixedQuote):
        qty = min(params.amount, equity) * leverage / price
        return qty if math.isfinite(qty) else 0.0
    if isinstance(params, AtrUnit):
        if atr is None or not (atr > 0 and math.isfinite(atr)):
            return 0.0
        units = equity * params.risk_pct / 100.0 / atr * leverage
        # Never commit more margin than the account has.
        return min(units, equity * leverage / price)
    fraction = margin_fraction(params, trade_returns)
    if fraction is None:
        raise ParamError(f"unsupported sizing parameters {params!r}")
    qty = equity * fraction * leverage / price
    return qty if math.isfinite(qty) else 0.0  # a denormal price would overflow to inf
