"""Bulk candle storage against the test database: same rows as the ORM, honest counts, gaps."""

from __future__ import annotations

import datetime as dt
import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from markets.aggregator import Bar
from markets.candles import (
    InvalidCandles,
    find_gaps,
    last_open_time_ms,
    load_candles,
    upsert_candles,
)
from markets.csvio import CandleRow
from markets.models import Candle

pytestmark = pytest.mark.django_db

T0 = 1_704_067_200_000  # 2024-01-01T00:00:00Z
MIN = 60_000
UTC = dt.UTC


def row(i, price=100.0, quote=None, step=MIN):
    return CandleRow(T0 + i * step, price, price + 2, price - 1, price + 1, 1.5 + i, quote)


def stored(symbol, timeframe="1m"):
    return list(
        Candle.objects.filter(symbol=symbol, timeframe=timeframe)
        .order_by("open_time")
        .values_list("open_time", "open", "high", "low", "close", "volume", "quote_volume")
    )


def as_ms(value: dt.datetime) -> int:
    return int(value.timestamp() * 1000)


def test_upsert_inserts_then_updates_and_counts_each(symbol):
    assert upsert_candles(symbol.id, "1m", [row(0), row(1), row(2)]) == (3, 0)
    assert upsert_candles(symbol.id, "1m", [row(1, price=200.0), row(3)]) == (1, 1)
    got = stored(symbol)
    assert [as_ms(r[0]) for r in got] == [T0, T0 + MIN, T0 + 2 * MIN, T0 + 3 * MIN]
    assert got[1][1:5] == (200.0, 202.0, 199.0, 201.0)


def test_rows_read_back_through_the_orm_equal_what_was_given(symbol):
    rows = [
        CandleRow(T0, 0.1, 0.30000000000000004, 0.1, 0.2, 1e-12, 123.456),
        CandleRow(T0 + MIN, 42000.5, 42100.123456789, 41999.000000001, 42050.25, 0.0, None),
    ]
    upsert_candles(symbol.id, "1m", rows)
    got = stored(symbol)
    assert [r[0] for r in got] == [
        dt.datetime(2024, 1, 1, 0, 0, tzinfo=UTC), dt.datetime(2024, 1, 1, 0, 1, tzinfo=UTC)
    ]
    assert [r[1:] for r in got] == [tuple(r[1:]) for r in rows]
    # The ORM finds them by exact open time: the stored representation is the ORM's own.
    assert Candle.objects.get(
        symbol=symbol, timeframe="1m", open_time=dt.datetime(2024, 1, 1, 9, 1, tzinfo=dt.timezone(
            dt.timedelta(hours=9)))
    ).open == 42000.5


def test_candle_saved_by_the_orm_is_updated_not_duplicated(symbol):
    Candle.objects.create(
        symbol=symbol, timeframe="1h", open_time=dt.datetime(2024, 1, 1, tzinfo=UTC),
        open=1.0, high=1.0, low=1.0, close=1.0, volume=1.0,
    )
    assert upsert_candles(symbol.id, "1h", [row(0, price=5.0, step=3_600_000)]) == (0, 1)
    assert Candle.objects.filter(symbol=symbol, timeframe="1h").count() == 1
    assert Candle.objects.get(symbol=symbol, timeframe="1h").open == 5.0


def test_counts_stay_honest_across_chunks_and_sparse_input(symbol):
    upsert_candles(symbol.id, "1m", [row(i) for i in range(0, 20, 2)])  # even minutes
    # Odd minutes are new, multiples of 4 exist; stored rows between them are not touched.
    rows = [row(i, price=7.0) for i in [1, 3, 4, 8, 9, 15, 16, 25]]
    assert upsert_candles(symbol.id, "1m", rows, chunk_size=3) == (5, 3)
    assert Candle.objects.filter(symbol=symbol, timeframe="1m").count() == 15
    assert Candle.objects.get(symbol=symbol, open_time=dt.datetime(2024, 1, 1, 0, 2,
                                                                   tzinfo=UTC)).open == 100.0


def test_repeated_open_time_is_stored_once_and_the_last_row_wins(symbol):
    assert upsert_candles(symbol.id, "1m", [row(1, 5.0), row(0), row(1, 9.0)]) == (2, 0)
    assert [r[1] for r in stored(symbol)] == [100.0, 9.0]


def test_one_bad_row_stores_nothing_and_says_why(symbol):
    bad = CandleRow(T0 + MIN, 10.0, 9.0, 8.0, 9.5, 1.0)  # high below open
    with pytest.raises(InvalidCandles, match=r"1 row\(s\): high is below open or close "
                                             r"\(first: 2024-01-01T00:01:00Z\)"):
        upsert_candles(symbol.id, "1m", [row(0), bad])
    assert stored(symbol) == []


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        (CandleRow(T0 + 30_000, 1.0, 1.0, 1.0, 1.0, 1.0), "not the start of a 1m candle"),
        (CandleRow(T0, float("nan"), 1.0, 1.0, 1.0, 1.0), "not a finite number"),
        (CandleRow(T0, 1.0, float("inf"), 1.0, 1.0, 1.0), "not a finite number"),
        (CandleRow(T0, 1.0, 1.0, 0.0, 1.0, 1.0), "low is not above zero"),
        (CandleRow(T0, 1.0, 2.0, 1.5, 1.0, 1.0), "low is above open or close"),
        (CandleRow(T0, 1.0, 1.0, 1.0, 1.0, -1.0), "volume is negative"),
        (CandleRow(T0, 1.0, 1.0, 1.0, 1.0, 1.0, -2.0), "quote_volume is negative"),
    ],
)
def test_each_kind_of_bad_candle_is_refused(symbol, bad, reason):
    with pytest.raises(InvalidCandles, match=reason):
        upsert_candles(symbol.id, "1m", [bad])
    assert stored(symbol) == []


def test_candles_of_an_unknown_symbol_are_refused_and_nothing_is_stored(symbol):
    with pytest.raises(InvalidCandles, match=f"no symbol with id {symbol.id + 999}"):
        upsert_candles(symbol.id + 999, "1m", [row(0), row(1)])
    assert Candle.objects.count() == 0


def test_deleting_a_symbol_deletes_its_candles(symbol, exchange):
    from markets.models import Symbol

    other = Symbol.objects.create(exchange=exchange, code="KRW-KEEP", base="KEEP", quote="KRW")
    upsert_candles(symbol.id, "1m", [row(0), row(1)])
    upsert_candles(other.id, "1m", [row(0)])
    symbol.delete()
    assert list(Candle.objects.values_list("symbol_id", flat=True)) == [other.id]


def test_upsert_accepts_aggregator_bars_and_plain_tuples(symbol):
    bar = Bar("KRW-BTC", "1m", T0, 1.0, 2.0, 0.5, 1.5, 3.0, 4.5, 7)
    assert upsert_candles(symbol.id, "1m", [bar, (T0 + MIN, 1.0, 1.0, 1.0, 1.0, 0.0)]) == (2, 0)
    assert [r[1:] for r in stored(symbol)] == [
        (1.0, 2.0, 0.5, 1.5, 3.0, 4.5), (1.0, 1.0, 1.0, 1.0, 0.0, None),
    ]


def test_empty_input_and_bad_arguments(symbol):
    assert upsert_candles(symbol.id, "1m", []) == (0, 0)
    with pytest.raises(ValueError, match="unknown timeframe"):
        upsert_candles(symbol.id, "2m", [row(0)])
    with pytest.raises(ValueError, match="chunk_size"):
        upsert_candles(symbol.id, "1m", [row(0)], chunk_size=0)


def test_timeframes_and_symbols_are_kept_apart(symbol, exchange):
    from markets.models import Symbol

    other = Symbol.objects.create(exchange=exchange, code="KRW-ETH", base="ETH", quote="KRW")
    upsert_candles(symbol.id, "1m", [row(0)])
    assert upsert_candles(other.id, "1m", [row(0)]) == (1, 0)
    assert upsert_candles(symbol.id, "3m", [row(0, step=3 * MIN)]) == (1, 0)
    assert len(load_candles(symbol.id, "1m")) == 1
    assert len(load_candles(other.id, "1m")) == 1


# -- loading ---------------------------------------------------------------------------------


def test_load_candles_returns_numpy_columns_oldest_first(symbol):
    upsert_candles(symbol.id, "1m", [row(i, price=10.0 + i) for i in (3, 0, 2, 1)])
    candles = load_candles(symbol.id, "1m")
    assert candles.open_time_ms.dtype == np.int64
    assert candles.close.dtype == np.float64
    assert candles.open_time_ms.tolist() == [T0, T0 + MIN, T0 + 2 * MIN, T0 + 3 * MIN]
    assert candles.open.tolist() == [10.0, 11.0, 12.0, 13.0]
    assert candles.high.tolist() == [12.0, 13.0, 14.0, 15.0]
    assert candles.low.tolist() == [9.0, 10.0, 11.0, 12.0]
    assert candles.close.tolist() == [11.0, 12.0, 13.0, 14.0]
    assert candles.volume.tolist() == [1.5, 2.5, 3.5, 4.5]


def test_load_candles_range_is_start_inclusive_end_exclusive(symbol):
    upsert_candles(symbol.id, "1m", [row(i) for i in range(10)])
    c = load_candles(symbol.id, "1m", start_ms=T0 + 2 * MIN, end_ms=T0 + 5 * MIN)
    assert c.open_time_ms.tolist() == [T0 + 2 * MIN, T0 + 3 * MIN, T0 + 4 * MIN]


def test_load_candles_limit_takes_the_newest_unless_a_start_is_given(symbol):
    upsert_candles(symbol.id, "1m", [row(i) for i in range(10)])
    newest = load_candles(symbol.id, "1m", limit=3)
    assert newest.open_time_ms.tolist() == [T0 + 7 * MIN, T0 + 8 * MIN, T0 + 9 * MIN]
    assert newest.volume.tolist() == [8.5, 9.5, 10.5]
    before = load_candles(symbol.id, "1m", end_ms=T0 + 5 * MIN, limit=2)
    assert before.open_time_ms.tolist() == [T0 + 3 * MIN, T0 + 4 * MIN]
    from_start = load_candles(symbol.id, "1m", start_ms=T0 + MIN, limit=2)
    assert from_start.open_time_ms.tolist() == [T0 + MIN, T0 + 2 * MIN]
    assert len(load_candles(symbol.id, "1m", limit=0)) == 0


def test_load_candles_of_nothing_is_empty_typed_arrays(symbol):
    c = load_candles(symbol.id, "4h")
    assert len(c) == 0
    assert c.open_time_ms.dtype == np.int64 and c.close.dtype == np.float64


def test_last_open_time(symbol):
    assert last_open_time_ms(symbol.id, "1m") is None
    upsert_candles(symbol.id, "1m", [row(5), row(2)])
    assert last_open_time_ms(symbol.id, "1m") == T0 + 5 * MIN
    assert last_open_time_ms(symbol.id, "5m") is None


# -- gaps -------------------------------------------------------------------------------------


def test_find_gaps_groups_missing_open_times_into_ranges(symbol):
    upsert_candles(symbol.id, "1m", [row(i) for i in (2, 3, 6, 7, 8)])
    assert find_gaps(symbol.id, "1m", T0, T0 + 12 * MIN) == [
        (T0, T0 + 2 * MIN),  # leading
        (T0 + 4 * MIN, T0 + 6 * MIN),  # inner
        (T0 + 9 * MIN, T0 + 12 * MIN),  # trailing
    ]
    assert find_gaps(symbol.id, "1m", T0 + 2 * MIN, T0 + 4 * MIN) == []


def test_find_gaps_rounds_to_candle_starts_and_handles_empty_storage(symbol):
    assert find_gaps(symbol.id, "5m", T0 + 1, T0 + 11 * MIN) == [(T0 + 5 * MIN, T0 + 15 * MIN)]
    assert find_gaps(symbol.id, "5m", T0, T0) == []
    upsert_candles(symbol.id, "5m", [row(1, step=5 * MIN)])
    assert find_gaps(symbol.id, "5m", T0, T0 + 15 * MIN) == [
        (T0, T0 + 5 * MIN), (T0 + 10 * MIN, T0 + 15 * MIN),
    ]


# -- round trip property ----------------------------------------------------------------------

finite = st.floats(1e-300, 1e300, allow_nan=False, allow_infinity=False)


@st.composite
def candle_sets(draw):
    minutes = draw(st.lists(st.integers(0, 100_000), unique=True, min_size=1, max_size=30))
    rows = []
    for m in minutes:
        o, c, a, b = (draw(finite) for _ in range(4))
        q = draw(st.one_of(st.none(), st.floats(0, 1e300)))
        rows.append(CandleRow(T0 + m * MIN, o, max(o, c, a), min(o, c, b), c,
                              draw(st.floats(0, 1e300)), q))
    return rows


def bits(values):
    return [struct.pack("<d", x) for x in values]


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(candle_sets(), st.integers(1, 7))
def test_upsert_then_load_gives_back_the_same_bits(symbol, rows, chunk_size):
    Candle.objects.filter(symbol=symbol).delete()
    assert upsert_candles(symbol.id, "1m", rows, chunk_size=chunk_size) == (len(rows), 0)
    assert upsert_candles(symbol.id, "1m", rows[::2], chunk_size=chunk_size) == (
        0, len(rows[::2]),
    )
    rows = sorted(rows)
    got = load_candles(symbol.id, "1m")
    assert got.open_time_ms.tolist() == [r.open_time_ms for r in rows]
    for i, name in enumerate(("open", "high", "low", "close", "volume"), start=1):
        assert bits(getattr(got, name).tolist()) == bits([r[i] for r in rows]), name
    assert [r[6] for r in stored(symbol)] == [r.quote_volume for r in rows]


def test_binary_copy_payload_round_trips_through_its_parser():
    from markets.candles.backends.postgresql_copy import IN as _PG_IN
    from markets.candles.backends.postgresql_copy import copy_in as _pg_copy_in
    from markets.candles.backends.postgresql_copy import copy_out as _pg_copy_out

    cols = {
        "open_time_ms": np.array([T0, T0 + MIN], dtype=np.int64),
        "open": np.array([1.5, 0.1]), "high": np.array([2.0, 0.3]),
        "low": np.array([1.0, 0.1]), "close": np.array([1.75, 0.2]),
        "volume": np.array([3.0, 0.0]), "quote_volume": np.array([4.5, np.nan]),
    }
    payload = _pg_copy_in(cols, 0, 2)
    assert payload.startswith(b"PGCOPY\n\xff\r\n\x00") and payload.endswith(b"\xff\xff")
    assert len(payload) == 19 + 2 * (2 + 7 * 12) + 2
    rows = _pg_copy_out(payload, _PG_IN)
    assert rows["count"].tolist() == [7, 7]
    # Binary timestamptz: microseconds since 2000-01-01 00:00 UTC.
    assert rows["open_time"].tolist() == [
        (T0 - 946_684_800_000) * 1000, (T0 + MIN - 946_684_800_000) * 1000]
    for name in ("open", "high", "low", "close", "volume", "quote_volume"):
        assert bits(rows[name].tolist()) == bits(cols[name].tolist()), name
    with pytest.raises(RuntimeError, match="unexpected COPY BINARY payload"):
        _pg_copy_out(payload[:-2], _PG_IN)


def test_closed_bars_from_the_aggregator_store_and_load_unchanged(symbol):
    from markets.aggregator import BarAggregator

    agg = BarAggregator(timeframes=["1m", "1h"])
    closed = []
    for i in range(200):  # 200 trades over about 3.3 hours
        ts = T0 + i * 59_000
        closed += agg.add_trade("KRW-BTC", str(i), ts, 100.0 + (i % 7) * 0.5, 0.25)
    by_tf = {tf: [b for b in closed if b.timeframe == tf] for tf in ("1m", "1h")}
    for tf, bars in by_tf.items():
        assert upsert_candles(symbol.id, tf, bars) == (len(bars), 0)
        got = load_candles(symbol.id, tf)
        assert got.open_time_ms.tolist() == [b.open_time_ms for b in bars]
        assert got.close.tolist() == [b.close for b in bars]
        assert got.volume.tolist() == [b.volume for b in bars]
    assert [b.open_time_ms for b in by_tf["1h"]] == [T0, T0 + 60 * MIN, T0 + 120 * MIN]


def test_tuple_fast_path_reads_the_same_columns_as_the_general_path():
    from markets.candles.columns import columns as _columns

    rows = [CandleRow(T0 + i * MIN, 1.5 + i, 3.0 + i, 1.0, 2.0 + i, 0.25 * i, 7.0 * i)
            for i in range(50)]
    as_bars = [Bar("KRW-BTC", "1m", *r, 1) for r in rows]  # attribute objects: general path
    fast, general = _columns(rows), _columns(as_bars)
    assert fast.keys() == general.keys()
    for name in fast:
        assert fast[name].dtype == general[name].dtype
        assert bits(fast[name].tolist()) == bits(general[name].tolist()), name
    six = _columns([tuple(r[:6]) for r in rows])
    assert np.isnan(six["quote_volume"]).all()
    assert six["open_time_ms"].tolist() == [r.open_time_ms for r in rows]


def test_load_candles_equals_what_the_orm_reads(symbol):
    rows = [row(i, price=100.0 + i * 0.1, quote=None if i % 3 else 5.5) for i in range(0, 400, 3)]
    upsert_candles(symbol.id, "1m", rows, chunk_size=17)
    Candle.objects.create(symbol=symbol, timeframe="1m", open_time=dt.datetime(
        2024, 1, 1, 0, 1, tzinfo=UTC), open=1.0, high=2.0, low=0.5, close=1.5, volume=3.0)
    got = load_candles(symbol.id, "1m")
    orm = stored(symbol)
    assert got.open_time_ms.tolist() == [as_ms(r[0]) for r in orm]
    for i, name in enumerate(("open", "high", "low", "close", "volume"), start=1):
        assert bits(getattr(got, name).tolist()) == bits([r[i] for r in orm]), name
    assert find_gaps(symbol.id, "1m", T0, T0 + 10 * MIN) == [
        (T0 + 2 * MIN, T0 + 3 * MIN), (T0 + 4 * MIN, T0 + 6 * MIN), (T0 + 7 * MIN, T0 + 9 * MIN),
    ]


def test_unchanged_candles_count_as_updated_and_negative_zero_is_stored_as_the_orm_does(symbol):
    rows = [CandleRow(T0 + i * MIN, 1.0, 2.0, 0.5, 1.5, 0.0, 0.0) for i in range(5)]
    assert upsert_candles(symbol.id, "1m", rows) == (5, 0)
    assert upsert_candles(symbol.id, "1m", rows) == (0, 5)  # the same values again
    # A -0.0 is stored as the ORM stores it (as 0.0 on both databases), also over a 0.0.
    negative = [r._replace(volume=-0.0, quote_volume=-0.0) for r in rows[:2]]
    assert upsert_candles(symbol.id, "1m", [*negative, rows[4]], chunk_size=2) == (0, 3)
    Candle.objects.create(symbol=symbol, timeframe="3m", open_time=dt.datetime(
        2024, 1, 1, tzinfo=UTC), open=1.0, high=2.0, low=0.5, close=1.5, volume=-0.0,
        quote_volume=-0.0)
    orm_zero = stored(symbol, "3m")[0][5]
    got = stored(symbol)
    assert bits([r[5] for r in got]) == bits([orm_zero, orm_zero, 0.0, 0.0, 0.0])
    assert bits([r[6] for r in got]) == bits([orm_zero, orm_zero, 0.0, 0.0, 0.0])


# -- PostgreSQL: new candles by COPY, existing ones by ON CONFLICT ---------------------------


def postgresql_only():
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL writer")


def test_postgresql_copy_into_an_empty_span_stores_as_the_orm_does(symbol):
    """Nothing stored between the first and last open time: one COPY, with and without quote
    volumes and a -0.0; then the same span again goes through ON CONFLICT."""
    postgresql_only()
    upsert_candles(symbol.id, "1m", [row(20, quote=2.5)])  # outside the span: still a COPY
    rows = [row(i, price=50.0 + i, quote=None if i % 3 else 1.0 + i) for i in range(12)]
    rows[1] = rows[1]._replace(volume=-0.0, quote_volume=-0.0)
    assert upsert_candles(symbol.id, "1m", rows) == (12, 0)
    got = stored(symbol)[:12]
    assert [as_ms(r[0]) for r in got] == [r.open_time_ms for r in rows]
    assert [r[1:] for r in got] == [tuple(r[1:]) for r in rows]
    assert bits([got[1][5], got[1][6]]) == bits([0.0, 0.0])
    again = [r._replace(close=r.close + 0.5, high=r.high + 1) for r in rows[::2]] + [row(13)]
    assert upsert_candles(symbol.id, "1m", again, chunk_size=2) == (1, 6)
    assert [r[4] for r in stored(symbol)[:12:2]] == [r.close for r in again[:6]]


def test_postgresql_row_stored_behind_the_writers_back_fails_the_copy_and_stores_nothing(
    symbol, monkeypatch
):
    """The COPY trusts the probe it made under the series lock; a row another writer stored
    without that lock fails the call on the unique constraint, loudly, and leaves nothing of
    it behind. (The probe is made blind here by shifting the times it is given.)"""
    postgresql_only()
    from django.db import IntegrityError

    from markets.candles.backends import postgresql as backend

    upsert_candles(symbol.id, "1m", [row(1)])
    real = backend.ms_to_datetime
    monkeypatch.setattr(backend, "ms_to_datetime", lambda ms: real(ms + 10**10))
    with pytest.raises(IntegrityError, match="candle_unique_open_time"):
        upsert_candles(symbol.id, "1m", [row(0, price=9.0), row(1, price=9.0), row(2)])
    monkeypatch.undo()
    assert [(as_ms(r[0]), r[1]) for r in stored(symbol)] == [(T0 + MIN, 100.0)]


@pytest.mark.django_db(transaction=True)
def test_postgresql_concurrent_writers_of_one_series_take_turns_with_exact_counts(symbol):
    """Writer A holds its transaction open after writing minutes 0..5; writer B, writing
    minutes 3..8 meanwhile, waits for A's commit, then finds 3..5 stored (updated) and
    inserts 6..8. Without the series lock B's probe would not see A's uncommitted rows and
    its COPY would fail on them."""
    postgresql_only()
    import threading

    from django.db import connections, transaction

    a_written, a_may_commit, b_started = (threading.Event() for _ in range(3))
    results, errors = {}, []

    def writer_a():
        try:
            with transaction.atomic():
                results["a"] = upsert_candles(symbol.id, "1m", [row(i) for i in range(6)])
                a_written.set()
                a_may_commit.wait(10)
        except Exception as exc:  # reported by the main thread
            errors.append(exc)
            a_written.set()
        finally:
            connections.close_all()

    def writer_b():
        try:
            a_written.wait(10)
            b_started.set()
            results["b"] = upsert_candles(symbol.id, "1m", [row(i, 7.0) for i in range(3, 9)])
        except Exception as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=writer_a), threading.Thread(target=writer_b)]
    for t in threads:
        t.start()
    b_started.wait(10)
    threads[1].join(0.5)
    assert threads[1].is_alive(), "B did not wait for A's series lock"
    a_may_commit.set()
    for t in threads:
        t.join(20)
    assert not errors, errors
    assert results == {"a": (6, 0), "b": (3, 3)}
    assert [r[1] for r in stored(symbol)] == [100.0] * 3 + [7.0] * 6
