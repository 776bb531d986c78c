"""Binance spot and USDⓈ-M futures answers that client libraries depend on (issue 17's gaps):
klines from before the first candle, precision errors, the extra REST endpoints and streams."""

from __future__ import annotations

import itertools
import json

import pytest

from .helpers import (
    BINANCE_KEY,
    BINANCE_SECRET,
    FUTURES_KEY,
    FUTURES_SECRET,
    PAYLOADS,
    binance_query,
    same_shape,
)

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


async def get_weight(http, sim, venue, path, **params):
    async with http.get(getattr(sim, VENUES[venue][0]) + path, params=params) as resp:
        return resp.status, int(resp.headers["X-MBX-USED-WEIGHT-1M"]), await resp.json()


def is_book_side(levels, descending):
    prices = [float(p) for p, _ in levels]
    return all(isinstance(p, str) and isinstance(q, str) for p, q in levels) and prices == sorted(
        prices, reverse=descending
    )


@pytest.mark.parametrize(
    "venue,path,limit,levels,weight",
    [
        ("spot", "/api/v3/depth", None, 100, 5),
        ("spot", "/api/v3/depth", 200, 200, 25),
        ("futures", "/fapi/v1/depth", None, 500, 10),
        ("futures", "/fapi/v1/depth", 5, 5, 2),
        ("futures", "/fapi/v1/depth", 7, 10, 2),
    ],
)
async def test_depth_has_the_documented_shape_and_weight(
    frozen_sim, http, venue, path, limit, levels, weight
):
    params = {"symbol": "ETHUSDT"} | ({"limit": limit} if limit else {})
    status, used, book = await get_weight(http, frozen_sim, venue, path, **params)
    assert status == 200 and used == weight
    keys = {"lastUpdateId", "bids", "asks"} | ({"E", "T"} if venue == "futures" else set())
    assert set(book) == keys and isinstance(book["lastUpdateId"], int)
    assert len(book["bids"]) == len(book["asks"]) == levels
    assert is_book_side(book["bids"], True) and is_book_side(book["asks"], False)
    assert float(book["bids"][0][0]) < float(book["asks"][0][0])
    status, _, body = await get_weight(http, frozen_sim, venue, path, symbol="NOPE")
    assert (status, body["code"]) == (400, -1121)


@pytest.mark.parametrize("venue,path,weight", [
    ("spot", "/api/v3/aggTrades", 4), ("futures", "/fapi/v1/aggTrades", 20)
])
async def test_agg_trades_page_by_id_and_time(frozen_sim, http, venue, path, weight):
    status, used, rows = await get_weight(http, frozen_sim, venue, path, symbol="BTCUSDT", limit=5)
    assert (status, used, len(rows)) == (200, weight, 5)
    keys = {"a", "p", "q", "f", "l", "T", "m"} | ({"M"} if venue == "spot" else set())
    assert all(set(r) == keys for r in rows)
    ids = [r["a"] for r in rows]
    assert ids == sorted(ids)
    _, _, page = await get_weight(
        http, frozen_sim, venue, path, symbol="BTCUSDT", fromId=ids[0], limit=3
    )
    assert page == rows[:3]
    _, _, since = await get_weight(
        http, frozen_sim, venue, path, symbol="BTCUSDT", startTime=rows[1]["T"],
        endTime=rows[-1]["T"],
    )
    assert since[0]["T"] >= rows[1]["T"] and since[-1] == rows[-1]
    status, _, body = await get_weight(
        http, frozen_sim, venue, path, symbol="BTCUSDT", startTime=0, endTime=3_600_001
    )
    assert (status, body["code"]) == (400, -1127)


async def test_futures_ticker_24hr_without_and_with_a_symbol(frozen_sim, http):
    status, used, rows = await get_weight(http, frozen_sim, "futures", "/fapi/v1/ticker/24hr")
    assert (status, used) == (200, 40) and {r["symbol"] for r in rows} == {"BTCUSDT", "ETHUSDT"}
    status, after, row = await get_weight(
        http, frozen_sim, "futures", "/fapi/v1/ticker/24hr", symbol="BTCUSDT"
    )
    assert (status, after - used) == (200, 1)  # the header counts the minute's weight
    assert {"lastPrice", "openPrice", "highPrice", "lowPrice", "volume", "quoteVolume",
            "openTime", "closeTime", "firstId", "lastId", "count"} <= set(row)
    assert "bidPrice" not in row and float(row["lowPrice"]) <= float(row["lastPrice"])
    _, _, spot = await get_weight(http, frozen_sim, "spot", "/api/v3/ticker/24hr", symbol="BTCUSDT")
    assert float(spot["bidPrice"]) < float(spot["askPrice"])


async def test_spot_all_orders_lists_open_and_finished_orders(frozen_sim, http):
    base = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC",
            "quantity": "0.001", "price": "50000.00"}
    _, first = await signed(http, frozen_sim, "spot", "POST", "/api/v3/order", **base)
    _, second = await signed(http, frozen_sim, "spot", "POST", "/api/v3/order", **base)
    await signed(http, frozen_sim, "spot", "DELETE", "/api/v3/order", symbol="BTCUSDT",
                 orderId=first["orderId"])
    status, rows = await signed(http, frozen_sim, "spot", "GET", "/api/v3/allOrders",
                                symbol="BTCUSDT")
    assert status == 200
    assert [(r["orderId"], r["status"]) for r in rows] == [
        (first["orderId"], "CANCELED"), (second["orderId"], "NEW")
    ]
    status, rows = await signed(http, frozen_sim, "spot", "GET", "/api/v3/allOrders",
                                symbol="BTCUSDT", orderId=second["orderId"])
    assert [r["orderId"] for r in rows] == [second["orderId"]]
    async with http.get(frozen_sim.binance_url + "/api/v3/allOrders",
                        params={"symbol": "BTCUSDT"}) as resp:  # unsigned
        assert (resp.status, (await resp.json())["code"]) == (401, -2014)  # API-key format


async def test_futures_account_v2_v3_and_leverage_brackets(frozen_sim, http):
    await signed(http, frozen_sim, "futures", "POST", "/fapi/v1/order", symbol="ETHUSDT",
                 side="BUY", type="MARKET", quantity="0.100")
    status, v3 = await signed(http, frozen_sim, "futures", "GET", "/fapi/v3/account")
    assert status == 200
    assert {"totalWalletBalance", "totalUnrealizedProfit", "totalMarginBalance",
            "availableBalance", "maxWithdrawAmount", "assets", "positions"} <= set(v3)
    assert [p["symbol"] for p in v3["positions"]] == ["ETHUSDT"]
    assert v3["positions"][0]["positionAmt"] == "0.100"
    assert v3["assets"][0]["asset"] == "USDT"
    status, v2 = await signed(http, frozen_sim, "futures", "GET", "/fapi/v2/account")
    assert status == 200 and v2["canTrade"] is True and v2["assets"][0]["marginAvailable"]
    assert {p["symbol"] for p in v2["positions"]} == {"BTCUSDT", "ETHUSDT"}
    eth = next(p for p in v2["positions"] if p["symbol"] == "ETHUSDT")
    assert eth["leverage"] == "20" and eth["isolated"] is False
    status, tiers = await signed(http, frozen_sim, "futures", "GET", "/fapi/v1/leverageBracket")
    assert status == 200 and {t["symbol"] for t in tiers} == {"BTCUSDT", "ETHUSDT"}
    status, one = await signed(http, frozen_sim, "futures", "GET", "/fapi/v1/leverageBracket",
                               symbol="BTCUSDT")
    brackets = one["brackets"]
    assert brackets[0] == {"bracket": 1, "initialLeverage": 125, "notionalCap": 50_000,
                           "notionalFloor": 0, "maintMarginRatio": 0.004, "cum": 0.0}
    assert all(b["notionalFloor"] == a["notionalCap"] for a, b in itertools.pairwise(brackets))
    assert brackets[1]["cum"] == pytest.approx(50.0)
    async with http.get(frozen_sim.futures_url + "/fapi/v3/account") as resp:
        assert (resp.status, (await resp.json())["code"]) == (401, -2014)


async def test_exchange_info_flags_and_unknown_routes(frozen_sim, http):
    documented = json.loads((PAYLOADS / "binance_spot_exchange_info_filters.json").read_text())
    example = documented["_symbol_example"]["symbols"][0]  # the docs' exchangeInfo symbol
    status, info = await get(http, frozen_sim, "spot", "/api/v3/exchangeInfo", symbol="BTCUSDT")
    assert status == 200
    symbol = info["symbols"][0]
    assert {"opoAllowed", "pegInstructionsAllowed"} <= set(symbol)
    assert same_shape(symbol, example | {"filters": []}) == []
    for venue, path in (("spot", "/api/v3/nope"), ("futures", "/fapi/v1/nope")):
        status, body = await get(http, frozen_sim, venue, path)
        assert status == 404 and body["code"] == -1000 and path in body["msg"]
