"""The candle contract: one CandleRow, one rule set, and every edge where candles enter (the
venue parsers, the CSV reader, the aggregator, the store) accepts exactly the rows it accepts."""

from __future__ import annotations

import io
import logging

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from markets import csvio
from markets.candle_contract import (
    RULES,
    CandleRow,
    DroppedCandles,
    candle_problem,
    collecting,
    failed_rules,
    first_failed_rule,
    keep_valid,
)
from markets.exchanges import base as exchange_base
from markets.exchanges import binance_parse, kr_parse

T0 = 1_704_067_200_000  # 2024-01-01T00:00:00Z
MIN = 60_000

prices = st.one_of(
    st.floats(min_value=-2.0, max_value=1e6, allow_nan=False),
    st.sampled_from([0.0, -0.0, float("nan"), float("inf"), -float("inf"), 1e-9]),
)
rows = st.builds(
    CandleRow,
    open_time_ms=st.one_of(st.integers(0, 5000).map(lambda i: T0 + i * MIN),
                           st.integers(T0, T0 + 10**9)),
    open=prices, high=prices, low=prices, close=prices,
    volume=st.one_of(st.floats(min_value=-5, max_value=1e9), st.just(float("inf"))),
    quote_volume=st.one_of(st.none(), st.floats(min_value=-5, max_value=1e12, allow_nan=False)),
)


def as_columns(batch):
    return {
        "open_time_ms": np.array([r.open_time_ms for r in batch], dtype=np.int64),
        **{name: np.array([getattr(r, name) for r in batch], dtype=np.float64)
           for name in ("open", "high", "low", "close", "volume")},
        "quote_volume": np.array([np.nan if r.quote_volume is None else r.quote_volume
                                  for r in batch], dtype=np.float64),
    }


def reference_valid(r: CandleRow, step: int) -> bool:
    """The contract as the issue states it, written out plainly."""
    import math

    values = (r.open, r.high, r.low, r.close, r.volume)
    return (all(math.isfinite(v) for v in values) and r.low > 0
            and r.low <= min(r.open, r.close) and max(r.open, r.close) <= r.high
            and r.volume >= 0
            and (r.quote_volume is None or (math.isfinite(r.quote_volume)
                                            and r.quote_volume >= 0))
            and r.open_time_ms % step == 0)


def test_there_is_one_candle_row():
    assert exchange_base.CandleRow is csvio.CandleRow is CandleRow
    assert CandleRow(T0, 1.0, 2.0, 0.5, 1.5, 3.0) == (T0, 1.0, 2.0, 0.5, 1.5, 3.0, None)


@settings(max_examples=300, deadline=None)
@given(st.lists(rows, min_size=1, max_size=20))
def test_row_by_row_and_column_checks_agree_with_the_plain_statement(batch):
    by_column = failed_rules(as_columns(batch), MIN).tolist()
    for row, rule in zip(batch, by_column, strict=True):
        first = first_failed_rule(row, "1m")
        assert (first is None) == reference_valid(row, MIN), row
        assert rule == (-1 if first is None else RULES.index(first)), row
        assert (candle_problem(row, "1m") is None) == (first is None)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(rows, min_size=1, max_size=12, unique_by=lambda r: r.open_time_ms))
def test_the_csv_reader_and_both_venue_parsers_keep_exactly_the_valid_rows(batch):
    step = MIN
    expected = [r for r in batch if reference_valid(r, step)]
    buf = io.StringIO()
    csvio.write_candles_csv(batch, buf, time_format="ms")
    got, errors = csvio.parse_candles_csv(buf.getvalue(), "1m")
    assert [r.open_time_ms for r in got] == [r.open_time_ms for r in expected]
    assert len(errors) == len(batch) - len(expected)
    # Venue payloads always carry a quote volume; give the rows one.
    quoted = [r._replace(quote_volume=1.0) for r in batch]
    good = {r.open_time_ms for r in quoted if reference_valid(r, step)}
    klines = [[r.open_time_ms, repr(r.open), repr(r.high), repr(r.low), repr(r.close),
               repr(r.volume), r.open_time_ms + step - 1, "1.0", 1, "0", "0", "0"]
              for r in quoted]
    assert {r.open_time_ms for r in binance_parse.parse_klines(klines, "1m")} == good
    assert {r.open_time_ms for r in binance_parse.parse_klines(klines)} == {
        r.open_time_ms for r in quoted if reference_valid(r, 1)}  # no timeframe: no grid


def test_an_upbit_row_with_its_close_above_its_high_is_dropped_logged_and_counted(caplog):
    rows = [
        {"market": "KRW-BTC", "candle_date_time_utc": "2024-01-01T00:01:00",
         "opening_price": 100.0, "high_price": 110.0, "low_price": 95.0, "trade_price": 120.0,
         "candle_acc_trade_volume": 2.0, "candle_acc_trade_price": 210.0},
        {"market": "KRW-BTC", "candle_date_time_utc": "2024-01-01T00:00:00",
         "opening_price": 100.0, "high_price": 110.0, "low_price": 95.0, "trade_price": 105.0,
         "candle_acc_trade_volume": 2.0, "candle_acc_trade_price": 210.0},
    ]
    dropped = DroppedCandles()
    with caplog.at_level(logging.WARNING, logger="markets.candle_contract"):
        got = kr_parse.parse_candles(rows, "1m", venue="upbit", dropped=dropped)
    assert [r.open_time_ms for r in got] == [T0]
    assert dropped.counts == {"high is below open or close": 1}
    assert [r.getMessage() for r in caplog.records] == [
        "dropped candle upbit KRW-BTC 1m at 2024-01-01T00:01:00Z: high 110.0 is below open "
        "100.0 or close 120.0"]


def test_an_enclosing_block_counts_and_names_what_a_parser_drops():
    dropped = DroppedCandles()
    bad = CandleRow(T0 + 30_000, 1.0, 2.0, 0.5, 1.5, 1.0)  # off the 1m grid
    with collecting(dropped, venue="sim", symbol="KRW-BTC", timeframe="1m"):
        assert keep_valid([bad, CandleRow(T0, 1.0, 2.0, 0.5, 1.5, 1.0)]) == [
            CandleRow(T0, 1.0, 2.0, 0.5, 1.5, 1.0)]
    assert dropped.examples == [
        "sim KRW-BTC 1m at 2024-01-01T00:00:30Z: open_time 2024-01-01T00:00:30Z is not the "
        "start of a 1m candle (nearest earlier start: 2024-01-01T00:00:00Z)"]
    assert dropped.summary() == (
        "1 malformed candle(s) dropped (1 open time not the start of a 1m candle)")
    assert keep_valid([bad]) == [bad]  # outside the block: no timeframe, no grid


@pytest.mark.django_db
def test_the_store_drops_and_counts_bad_rows_when_asked_and_stores_the_rest():
    from markets.candles import InvalidCandles, load_candles, upsert_candles
    from markets.models import Exchange, Symbol

    exchange = Exchange.objects.create(slug="x", name="X", adapter="upbit")
    symbol = Symbol.objects.create(exchange=exchange, code="KRW-BTC", base="BTC", quote="KRW")
    good = [CandleRow(T0 + i * MIN, 1.0, 2.0, 0.5, 1.5, 1.0) for i in range(3)]
    bad = CandleRow(T0 + 3 * MIN, 1.0, 2.0, 0.5, 2.5, 1.0)
    with pytest.raises(InvalidCandles, match="high is below open or close"):
        upsert_candles(symbol.id, "1m", [*good, bad])
    dropped = DroppedCandles()
    assert upsert_candles(symbol.id, "1m", [*good, bad], dropped=dropped, venue="x",
                          symbol="KRW-BTC") == (3, 0)
    assert load_candles(symbol.id, "1m").open_time_ms.tolist() == [r[0] for r in good]
    assert dropped.examples == ["x KRW-BTC 1m at 2024-01-01T00:03:00Z: high 2.0 is below "
                                "open 1.0 or close 2.5"]
    assert upsert_candles(symbol.id, "1m", [bad], dropped=dropped) == (0, 0)
    assert dropped.total == 2
