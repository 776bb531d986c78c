"""Binance spot protocol over real HTTP and WebSocket on 127.0.0.1."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from decimal import Decimal

import aiohttp
import pytest

from simulator.auth import binance_sign
from simulator.market import Frame
from simulator.server import Simulator

from .conftest import config
from .helpers import BINANCE_KEY, BINANCE_SECRET, binance_query, same_shape, sample

HEAD = {"X-MBX-APIKEY": BINANCE_KEY}


async def public(http, sim, path, **params):
    async with http.get(sim.binance_url + path, params=params) as resp:
        return resp.status, resp.headers, await resp.json()


async def signed(
    http, sim, method, path, *, secret=BINANCE_SECRET, key=BINANCE_KEY, timestamp_ms=None, **params
):
    query = binance_query(params, secret, timestamp_ms=timestamp_ms or sim.clock_ms())
    async with http.request(
        method, f"{sim.binance_url}{path}?{query}", headers={"X-MBX-APIKEY": key}
    ) as resp:
        return resp.status, await resp.json()


def test_signing_matches_the_documented_vectors():
    vectors = sample("binance_hmac_test_vectors.json")
    for case in ("rest", "rest_non_ascii", "ws_api_sorted_params"):
        payload = vectors[case]["payload"]
        assert binance_sign(vectors["secretKey"], payload) == vectors[case]["signature"]


async def test_a_signed_request_is_accepted_and_a_bad_one_gets_the_documented_code(
    frozen_sim, http
):
    status, account = await signed(http, frozen_sim, "GET", "/api/v3/account")
    assert status == 200 and same_shape(account, sample("binance_spot_account.json")) == []
    status, body = await signed(http, frozen_sim, "GET", "/api/v3/account", secret="x" * 64)
    assert (status, body["code"]) == (400, -1022)
    status, body = await signed(
        http, frozen_sim, "GET", "/api/v3/account", timestamp_ms=frozen_sim.clock_ms() - 10_000
    )
    assert (status, body["code"]) == (400, -1021)
    status, body = await signed(http, frozen_sim, "GET", "/api/v3/account", key="nope")
    assert (status, body["code"]) == (401, -2015)


async def test_signature_in_a_form_body_covers_query_plus_body(frozen_sim, http):
    body = f"symbol=BTCUSDT&side=BUY&type=MARKET&quantity=0.001&timestamp={frozen_sim.clock_ms()}"
    query = "newOrderRespType=RESULT"
    sig = hmac.new(BINANCE_SECRET.encode(), (query + body).encode(), hashlib.sha256).hexdigest()
    async with http.post(
        f"{frozen_sim.binance_url}/api/v3/order?{query}",
        data=f"{body}&signature={sig}",
        headers=HEAD | {"Content-Type": "application/x-www-form-urlencoded"},
    ) as resp:
        result = await resp.json()
        assert resp.status == 200, result
    assert result["status"] == "FILLED" and "fills" not in result


async def test_klines_are_oldest_first_with_twelve_columns_and_the_last_still_open(
    frozen_sim, http
):
    status, headers, rows = await public(
        http, frozen_sim, "/api/v3/klines", symbol="BTCUSDT", interval="1m", limit=10
    )
    assert status == 200 and len(rows) == 10
    assert same_shape(rows, sample("binance_spot_klines.json")) == []
    opens = [r[0] for r in rows]
    assert opens == sorted(opens) and rows[-1][6] >= frozen_sim.clock_ms()
    assert all(r[6] == r[0] + 59_999 for r in rows)
    assert int(headers["X-MBX-USED-WEIGHT-1M"]) >= 2


@pytest.mark.parametrize(
    "interval,frame",
    [
        ("1m", Frame("m")),
        ("5m", Frame("m", 5)),
        ("1h", Frame("h")),
        ("4h", Frame("h", 4)),
        ("1d", Frame("d")),
    ],
)
async def test_klines_equal_the_aggregation_of_the_trades(frozen_sim, http, interval, frame):
    _, _, rows = await public(
        http, frozen_sim, "/api/v3/klines", symbol="BTCUSDT", interval=interval, limit=1000
    )
    expected = frozen_sim.market("binance", "BTCUSDT").candles(frame)
    by_open = {int(t): i for i, t in enumerate(expected.open_time)}
    for row in rows:
        i = by_open[row[0]]
        assert [float(x) for x in row[1:5]] == pytest.approx(
            [expected.open[i], expected.high[i], expected.low[i], expected.close[i]], abs=1e-8
        )
        assert float(row[5]) == pytest.approx(expected.volume[i], abs=1e-5)
        assert row[8] == expected.count[i]


async def test_start_and_end_time_select_by_open_time_inclusively(frozen_sim, http):
    _, _, rows = await public(
        http, frozen_sim, "/api/v3/klines", symbol="BTCUSDT", interval="1m", limit=20
    )
    start, end = rows[3][0], rows[7][0]
    _, _, window = await public(
        http,
        frozen_sim,
        "/api/v3/klines",
        symbol="BTCUSDT",
        interval="1m",
        startTime=start,
        endTime=end,
    )
    assert [r[0] for r in window] == [r[0] for r in rows[3:8]]
    _, _, first = await public(
        http,
        frozen_sim,
        "/api/v3/klines",
        symbol="BTCUSDT",
        interval="1m",
        startTime=start,
        limit=2,
    )
    assert [r[0] for r in first] == [r[0] for r in rows[3:5]]
    status, _, body = await public(
        http, frozen_sim, "/api/v3/klines", symbol="BTCUSDT", interval="10m"
    )
    assert (status, body["code"]) == (400, -1120)


async def test_empty_intervals_are_skipped_by_upbit_and_filled_by_binance(tmp_path, http):
    base = 1_773_100_800_000  # 2026-03-10 00:00 UTC
    lines = ["open_time,open,high,low,close,volume"]
    for minute in (0, 1, 4, 5):  # minutes 2 and 3 had no trades
        lines.append(f"{base + minute * 60_000},100,101,99,100.5,3")
    path = tmp_path / "gap.csv"
    path.write_text("\n".join(lines) + "\n")
    cfg = config(
        now_ms=base + 10 * 60_000,
        speed=0.0,
        tick_s=3600.0,
        replay={"BTCUSDT": str(path), "KRW-BTC": str(path)},
    )
    async with Simulator(cfg) as sim:
        async with http.get(
            sim.binance_url + "/api/v3/klines",
            params={"symbol": "BTCUSDT", "interval": "1m", "startTime": base, "limit": 6},
        ) as resp:
            rows = await resp.json()
        async with http.get(
            sim.upbit_url + "/v1/candles/minutes/1", params={"market": "KRW-BTC", "count": 10}
        ) as resp:
            upbit = await resp.json()
    assert [r[0] for r in rows] == [base + m * 60_000 for m in range(6)]
    assert rows[2][1:5] == ["100.50000000"] * 4 and rows[2][5] == "0.00000000" and rows[2][8] == 0
    assert len(upbit) == 4


async def test_duplicate_client_id_is_refused_while_open_and_reusable_after(frozen_sim, http):
    order = {
        "symbol": "BTCUSDT",
        "side": "BUY",
        "type": "LIMIT",
        "timeInForce": "GTC",
        "quantity": "0.001",
        "price": "50000.00",
        "newClientOrderId": "dup-1",
    }
    status, first = await signed(http, frozen_sim, "POST", "/api/v3/order", **order)
    assert status == 200 and first["status"] == "NEW"
    assert same_shape(first, sample("binance_spot_order_new.json")["FULL"]) == []
    status, body = await signed(http, frozen_sim, "POST", "/api/v3/order", **order)
    assert status == 400 and body == {"code": -2010, "msg": "Duplicate order sent."}
    status, cancel = await signed(
        http, frozen_sim, "DELETE", "/api/v3/order", symbol="BTCUSDT", origClientOrderId="dup-1"
    )
    assert status == 200 and cancel["status"] == "CANCELED"
    assert same_shape(cancel, sample("binance_spot_order_cancel.json")) == []
    status, again = await signed(http, frozen_sim, "POST", "/api/v3/order", **order)
    assert status == 200 and again["orderId"] != first["orderId"]


async def test_limit_buy_locks_quote_and_fills_when_the_price_crosses(frozen_sim, http):
    last = frozen_sim.market("binance", "BTCUSDT").last_price
    price = f"{round(last * 0.97, 2):.2f}"
    status, placed = await signed(
        http,
        frozen_sim,
        "POST",
        "/api/v3/order",
        symbol="BTCUSDT",
        side="BUY",
        type="LIMIT",
        timeInForce="GTC",
        quantity="0.01000",
        price=price,
    )
    assert status == 200 and placed["status"] == "NEW"
    _, account = await signed(http, frozen_sim, "GET", "/api/v3/account")
    usdt = next(b for b in account["balances"] if b["asset"] == "USDT")
    assert Decimal(usdt["locked"]) == Decimal(price) * Decimal("0.01")
    frozen_sim.print_trade("binance", "BTCUSDT", float(price) - 1)
    status, got = await signed(
        http, frozen_sim, "GET", "/api/v3/order", symbol="BTCUSDT", orderId=placed["orderId"]
    )
    assert got["status"] == "FILLED" and got["executedQty"] == "0.01000000"
    assert same_shape(got, sample("binance_spot_order_query.json")) == []
    _, trades = await signed(
        http, frozen_sim, "GET", "/api/v3/myTrades", symbol="BTCUSDT", orderId=placed["orderId"]
    )
    assert same_shape(trades, sample("binance_spot_my_trades.json")) == []
    assert trades[0]["isMaker"] is True and trades[0]["commissionAsset"] == "BTC"
    _, account = await signed(http, frozen_sim, "GET", "/api/v3/account")
    balances = {b["asset"]: b for b in account["balances"]}
    assert Decimal(balances["USDT"]["locked"]) == 0
    assert Decimal(balances["BTC"]["free"]) == Decimal("1.01") - Decimal(trades[0]["commission"])


async def test_filters_reject_off_tick_off_step_and_small_orders(frozen_sim, http):
    base = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC"}
    for extra, name in [
        ({"quantity": "0.001", "price": "50000.001"}, "PRICE_FILTER"),
        ({"quantity": "0.0000101", "price": "50000.00"}, "LOT_SIZE"),
        ({"quantity": "0.00001", "price": "50000.00"}, "NOTIONAL"),
    ]:
        status, body = await signed(http, frozen_sim, "POST", "/api/v3/order", **base, **extra)
        assert status == 400 and body == {"code": -1013, "msg": f"Filter failure: {name}"}
    _, _, info = await public(http, frozen_sim, "/api/v3/exchangeInfo", symbol="BTCUSDT")
    filters = {f["filterType"]: f for f in info["symbols"][0]["filters"]}
    documented = sample("binance_spot_exchange_info_filters.json")
    for kind in ("PRICE_FILTER", "LOT_SIZE", "NOTIONAL"):
        assert same_shape(filters[kind], documented[kind]) == []


async def test_trade_and_kline_streams_use_the_documented_frames(http):
    async with Simulator(config(speed=120.0, trade_rate=20.0)) as sim:
        sim.venues["binance"].kline_push_s = 0.2
        url = sim.binance_ws_url
        async with http.ws_connect(f"{url}/ws/btcusdt@trade") as ws:
            frame = json.loads((await ws.receive(timeout=5)).data)
        assert same_shape(frame, sample("binance_spot_trade_ws.json")) == []
        async with http.ws_connect(f"{url}/stream?streams=btcusdt@kline_1m/ethusdt@aggTrade") as ws:
            seen_closed, seen_agg = False, False
            deadline = time.monotonic() + 8
            while not (seen_closed and seen_agg) and time.monotonic() < deadline:
                msg = json.loads((await ws.receive(timeout=5)).data)
                if msg["stream"] == "ethusdt@aggTrade":
                    assert same_shape(msg["data"], sample("binance_spot_agg_trade_ws.json")) == []
                    seen_agg = True
                else:
                    assert same_shape(msg, sample("binance_spot_kline_ws_combined.json")) == []
                    seen_closed = seen_closed or msg["data"]["k"]["x"]
            assert seen_closed and seen_agg


async def test_subscribe_and_list_subscriptions_on_an_open_connection(sim, http):
    async with http.ws_connect(f"{sim.binance_ws_url}/ws") as ws:
        await ws.send_json({"method": "SUBSCRIBE", "params": ["btcusdt@aggTrade"], "id": 1})
        replies = []
        while len(replies) < 1:
            msg = json.loads((await ws.receive(timeout=5)).data)
            if "id" in msg:
                replies.append(msg)
        assert replies == [{"result": None, "id": 1}]
        await ws.send_json({"method": "LIST_SUBSCRIPTIONS", "id": 3})
        while True:
            msg = json.loads((await ws.receive(timeout=5)).data)
            if msg.get("id") == 3:
                assert msg == {"result": ["btcusdt@aggTrade"], "id": 3}
                break


async def test_user_data_arrives_over_the_ws_api_after_a_signed_subscribe(frozen_sim, http):
    params = {"apiKey": BINANCE_KEY, "timestamp": frozen_sim.clock_ms(), "recvWindow": 60000}
    payload = "&".join(f"{k}={params[k]}" for k in sorted(params))
    params["signature"] = binance_sign(BINANCE_SECRET, payload)
    async with http.ws_connect(f"{frozen_sim.binance_ws_url}/ws-api/v3") as ws:
        await ws.send_json(
            {"id": "s1", "method": "userDataStream.subscribe.signature", "params": params}
        )
        reply = json.loads((await ws.receive(timeout=5)).data)
        assert reply["status"] == 200 and reply["result"] == {"subscriptionId": 0}
        status, _ = await signed(
            http,
            frozen_sim,
            "POST",
            "/api/v3/order",
            symbol="BTCUSDT",
            side="BUY",
            type="MARKET",
            quantity="0.001",
        )
        assert status == 200
        kinds = []
        while len(kinds) < 4:
            msg = json.loads((await ws.receive(timeout=5)).data)
            assert msg["subscriptionId"] == 0
            event = msg["event"]
            if event["e"] == "executionReport":
                assert same_shape(msg, sample("binance_spot_execution_report.json")) == []
                kinds.append(event["x"])
            else:
                assert same_shape(msg, sample("binance_spot_outbound_account_position.json")) == []
                kinds.append(event["e"])
        assert kinds[0] == "NEW" and "TRADE" in kinds and "outboundAccountPosition" in kinds
        bad = dict(params, signature="0" * 64)
        await ws.send_json(
            {"id": "s2", "method": "userDataStream.subscribe.signature", "params": bad}
        )
        reply = json.loads((await ws.receive(timeout=5)).data)
        assert reply["status"] == 400 and reply["error"]["code"] == -1022


async def test_unknown_stream_is_refused(sim, http):
    with pytest.raises(aiohttp.WSServerHandshakeError):
        async with http.ws_connect(f"{sim.binance_ws_url}/ws/nope@trade"):
            pass
    await asyncio.sleep(0)


async def test_successful_orders_report_the_order_counts(frozen_sim, http):
    for expected in (1, 2):
        query = binance_query(
            {"symbol": "ETHUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.0100"},
            BINANCE_SECRET,
            timestamp_ms=frozen_sim.clock_ms(),
        )
        async with http.post(f"{frozen_sim.binance_url}/api/v3/order?{query}", headers=HEAD) as r:
            assert r.status == 200
            assert r.headers["X-MBX-ORDER-COUNT-10S"] == str(expected)
            assert r.headers["X-MBX-ORDER-COUNT-1D"] == str(expected)


async def test_a_csv_replays_at_the_speed_factor(tmp_path):
    base = 1_773_100_800_000
    rows = [f"{base + m * 60_000},{100 + m},{101 + m},{99 + m},{100.5 + m},2" for m in range(60)]
    path = tmp_path / "replay.csv"
    path.write_text("open_time,open,high,low,close,volume\n" + "\n".join(rows) + "\n")
    cfg = config(
        now_ms=None,
        history_days=10 / 1440,
        speed=600.0,
        tick_s=0.05,
        replay={"BTCUSDT": str(path)},
        venues=("binance",),
    )
    async with Simulator(cfg) as sim:
        market = sim.market("binance", "BTCUSDT")
        start_clock, start_wall = sim.clock_ms(), time.monotonic()
        assert 0 <= start_clock - (base + 10 * 60_000) < 10_000  # a few wall ms at 600x
        before = market.visible
        # Wait for four more replayed minutes (4 trades each: open, high, low, close). The
        # ticker may be starved on a loaded machine, so wait by what became visible, not by
        # a fixed sleep; the speed is checked against the wall time it took.
        deadline = start_wall + 10
        while market.visible < before + 4 * 4 and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        after, clock, wall = market.visible, sim.clock_ms(), time.monotonic() - start_wall
        newest = int(market.trades(after - 1)["ts"][0])
    assert before == 10 * 4 + 1
    assert after >= before + 4 * 4, "the replay did not advance within 10 s"
    # The clock runs at 600x wall time, and no trade shows before the clock has reached it.
    assert abs((clock - start_clock) - wall * 1000 * 600) < 600 * 50
    assert newest <= clock
    assert wall >= 4 * 60 / 600 * 0.9  # four simulated minutes take at least 0.4 s of wall time


async def test_a_closed_kline_on_the_stream_equals_the_rest_kline(http):
    async with Simulator(config(speed=120.0, trade_rate=20.0)) as sim:
        sim.venues["binance"].kline_push_s = 0.2
        async with http.ws_connect(f"{sim.binance_ws_url}/ws/ethusdt@kline_1m") as ws:
            deadline = time.monotonic() + 8
            closed = None
            while closed is None and time.monotonic() < deadline:
                k = json.loads((await ws.receive(timeout=5)).data)["k"]
                closed = k if k["x"] else None
        assert closed is not None
        async with http.get(
            sim.binance_url + "/api/v3/klines",
            params={"symbol": "ETHUSDT", "interval": "1m", "startTime": closed["t"], "limit": 1},
        ) as r:
            row = (await r.json())[0]
    assert row[0] == closed["t"] and row[6] == closed["T"]
    assert row[1:6] == [closed["o"], closed["h"], closed["l"], closed["c"], closed["v"]]
    assert row[8] == closed["n"]
