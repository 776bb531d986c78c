"""BarAggregator behaviour, one rule per test. Property tests live in test_aggregator_properties."""

from __future__ import annotations

import dataclasses

import pytest

from markets.aggregator import Bar, BarAggregator
from markets.timeframes import TIMEFRAMES

T0 = 1_700_006_400_000  # 2023-11-15 00:00:00 UTC: aligned to every timeframe, 1d included
MIN = 60_000


@dataclasses.dataclass
class Trade:
    symbol: str
    trade_id: str
    ts_ms: int
    price: float
    quantity: float
    side: str = "buy"


def trade(ts_ms, price, qty=1.0, trade_id=None, symbol="BTCUSDT"):
    return Trade(symbol, trade_id or f"{symbol}-{ts_ms}-{price}", ts_ms, price, qty)


def test_aligned_constant_is_aligned_to_every_timeframe():
    from markets.timeframes import is_aligned

    assert all(is_aligned(T0, tf) for tf in TIMEFRAMES)


def test_open_and_close_follow_trade_time_not_arrival():
    agg = BarAggregator()
    agg.add(trade(T0 + 10_000, 100.0))
    agg.add(trade(T0 + 5_000, 90.0))  # earlier, arrives later: becomes the open
    agg.add(trade(T0 + 30_000, 110.0))
    agg.add(trade(T0 + 20_000, 95.0))  # in between: changes neither open nor close
    bar = agg.forming("BTCUSDT", "1m")
    assert (bar.open, bar.high, bar.low, bar.close) == (90.0, 110.0, 90.0, 110.0)
    assert bar.volume == 4.0
    assert bar.trades == 4
    assert bar.quote_volume == 100.0 + 90.0 + 110.0 + 95.0


def test_equal_timestamps_are_ordered_by_arrival():
    agg = BarAggregator(timeframes=["1m"])
    agg.add(trade(T0 + 1_000, 10.0, trade_id="a"))
    agg.add(trade(T0 + 1_000, 11.0, trade_id="b"))
    agg.add(trade(T0 + 1_000, 12.0, trade_id="c"))
    bar = agg.forming("BTCUSDT", "1m")
    assert bar.open == 10.0  # first to arrive among the earliest
    assert bar.close == 12.0  # last to arrive among the latest


def test_trade_in_a_later_bucket_closes_the_bar_and_returns_it():
    agg = BarAggregator(timeframes=["1m", "5m"])
    assert agg.add(trade(T0 + 1_000, 10.0)) == ()
    closed = agg.add(trade(T0 + MIN + 1, 11.0))
    assert closed == [Bar("BTCUSDT", "1m", T0, 10.0, 10.0, 10.0, 10.0, 1.0, 10.0, 1)]
    assert agg.forming("BTCUSDT", "1m").open_time_ms == T0 + MIN
    five = agg.forming("BTCUSDT", "5m")
    assert (five.open_time_ms, five.open, five.close, five.trades) == (T0, 10.0, 11.0, 2)


def test_longer_bar_closes_after_the_minute_that_completed_it():
    agg = BarAggregator(timeframes=["1m", "5m", "1h"])
    agg.add(trade(T0 + 4 * MIN, 10.0))
    closed = agg.add(trade(T0 + 5 * MIN, 12.0))
    assert [(b.timeframe, b.open_time_ms) for b in closed] == [("1m", T0 + 4 * MIN), ("5m", T0)]
    assert agg.forming("BTCUSDT", "1h").trades == 2


def test_no_trade_intervals_produce_no_bar():
    agg = BarAggregator(timeframes=["1m"])
    agg.add(trade(T0, 10.0))
    closed = agg.add(trade(T0 + 10 * MIN, 11.0))
    assert [b.open_time_ms for b in closed] == [T0]
    flushed = agg.flush()
    assert [b.open_time_ms for b in flushed.forming] == [T0 + 10 * MIN]


def test_duplicate_trade_ids_are_counted_and_ignored():
    agg = BarAggregator()
    agg.add(trade(T0 + 1, 10.0, trade_id="x"))
    agg.add(trade(T0 + 2, 99.0, trade_id="x"))
    assert agg.forming("BTCUSDT", "1m").trades == 1
    assert agg.forming("BTCUSDT", "1m").high == 10.0
    assert agg.counters() == {
        "accepted": 1, "duplicates": 1, "late_skipped": 0, "invalid_skipped": 0,
        "invalid_bars": 0,
    }


def test_duplicate_of_the_bar_closed_just_before_counts_as_duplicate():
    agg = BarAggregator(timeframes=["1m"])
    agg.add(trade(T0 + 1, 10.0, trade_id="x"))
    agg.add(trade(T0 + MIN, 11.0, trade_id="y"))
    assert agg.add(trade(T0 + 1, 10.0, trade_id="x")) == ()
    assert agg.duplicates == 1
    assert agg.late_skipped == 0


def test_trade_older_than_the_open_bar_is_late_and_never_rewrites_history():
    agg = BarAggregator()
    agg.add(trade(T0 + 1_000, 10.0))
    agg.add(trade(T0 + MIN + 1_000, 11.0))
    assert agg.add(trade(T0 + 59_999, 1.0, trade_id="late")) == ()
    assert agg.late_skipped == 1
    # The 5m bar still holds only the two accepted trades: longer bars follow their 1m bars.
    five = agg.forming("BTCUSDT", "5m")
    assert (five.trades, five.low) == (2, 10.0)


@pytest.mark.parametrize(
    ("price", "qty"),
    [
        (float("nan"), 1.0),
        (float("inf"), 1.0),
        (float("-inf"), 1.0),
        (0.0, 1.0),
        (-5.0, 1.0),
        (10.0, float("nan")),
        (10.0, -1.0),
        (10.0, float("inf")),
    ],
)
def test_invalid_prices_and_quantities_are_counted_and_skipped(price, qty):
    agg = BarAggregator()
    agg.add(trade(T0, 10.0))
    assert agg.add(Trade("BTCUSDT", "bad", T0 + 1, price, qty)) == ()
    assert agg.invalid_skipped == 1
    assert agg.forming("BTCUSDT", "1m").trades == 1


@pytest.mark.parametrize("ts", [-1, 1.5e12, None])
def test_timestamps_that_are_not_non_negative_int_ms_are_invalid(ts):
    agg = BarAggregator()
    assert agg.add(Trade("BTCUSDT", "bad", ts, 10.0, 1.0)) == ()
    assert agg.invalid_skipped == 1
    assert agg.symbols == [] or agg.forming("BTCUSDT", "1m") is None


def test_zero_quantity_trade_is_accepted():
    agg = BarAggregator(timeframes=["1m"])
    agg.add(trade(T0, 10.0, qty=0.0))
    assert agg.forming("BTCUSDT", "1m").volume == 0.0


def test_clock_closes_bars_only_after_the_grace_period():
    agg = BarAggregator(timeframes=["1m", "3m"], grace_ms=2_000)
    agg.add(trade(T0 + 30_000, 10.0))
    assert agg.close_until(T0 + MIN + 1_999) == []
    closed = agg.close_until(T0 + MIN + 2_000)
    assert [(b.timeframe, b.open_time_ms) for b in closed] == [("1m", T0)]
    assert agg.forming("BTCUSDT", "1m") is None
    # The 3m bar keeps what it has and stays open until its own end plus grace.
    assert agg.forming("BTCUSDT", "3m").trades == 1
    closed = agg.advance(T0 + 3 * MIN + 2_000)
    assert [(b.timeframe, b.open_time_ms) for b in closed] == [("3m", T0)]
    assert agg.forming("BTCUSDT", "3m") is None


def test_trades_in_a_bucket_the_clock_closed_are_late():
    agg = BarAggregator(timeframes=["1m"], grace_ms=2_000)
    agg.add(trade(T0 + 30_000, 10.0))
    agg.close_until(T0 + MIN + 2_000)
    assert agg.add(trade(T0 + 59_000, 11.0)) == ()
    assert agg.late_skipped == 1
    # A symbol never seen before is bound by the clock too.
    agg.add(trade(T0 + 10_000, 5.0, symbol="ETHUSDT"))
    assert agg.late_skipped == 2
    # The next minute is still open for trades.
    agg.add(trade(T0 + MIN + 500, 12.0))
    assert agg.forming("BTCUSDT", "1m").open_time_ms == T0 + MIN


def test_clock_never_goes_back():
    agg = BarAggregator(timeframes=["1m"], grace_ms=0)
    agg.close_until(T0 + 10 * MIN)
    agg.close_until(T0)
    agg.add(trade(T0 + 5 * MIN, 10.0))
    assert agg.late_skipped == 1


def test_longer_bar_cut_by_the_clock_closes_when_a_trade_opens_the_next_bucket():
    agg = BarAggregator(timeframes=["1m", "5m"], grace_ms=2_000)
    agg.add(trade(T0 + 1_000, 10.0))
    agg.close_until(T0 + MIN + 2_000)  # closes the 1m bar; the 5m bar stays open
    closed = agg.add(trade(T0 + 5 * MIN + 1, 11.0))
    assert [(b.timeframe, b.open_time_ms) for b in closed] == [("5m", T0)]


def test_symbols_are_independent():
    agg = BarAggregator(timeframes=["1m"])
    agg.add(trade(T0 + 1, 10.0, symbol="A"))
    agg.add(trade(T0 + 2 * MIN, 20.0, symbol="B"))
    # A's bar is still open: B's later trade does not close it.
    assert agg.forming("A", "1m").open_time_ms == T0
    agg.add(trade(T0 + 3, 11.0, symbol="A"))
    assert agg.forming("A", "1m").trades == 2
    assert agg.late_skipped == 0


def test_flush_returns_forming_bars_apart_from_closed_ones():
    agg = BarAggregator(timeframes=["1m", "1h"], grace_ms=0)
    agg.add(trade(T0 + 1, 10.0))
    agg.add(trade(T0 + MIN + 1, 11.0))
    flushed = agg.flush(now_ms=T0 + 2 * MIN)
    assert [(b.timeframe, b.open_time_ms) for b in flushed.closed] == [("1m", T0 + MIN)]
    assert [(b.timeframe, b.open_time_ms, b.trades) for b in flushed.forming] == [("1h", T0, 2)]
    assert agg.symbols == []


def test_flush_without_clock_closes_nothing():
    agg = BarAggregator(timeframes=["1m", "1d"])
    agg.add(trade(T0 + 1, 10.0))
    flushed = agg.flush()
    assert flushed.closed == []
    assert {b.timeframe for b in flushed.forming} == {"1m", "1d"}


def test_only_requested_timeframes_are_returned_but_longer_ones_still_use_minutes():
    agg = BarAggregator(timeframes=["1h"])
    agg.add(trade(T0 + 1, 10.0))
    agg.add(trade(T0 + 30 * MIN, 12.0))
    closed = agg.add(trade(T0 + 60 * MIN, 11.0))
    assert [(b.timeframe, b.open_time_ms, b.open, b.close, b.trades) for b in closed] == [
        ("1h", T0, 10.0, 12.0, 2)
    ]
    with pytest.raises(ValueError, match="does not build '1m'"):
        agg.forming("BTCUSDT", "1m")


def test_unknown_timeframe_and_bad_grace_are_rejected_with_a_clear_message():
    with pytest.raises(ValueError, match="unknown timeframe '2m'"):
        BarAggregator(timeframes=["1m", "2m"])
    with pytest.raises(ValueError, match="grace_ms"):
        BarAggregator(grace_ms=-1)
    with pytest.raises(ValueError, match="at least one timeframe"):
        BarAggregator(timeframes=[])


def test_forming_of_an_unknown_symbol_is_none():
    assert BarAggregator().forming("NOPE", "1m") is None


def test_bar_wire_format_and_close_time():
    bar = Bar("BTCUSDT", "4h", T0, 1.0, 2.0, 0.5, 1.5, 10.0, 12.0, 3)
    assert bar.to_wire() == {"t": T0, "o": 1.0, "h": 2.0, "l": 0.5, "c": 1.5, "v": 10.0}
    assert bar.close_time_ms == T0 + 4 * 60 * MIN


def test_add_trade_accepts_plain_values_and_add_many_returns_all_closed_bars():
    agg = BarAggregator(timeframes=["1m"])
    assert agg.add_trade("X", 1, T0, 10.0, 1.0) == ()
    closed = agg.add_many(
        [trade(T0 + MIN, 11.0, symbol="X"), trade(T0 + 2 * MIN, 12.0, symbol="X")]
    )
    assert [b.open_time_ms for b in closed] == [T0, T0 + MIN]


def test_accepts_the_exchange_adapters_trade_objects():
    from markets.exchanges.base import Trade as ExchangeTrade

    agg = BarAggregator(timeframes=["1m"])
    agg.add(ExchangeTrade("KRW-BTC", "1", T0 + 5, 10.0, 0.5, "buy"))
    closed = agg.add_many([ExchangeTrade("KRW-BTC", "2", T0 + MIN, 11.0, 0.25, "sell")])
    assert closed == [Bar("KRW-BTC", "1m", T0, 10.0, 10.0, 10.0, 10.0, 0.5, 5.0, 1)]


def test_a_bar_whose_volume_overflows_breaks_the_candle_contract_and_is_dropped(caplog):
    """Finite trades can still add up to an infinite volume; the store would refuse such a
    bar (and, before the contract, the whole chunk with it), so it is dropped and counted."""
    agg = BarAggregator(timeframes=["1m", "5m"])
    agg.add(trade(T0 + 1, 10.0, qty=1.7e308, trade_id="a"))
    agg.add(trade(T0 + 2, 10.0, qty=1.7e308, trade_id="b"))
    with caplog.at_level("WARNING", logger="markets.candle_contract"):
        closed = agg.add(trade(T0 + MIN + 1, 11.0, trade_id="c"))
    assert closed == ()
    assert agg.counters()["invalid_bars"] == 1
    (record,) = caplog.records
    assert record.getMessage() == ("dropped candle aggregator BTCUSDT 1m at "
                                   "2023-11-15T00:00:00Z: volume is inf; prices and volumes "
                                   "must be finite numbers")
    closed = agg.close_until(T0 + 10 * MIN)
    assert [(b.timeframe, b.open_time_ms, b.volume) for b in closed] == [
        ("1m", T0 + MIN, 1.0), ("5m", T0, 1.0)]
