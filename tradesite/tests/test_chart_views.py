"""The candles API, the chart page's embedded data, and the markets overview."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import numpy as np
import pytest
from django.urls import reverse

from markets.candles import load_candles, upsert_candles
from orders.models import Fill, Order, Position
from strategies import indicators as ind
from strategies.models import Signal, StrategyConfig
from tradesite.views import INDICATORS, overlays_for

pytestmark = pytest.mark.django_db

T0 = 1_704_067_200_000  # 2024-01-01T00:00:00Z
MINUTE = 60_000


def store(symbol, n: int, tf: str = "1m", step: int = MINUTE, start: int = T0) -> np.ndarray:
    rng = np.random.default_rng(3)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0, 0.002, n)))
    open_ = np.concatenate(([100.0], close[:-1]))
    rows = [
        (start + i * step, open_[i], max(open_[i], close[i]) * 1.001,
         min(open_[i], close[i]) * 0.999, close[i], 1.0 + i % 7)
        for i in range(n)
    ]
    upsert_candles(symbol.pk, tf, rows)
    return close


@pytest.fixture
def trader(make_trader):
    return make_trader("alice")


@pytest.fixture
def logged_in(client, trader):
    client.force_login(trader)
    return client


def get_candles(client, **params):
    params = {"venue": "sim", "symbol": "KRW-BTC", "timeframe": "1m", **params}
    return client.get(reverse("api:candles"), params)


def test_candles_api_needs_a_login(client, symbol):
    response = get_candles(client)
    assert response.status_code == 401
    assert response.json()["error"].startswith("log in, or send an API token")


@pytest.mark.parametrize(
    "params, message",
    [
        ({"timeframe": "2m"}, "unknown timeframe '2m'"),
        ({"limit": "5001"}, "limit must be between 1 and 5000, got 5001"),
        ({"limit": "0"}, "limit must be between 1 and 5000, got 0"),
        ({"before": "yesterday"}, "before must be a whole number"),
        ({"before": "1", "after": "2"}, "give before (older candles) or after"),
        ({"indicators": "sma9"}, "unknown indicator(s) sma9"),
        ({"symbol": ""}, "missing parameter(s): symbol"),
    ],
)
def test_candles_api_explains_a_malformed_query(logged_in, symbol, params, message):
    response = get_candles(logged_in, **params)
    assert response.status_code == 400
    assert response.json()["error"].startswith(message)


def test_candles_api_answers_404_for_an_unknown_symbol(logged_in, symbol):
    response = get_candles(logged_in, symbol="KRW-DOGE")
    assert response.status_code == 404
    assert response.json() == {"error": "no active symbol 'KRW-DOGE' on venue 'sim'"}


def test_candles_api_gives_the_newest_candles_oldest_first_as_columns(logged_in, symbol):
    close = store(symbol, 50)
    body = get_candles(logged_in, limit=10).json()
    assert body["timeframe"] == "1m"
    assert body["candles"]["t"] == [T0 + i * MINUTE for i in range(40, 50)]
    assert body["candles"]["c"] == close[40:].tolist()
    assert set(body["candles"]) == {"t", "o", "h", "l", "c", "v"}
    assert "indicators" not in body


def test_scrolling_left_pages_through_older_candles_without_overlap(logged_in, symbol):
    store(symbol, 50)
    newest = get_candles(logged_in, limit=20).json()["candles"]["t"]
    older = get_candles(logged_in, limit=20, before=newest[0]).json()["candles"]["t"]
    oldest = get_candles(logged_in, limit=20, before=older[0]).json()["candles"]["t"]
    assert oldest + older + newest == [T0 + i * MINUTE for i in range(50)]
    assert len(oldest) == 10
    assert get_candles(logged_in, before=T0).json()["candles"]["t"] == []


def test_after_gives_the_candles_missed_since_a_time(logged_in, symbol):
    store(symbol, 50)
    body = get_candles(logged_in, after=T0 + 45 * MINUTE, limit=100).json()
    assert body["candles"]["t"] == [T0 + i * MINUTE for i in range(45, 50)]
    limited = get_candles(logged_in, after=T0 + 10 * MINUTE, limit=3).json()
    assert limited["candles"]["t"] == [T0 + i * MINUTE for i in range(10, 13)]


def test_indicators_are_the_full_series_values_even_at_the_first_returned_candle(
    logged_in, symbol
):
    close = store(symbol, 600)
    body = get_candles(logged_in, limit=100, before=T0 + 500 * MINUTE, indicators="all").json()
    times = body["candles"]["t"]
    assert times[0] == T0 + 400 * MINUTE
    window = slice(400, 500)
    expected = {
        ("sma120", "value"): ind.sma(close, 120)[window],
        ("sma7", "value"): ind.sma(close, 7)[window],
        ("bb", "upper"): ind.bollinger(close, 20, 2.0)[0][window],
        ("rsi", "value"): ind.rsi(close, 14)[window],
        ("macd", "hist"): ind.macd(close, 12, 26, 9)[2][window],
    }
    for (name, line), values in expected.items():
        column = body["indicators"][name][line]
        assert column["start"] == 0, name
        np.testing.assert_allclose(column["v"], values, rtol=1e-9, err_msg=name)
    assert set(body["indicators"]) == set(INDICATORS)


def test_indicators_start_where_the_history_allows(logged_in, symbol):
    store(symbol, 30)
    body = get_candles(logged_in, indicators="sma20,sma120").json()
    assert body["indicators"]["sma20"]["value"]["start"] == 19
    assert body["indicators"]["sma120"]["value"] == {"start": 30, "v": []}


def test_gap_fill_indicators_use_the_warm_up_before_after(logged_in, symbol):
    close = store(symbol, 400)
    body = get_candles(logged_in, after=T0 + 390 * MINUTE, indicators="sma120").json()
    assert body["candles"]["t"][0] == T0 + 390 * MINUTE
    np.testing.assert_allclose(
        body["indicators"]["sma120"]["value"]["v"], ind.sma(close, 120)[390:], rtol=1e-9
    )


def test_5000_candles_are_served_in_one_request(logged_in, symbol):
    # How quickly is measured by `make bench` (bench_charts), not here.
    store(symbol, 6000)
    response = get_candles(logged_in, limit=5000)
    assert len(response.json()["candles"]["t"]) == 5000


# -- pages --------------------------------------------------------------------------------------


def test_chart_page_sends_anonymous_users_to_the_login(client, symbol):
    response = client.get(reverse("chart", args=["sim", "KRW-BTC"]))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))


def test_chart_page_of_an_unknown_symbol_is_404(logged_in, symbol):
    assert logged_in.get(reverse("chart", args=["sim", "KRW-DOGE"])).status_code == 404


def page_data(response) -> dict:
    html = response.content.decode()
    start = html.index('<script id="chart-data" type="application/json">')
    start = html.index(">", start) + 1
    return json.loads(html[start : html.index("</script>", start)])


@pytest.fixture
def config(trader, symbol, make_account):
    return StrategyConfig.objects.create(
        owner=trader, name="bb", strategy="bollinger", params={}, symbol=symbol,
        account=make_account(trader), is_active=True,
    )


def test_chart_page_embeds_candles_overlays_and_only_the_users_own_rows(
    logged_in, trader, make_trader, make_account, symbol, config
):
    store(symbol, 1200)
    bar_time = dt.datetime.fromtimestamp((T0 + 1190 * MINUTE) / 1000, tz=dt.UTC)
    mine = Signal.objects.create(
        config=config, symbol=symbol, timeframe="1m", bar_time=bar_time, action="enter_long",
        price=Decimal("101.5"), reason={"close_below_lower": True},
    )
    bob = make_trader("bob")
    bobs_config = StrategyConfig.objects.create(
        owner=bob, name="bb", strategy="bollinger", symbol=symbol, account=make_account(bob),
    )
    Signal.objects.create(config=bobs_config, symbol=symbol, timeframe="1m", bar_time=bar_time,
                          action="enter_short", price=Decimal("101.5"))
    order = Order.objects.create(account=config.account, config=config, symbol=symbol,
                                 side="buy", type="market", quantity=Decimal("0.5"),
                                 client_order_id="c-1", status="filled")
    Fill.objects.create(order=order, trade_id="t1", price=Decimal("101.6"),
                        quantity=Decimal("0.5"), ts=bar_time)
    Position.objects.create(account=config.account, config=config, symbol=symbol, side="long",
                            quantity=Decimal("0.5"), entry_price=Decimal("101.6"),
                            stop_price=Decimal("99"), target_price=Decimal("105"),
                            opened_at=bar_time)

    response = logged_in.get(reverse("chart", args=["sim", "KRW-BTC"]) + "?tf=1m")
    assert response.status_code == 200
    data = page_data(response)
    assert len(data["candles"]["t"]) == 1000
    assert data["candles"]["t"][-1] == T0 + 1199 * MINUTE
    assert data["overlays"] == ["bb"]
    assert set(data["indicators"]) == {"bb"}  # the others load when toggled
    assert set(data["indicator_labels"]) == set(INDICATORS)
    assert [s["id"] for s in data["signals"]] == [mine.pk]
    assert data["signals"][0]["reason"] == {"close_below_lower": True}
    assert data["signals"][0]["symbol"] == "sim:KRW-BTC"
    assert [f["price"] for f in data["fills"]] == ["101.6"]
    assert data["positions"][0]["stop_price"] == "99"
    assert data["ws"] == "/ws/chart/sim/KRW-BTC/"
    assert "markets" not in data  # the picker is in the HTML only
    html = response.content.decode()
    assert '<option value="/chart/sim/KRW-BTC/" selected>KRW-BTC</option>' in html


def test_overlays_follow_what_the_active_configs_look_at():
    def cfg(strategy, **params):
        return StrategyConfig(strategy=strategy, params=params)

    assert overlays_for([cfg("ma_cross", short=7, mid=20, long=120)]) == [
        "sma7", "sma20", "sma120"]
    assert overlays_for([cfg("rsi"), cfg("macd_turtle"), cfg("bollinger")]) == [
        "rsi", "macd", "sma20", "bb"]
    assert overlays_for([cfg("ma_cross", short=5, mid=30, long=90)]) == []


def test_markets_overview_lists_last_price_and_24h_change(logged_in, symbol):
    store(symbol, 30, tf="1h", step=3_600_000)
    hourly = load_candles(symbol.pk, "1h", limit=24)
    minute_close = store(symbol, 3, start=T0 + 30 * 3_600_000)
    response = logged_in.get(reverse("markets"))
    assert response.status_code == 200
    html = response.content.decode()
    assert 'href="/chart/sim/KRW-BTC/"' in html
    row = response.context["venues"][0]["symbols"][0]
    assert row["last"] == minute_close[-1]
    assert row["ref"] == hourly.open[0]
    assert row["change_pct"] == pytest.approx((minute_close[-1] / hourly.open[0] - 1) * 100)
    assert row["spark"] == hourly.close.tolist()
