"""What goes into a backtest: the :class:`BacktestConfig` a caller gives, and the structs the
compiled loop takes (:class:`Bars`, :class:`Minutes`, :class:`Rules`, and the
:class:`TradeBook` it writes), built from the candles, the signals and the config.

The structs are ``NamedTuple``\\ s: numba compiles a loop over them with plain field access
(``rules.fee_rate``), and the ahead-of-time build (``python -m strategies.aot``) reads their
field types from the annotations below (:func:`kernel_signature`). This file is a kernel
source (``strategies._jit.SOURCES``): a change to a struct rebuilds the compiled loop.
"""

from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple

import numpy as np

from markets.timeframes import timeframe_ms
from strategies import indicators, sizing
from strategies.base import Candles, Signals
from strategies.params import ParamError, Params
from strategies.trade_math import RiskParams

INTRABAR_POLICIES = ("stop_first", "target_first")

# Sizing kinds understood by the loop (mirrors strategies.sizing.quantity).
SIZE_FRACTION = 0
SIZE_FIXED = 1
SIZE_ATR = 2
SIZE_KELLY_ESTIMATED = 3

#: Annotation names of the struct fields: one-dimensional int64 / float64 arrays.
Int64s = np.ndarray
Floats = np.ndarray


@dataclasses.dataclass(frozen=True)
class BacktestConfig:
    """Everything around the strategy: money, risk rules, sizing, intrabar policy."""

    initial_cash: float = 10_000.0
    risk: RiskParams = dataclasses.field(default_factory=RiskParams)
    #: A :mod:`strategies.sizing` parameter object; None commits the whole equity.
    sizing: Params | None = None
    allow_short: bool = True
    intrabar: str = "stop_first"
    #: Timeframe of the candles ("1m".."1d"); None infers it from the open times.
    timeframe: str | None = None

    def __post_init__(self) -> None:
        if not (self.initial_cash > 0 and math.isfinite(self.initial_cash)):
            raise ParamError(f"initial_cash must be a positive amount; got {self.initial_cash}")
        if self.intrabar not in INTRABAR_POLICIES:
            raise ParamError(
                f"intrabar must be one of {', '.join(INTRABAR_POLICIES)}; got {self.intrabar!r}"
            )
        if self.sizing is not None and type(self.sizing) not in sizing.METHODS.values():
            raise ParamError(
                f"sizing must be one of the strategies.sizing methods; got {self.sizing!r}"
            )


class Bars(NamedTuple):
    """The series and the strategy's decision on each bar (acted on at the next bar's open)."""

    open_time: Int64s
    open: Floats
    high: Floats
    low: Floats
    close: Floats
    action: Int64s
    #: The signal's size multiplier (NaN given as 0: no order).
    size: Floats
    #: The ATR known at each bar's close (ATR-unit sizing; zeros otherwise).
    atr: Floats


class Minutes(NamedTuple):
    """1m candles that replay an ambiguous bar minute by minute (empty: none given)."""

    open_time: Int64s
    open: Floats
    high: Floats
    low: Floats


class Rules(NamedTuple):
    """Money, costs, exits, daily limits and sizing, as the loop reads them."""

    initial_cash: float
    fee_rate: float
    slippage_bps: float
    leverage: float
    maintenance_margin_rate: float
    stop_loss_pct: float
    take_profit_pct: float
    trailing_stop_pct: float
    daily_target_pct: float
    daily_max_loss_pct: float
    day_offset_hours: float
    allow_short: bool
    #: Take the adverse level first when a bar touches it and the target ("stop_first").
    adverse_first: bool
    #: One of the ``SIZE_*`` kinds, and its numbers (see :func:`sizing_rules`).
    size_kind: int
    size_a: float
    size_b: float
    size_c: float
    kelly_min_trades: int
    bar_ms: int


class TradeBook(NamedTuple):
    """The loop's trades, one row per closed trade (the columns of ``Trade``; ``side`` +1/-1
    and ``reason`` a ``strategies.trade_math.REASON_*`` code). The loop allocates it (numba's
    allocator: numpy's would ask for huge pages, several MB more resident per run)."""

    entry_time_ms: Int64s
    exit_time_ms: Int64s
    side: Int64s
    entry_price: Floats
    exit_price: Floats
    size: Floats
    fees: Floats
    pnl: Floats
    reason: Int64s
    entries: Int64s


def field_kinds(cls) -> list[str]:
    """The annotation names of a struct's fields, in order (``"Int64s"``, ``"float"`` ...)."""
    return [getattr(kind, "__forward_arg__", kind) for kind in cls.__annotations__.values()]


def kernel_signature():
    """The numba signature of the compiled loop, from the structs' annotations (built only by
    ``python -m strategies.aot``; importing numba is what the compiled module avoids)."""
    from numba import types

    kinds = {
        "Int64s": types.int64[:], "Floats": types.float64[:], "float": types.float64,
        "int": types.int64, "bool": types.boolean,
    }
    contiguous = {**kinds, "Int64s": types.int64[::1], "Floats": types.float64[::1]}

    def struct(cls, kinds=kinds):
        return types.NamedTuple([kinds[kind] for kind in field_kinds(cls)], cls)

    out = types.Tuple(
        [types.float64[:], struct(TradeBook, contiguous)] + [types.int64] * 5
    )
    return out(struct(Bars), struct(Minutes), struct(Rules))


def bar_ms(candles: Candles, timeframe: str | None) -> int:
    """The bar length: the timeframe's, else the smallest step between open times."""
    if timeframe is not None:
        return timeframe_ms(timeframe)
    if len(candles) < 2:
        return 60_000
    steps = np.diff(candles.open_time_ms)
    steps = steps[steps > 0]
    return int(steps.min()) if steps.size else 60_000


def sizing_rules(config: BacktestConfig, candles: Candles) -> tuple:
    """(kind, a, b, c, kelly_min_trades, atr array or None) for the loop."""
    params = config.sizing
    if params is None:
        return SIZE_FRACTION, 1.0, 0.0, 0.0, 0, None
    if isinstance(params, sizing.FixedQuote):
        return SIZE_FIXED, params.amount, 0.0, 0.0, 0, None
    if isinstance(params, sizing.AtrUnit):
        atr = indicators.atr(candles.high, candles.low, candles.close, params.atr_period)
        return SIZE_ATR, params.risk_pct, 0.0, 0.0, 0, atr
    if isinstance(params, sizing.Kelly) and params.win_rate == 0:
        return SIZE_KELLY_ESTIMATED, 0.0, params.fraction, params.fallback, params.min_trades, None
    return SIZE_FRACTION, float(sizing.margin_fraction(params)), 0.0, 0.0, 0, None


def _floats(values) -> np.ndarray:
    return np.asarray(values, dtype=np.float64)


def kernel_inputs(
    candles: Candles, signals: Signals, config: BacktestConfig,
    minute_candles: Candles | None,
) -> tuple[Bars, Minutes, Rules]:
    """The loop's inputs; raises ValueError unless there is one action per candle."""
    n = len(candles)
    actions = np.asarray(signals.actions, dtype=np.int64)
    if actions.shape[0] != n:
        raise ValueError(
            f"signals have {actions.shape[0]} actions for {n} candles; need one per candle"
        )
    if signals.size is None:
        size = np.ones(n)
    else:
        size = np.nan_to_num(_floats(signals.size), nan=0.0)
    kind, a, b, c, kelly_min, atr = sizing_rules(config, candles)
    bars = Bars(
        np.asarray(candles.open_time_ms, dtype=np.int64), _floats(candles.open),
        _floats(candles.high), _floats(candles.low), _floats(candles.close), actions, size,
        np.zeros(n) if atr is None else _floats(atr),
    )
    if minute_candles is not None and len(minute_candles):
        minutes = Minutes(
            np.asarray(minute_candles.open_time_ms, dtype=np.int64),
            _floats(minute_candles.open), _floats(minute_candles.high),
            _floats(minute_candles.low),
        )
    else:
        minutes = Minutes(np.zeros(0, dtype=np.int64), np.zeros(0), np.zeros(0), np.zeros(0))
    risk = config.risk
    rules = Rules(
        float(config.initial_cash), float(risk.fee_rate), float(risk.slippage_bps),
        float(risk.leverage), float(risk.maintenance_margin_rate), float(risk.stop_loss_pct),
        float(risk.take_profit_pct), float(risk.trailing_stop_pct),
        float(risk.daily_target_pct), float(risk.daily_max_loss_pct),
        float(risk.day_offset_hours), bool(config.allow_short),
        config.intrabar == "stop_first", int(kind), float(a), float(b), float(c),
        int(kelly_min), bar_ms(candles, config.timeframe),
    )
    return bars, minutes, rules
