"""Bars from trades, for every timeframe at once. Pure: standard library only.

:class:`BarAggregator` turns a stream of trades (one or many symbols) into epoch-aligned bars of
the product's timeframes (see :mod:`markets.timeframes`). The rules, all in one place:

* **Trade time, not arrival time.** A bar's open is the price of its earliest trade and its
  close the price of its latest trade. Trades with the same ``ts_ms`` are ordered by arrival:
  the first to arrive is the open, the last to arrive is the close. (That is exactly "stable
  sort by ``ts_ms``, then take first/last".)
* **One open bar per symbol.** Per trade only the 1m bar is updated. A trade in a later 1m
  bucket closes the open 1m bar; closed 1m bars are folded into the longer timeframes, so every
  longer bar *is* the aggregation of its 1m bars (same open, high, low, close, volume, quote
  volume and trade count; volumes summed 1m bar by 1m bar, oldest first).
* **Late trades never rewrite history.** A trade older than the open 1m bar (or, when no bar
  is open, older than the end of the last closed 1m bar or the clock floor below) is counted
  in ``late_skipped`` and dropped, for all timeframes alike, so no longer bar ever holds a
  trade its 1m bars lack.
* **Duplicates** (same ``trade_id``) are dropped and counted in ``duplicates``. Ids are
  remembered for the open 1m bar and the one closed just before it, so memory is bounded by
  two minutes of trades per symbol. A duplicate of an older trade is too late anyway and is
  counted in ``late_skipped``.
* **Invalid trades** (price NaN, infinite, zero or negative; quantity NaN, infinite or
  negative; ``ts_ms`` not a non-negative int) are counted in ``invalid_skipped`` and dropped.
* **Closed 1m bars keep the candle contract** (:mod:`markets.candle_contract`): one whose volume
  overflowed to infinity (hostile quantities) is logged, counted in ``invalid_bars`` and dropped.
* **The clock closes bars too.** ``close_until(now_ms)`` (alias ``advance``), called by a timer,
  closes every bar whose end is at or before ``now_ms - grace_ms``; from then on trades in those
  buckets are late. Intervals without trades produce no bar (as Upbit does).
* **So does the venue's progress.** ``close_symbols_until(symbols, cutoff_ms)`` closes the bars
  of some symbols whose end is at or before ``cutoff_ms`` with no grace: the caller knows the
  venue has moved past it (the stream: later trades on the same connection). Trades of those
  symbols in the closed buckets are late from then on.
* **Late trades can be reported.** ``on_late(symbol, ts_ms)``, when set, is called for each
  trade counted in ``late_skipped`` (not for duplicates), so the caller can repair the bar it
  missed (the stream takes that bar from REST).
* A forming bar is never returned as closed. :meth:`forming` shows it; :meth:`flush` (shutdown)
  returns the forming bars apart from the closed ones.

Every call that can close bars returns the bars it closed, in the order they closed: for one
symbol and timeframe that is oldest first, and a longer timeframe's bar comes right after the
1m bar that completed it. Calls that close nothing return an empty tuple (no allocation).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

from markets.candle_contract import DroppedCandles, candle_problem
from markets.timeframes import MINUTE_MS, TIMEFRAME_MS, TIMEFRAMES, timeframe_ms

__all__ = ["Bar", "BarAggregator", "Flushed"]

_INF = float("inf")
_NOTHING: tuple = ()
_DEFAULT_GRACE_MS = 2_000


@dataclasses.dataclass(frozen=True, slots=True)
class Bar:
    """One OHLCV bar. Prices and volumes are floats; ``open_time_ms`` is ms UTC.

    ``volume`` is in base currency, ``quote_volume`` the sum of price * quantity (quote
    currency), ``trades`` the number of trades in the bar.
    """

    symbol: str
    timeframe: str
    open_time_ms: int
    open: float
    high: float
    low: float
    close: float
    volume: float
    quote_volume: float
    trades: int

    @property
    def close_time_ms(self) -> int:
        """First ms after the bar (its open time plus the timeframe)."""
        return self.open_time_ms + TIMEFRAME_MS[self.timeframe]

    def to_wire(self) -> dict[str, Any]:
        """The ``bar`` payload of a ``bar.update`` message: ``{t, o, h, l, c, v}``."""
        return {
            "t": self.open_time_ms,
            "o": self.open,
            "h": self.high,
            "l": self.low,
            "c": self.close,
            "v": self.volume,
        }


class Flushed(NamedTuple):
    """What :meth:`BarAggregator.flush` hands back at shutdown.

    ``closed`` bars are final and may be stored; ``forming`` bars are incomplete and must not be.
    """

    closed: list[Bar]
    forming: list[Bar]


class _Minute:
    """The open 1m bar of one symbol (mutable, updated in place per trade)."""

    __slots__ = (
        "close",
        "close_ts",
        "end",
        "high",
        "ids",
        "low",
        "open",
        "open_ts",
        "quote",
        "start",
        "volume",
    )

    def __init__(self, start: int, ts_ms: int, trade_id: Any, price: float, quantity: float):
        self.start = start
        self.end = start + MINUTE_MS
        self.open = self.high = self.low = self.close = price
        self.open_ts = self.close_ts = ts_ms
        self.volume = quantity
        self.quote = price * quantity
        self.ids = {trade_id}


class _Symbol:
    """Per-symbol state: the open 1m bar, the longer bars' closed part, and the late floor."""

    __slots__ = ("floor", "minute", "partials", "prev_ids", "symbol")

    def __init__(self, symbol: str, n_longer: int) -> None:
        self.symbol = symbol
        self.minute: _Minute | None = None
        # One slot per longer timeframe: None or
        # [start, open, high, low, close, volume, quote_volume, trades] of its closed 1m bars.
        self.partials: list[list | None] = [None] * n_longer
        self.prev_ids: set = set()
        # Trades before this ms are late (the end of the last closed 1m bar).
        self.floor = 0


class BarAggregator:
    """Builds 1m..1d bars for one or many symbols from trades. See the module docstring.

    ``timeframes`` picks the timeframes whose bars are returned and shown (default: all of
    :data:`markets.timeframes.TIMEFRAMES`); 1m bars are always built internally because every
    longer bar is made of them. ``grace_ms`` (default 2,000 ms) is how long after a bucket's end
    the clock waits for late trades before :meth:`close_until` closes it.
    """

    def __init__(
        self, timeframes: Iterable[str] = TIMEFRAMES, grace_ms: int = _DEFAULT_GRACE_MS
    ) -> None:
        wanted = list(dict.fromkeys(timeframes))
        if not wanted:
            raise ValueError("BarAggregator needs at least one timeframe, e.g. ['1m', '1h']")
        for name in wanted:
            timeframe_ms(name)  # a clear ValueError for an unknown name
        if not isinstance(grace_ms, int) or grace_ms < 0:
            raise ValueError(f"grace_ms must be a non-negative int (ms), got {grace_ms!r}")
        self.timeframes: tuple[str, ...] = tuple(tf for tf in TIMEFRAMES if tf in wanted)
        self.grace_ms = grace_ms
        self._emit_minute = "1m" in self.timeframes
        # The longer timeframes, in TIMEFRAMES order: (name, length ms, emitted?).
        self._longer: tuple[tuple[str, int, bool], ...] = tuple(
            (tf, TIMEFRAME_MS[tf], tf in self.timeframes) for tf in TIMEFRAMES if tf != "1m"
        )
        self._symbols: dict[str, _Symbol] = {}
        self._clock_floor = 0
        self.accepted = 0
        self.duplicates = 0
        self.late_skipped = 0
        self.invalid_skipped = 0
        self.dropped = DroppedCandles()
        #: Called with (symbol, ts_ms) for each late trade (off the hot path); None: nobody.
        self.on_late: Callable[[str, int], Any] | None = None

    # -- counters -------------------------------------------------------------------------

    def counters(self) -> dict[str, int]:
        """``{accepted, duplicates, late_skipped, invalid_skipped, invalid_bars}`` so far."""
        return {
            "accepted": self.accepted,
            "duplicates": self.duplicates,
            "late_skipped": self.late_skipped,
            "invalid_skipped": self.invalid_skipped,
            "invalid_bars": self.dropped.total,
        }

    @property
    def symbols(self) -> list[str]:
        """Symbols seen so far (with state held), in first-seen order."""
        return list(self._symbols)

    # -- trades ---------------------------------------------------------------------------

    def add(self, trade: Any) -> list[Bar] | tuple:
        """Add one trade: any object with ``symbol, trade_id, ts_ms, price, quantity``.

        Returns the bars this trade closed (usually none: an empty tuple).
        """
        t = trade
        return self.add_trade(t.symbol, t.trade_id, t.ts_ms, t.price, t.quantity)

    def add_many(self, trades: Iterable[Any]) -> list[Bar]:
        """Add trades in arrival order; returns every bar they closed, in closing order."""
        closed: list[Bar] = []
        add_trade = self.add_trade
        for t in trades:
            out = add_trade(t.symbol, t.trade_id, t.ts_ms, t.price, t.quantity)
            if out:
                closed.extend(out)
        return closed

    def add_trade(
        self, symbol: str, trade_id: Any, ts_ms: int, price: float, quantity: float
    ) -> list[Bar] | tuple:
        """Add one trade given as plain values (ms UTC, float price and base quantity).

        The hot path: a valid trade inside the open 1m bar touches only that bar.
        """
        if not (0.0 < price < _INF) or not (0.0 <= quantity < _INF) or type(ts_ms) is not int:
            self.invalid_skipped += 1
            return _NOTHING
        state = self._symbols.get(symbol)
        if state is not None:
            bar = state.minute
            if bar is not None and bar.start <= ts_ms < bar.end:
                ids = bar.ids
                if trade_id in ids:
                    self.duplicates += 1
                    return _NOTHING
                ids.add(trade_id)
                if price > bar.high:
                    bar.high = price
                elif price < bar.low:
                    bar.low = price
                if ts_ms >= bar.close_ts:
                    bar.close = price
                    bar.close_ts = ts_ms
                elif ts_ms < bar.open_ts:
                    bar.open = price
                    bar.open_ts = ts_ms
                bar.volume += quantity
                bar.quote += price * quantity
                self.accepted += 1
                return _NOTHING
        else:
            if ts_ms < 0:
                self.invalid_skipped += 1
                return _NOTHING
            state = self._symbols[symbol] = _Symbol(symbol, len(self._longer))
        return self._add_outside_open_bar(state, trade_id, ts_ms, price, quantity)

    def _add_outside_open_bar(
        self, state: _Symbol, trade_id: Any, ts_ms: int, price: float, quantity: float
    ) -> list[Bar] | tuple:
        """A trade that is not inside the open 1m bar: late, or the first of a new 1m bar."""
        bar = state.minute
        floor = state.floor if state.floor > self._clock_floor else self._clock_floor
        if (bar is not None and ts_ms < bar.start) or ts_ms < floor or ts_ms < 0:
            if ts_ms < 0:
                self.invalid_skipped += 1
            elif trade_id in state.prev_ids or (bar is not None and trade_id in bar.ids):
                self.duplicates += 1
            else:
                self.late_skipped += 1
                if self.on_late is not None:
                    self.on_late(state.symbol, ts_ms)
            return _NOTHING
        if bar is not None and trade_id in bar.ids:
            # The same id again with a later time: still the same trade.
            self.duplicates += 1
            return _NOTHING
        closed: list[Bar] = []
        if bar is not None:
            self._close_minute(state, closed)
        start = ts_ms - ts_ms % MINUTE_MS
        self._close_partials_before(state, start, closed)
        state.minute = _Minute(start, ts_ms, trade_id, price, quantity)
        self.accepted += 1
        return closed or _NOTHING

    # -- closing --------------------------------------------------------------------------

    def _close_minute(self, state: _Symbol, closed: list[Bar]) -> None:
        """Close the open 1m bar: emit it and fold it into every longer timeframe."""
        m = state.minute
        state.minute = None
        state.floor = m.end
        state.prev_ids = m.ids
        n = len(m.ids)
        row = (m.start, m.open, m.high, m.low, m.close, m.volume, m.quote)
        problem = candle_problem(row, "1m")
        if problem is not None:
            self.dropped.add(row, problem, venue="aggregator", symbol=state.symbol,
                             timeframe="1m")
            return
        if self._emit_minute:
            closed.append(
                Bar(state.symbol, "1m", m.start, m.open, m.high, m.low, m.close, m.volume,
                    m.quote, n)
            )
        partials = state.partials
        for i, (tf, step, emit) in enumerate(self._longer):
            start = m.start - m.start % step
            p = partials[i]
            if p is not None and p[0] != start:
                if emit:
                    closed.append(_partial_bar(state.symbol, tf, p))
                p = None
            if p is None:
                partials[i] = [start, m.open, m.high, m.low, m.close, m.volume, m.quote, n]
            else:
                if m.high > p[2]:
                    p[2] = m.high
                if m.low < p[3]:
                    p[3] = m.low
                p[4] = m.close
                p[5] += m.volume
                p[6] += m.quote
                p[7] += n

    def _close_partials_before(self, state: _Symbol, ts_ms: int, closed: list[Bar]) -> None:
        """Close longer bars whose bucket is before the one holding ``ts_ms``."""
        partials = state.partials
        for i, (tf, step, emit) in enumerate(self._longer):
            p = partials[i]
            if p is not None and p[0] + step <= ts_ms:
                partials[i] = None
                if emit:
                    closed.append(_partial_bar(state.symbol, tf, p))

    def close_until(self, now_ms: int) -> list[Bar]:
        """Close every bar (all symbols) whose end is at or before ``now_ms - grace_ms``.

        Call it from a timer (about once a second). Afterwards trades in those buckets are
        late. Returns the closed bars, grouped by symbol, 1m first. The clock never goes back:
        an older ``now_ms`` than a previous call changes nothing.
        """
        cutoff = now_ms - self.grace_ms
        floor = cutoff - cutoff % MINUTE_MS
        if floor > self._clock_floor:
            self._clock_floor = floor
        closed: list[Bar] = []
        for state in self._symbols.values():
            m = state.minute
            if m is not None and m.end <= cutoff:
                self._close_minute(state, closed)
            self._close_partials_before(state, cutoff, closed)
        return closed

    advance = close_until

    def close_symbols_until(self, symbols: Iterable[str], cutoff_ms: int) -> list[Bar]:
        """Close the bars of ``symbols`` whose end is at or before ``cutoff_ms`` (no grace: the
        caller knows the venue has moved past it). Their trades before the minute holding
        ``cutoff_ms`` are late from then on, whether or not a bar was open, so a bar closed
        here is never built a second time. Returns the closed bars, as :meth:`close_until`."""
        floor = cutoff_ms - cutoff_ms % MINUTE_MS
        closed: list[Bar] = []
        get = self._symbols.get
        for symbol in symbols:
            state = get(symbol)
            if state is None:
                continue
            m = state.minute
            if m is not None and m.end <= cutoff_ms:
                self._close_minute(state, closed)
            if floor > state.floor:
                state.floor = floor
            self._close_partials_before(state, cutoff_ms, closed)
        return closed

    # -- reading --------------------------------------------------------------------------

    def forming(self, symbol: str, timeframe: str) -> Bar | None:
        """The open (forming, not yet closed) bar of ``symbol`` and ``timeframe``, or None.

        A forming bar may still change; never store it as a candle.
        """
        if timeframe not in self.timeframes:
            timeframe_ms(timeframe)
            raise ValueError(
                f"this aggregator does not build {timeframe!r} bars; it builds "
                f"{', '.join(self.timeframes)}"
            )
        state = self._symbols.get(symbol)
        if state is None:
            return None
        m = state.minute
        if timeframe == "1m":
            if m is None:
                return None
            return Bar(symbol, "1m", m.start, m.open, m.high, m.low, m.close, m.volume, m.quote,
                       len(m.ids))
        i = next(i for i, spec in enumerate(self._longer) if spec[0] == timeframe)
        step = self._longer[i][1]
        p = state.partials[i]
        if m is not None and (p is None or p[0] == m.start - m.start % step):
            if p is None:
                return Bar(symbol, timeframe, m.start - m.start % step, m.open, m.high, m.low,
                           m.close, m.volume, m.quote, len(m.ids))
            return Bar(symbol, timeframe, p[0], p[1], max(p[2], m.high), min(p[3], m.low),
                       m.close, p[5] + m.volume, p[6] + m.quote, p[7] + len(m.ids))
        if p is None:
            return None
        return _partial_bar(symbol, timeframe, p)

    def forming_bars(self, symbol: str) -> list[Bar]:
        """Every forming bar of ``symbol``, shortest timeframe first."""
        bars = (self.forming(symbol, tf) for tf in self.timeframes)
        return [b for b in bars if b is not None]

    def flush(self, now_ms: int | None = None) -> Flushed:
        """Shutdown: close what the clock allows (if ``now_ms`` is given), then hand back the
        forming bars apart from the closed ones and forget all symbol state.

        Store ``closed``; never store ``forming`` (those bars were cut short). Counters are kept.
        """
        closed = self.close_until(now_ms) if now_ms is not None else []
        forming = [bar for symbol in self._symbols for bar in self.forming_bars(symbol)]
        self._symbols.clear()
        return Flushed(closed, forming)


def _partial_bar(symbol: str, timeframe: str, p: list) -> Bar:
    return Bar(symbol, timeframe, p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7])
