"""The backtester: any registered strategy, any parameters, over one ``Candles`` series.

It runs event by event, bar by bar, with the same position math the paper and live brokers use
(:mod:`strategies.trade_math`, :mod:`strategies.sizing`). What it assumes, plainly:

Fill timing
    The strategy decides on the close of bar ``i`` using bars ``[0, i]``; the order fills at the
    **open of bar i + 1** (market order), moved against the trader by ``slippage_bps``. A signal on
    the last bar is not filled. Nothing fills at a price the bar did not offer except through
    slippage.
Fees
    ``fee_rate`` (taker) times the fill's notional (quantity × fill price), on every fill: entries,
    adds, signal exits, stops, targets, trailing stops and the final close. A liquidation pays
    no fee but loses the position's whole isolated margin.
Sizing
    Without a sizing method the whole equity is committed (``fraction`` 1.0), no leverage. The
    quantity from :func:`strategies.sizing.quantity` (equity marked at the fill price) is scaled
    by the signal's ``size`` (1.0 = one unit; pyramiding strategies send 0.5, 1.5, ...) and then
    capped so that margin plus the entry fee fit in the equity not yet used as margin. A size of
    0 or NaN places no order. Sizes are not rounded to a venue's step (brokers do that with
    Decimal), and there is no minimum order value.
Positions
    One position at a time per run, long or short (:mod:`strategies.decisions`, the rule the
    order services follow too). ``ENTER_*`` while flat opens; ``ENTER_*`` of
    the other side closes (reason ``reverse``) and opens at the same open; ``ENTER_*`` of the same
    side is ignored; ``ADD_*`` adds to a position of that side (new average entry; stops and
    targets follow the average entry; margin adds up). ``EXIT_*`` closes the whole position.
    With ``allow_short=False`` an ``ENTER_SHORT`` only closes a long and ``ADD_SHORT`` is ignored.
    After a stop or target the engine waits for the strategy's next entry signal.
Exits inside a bar
    Stop-loss, take-profit and trailing stop are percentages of the (average) entry price and are
    checked against each bar's open, high and low, from the bar of the entry fill on. A bar that
    opens beyond a level fills at the open (a gap). When one bar touches both the adverse level
    and the target the order is unknown: by default the stop is taken first (pessimistic,
    ``intrabar="stop_first"``; ``"target_first"`` is the optimistic alternative); when 1m candles
    are given, such a bar is replayed minute by minute instead (stop first again inside a minute
    that touches both). Every such bar is counted in ``stats["ambiguous_bars"]``. The trailing
    stop trails the best high (long) or low (short) of the **previous** bars and the entry price,
    so a bar's own extreme only moves it from the next bar on (1m replay moves it per minute).
Leverage
    Isolated margin; the liquidation price uses ``maintenance_margin_rate``
    (:func:`strategies.trade_math.liquidation_price`) and is checked like a stop, before it.
Daily limits
    Trading days start at 00:00 UTC + ``day_offset_hours``. The day's reference is the equity at
    the open of its first bar. Once the equity at a bar's close has gained ``daily_target_pct`` or
    lost ``daily_max_loss_pct``, no new entries or adds are filled for the rest of that day (open
    positions keep their exits).
End of data
    A position still open after the last bar is closed at the last close (with slippage and
    fee), reason ``end_of_data``, so the sum of trade PnL equals final minus initial equity.
Statistics
    Sharpe and Sortino use per-bar simple returns of the equity curve, risk-free rate 0,
    annualized with ``sqrt(bars per year)`` (365-day crypto year). CAGR uses the span of the
    series. Daily and monthly returns use the trading day (the same UTC offset).

The package: :mod:`~strategies.backtest.inputs` (``BacktestConfig`` and the structs the
compiled loop takes), :mod:`~strategies.backtest.engine` (the loop, ``simulate``, ``run``),
:mod:`~strategies.backtest.statistics` (the figures of a run) and
:mod:`~strategies.backtest.results` (``Trade``, ``BacktestResult``). What a signal does to the
position is :mod:`strategies.decisions`, shared with the order services.

Pure: numpy, the standard library and, when installed, numba for the loop.
"""

from strategies.backtest.engine import run, simulate
from strategies.backtest.inputs import INTRABAR_POLICIES, BacktestConfig
from strategies.backtest.results import BacktestResult, Trade
from strategies.backtest.statistics import YEAR_MS

__all__ = [
    "INTRABAR_POLICIES",
    "YEAR_MS",
    "BacktestConfig",
    "BacktestResult",
    "Trade",
    "run",
    "simulate",
]

