"""The C reader of stored SQLite candles (``markets._sqlite_columns``): the same arrays, bit for
bit, as the sqlite3 module's; one SQLite copy in the process; never where it cannot see what
Django's connection sees (a transaction, an in-memory database); the builder builds."""

from __future__ import annotations

import importlib.util
import os
import random
import shutil
import sqlite3

import numpy as np
import pytest
from django.db import connections, transaction

from markets import candles as candles_module
from markets import sqlite_columns
from markets.candles import find_gaps, load_candles, upsert_candles
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
