"""The C reader of stored SQLite candles (``markets._sqlite_columns``): the same arrays, bit for
bit, as the sqlite3 module's; one SQLite copy in the process; never where it cannot see what
Django's connection sees (a transaction, an in-memory database); the builder builds."""

from __future__ import annotations

import datetime as dt
import importlib.util
import logging
import os
import random
import shutil
import sqlite3

import numpy as np
import pytest
from django.db import connections, transaction
from hypothesis import given, settings
from hypothesis import strategies as st

from markets import sqlite_columns
from markets.candles import find_gaps, load_candles, upsert_candles
from markets.candles.backends import sqlite as candles_module
from markets.csvio import CandleRow

T0 = 1_704_067_200_000  # 2024-01-01T00:00:00Z
MIN = 60_000
ALIAS = "candles_c_file"

#: `make test` builds the module; with CI=true these tests must run, not skip (as the browser
#: tests), so a build that silently failed shows up as failures.
IN_CI = os.environ.get("CI") == "true"
needs_module = pytest.mark.skipif(
    not sqlite_columns.AVAILABLE and not IN_CI,
    reason="markets._sqlite_columns not built: python -m markets.sqlite_columns_build",
)

EXTREMES = [5e-324, 2.2250738585072014e-308, 1e-300, 0.1, 0.30000000000000004,
            1.7976931348623157e308, 123456789.12345679, 1.0 + 2**-52]


def random_rows(n: int, seed: int) -> list[CandleRow]:
    """Random valid candles with gaps (some minutes missing) and extreme prices and volumes."""
    rnd = random.Random(seed)
    rows, minute = [], 0
    for _ in range(n):
        minute += 1 if rnd.random() < 0.9 else rnd.randint(2, 50)  # a gap now and then
        prices = sorted(
            rnd.choice(EXTREMES) if rnd.random() < 0.05 else rnd.uniform(1e-8, 1e6)
            for _ in range(4)
        )
        low, high = prices[0], prices[3]
        opn, close = (prices[1], prices[2]) if rnd.random() < 0.5 else (prices[2], prices[1])
        volume = rnd.choice([0.0, 5e-324, 1.7976931348623157e308, rnd.expovariate(1e-3)])
        rows.append(CandleRow(T0 + minute * MIN, opn, high, low, close, volume, None))
    return rows


def scratch_db(name: str, django_db_blocker):
    """A SQLite database under its own alias holding the candle tables and one symbol."""
    from markets.models import Candle, Exchange, Symbol

    settings = dict(connections.settings["default"])
    settings.update({
        "ENGINE": "django.db.backends.sqlite3", "NAME": name,
        "OPTIONS": {}, "HOST": "", "PORT": "", "USER": "", "PASSWORD": "",
        "TEST": {"NAME": None},
    })
    connections.settings[ALIAS] = settings
    with django_db_blocker.unblock():
        with connections[ALIAS].schema_editor() as editor:
            for model in (Exchange, Symbol, Candle):
                editor.create_model(model)
        exchange = Exchange.objects.using(ALIAS).create(
            slug="sim", name="Sim", adapter="upbit", rest_url="http://127.0.0.1:1",
            ws_url="ws://127.0.0.1:1",
        )
        symbol_id = Symbol.objects.using(ALIAS).create(
            exchange=exchange, code="KRW-BTC", base="BTC", quote="KRW").id
        try:
            yield symbol_id
        finally:
            connections[ALIAS].close()
            del connections[ALIAS]
            del connections.settings[ALIAS]


@pytest.fixture
def file_db(tmp_path, django_db_blocker):
    yield from scratch_db(str(tmp_path / "candles.sqlite3"), django_db_blocker)


@pytest.fixture
def memory_db(django_db_blocker):
    yield from scratch_db(":memory:", django_db_blocker)


@pytest.fixture
def c_calls(monkeypatch):
    """Counts the C reader's reads (it still reads)."""
    calls = []
    real = sqlite_columns.read_columns

    def counting(*args, **kwargs):
        calls.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(sqlite_columns, "read_columns", counting)
    return calls


def bits(a: np.ndarray) -> bytes:
    return np.ascontiguousarray(a).tobytes()


def assert_same(got, want):
    assert len(got) == len(want)
    for name in ("open_time_ms", "open", "high", "low", "close", "volume"):
        g, w = getattr(got, name), getattr(want, name)
        assert g.dtype == w.dtype and g.flags.c_contiguous
        assert bits(g) == bits(w), name


def test_uses_the_same_sqlite_copy_as_python():
    if not sqlite_columns.AVAILABLE:  # then it must be because it is not built or differs
        assert not IN_CI, "CI builds markets._sqlite_columns (make install-dev); it is missing"
        assert sqlite_columns._MODULE is None
        return
    ffi, lib = sqlite_columns._MODULE
    assert ffi.string(lib.sqlite3_libversion()).decode() == sqlite3.sqlite_version
    assert sqlite_columns.same_sqlite_copy()


@needs_module
def test_c_reader_gives_the_sqlite3_modules_arrays_bit_for_bit(file_db, c_calls, monkeypatch,
                                                              django_db_blocker):
    monkeypatch.setattr(candles_module, "C_READER_MIN_ROWS", 0)
    rows = random_rows(3_000, seed=11)
    with django_db_blocker.unblock():
        assert upsert_candles(file_db, "1m", rows, using=ALIAS) == (len(rows), 0)
        times = [r[0] for r in rows]
        rnd = random.Random(5)
        cases = [dict(), dict(limit=0), dict(limit=1), dict(limit=2_999), dict(limit=10_000),
                 dict(start_ms=times[0]), dict(end_ms=times[-1] + MIN),
                 dict(start_ms=times[0] - 7 * MIN, end_ms=times[0]),  # nothing stored there
                 dict(start_ms=times[-1] + MIN)]
        for _ in range(12):
            a, b = sorted(rnd.sample(range(times[0] - 5 * MIN, times[-1] + 5 * MIN, MIN), 2))
            limit = rnd.randint(1, 900)
            case = rnd.choice([dict(start_ms=a, end_ms=b), dict(end_ms=b, limit=limit),
                               dict(start_ms=a, limit=limit),
                               dict(start_ms=a, end_ms=b, limit=limit)])
            cases.append(case)
        for case in cases:
            before = len(c_calls)
            got = load_candles(file_db, "1m", using=ALIAS, **case)
            assert len(c_calls) == before + 1, case
            monkeypatch.setattr(sqlite_columns, "AVAILABLE", False)
            want = load_candles(file_db, "1m", using=ALIAS, **case)
            monkeypatch.setattr(sqlite_columns, "AVAILABLE", True)
            assert_same(got, want)
        # The newest ``limit`` (read newest first, handed back oldest first) are the last rows.
        newest = load_candles(file_db, "1m", limit=500, using=ALIAS)
        assert newest.open_time_ms.tolist() == times[-500:]
        assert newest.open.tolist() == [r[1] for r in rows[-500:]]
        # Times only (find_gaps): the same gaps both ways.
        gaps = find_gaps(file_db, "1m", times[0], times[-1], using=ALIAS)
        monkeypatch.setattr(sqlite_columns, "AVAILABLE", False)
        assert gaps == find_gaps(file_db, "1m", times[0], times[-1], using=ALIAS)
        assert gaps  # the data has gaps


@needs_module
def test_plain_reads_go_through_the_collector_and_limited_ones_step(file_db, c_calls, caplog,
                                                                   django_db_blocker):
    """Ascending reads without a limit hand each row to the ``tradesite_collect`` aggregate;
    reads with a limit (or newest first) step an ORDER BY statement."""
    caplog.set_level(logging.INFO, logger="markets.sqlite_columns")
    with django_db_blocker.unblock():
        upsert_candles(file_db, "1m", random_rows(30_000, seed=8), using=ALIAS)
        load_candles(file_db, "1m", using=ALIAS)
        load_candles(file_db, "1m", start_ms=T0, end_ms=T0 + 100_000 * MIN, using=ALIAS)
        load_candles(file_db, "1m", limit=25_000, using=ALIAS)
        load_candles(file_db, "1m", start_ms=T0, limit=25_000, using=ALIAS)
    assert [c["collect_sql"] is not None for c in c_calls] == [True, True, False, False]
    assert all(c["span_sql"] and c["step"] == MIN for c in c_calls)
    assert "not come in open-time order" not in caplog.text  # the collector read them


def off_step_rows(symbol_id: int, times_ms: list[int]) -> None:
    """Candles at open times ``upsert_candles`` refuses (off the timeframe's step), written the
    way a hand edit or another tool would: through the ORM."""
    from markets.models import Candle

    Candle.objects.using(ALIAS).bulk_create(
        Candle(symbol_id=symbol_id, timeframe="1m", open=1.0, high=2.0, low=0.5, close=1.5,
               volume=3.0, open_time=dt.datetime.fromtimestamp(t / 1000, dt.UTC))
        for t in times_ms
    )


class CountingLib:
    """The C module's functions, counting the calls of ``sqlc_count`` (a count of the rows)."""

    def __init__(self, lib):
        self._lib = lib
        self.counts = 0

    def __getattr__(self, name):
        return getattr(self._lib, name)

    def sqlc_count(self, *args):
        self.counts += 1
        return self._lib.sqlc_count(*args)


@needs_module
def test_open_times_off_the_step_are_counted_not_lost(file_db, monkeypatch, caplog,
                                                      django_db_blocker):
    """More rows than the span holds at one per minute: the reader counts and reads again
    (no row lost, no fallback to the slow reader)."""
    monkeypatch.setattr(candles_module, "C_READER_MIN_ROWS", 0)
    ffi, lib = sqlite_columns._MODULE
    counting = CountingLib(lib)
    monkeypatch.setattr(sqlite_columns, "_MODULE", (ffi, counting))
    # Every minute of the span stored: the span holds exactly the on-step rows, no spare room.
    rows = [row._replace(open_time_ms=T0 + i * MIN)
            for i, row in enumerate(random_rows(2_000, seed=6))]
    with django_db_blocker.unblock():
        upsert_candles(file_db, "1m", rows, using=ALIAS)
        times = [r[0] for r in rows]
        off_step_rows(file_db, [t + 30_000 for t in times[:700]] + [t + 1_500 for t in times[:5]])
        # (case, whether the span is short): the oldest 1,000 fit in a span of 2,000.
        for case, short in ((dict(), True), (dict(start_ms=times[0], end_ms=times[600]), True),
                            (dict(limit=2_500), True), (dict(start_ms=times[0], limit=1_000),
                                                        False)):
            before = counting.counts
            got = load_candles(file_db, "1m", using=ALIAS, **case)
            assert counting.counts - before == int(short), case
            monkeypatch.setattr(sqlite_columns, "AVAILABLE", False)
            want = load_candles(file_db, "1m", using=ALIAS, **case)
            monkeypatch.setattr(sqlite_columns, "AVAILABLE", True)
            assert_same(got, want)
        assert len(load_candles(file_db, "1m", using=ALIAS)) == 2_000 + 705
    assert "C reader failed" not in caplog.text


@needs_module
def test_a_stray_open_time_decades_away_is_sized_by_a_count(file_db, monkeypatch,
                                                            django_db_blocker):
    """A span of 50 years of minutes would be 26M rows of arrays; a count sizes them."""
    monkeypatch.setattr(candles_module, "C_READER_MIN_ROWS", 0)
    rows = random_rows(300, seed=9)
    stray = T0 - 50 * 365 * 1440 * MIN
    allocated = []
    real_empty = np.empty

    def recording_empty(n, *args, **kwargs):
        allocated.append(n)
        return real_empty(n, *args, **kwargs)

    with django_db_blocker.unblock():
        upsert_candles(file_db, "1m", [CandleRow(stray, 1.0, 2.0, 0.5, 1.5, 3.0, None), *rows],
                       using=ALIAS)
        monkeypatch.setattr(sqlite_columns.np, "empty", recording_empty)
        loaded = load_candles(file_db, "1m", using=ALIAS)
    assert loaded.open_time_ms.tolist() == [stray, *(r[0] for r in rows)]
    assert max(allocated) == 301


@needs_module
def test_sparse_series_arrays_are_trimmed_to_their_rows(file_db, monkeypatch,
                                                       django_db_blocker):
    """One candle an hour on a 1m series: the span would hold 60 times the rows; the arrays
    handed out own just their rows."""
    monkeypatch.setattr(candles_module, "C_READER_MIN_ROWS", 0)
    rows = [CandleRow(T0 + i * 60 * MIN, 1.0, 2.0, 0.5, 1.5, 3.0, None) for i in range(500)]
    with django_db_blocker.unblock():
        upsert_candles(file_db, "1m", rows, using=ALIAS)
        for case in (dict(), dict(limit=400), dict(start_ms=T0, limit=400)):
            loaded = load_candles(file_db, "1m", using=ALIAS, **case)
            for name in ("open_time_ms", "open", "volume"):
                array = getattr(loaded, name)
                owner = array if array.base is None else array.base
                assert owner.nbytes <= 2 * array.nbytes, (case, name)


def scratch_table(path, rows: list[tuple], index: bool) -> None:
    connection = sqlite3.connect(path)
    connection.execute("CREATE TABLE c (s INTEGER, tf TEXT, t, v REAL)")
    if index:
        connection.execute("CREATE UNIQUE INDEX c_key ON c (s, tf, t)")
    connection.executemany("INSERT INTO c VALUES (?, ?, ?, ?)", rows)
    connection.commit()
    connection.close()


def read_scratch(path, *, collect: bool, time_sql: str = "t", nvalues: int = 1):
    where = "s = ?1 AND tf = ?2"
    values = ", v" if nvalues else ""
    return sqlite_columns.read_columns(
        str(path), uri=False, timeout_s=1, count_sql=f"SELECT count(*) FROM c WHERE {where}",
        sql=f"SELECT {time_sql}{values} FROM c WHERE {where} ORDER BY t", symbol_id=1,
        texts=["1m"], limit=None, descending=False, nvalues=nvalues,
        collect_sql=f"SELECT tradesite_collect({time_sql}{values}) FROM c WHERE {where}"
        if collect else None)


@needs_module
def test_rows_that_do_not_come_in_time_order_are_read_with_order_by(tmp_path, caplog):
    """No index: the table is scanned in insertion order, here newest first. The collector
    notices and the reader steps the ORDER BY statement instead."""
    path = tmp_path / "unordered.sqlite3"
    scratch_table(path, [(1, "1m", T0 + i * MIN, float(i)) for i in reversed(range(100))],
                  index=False)
    with caplog.at_level(logging.INFO, logger="markets.sqlite_columns"):
        times, (values,) = read_scratch(path, collect=True)
    assert times.tolist() == [T0 + i * MIN for i in range(100)]
    assert values.tolist() == [float(i) for i in range(100)]
    assert "not come in open-time order" in caplog.text


#: Django's SQLite text for datetimes the model can hold (years 1-9999, microseconds).
datetimes = st.datetimes(min_value=dt.datetime(1, 1, 1), max_value=dt.datetime(9999, 12, 31, 23,
                                                                              59, 59, 999999))


@needs_module
@settings(max_examples=60, deadline=None)
@given(st.lists(datetimes, min_size=1, max_size=40, unique=True))
def test_stored_time_text_is_read_as_sqlites_unixepoch_reads_it(tmp_path_factory, moments):
    """The C parse of 'YYYY-MM-DD HH:MM:SS[.ffffff]' equals unixepoch() (fraction dropped),
    over the whole range Django stores, both readers."""
    path = tmp_path_factory.mktemp("times") / "times.sqlite3"
    scratch_table(path, [(1, "1m", str(m), 0.5) for m in sorted(moments)], index=True)
    want, _ = read_scratch(path, collect=False, time_sql="unixepoch(t) * 1000")
    for collect in (True, False):
        got, (values,) = read_scratch(path, collect=collect)
        assert got.tolist() == want.tolist()
        assert values.tolist() == [0.5] * len(moments)


@needs_module
@pytest.mark.parametrize("text", ["2024-01-01", "2024-01-01 00:00", "2024-13-01 00:00:00",
                                  "2024-01-01 24:00:00", "2024-01-01 00:00:00+00:00",
                                  "2024-01-01 00:00:00.", "2024/01/01 00:00:00", "garbage"])
@pytest.mark.parametrize("collect", [True, False])
def test_a_time_text_it_cannot_read_is_an_error_not_a_wrong_time(tmp_path, text, collect):
    path = tmp_path / "bad.sqlite3"
    scratch_table(path, [(1, "1m", "2024-01-01 00:00:00", 1.0), (1, "1m", text, 2.0)],
                  index=True)
    with pytest.raises(sqlite_columns.ReadError, match="open time is not an integer"):
        read_scratch(path, collect=collect)


@needs_module
def test_small_limits_and_transactions_keep_to_djangos_connection(file_db, c_calls,
                                                                  django_db_blocker):
    rows = random_rows(50, seed=3)
    with django_db_blocker.unblock():
        upsert_candles(file_db, "1m", rows, using=ALIAS)
        assert len(load_candles(file_db, "1m", using=ALIAS)) == 50
        assert len(c_calls) == 1
        assert len(load_candles(file_db, "1m", limit=10, using=ALIAS)) == 10
        assert len(c_calls) == 1  # below C_READER_MIN_ROWS
        with transaction.atomic(using=ALIAS):
            # Uncommitted rows: only Django's own connection can see them.
            upsert_candles(file_db, "1m", [CandleRow(T0, 1.0, 2.0, 0.5, 1.5, 3.0, None)],
                           using=ALIAS)
            loaded = load_candles(file_db, "1m", using=ALIAS)
            assert len(loaded) == 51 and loaded.open_time_ms[0] == T0
        assert len(c_calls) == 1
        assert len(load_candles(file_db, "1m", using=ALIAS)) == 51  # committed: C sees it
        assert len(c_calls) == 2


@needs_module
def test_in_memory_database_keeps_to_djangos_connection(memory_db, c_calls, django_db_blocker):
    with django_db_blocker.unblock():
        assert connections[ALIAS].is_in_memory_db()
        upsert_candles(memory_db, "1m", random_rows(20, seed=1), using=ALIAS)
        assert len(load_candles(memory_db, "1m", using=ALIAS)) == 20
    assert c_calls == []


@needs_module
@pytest.mark.django_db(transaction=True)
def test_default_database_outside_a_transaction(symbol, c_calls):
    """What the site does: Django's own connection in autocommit (here the test database)."""
    connection = connections["default"]
    upsert_candles(symbol.id, "1m", random_rows(40, seed=4))
    loaded = load_candles(symbol.id, "1m")
    assert len(loaded) == 40
    fits = connection.vendor == "sqlite" and not connection.is_in_memory_db()
    assert len(c_calls) == (1 if fits else 0)


@needs_module
def test_a_failing_c_read_falls_back_to_the_sqlite3_module(file_db, monkeypatch, caplog,
                                                          django_db_blocker):
    rows = random_rows(30, seed=2)
    with django_db_blocker.unblock():
        upsert_candles(file_db, "1m", rows, using=ALIAS)
        settings = connections[ALIAS].settings_dict
        monkeypatch.setitem(settings, "NAME", settings["NAME"] + ".missing")
        # Django's connection stays open on the real file; the C reader cannot open the name.
        loaded = load_candles(file_db, "1m", using=ALIAS)
    assert loaded.open_time_ms.tolist() == [r[0] for r in rows]
    assert "C reader failed" in caplog.text and "open" in caplog.text


@needs_module
def test_c_reader_reports_sqlites_message(tmp_path):
    with pytest.raises(sqlite_columns.ReadError, match="no such table"):
        path = tmp_path / "empty.sqlite3"
        sqlite3.connect(path).close()
        sqlite_columns.read_columns(
            str(path), uri=False, timeout_s=1, count_sql="SELECT count(*) FROM missing_table",
            sql="SELECT 1", symbol_id=1, texts=[], limit=None, descending=False, nvalues=0)


@pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler")
def test_builder_builds_a_module_on_pythons_sqlite(tmp_path):
    from markets.sqlite_columns_build import build

    path = build(tmp_path / "out")
    assert path.parent == tmp_path / "out" and path.name.startswith("_sqlite_columns")
    spec = importlib.util.spec_from_file_location("markets._sqlite_columns", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert sqlite_columns._same_sqlite_problem(module.ffi, module.lib) is None
