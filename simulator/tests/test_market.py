"""The price process, trade log and candle aggregation (pure, no sockets)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.market import (
    DAY_MS,
    MINUTE_MS,
    Frame,
    Market,
    SymbolSpec,
    aggregate,
    krw_tick,
)

NOW = 1_773_240_030_000
BTC = SymbolSpec("KRW-BTC", "BTC", "KRW", 1.0e8, krw_tick, 1e-8, 0.0012, 2.0)


def make(seed: int = 3, days: float = 2.0) -> Market:
    return Market("upbit", BTC, seed=seed, now_ms=NOW, history_days=days, trade_rate=2.0)


def test_history_is_the_same_for_the_same_seed_and_differs_for_another():
    a, b, c = make(3), make(3), make(4)
    assert np.array_equal(a.trades()["price"], b.trades()["price"])
    assert np.array_equal(a.trades()["ts"], b.trades()["ts"])
    assert not np.array_equal(a.trades()["price"], c.trades()["price"])


def test_live_trades_are_the_same_for_the_same_seed():
    a, b = make(3), make(3)
    new_a, new_b = a.advance(NOW + 60_000), b.advance(NOW + 60_000)
    assert new_a is not None and len(new_a["ts"]) > 30
    assert np.array_equal(new_a["price"], new_b["price"])


def test_history_has_four_trades_per_minute_in_open_high_low_close_order():
    market = make(days=0.1)
    t = market.trades()
    first = t["ts"][0]
    assert first % MINUTE_MS == 0
    assert list(t["ts"][:4] - first) == [0, 15_000, 30_000, 45_000]
    o, h, low, c = t["price"][:4]
    assert h == max(o, h, low, c) and low == min(o, h, low, c)


def test_history_starts_at_the_configured_depth_and_ends_before_now():
    market = make(days=2.0)
    t = market.trades()
    assert t["ts"][0] == NOW - NOW % MINUTE_MS - 2 * DAY_MS
    assert t["ts"][-1] <= NOW


def test_prices_sit_on_the_venue_tick_grid():
    market = make()
    market.advance(NOW + 120_000)
    prices = market.trades()["price"]
    ticks = np.array([krw_tick(p) for p in prices])
    assert np.all(np.isclose(np.round(prices / ticks) * ticks, prices))


def test_price_levels_are_realistic_and_volatility_clusters():
    market = make(days=2.0)
    closes = market.candles(Frame("m")).close
    assert closes.min() > 0.7e8 and closes.max() < 1.3e8
    r = np.diff(np.log(closes))
    sq = r**2 - np.mean(r**2)
    autocorr = np.sum(sq[1:] * sq[:-1]) / np.sum(sq * sq)
    assert autocorr > 0.02  # GARCH(1,1): squared returns are positively autocorrelated


@settings(max_examples=25, deadline=None)
@given(
    st.sampled_from(
        [
            ("m", 3),
            ("m", 5),
            ("m", 10),
            ("m", 15),
            ("m", 30),
            ("h", 1),
            ("h", 4),
            ("d", 1),
            ("w", 1),
            ("M", 1),
        ]
    )
)
def test_candles_of_any_frame_aggregate_exactly_from_the_one_minute_candles(unit_n):
    market = make(days=2.0)
    frame = Frame(*unit_n)
    big = market.candles(frame)
    small = market.candles(Frame("m"))
    groups = frame.start(small.open_time)
    for i, open_ms in enumerate(big.open_time):
        rows = groups == open_ms
        assert big.open[i] == small.open[rows][0]
        assert big.close[i] == small.close[rows][-1]
        assert big.high[i] == small.high[rows].max()
        assert big.low[i] == small.low[rows].min()
        assert np.isclose(big.volume[i], small.volume[rows].sum())
        assert big.count[i] == small.count[rows].sum()


def test_candle_bounds_cut_on_open_time_not_on_trade_time():
    market = make(days=1.0)
    frame = Frame("h")
    everything = market.candles(frame)
    cut = int(everything.open_time[5])
    before = market.candles(frame, end_ms=cut)
    after = market.candles(frame, start_ms=cut)
    assert before.open_time[-1] < cut <= after.open_time[0]
    assert len(before) + len(after) == len(everything)


def test_weeks_start_on_monday_and_months_on_the_first():
    ts = np.array([1_773_240_030_000])  # Wednesday 2026-03-11
    week = int(Frame("w").start(ts)[0])
    assert np.datetime64(week, "ms").astype("datetime64[D]") == np.datetime64("2026-03-09")
    month = int(Frame("M").start(ts)[0])
    assert np.datetime64(month, "ms").astype("datetime64[D]") == np.datetime64("2026-03-01")
    assert Frame("M").next_open(int(month)) == np.datetime64("2026-04-01", "ms").astype(np.int64)


def test_aggregate_of_no_trades_is_empty():
    empty = {k: np.zeros(0) for k in ("ts", "price", "qty")}
    empty |= {"id": np.zeros(0, dtype=np.int64), "buyer_maker": np.zeros(0, dtype=bool)}
    empty["ts"] = empty["ts"].astype(np.int64)
    assert len(aggregate(empty, Frame("m"))) == 0


def test_csv_replay_turns_each_candle_into_four_trades(tmp_path):
    path = tmp_path / "candles.csv"
    start = NOW - NOW % MINUTE_MS - 180_000
    path.write_text(
        "open_time,open,high,low,close,volume\n"
        f"{start},100,110,90,105,8\n{start + 60_000},105,106,104,104.5,4\n"
    )
    spec = SymbolSpec("KRW-TST", "TST", "KRW", 100.0, 0.5, 0.001)
    market = Market(
        "upbit", spec, seed=1, now_ms=NOW, history_days=0, trade_rate=1, replay_csv=str(path)
    )
    candles = market.candles(Frame("m"))
    assert list(candles.open) == [100, 105] and list(candles.high) == [110, 106]
    assert list(candles.low) == [90, 104] and list(candles.close) == [105, 104.5]
    assert list(candles.volume) == [8, 4]


def test_an_unaligned_start_drops_the_candle_it_falls_in():
    market = make(days=0.2)
    frame = Frame("m", 5)
    everything = market.candles(frame)
    cut = int(everything.open_time[3])
    shifted = market.candles(frame, start_ms=cut + 1)
    assert shifted.open_time[0] == everything.open_time[4]
    assert shifted.open[0] == everything.open[4] and shifted.count[0] == everything.count[4]


def test_live_trades_do_not_depend_on_how_often_the_clock_ticks():
    once, often = make(3), make(3)
    once.advance(NOW + 120_000)
    for step in range(1, 241):
        often.advance(NOW + step * 500)
    a, b = once.trades(), often.trades()
    assert np.array_equal(a["ts"], b["ts"]) and np.array_equal(a["price"], b["price"])
    assert np.array_equal(a["qty"], b["qty"]) and np.array_equal(a["buyer_maker"], b["buyer_maker"])
