"""Binance spot and USDⓈ-M futures answers that client libraries depend on (issue 17's gaps):
klines from before the first candle, precision errors, the extra REST endpoints and streams."""

from __future__ import annotations

import pytest

from .helpers import BINANCE_KEY, BINANCE_SECRET, FUTURES_KEY, FUTURES_SECRET, binance_query

VENUES = {
    "spot": ("binance_url", "/api/v3", BINANCE_KEY, BINANCE_SECRET),
    "futures": ("futures_url", "/fapi/v1", FUTURES_KEY, FUTURES_SECRET),
}


async def get(http, sim, venue, path, **params):
    async with http.get(getattr(sim, VENUES[venue][0]) + path, params=params) as resp:
        return resp.status, await resp.json()


async def signed(http, sim, venue, method, path, **params):
    attr, _, key, secret = VENUES[venue]
    query = binance_query(params, secret, timestamp_ms=sim.clock_ms())
    url = f"{getattr(sim, attr)}{path}?{query}"
    async with http.request(method, url, headers={"X-MBX-APIKEY": key}) as resp:
        return resp.status, await resp.json()


@pytest.mark.parametrize("venue", ["spot", "futures"])
async def test_klines_from_before_the_first_candle_answer_the_first_candles(
    frozen_sim, http, venue
):
    path = VENUES[venue][1] + "/klines"
    status, every = await get(http, frozen_sim, venue, path, symbol="BTCUSDT", interval="1h")
    assert status == 200 and len(every) > 3
    for start in ("0", "1", str(every[0][0] - 86_400_000)):
        status, rows = await get(
            http, frozen_sim, venue, path, symbol="BTCUSDT", interval="1h", startTime=start, limit=3
        )
        assert (status, rows) == (200, every[:3]), start
    # A start inside the history still answers from that start on.
    status, rows = await get(
        http, frozen_sim, venue, path, symbol="BTCUSDT", interval="1h", startTime=every[2][0]
    )
    assert rows == every[2:]


PRECISION = {"code": -1111, "msg": "Precision is over the maximum defined for this asset."}


async def test_futures_refuse_too_many_decimals_with_the_precision_error(frozen_sim, http):
    order = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC"}
    status, info = await get(http, frozen_sim, "futures", "/fapi/v1/exchangeInfo")
    btc = next(s for s in info["symbols"] if s["symbol"] == "BTCUSDT")
    assert (btc["pricePrecision"], btc["quantityPrecision"]) == (2, 3)
    cases = [
        ({"quantity": "0.0011", "price": "50000.10"}, PRECISION),
        ({"quantity": "0.002", "price": "50000.101"}, PRECISION),
        ({"quantity": "0.002", "price": "50000.05"}, -4014),  # within pricePrecision, off-tick
    ]
    for extra, expected in cases:
        status, body = await signed(
            http, frozen_sim, "futures", "POST", "/fapi/v1/order", **order, **extra
        )
        assert status == 400, extra
        assert (body if isinstance(expected, dict) else body["code"]) == expected, extra
    status, body = await signed(
        http, frozen_sim, "futures", "POST", "/fapi/v1/algoOrder", algoType="CONDITIONAL",
        symbol="BTCUSDT", side="SELL", type="STOP_MARKET", quantity="0.0015",
        triggerPrice="40000.0", clientAlgoId="sl-precise",
    )
    assert (status, body) == (400, PRECISION)


async def test_spot_refuses_more_than_eight_decimals_and_filters_the_rest(frozen_sim, http):
    order = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC"}
    status, body = await signed(
        http, frozen_sim, "spot", "POST", "/api/v3/order",
        **order, quantity="0.000100001", price="50000.00",
    )
    assert (status, body) == (
        400, {"code": -1111, "msg": "Parameter 'quantity' has too much precision."}
    )
    status, body = await signed(
        http, frozen_sim, "spot", "POST", "/api/v3/order",
        **order, quantity="0.0001", price="50000.001",
    )
    assert (status, body) == (400, {"code": -1013, "msg": "Filter failure: PRICE_FILTER"})


async def test_futures_minimum_notional_is_per_symbol(frozen_sim, http):
    status, info = await get(http, frozen_sim, "futures", "/fapi/v1/exchangeInfo")
    least = {
        s["symbol"]: next(f["notional"] for f in s["filters"] if f["filterType"] == "MIN_NOTIONAL")
        for s in info["symbols"]
    }
    assert (least["BTCUSDT"], least["ETHUSDT"]) == ("100", "20")
    status, body = await signed(
        http, frozen_sim, "futures", "POST", "/fapi/v1/order", symbol="BTCUSDT", side="BUY",
        type="LIMIT", timeInForce="GTC", quantity="0.001", price="50000.0",
    )
    assert (status, body) == (400, {
        "code": -4164,
        "msg": "Order's notional must be no smaller than 100 (unless you choose reduce only).",
    })
