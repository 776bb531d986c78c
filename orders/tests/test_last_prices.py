"""The last price of a symbol (``orders.equity.last_prices``): what every valuation, risk gate,
order ticket and dashboard reads. The newest 1m close, else the newest close of any timeframe,
and its cost must not grow with the history stored: with a year of 1m candles the "any
timeframe" part alone sorted all of a symbol's rows (~0.1 s a symbol on every chart page and
every valuation)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import connection

from markets.candles import upsert_candles
from markets.models import Symbol
from markets.timeframes import timeframe_ms
from orders.equity import last_prices
from orders.tests.conftest import MINUTE, T0, store

HOUR = 60 * MINUTE


def closes(symbol, timeframe, values, start=T0):
    step = timeframe_ms(timeframe)
    upsert_candles(symbol.pk, timeframe, [(start + i * step, v, v * 1.01, v * 0.99, v, 1.0)
                                          for i, v in enumerate(values)])

pytestmark = pytest.mark.django_db


def test_the_newest_1m_close_else_the_newest_close_of_any_timeframe(exchange, symbol):
    hourly_only = Symbol.objects.create(exchange=exchange, code="KRW-ETH", base="ETH",
                                        quote="KRW")
    empty = Symbol.objects.create(exchange=exchange, code="KRW-XRP", base="XRP", quote="KRW")
    closes(symbol, "1m", [100.0, 101.0, 102.5])
    # A newer 1h candle does not win over the 1m close: 1m is the last trade's price.
    closes(symbol, "1h", [90.0], start=T0 + HOUR)
    closes(hourly_only, "1d", [6.5])
    closes(hourly_only, "1h", [7.0, 8.25])
    assert last_prices([symbol.pk, hourly_only.pk, empty.pk]) == {
        symbol.pk: Decimal("102.5"), hourly_only.pk: Decimal("8.25")}
    assert last_prices([]) == {}


def _vm_steps(call) -> int:
    """SQLite virtual-machine steps (in thousands) ``call`` makes: a count of the work the
    queries do, the same on every machine."""
    connection.ensure_connection()
    steps = [0]

    def count():
        steps[0] += 1
        return 0

    connection.connection.set_progress_handler(count, 1000)
    try:
        call()
    finally:
        connection.connection.set_progress_handler(None, 1000)
    return steps[0]


def test_the_last_price_does_not_read_more_when_more_history_is_stored(exchange, symbol):
    if connection.vendor != "sqlite":
        pytest.skip("counts SQLite's virtual-machine steps")
    store(symbol, [100.0 + (i % 7) for i in range(500)])
    short = _vm_steps(lambda: last_prices([symbol.pk]))
    store(symbol, [100.0 + (i % 7) for i in range(20_000)], start=T0 + 500 * MINUTE)
    long = _vm_steps(lambda: last_prices([symbol.pk]))
    assert last_prices([symbol.pk]) == {symbol.pk: Decimal(repr(100.0 + 19_999 % 7))}
    # 41 times the rows: a read of them all would take ~40 times the steps.
    assert long <= short + 2, (short, long)
