"""Property tests: BarAggregator against an independent reference aggregation (a plain loop).

Prices and quantities are drawn as multiples of 1/256 so that every sum is exact in any order;
then bars can be compared bit for bit even after shuffling. One test uses arbitrary floats and
compares volumes with a relative tolerance instead.
"""

from __future__ import annotations

import dataclasses
import math
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from markets.aggregator import Bar, BarAggregator
from markets.timeframes import TIMEFRAME_MS, TIMEFRAMES

T0 = 1_700_006_400_000  # aligned to every timeframe
MIN = 60_000
SYMBOLS = ("BTCUSDT", "ETHUSDT", "KRW-XRP")


@dataclasses.dataclass(frozen=True)
class Trade:
    symbol: str
    trade_id: str
    ts_ms: int
    price: float
    quantity: float
    side: str = "sell"


# -- generating trade streams ------------------------------------------------------------

dyadic_price = st.integers(1, 4_000_000).map(lambda k: k / 256)
dyadic_qty = st.integers(0, 1_000_000).map(lambda k: k / 256)
# Mostly the same minute, sometimes the next few, sometimes hours or days later.
bucket_step = st.one_of(
    st.just(0), st.just(0), st.just(0), st.integers(1, 3), st.integers(4, 3 * 1440)
)
# Offsets inside a minute; the sampled ones make equal timestamps (ties) common.
offset = st.one_of(st.integers(0, MIN - 1), st.sampled_from([0, 1, 30_000, MIN - 1]))


@st.composite
def trade_streams(draw, price=dyadic_price, qty=dyadic_qty, max_size=150):
    """Valid trades in arrival order: per symbol the 1m bucket never goes back, inside a bucket
    the order is arbitrary, symbols interleave arbitrarily."""
    n_symbols = draw(st.integers(1, len(SYMBOLS)))
    steps = draw(
        st.lists(
            st.tuples(st.integers(0, n_symbols - 1), bucket_step, offset, price, qty),
            min_size=1,
            max_size=max_size,
        )
    )
    bucket = dict.fromkeys(range(n_symbols), 0)
    trades = []
    for n, (sym, step, off, p, q) in enumerate(steps):
        bucket[sym] += step
        symbol = SYMBOLS[sym]
        trades.append(Trade(symbol, f"{symbol}-{n}", T0 + bucket[sym] * MIN + off, p, q))
    return trades


# -- the reference --------------------------------------------------------------------------


def reference_bars(trades, timeframe):
    """Bars by a plain loop over accepted trades in arrival order.

    Stable sort by trade time: the first trade is the open, the last the close (ties keep
    arrival order). Returns {(symbol, open_time_ms): Bar}.
    """
    step = TIMEFRAME_MS[timeframe]
    groups: dict[tuple[str, int], list] = {}
    for t in trades:
        groups.setdefault((t.symbol, t.ts_ms - t.ts_ms % step), []).append(t)
    bars = {}
    for (symbol, start), group in groups.items():
        ordered = sorted(group, key=lambda t: t.ts_ms)
        volume = 0.0
        quote = 0.0
        for t in group:
            volume += t.quantity
            quote += t.price * t.quantity
        bars[(symbol, start)] = Bar(
            symbol,
            timeframe,
            start,
            ordered[0].price,
            max(t.price for t in group),
            min(t.price for t in group),
            ordered[-1].price,
            volume,
            quote,
            len(group),
        )
    return bars


def run(trades, agg=None):
    """Feed ``trades`` one by one; returns (aggregator, closed bars, forming bars at the end)."""
    agg = agg or BarAggregator()
    closed = []
    for t in trades:
        closed.extend(agg.add(t))
    forming = agg.flush().forming
    return agg, closed, forming


def by_key(bars, timeframe):
    out = {}
    for b in bars:
        if b.timeframe == timeframe:
            key = (b.symbol, b.open_time_ms)
            assert key not in out, f"bar {key} {timeframe} reported twice"
            out[key] = b
    return out


def assert_matches_reference(trades, closed, forming):
    for tf in TIMEFRAMES:
        expected = reference_bars(trades, tf)
        got_closed = by_key(closed, tf)
        got_forming = by_key(forming, tf)
        assert not set(got_closed) & set(got_forming)
        assert {**got_closed, **got_forming} == expected, tf
        # Exactly one forming bar per symbol and timeframe: each symbol's newest bucket.
        newest = {}
        for symbol, start in expected:
            newest[symbol] = max(start, newest.get(symbol, start))
        assert set(got_forming) == set(newest.items())


# -- properties -------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(trade_streams())
def test_bars_equal_the_reference_aggregation_for_every_timeframe(trades):
    agg, closed, forming = run(trades)
    assert_matches_reference(trades, closed, forming)
    assert agg.counters() == {
        "accepted": len(trades), "duplicates": 0, "late_skipped": 0, "invalid_skipped": 0,
        "invalid_bars": 0,
    }


@settings(max_examples=150, deadline=None)
@given(
    trade_streams(
        price=st.floats(1e-8, 1e9, allow_nan=False, allow_infinity=False),
        qty=st.floats(0.0, 1e6, allow_nan=False, allow_infinity=False),
    )
)
def test_bars_match_the_reference_for_arbitrary_floats(trades):
    _, closed, forming = run(trades)
    for tf in TIMEFRAMES:
        expected = reference_bars(trades, tf)
        got = {**by_key(closed, tf), **by_key(forming, tf)}
        assert set(got) == set(expected)
        for key, bar in got.items():
            ref = expected[key]
            assert (bar.open, bar.high, bar.low, bar.close, bar.trades) == (
                ref.open, ref.high, ref.low, ref.close, ref.trades,
            )
            # Longer bars sum volume per 1m bar, the reference per trade: equal up to rounding.
            assert math.isclose(bar.volume, ref.volume, rel_tol=1e-12, abs_tol=1e-12)
            assert math.isclose(bar.quote_volume, ref.quote_volume, rel_tol=1e-12, abs_tol=1e-9)


def aggregate_minutes(minute_bars, timeframe):
    """Longer bars made from 1m bars (oldest first), summing volumes left to right."""
    step = TIMEFRAME_MS[timeframe]
    out = {}
    for b in sorted(minute_bars, key=lambda b: (b.symbol, b.open_time_ms)):
        key = (b.symbol, b.open_time_ms - b.open_time_ms % step)
        acc = out.get(key)
        if acc is None:
            out[key] = Bar(b.symbol, timeframe, key[1], b.open, b.high, b.low, b.close,
                           b.volume, b.quote_volume, b.trades)
        else:
            out[key] = dataclasses.replace(
                acc,
                high=max(acc.high, b.high),
                low=min(acc.low, b.low),
                close=b.close,
                volume=acc.volume + b.volume,
                quote_volume=acc.quote_volume + b.quote_volume,
                trades=acc.trades + b.trades,
            )
    return out


@settings(max_examples=200, deadline=None)
@given(
    trade_streams(
        price=st.floats(1e-8, 1e9, allow_nan=False, allow_infinity=False),
        qty=st.floats(0.0, 1e6, allow_nan=False, allow_infinity=False),
    )
)
def test_longer_timeframes_equal_the_aggregation_of_the_1m_bars_exactly(trades):
    _, closed, forming = run(trades)
    minutes = [b for b in closed + forming if b.timeframe == "1m"]
    for tf in TIMEFRAMES[1:]:
        got = {**by_key(closed, tf), **by_key(forming, tf)}
        assert got == aggregate_minutes(minutes, tf), tf


def shuffle_within_open_bars(trades, rnd):
    """Permute each symbol's trades among the positions of their own 1m bucket, keeping the
    arrival order of trades with equal timestamps (that order decides open and close)."""
    positions: dict[tuple[str, int], list[int]] = {}
    for i, t in enumerate(trades):
        positions.setdefault((t.symbol, t.ts_ms // MIN), []).append(i)
    out = list(trades)
    for idx in positions.values():
        group = [trades[i] for i in idx]
        shuffled = group[:]
        rnd.shuffle(shuffled)
        # Put equal-timestamp trades back in their original relative order.
        by_ts: dict[int, list] = {}
        for t in group:
            by_ts.setdefault(t.ts_ms, []).append(t)
        cursor = dict.fromkeys(by_ts, 0)
        fixed = []
        for t in shuffled:
            fixed.append(by_ts[t.ts_ms][cursor[t.ts_ms]])
            cursor[t.ts_ms] += 1
        for i, t in zip(idx, fixed):
            out[i] = t
    return out


@settings(max_examples=200, deadline=None)
@given(trade_streams(), st.randoms(use_true_random=False))
def test_shuffling_trades_within_open_bars_gives_the_same_bars(trades, rnd):
    _, closed, forming = run(trades)
    shuffled = shuffle_within_open_bars(trades, rnd)
    assert sorted(t.trade_id for t in shuffled) == sorted(t.trade_id for t in trades)
    _, closed2, forming2 = run(shuffled)
    assert closed2 == closed
    assert sorted(forming2, key=repr) == sorted(forming, key=repr)


@settings(max_examples=200, deadline=None)
@given(trade_streams(), st.randoms(use_true_random=False), st.integers(1, 40))
def test_duplicated_trades_give_the_same_bars_and_are_counted(trades, rnd, n_copies):
    stream = list(trades)
    for _ in range(n_copies):
        original = rnd.randrange(len(trades))
        # A copy arrives any time after the original (maybe after its bar closed).
        at = rnd.randrange(stream.index(trades[original]) + 1, len(stream) + 1)
        stream.insert(at, trades[original])
    agg, closed, forming = run(stream)
    assert_matches_reference(trades, closed, forming)
    c = agg.counters()
    assert c["accepted"] == len(trades)
    assert c["duplicates"] + c["late_skipped"] == n_copies
    assert c["invalid_skipped"] == 0


INVALID = [
    (float("nan"), 1.0), (float("inf"), 1.0), (float("-inf"), 1.0), (0.0, 1.0), (-1.0, 1.0),
    (1.0, float("nan")), (1.0, -0.5), (1.0, float("inf")),
]


@settings(max_examples=200, deadline=None)
@given(trade_streams(), st.randoms(use_true_random=False), st.integers(0, 30), st.integers(0, 30))
def test_invalid_and_too_late_trades_are_counted_and_skipped(trades, rnd, n_invalid, n_late):
    stream = []
    open_bucket: dict[str, int] = {}
    injected_late = 0
    plan = sorted(rnd.randrange(len(trades) + 1) for _ in range(n_invalid + n_late))
    kinds = ["invalid"] * n_invalid + ["late"] * n_late
    rnd.shuffle(kinds)
    injections: dict[int, list[str]] = {}
    for pos, kind in zip(plan, kinds):
        injections.setdefault(pos, []).append(kind)
    for i in range(len(trades) + 1):
        for k, kind in enumerate(injections.get(i, [])):
            symbol = rnd.choice(SYMBOLS)
            if kind == "invalid":
                price, qty = rnd.choice(INVALID)
                ts = open_bucket.get(symbol, T0)
                stream.append(Trade(symbol, f"bad-{i}-{k}", ts, price, qty))
            elif open_bucket.get(symbol, T0) > T0:
                # Any time before the symbol's open 1m bar: that bar's predecessors are closed.
                ts = rnd.randrange(T0 - 2 * MIN, open_bucket[symbol])
                stream.append(Trade(symbol, f"late-{i}-{k}", ts, 1.0, 1.0))
                injected_late += 1
        if i < len(trades):
            t = trades[i]
            open_bucket[t.symbol] = t.ts_ms - t.ts_ms % MIN
            stream.append(t)
    agg, closed, forming = run(stream)
    assert_matches_reference(trades, closed, forming)
    assert agg.counters() == {
        "accepted": len(trades),
        "duplicates": 0,
        "late_skipped": injected_late,
        "invalid_skipped": n_invalid,
        "invalid_bars": 0,
    }


@settings(max_examples=200, deadline=None)
@given(trade_streams(), st.randoms(use_true_random=False), st.integers(0, 5_000))
def test_clock_closes_only_finished_bars_and_each_bar_once(trades, rnd, grace_ms):
    """A timer ticks between trades, never so far that a later trade becomes late."""
    agg = BarAggregator(grace_ms=grace_ms)
    closed = []
    for i, t in enumerate(trades):
        if rnd.random() < 0.3:
            # The clock may run up to the earliest trade still to come (plus grace).
            horizon = min(u.ts_ms for u in trades[i:]) + grace_ms
            now = rnd.randrange(T0, horizon + 1)
            ticked = agg.close_until(now)
            for b in ticked:
                assert b.close_time_ms <= now - grace_ms
            closed.extend(ticked)
        closed.extend(agg.add(t))
    forming = agg.flush().forming
    assert agg.late_skipped == 0
    assert_forming_and_closed_cover_reference(trades, closed, forming)


def assert_forming_and_closed_cover_reference(trades, closed, forming):
    for tf in TIMEFRAMES:
        expected = reference_bars(trades, tf)
        got_closed = by_key(closed, tf)
        got_forming = by_key(forming, tf)
        assert not set(got_closed) & set(got_forming)
        assert {**got_closed, **got_forming} == expected, tf


def test_reference_helper_orders_ties_by_arrival():
    trades = [Trade("A", "1", T0 + 5, 3.0, 1.0), Trade("A", "2", T0 + 5, 4.0, 1.0)]
    bar = reference_bars(trades, "1m")[("A", T0)]
    assert (bar.open, bar.close) == (3.0, 4.0)


def test_shuffle_helper_keeps_buckets_and_tie_order():
    rnd = random.Random(7)
    trades = [Trade("A", str(i), T0 + (i % 3) * 10 + (i // 10) * MIN, 1.0, 1.0) for i in range(30)]
    shuffled = shuffle_within_open_bars(trades, rnd)
    assert [t.ts_ms // MIN for t in shuffled] == [t.ts_ms // MIN for t in trades]
    for ts in {t.ts_ms for t in trades}:
        assert [t for t in shuffled if t.ts_ms == ts] == [t for t in trades if t.ts_ms == ts]


@settings(max_examples=300, deadline=None)
@given(trade_streams(), st.randoms(use_true_random=False), st.integers(0, 3 * MIN))
def test_the_watermark_closes_bars_once_and_reports_every_trade_it_made_late(trades, rnd, lag):
    """The stream closes a connection's symbols at its watermark (``close_symbols_until``),
    possibly before one of them has sent its last trade of that bar. Whatever the cut-offs:
    each bar is reported once, every bar equals the reference aggregation of the trades not
    reported late, and ``on_late`` names exactly the trades counted in ``late_skipped``."""
    agg = BarAggregator()
    reported: list[tuple[str, int]] = []
    agg.on_late = lambda symbol, ts_ms: reported.append((symbol, ts_ms))
    closed, accepted, late = [], [], []
    watermark = T0
    for t in trades:
        if rnd.random() < 0.3:
            # Any subset of symbols, at a cut-off up to a few minutes past the newest trade so
            # far: later trades of those symbols may then fall into closed bars.
            watermark = max(watermark, max(u.ts_ms for u in accepted or [t]))
            cutoff = watermark + rnd.randrange(-lag, lag + 1)
            subset = [s for s in SYMBOLS if rnd.random() < 0.6]
            for b in agg.close_symbols_until(subset, cutoff):
                assert b.symbol in subset and b.close_time_ms <= cutoff
                closed.append(b)
        before = agg.late_skipped
        closed.extend(agg.add(t))
        (late if agg.late_skipped > before else accepted).append(t)
    forming = agg.flush().forming
    assert reported == [(t.symbol, t.ts_ms) for t in late]
    assert agg.accepted == len(accepted)
    assert_forming_and_closed_cover_reference(accepted, closed, forming)
