"""The candle contract: the one ``CandleRow`` and the one set of rules a stored candle obeys.

Every edge where candles enter uses these rules -- the venue parsers
(:mod:`markets.exchanges.kr_parse`, :mod:`markets.exchanges.binance_parse`), the CSV reader
(:mod:`markets.csvio`), the bar aggregator (:mod:`markets.aggregator`) and the store
(:func:`markets.candles.upsert_candles`) -- so a row one of them accepts, every other accepts.
A candle is valid when its prices and volume are finite numbers, ``0 < low <= open, close <=
high``, ``volume >= 0``, its quote volume (when given) is finite and not negative, and (when
the timeframe is known) its open time is the start of a candle of that timeframe.

A bad row is dropped and counted where it enters, with a log line naming it (venue, symbol,
timeframe, open time, what is wrong): :class:`DroppedCandles` does the counting and the
logging. Pure: standard library and numpy only.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import logging
from collections.abc import Callable, Iterable, Iterator
from contextvars import ContextVar
from typing import Any, NamedTuple

import numpy as np

from markets.timeframes import timeframe_ms

__all__ = [
    "RULES",
    "CandleRow",
    "DroppedCandles",
    "candle_problem",
    "collecting",
    "describe",
    "first_failed_rule",
    "keep_valid",
]

log = logging.getLogger(__name__)
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_FIELDS = ("open", "high", "low", "close", "volume")


class CandleRow(NamedTuple):
    """One closed candle: open time in ms UTC, float prices and volumes (market data, not
    money). ``quote_volume`` is None when the source has none."""

    open_time_ms: int
    open: float
    high: float
    low: float
    close: float
    volume: float
    quote_volume: float | None = None


class Rule(NamedTuple):
    """One clause of the contract. ``bad(t, o, h, lo, c, v, q, step)`` works on scalars and on
    numpy columns alike (a missing quote volume is NaN, a missing step 0); ``summary`` names
    the problem for a count, ``detail`` for one row (with its values)."""

    key: str
    summary: str
    bad: Callable[..., Any]
    detail: Callable[..., str]


def _finite(x):
    return np.isfinite(x)


def _not_finite_detail(t, o, h, lo, c, v, q, step, timeframe):
    for name, value in zip(_FIELDS, (o, h, lo, c, v), strict=True):
        if not np.isfinite(value):
            return f"{name} is {float(value)!r}; prices and volumes must be finite numbers"
    return "a price or the volume is not a finite number"


def _aligned_detail(t, o, h, lo, c, v, q, step, timeframe):
    earlier = format_ms(int(t) - int(t) % step)
    return (f"open_time {format_ms(int(t))} is not the start of a {timeframe} candle "
            f"(nearest earlier start: {earlier})")


#: The contract, in the order a row's first problem is named.
RULES: tuple[Rule, ...] = (
    Rule("not_finite", "a price or the volume is not a finite number",
         lambda t, o, h, lo, c, v, q, step: ~(_finite(o) & _finite(h) & _finite(lo)
                                               & _finite(c) & _finite(v)),
         _not_finite_detail),
    Rule("low_not_positive", "low is not above zero",
         lambda t, o, h, lo, c, v, q, step: lo <= 0,
         lambda t, o, h, lo, c, v, q, step, tf: f"low {float(lo)!r} must be above zero"),
    Rule("high_below", "high is below open or close",
         lambda t, o, h, lo, c, v, q, step: (h < o) | (h < c),
         lambda t, o, h, lo, c, v, q, step, tf:
             f"high {float(h)!r} is below open {float(o)!r} or close {float(c)!r}"),
    Rule("low_above", "low is above open or close",
         lambda t, o, h, lo, c, v, q, step: (lo > o) | (lo > c),
         lambda t, o, h, lo, c, v, q, step, tf:
             f"low {float(lo)!r} is above open {float(o)!r} or close {float(c)!r}"),
    Rule("volume_negative", "volume is negative",
         lambda t, o, h, lo, c, v, q, step: v < 0,
         lambda t, o, h, lo, c, v, q, step, tf: f"volume {float(v)!r} is negative"),
    Rule("quote_volume_bad", "quote_volume is negative or infinite",
         lambda t, o, h, lo, c, v, q, step: (q < 0) | np.isinf(q),
         lambda t, o, h, lo, c, v, q, step, tf:
             f"quote_volume {float(q)!r} is {'negative' if q < 0 else 'infinite'}"),
    Rule("unaligned", "open time not the start of a {timeframe} candle",
         lambda t, o, h, lo, c, v, q, step: (step != 0) & (t % (step or 1) != 0),
         _aligned_detail),
)
RULE_KEYS = tuple(rule.key for rule in RULES)


def format_ms(ms: int) -> str:
    """An open time for a message: ISO-8601 UTC with ``Z``."""
    ms = int(ms)
    try:
        when = _EPOCH + dt.timedelta(milliseconds=ms)
    except OverflowError:
        return f"{ms} ms after 1970-01-01"
    fraction = f".{ms % 1000:03d}" if ms % 1000 else ""
    return when.strftime("%Y-%m-%dT%H:%M:%S") + fraction + "Z"


def _step(timeframe: str | None) -> int:
    return 0 if timeframe is None else timeframe_ms(timeframe)


def _values(row) -> tuple:
    q = row[6] if len(row) > 6 else None
    return (row[0], row[1], row[2], row[3], row[4], row[5], np.nan if q is None else q)


def first_failed_rule(row, timeframe: str | None = None) -> Rule | None:
    """The first rule ``row`` (a :class:`CandleRow` or any sequence in its order) breaks, or
    None when it is a valid candle (of ``timeframe``, when given)."""
    args = (*_values(row), _step(timeframe))
    for rule in RULES:
        if rule.bad(*args):
            return rule
    return None


def candle_problem(row, timeframe: str | None = None) -> str | None:
    """What is wrong with ``row``, with its values (``"high 1.2 is below open 1.0 or close
    1.5"``), or None when it is a valid candle."""
    rule = first_failed_rule(row, timeframe)
    if rule is None:
        return None
    return rule.detail(*_values(row), _step(timeframe), timeframe)


def describe(row, timeframe: str | None = None) -> str:
    """``candle_problem`` for a row known to be bad."""
    return candle_problem(row, timeframe) or "valid"


def failed_rules(cols: dict[str, np.ndarray], step: int) -> np.ndarray:
    """Numpy columns (``open_time_ms``, ``open`` ... ``quote_volume``; a missing quote volume
    NaN) -> per row the index in :data:`RULES` of the first rule it breaks, or -1."""
    args = (cols["open_time_ms"], cols["open"], cols["high"], cols["low"], cols["close"],
            cols["volume"], cols["quote_volume"], step)
    first = np.full(len(args[0]), -1, dtype=np.int8)
    with np.errstate(invalid="ignore"):
        for i in range(len(RULES) - 1, -1, -1):  # the earliest rule a row breaks wins
            first[np.asarray(RULES[i].bad(*args), dtype=bool)] = i
    return first


@dataclasses.dataclass
class DroppedCandles:
    """Candles refused at an edge: counted by problem, each logged once with its venue, symbol,
    timeframe, open time and what is wrong. ``examples`` keeps the first few messages."""

    counts: dict[str, int] = dataclasses.field(default_factory=dict)
    examples: list[str] = dataclasses.field(default_factory=list)
    max_examples: int = 5

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def add(self, row, problem: str, *, venue: str = "", symbol: str = "",
            timeframe: str | None = None, summary: str | None = None) -> None:
        where = " ".join(p for p in (venue, symbol, timeframe) if p)
        message = f"{where or 'candle'} at {format_ms(row[0])}: {problem}"
        log.warning("dropped candle %s", message)
        key = summary or problem
        self.counts[key] = self.counts.get(key, 0) + 1
        if len(self.examples) < self.max_examples:
            self.examples.append(message)

    def merge(self, other: DroppedCandles) -> None:
        for key, n in other.counts.items():
            self.counts[key] = self.counts.get(key, 0) + n
        room = self.max_examples - len(self.examples)
        self.examples.extend(other.examples[:max(room, 0)])

    def summary(self) -> str:
        """``"2 dropped (1 high is below open or close; 1 volume is negative)"``, or ``""``."""
        if not self.counts:
            return ""
        parts = "; ".join(f"{n} {why}" for why, n in sorted(self.counts.items()))
        return f"{self.total} malformed candle(s) dropped ({parts})"


class _Edge(NamedTuple):
    dropped: DroppedCandles
    venue: str
    symbol: str
    timeframe: str | None


_EDGE: ContextVar[_Edge | None] = ContextVar("candle_edge", default=None)


@contextlib.contextmanager
def collecting(dropped: DroppedCandles, *, venue: str = "", symbol: str = "",
               timeframe: str | None = None) -> Iterator[DroppedCandles]:
    """Inside the block, :func:`keep_valid` calls that were given no counter (an adapter's
    parser called by its ``fetch_candles``) count their drops in ``dropped``, name them with
    ``venue``/``symbol``/``timeframe`` unless told otherwise, and check the open times against
    ``timeframe``. A backfill wraps each request in one."""
    token = _EDGE.set(_Edge(dropped, venue, symbol, timeframe))
    try:
        yield dropped
    finally:
        _EDGE.reset(token)


def keep_valid(rows: Iterable, timeframe: str | None = None, *, venue: str = "",
               symbol: str = "", dropped: DroppedCandles | None = None) -> list:
    """The valid rows of ``rows`` in their order; each bad one is logged and counted in
    ``dropped`` (default: the enclosing :func:`collecting` block's counter, else a discarded
    one). Labels and the timeframe not given come from the enclosing block."""
    edge = _EDGE.get()
    if edge is not None:
        dropped = dropped if dropped is not None else edge.dropped
        venue, symbol = venue or edge.venue, symbol or edge.symbol
        timeframe = timeframe or edge.timeframe
    dropped = dropped if dropped is not None else DroppedCandles()
    step = _step(timeframe)
    out = []
    for row in rows:
        args = (*_values(row), step)
        for rule in RULES:
            if rule.bad(*args):
                dropped.add(row, rule.detail(*args, timeframe), venue=venue, symbol=symbol,
                            timeframe=timeframe,
                            summary=rule.summary.format(timeframe=timeframe))
                break
        else:
            out.append(row)
    return out
