"""The screener: figures from candles and the ranking, checked against hand-computed values;
the hourly job storing them; the actions on the ranking."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from markets.candles import upsert_candles
from markets.models import Symbol
from strategies import screener, screening
from strategies.base import Candles
from strategies.models import ParamVersion, StrategyConfig, SymbolScreen
from strategies.optimization import OptimizationError
from strategies.screener import Figures

HALF_DAY = 43_200_000


def test_figures_match_a_hand_computed_example():
    rows = [  # open, high, low, close, volume; one candle per 12 hours
        (100, 100, 100, 100, 1),
        (100, 110, 90, 100, 2),
        (100, 105, 95, 102, 3),
        (102, 120, 100, 110, 1),
    ]
    candles = Candles.from_arrays([i * HALF_DAY for i in range(4)], *zip(*rows))
    f = screener.figures(candles, HALF_DAY, atr_period=2)
    # True ranges of the last two candles: max(10, 5, 5) = 10 and max(20, 18, 2) = 20.
    assert f.atr_pct == pytest.approx(15 / 110 * 100)
    # The last 24 hours are the last two candles: high 120, low 95.
    assert f.range_24h_pct == pytest.approx(25 / 95 * 100)
    assert f.traded_value_24h == pytest.approx(102 * 3 + 110 * 1)
    assert f.momentum_pct == pytest.approx(10.0)  # 110 against the close before the window, 100
    assert f.last_close == 110


def test_figures_without_enough_history_leave_the_missing_ones_empty():
    candles = Candles.from_arrays([0], [100], [101], [99], [100], [5])
    f = screener.figures(candles, HALF_DAY, atr_period=14)
    assert f.atr_pct is None and f.momentum_pct is None
    assert f.range_24h_pct == pytest.approx(2 / 99 * 100)
    assert screener.figures(Candles.from_arrays([], [], [], [], [], []), HALF_DAY) is None


def test_ranking_matches_a_hand_computed_example():
    rows = {
        "A": Figures(1, atr_pct=1.0, range_24h_pct=5.0, traded_value_24h=1000, momentum_pct=2.0),
        "B": Figures(1, atr_pct=2.0, range_24h_pct=3.0, traded_value_24h=500, momentum_pct=None),
        "C": Figures(1, atr_pct=1.0, range_24h_pct=4.0, traded_value_24h=2000, momentum_pct=-1.0),
    }
    ranked = screener.rank(rows)
    # Percentile ranks (ties share 0.25): A (0.25, 1, 0.5, 1), B (1, 0, 0, 0), C (0.25, 0.5, 1, 0.5)
    assert [(r.key, r.rank) for r in ranked] == [("A", 1), ("C", 2), ("B", 3)]
    assert [r.score for r in ranked] == pytest.approx([0.6875, 0.5625, 0.25])


def test_equal_scores_are_ordered_by_traded_value_then_code():
    same = Figures(1, 1.0, 1.0, 10.0, 1.0)
    ranked = screener.rank({"Y": same, "X": same})
    assert [r.key for r in ranked] == ["X", "Y"]
    assert screener.rank({}) == []
    assert screener.rank({"solo": same})[0].score == 1.0


# ---------------------------------------------------------------------------- the database side

MIN = 60_000
T0 = 1_704_067_200_000  # 2024-01-01 00:00 UTC
NOW = dt.datetime.fromtimestamp((T0 + 2 * 86_400_000) / 1000, tz=dt.UTC)


def store_flat(symbol, *, price, swing, volume, drift=0.0):
    """Two days of 1m candles around ``price`` with a high-low swing of ``swing`` (fraction)."""
    rows = []
    for i in range(2 * 1440):
        close = price * (1 + drift * i / 2880)
        rows.append((T0 + i * MIN, close, close * (1 + swing), close * (1 - swing), close, volume))
    upsert_candles(symbol.pk, "1m", rows)


@pytest.fixture
def venue(exchange, symbol):
    eth = Symbol.objects.create(exchange=exchange, code="KRW-ETH", base="ETH", quote="KRW",
                                min_notional=Decimal("5000"), is_active=False)
    xrp = Symbol.objects.create(exchange=exchange, code="KRW-XRP", base="XRP", quote="KRW",
                                min_notional=Decimal("5000"))
    store_flat(symbol, price=100.0, swing=0.001, volume=10)
    store_flat(eth, price=50.0, swing=0.004, volume=30, drift=0.05)
    store_flat(xrp, price=10.0, swing=0.002, volume=1, drift=-0.02)
    return {"btc": symbol, "eth": eth, "xrp": xrp}


@pytest.mark.django_db
def test_hourly_job_ranks_each_venue_and_stores_the_figures(venue, settings):
    from strategies import tasks

    settings.SCREENER_TIMEFRAME = "1m"
    assert screening.screen_all(now=NOW) == 3
    screens = {s.symbol.code: s for s in SymbolScreen.objects.select_related("symbol")}
    # ETH swings most, trades the most value and rises: first on every figure.
    assert screens["KRW-ETH"].rank == 1 and screens["KRW-ETH"].score == 1.0
    assert screens["KRW-ETH"].atr_pct == pytest.approx(0.8, rel=1e-3)  # 2 × 0.4 % of a close
    assert screens["KRW-ETH"].traded_value_24h == pytest.approx(
        sum(50.0 * (1 + 0.05 * i / 2880) * 30 for i in range(1440, 2880)), rel=1e-9)
    assert sorted(s.rank for s in screens.values()) == [1, 2, 3]
    assert tasks.screen_symbols.name == "strategies.tasks.screen_symbols"


@pytest.mark.django_db
def test_screener_actions_activate_a_symbol_and_set_dual_momentum_peers(
    venue, make_trader, make_account
):
    screening.screen_all(now=NOW)
    screening.activate_symbol(venue["eth"])
    venue["eth"].refresh_from_db()
    assert venue["eth"].is_active

    owner = make_trader("dm")
    config = StrategyConfig.objects.create(
        owner=owner, name="dm", strategy="dual_momentum", params={"window": 12},
        symbol=venue["btc"], account=make_account(owner),
    )
    version = screening.set_top_symbols(config, 1, by=owner)
    config.refresh_from_db()
    assert config.params["symbols"] == ["KRW-ETH"]  # the best other than its own symbol
    assert version.source == ParamVersion.Source.MANUAL and version.number == 2
    screening.set_top_symbols(config, 5)
    config.refresh_from_db()
    assert config.params["symbols"] == ["KRW-ETH", "KRW-XRP"]

    config.strategy = "rsi"
    with pytest.raises(OptimizationError,
                       match=r"only strategies with a symbols parameter take a symbols list "
                       r"\(dual_momentum\)"):
        screening.set_top_symbols(config, 2)


@pytest.mark.django_db
def test_screening_writes_the_figures_in_bulk_and_updates_them_in_place(
    venue, settings, django_assert_max_num_queries
):
    """Issue 20: two queries per symbol (update_or_create) were 40 % of the screener at 500
    symbols. Now: a candle load per symbol and a fixed number of other queries."""
    settings.SCREENER_TIMEFRAME = "1m"
    exchange = venue["btc"].exchange
    for i in range(9):
        extra = Symbol.objects.create(exchange=exchange, code=f"KRW-X{i}", base=f"X{i}",
                                      quote="KRW", min_notional=Decimal("5000"))
        store_flat(extra, price=20.0 + i, swing=0.001 * (i + 1), volume=5)
    n = Symbol.objects.filter(exchange=exchange).count()
    with django_assert_max_num_queries(n + 8):
        first = screening.screen_exchange(exchange, now=NOW)
    ids = {s.symbol_id: s.pk for s in SymbolScreen.objects.all()}
    assert len(first) == n == len(ids) and all(s.pk for s in first)
    later = NOW + dt.timedelta(minutes=5)
    with django_assert_max_num_queries(n + 8):
        again = screening.screen_exchange(exchange, now=later)
    assert {s.symbol_id: s.pk for s in SymbolScreen.objects.all()} == ids  # updated, not new
    assert all(s.computed_at == later for s in SymbolScreen.objects.all())
    assert [s.rank for s in again] == list(range(1, n + 1))
    stored = {s.symbol.code: s for s in SymbolScreen.objects.select_related("symbol")}
    assert stored["KRW-ETH"].rank == 1 and stored["KRW-ETH"].atr_pct == pytest.approx(0.8, 1e-3)
