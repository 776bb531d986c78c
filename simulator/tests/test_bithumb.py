"""Bithumb protocol over real HTTP on 127.0.0.1: naive-KST candle paging, KST grids, auth with
the timestamp claim, v2 orders read back through v1, shapes of the documented samples, the
documented error answers and Bithumb's order and trade ids."""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid

import aiohttp
import pytest

from simulator.auth import upbit_token
from simulator.market import Frame
from simulator.server import Simulator
from simulator.venue import utc_naive

from .conftest import config
from .helpers import body_query, load, same_shape

KEY, SECRET = "sim-bithumb-access-key", "sim-bithumb-secret-key"
KST = dt.timezone(dt.timedelta(hours=9))
HOUR = 3_600_000


def frozen(days: float):
    return Simulator(config(venues=("bithumb",), history_days=days, tick_s=3600.0, speed=0.0))


@pytest.fixture
async def sim():
    async with frozen(3.0) as running:
        yield running


@pytest.fixture
async def long_sim():
    """40 days: two month candles."""
    async with frozen(40.0) as running:
        yield running


async def get(http, sim, path, **params):
    async with http.get(sim.bithumb_url + path, params=params) as resp:
        return resp.status, resp.headers, await resp.json(content_type=None)


def auth(query: str = "", *, stamp: int | None = None, sim=None) -> dict:
    stamp = stamp if stamp is not None else sim.clock_ms()
    return {"Authorization": f"Bearer {upbit_token(KEY, SECRET, query, 'HS256', stamp)}"}


async def private(http, sim, method, path, *, params=None, body=None):
    if body is not None:
        call = http.request(method, sim.bithumb_url + path, json=body,
                            headers=auth(body_query(body), sim=sim))
    else:
        query = "&".join(f"{k}={v}" for k, v in (params or {}).items())
        call = http.request(method, sim.bithumb_url + path + (f"?{query}" if query else ""),
                            headers=auth(query, sim=sim))
    async with call as resp:
        return resp.status, await resp.json(content_type=None)


def kst(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, KST).strftime("%Y-%m-%dT%H:%M:%S")


async def test_to_is_an_exclusive_naive_kst_time_and_pages_newest_first(sim, http):
    market = sim.market("bithumb", "KRW-BTC")
    expected = market.candles(Frame("m", 1))
    end = int(expected.open_time[-300])
    for text in (kst(end), kst(end).replace("T", " ")):
        status, headers, rows = await get(http, sim, "/v1/candles/minutes/1",
                                          market="KRW-BTC", to=text, count=200)
        assert status == 200 and "Remaining-Req" not in headers
        opens = [r["candle_date_time_utc"] for r in rows]
        assert opens == [utc_naive(int(t)) for t in expected.open_time[-301:-501:-1]]


@pytest.mark.parametrize("to", ["2026-03-10T12:00:00Z", "2026-03-10T12:00:00+09:00"])
async def test_a_zone_in_to_is_refused_with_400(sim, http, to):
    status, _, body = await get(http, sim, "/v1/candles/minutes/1", market="KRW-BTC", to=to)
    assert status == 400 and "error" in body


async def test_count_over_200_is_refused_and_seconds_and_years_do_not_exist(sim, http):
    status, _, _ = await get(http, sim, "/v1/candles/minutes/1", market="KRW-BTC", count=201)
    assert status == 400
    for path in ("/v1/candles/seconds", "/v1/candles/years"):
        async with http.get(sim.bithumb_url + path, params={"market": "KRW-BTC"}) as resp:
            assert resp.status == 404


@pytest.mark.parametrize("path,hours_utc", [
    ("/v1/candles/days", {15}),
    ("/v1/candles/minutes/240", {3, 7, 11, 15, 19, 23}),
])
async def test_days_and_240_minutes_open_on_kst_boundaries(sim, http, path, hours_utc):
    status, _, rows = await get(http, sim, path, market="KRW-BTC", count=3)
    assert status == 200 and len(rows) == 3
    for row in rows:
        opened = dt.datetime.fromisoformat(row["candle_date_time_utc"])
        assert opened.hour in hours_utc and opened.minute == 0
        assert row["candle_date_time_kst"].endswith(":00:00")


async def test_weeks_and_months_start_at_kst_midnight_with_the_kst_first_day(long_sim, http):
    sim = long_sim
    _, _, weeks = await get(http, sim, "/v1/candles/weeks", market="KRW-BTC", count=3)
    _, _, months = await get(http, sim, "/v1/candles/months", market="KRW-BTC", count=2)
    for row in weeks + months:
        local = dt.datetime.fromisoformat(row["candle_date_time_kst"])
        assert local.time() == dt.time(0) and row["first_day_of_period"] == str(local.date())
    assert all(dt.date.fromisoformat(r["first_day_of_period"]).weekday() == 0 for r in weeks)
    assert all(r["first_day_of_period"].endswith("-01") for r in months)
    assert not same_shape(months[0], load("bithumb_candles_months")[0])


async def test_the_jwt_needs_a_timestamp_claim_near_the_clock(sim, http):
    now = sim.clock_ms()
    untimed = upbit_token(KEY, SECRET, alg="HS256")
    for headers, expected in (
        (auth(stamp=now, sim=sim), 200),
        (auth(stamp=now - HOUR, sim=sim), 401),
        ({"Authorization": f"Bearer {untimed}"}, 401),
    ):
        async with http.get(sim.bithumb_url + "/v1/accounts", headers=headers) as resp:
            assert resp.status == expected
    _, rows = await private(http, sim, "GET", "/v1/accounts")
    assert not same_shape(rows[0], load("bithumb_accounts")[0])


async def test_v2_place_acknowledges_then_v1_reads_and_v2_cancels(sim, http):
    client_id = "t-" + uuid.uuid4().hex[:20]
    body = {"market": "KRW-BTC", "side": "bid", "order_type": "limit", "price": "100000000",
            "volume": "0.001", "client_order_id": client_id}
    status, ack = await private(http, sim, "POST", "/v2/orders", body=body)
    assert status == 201, ack
    assert ack["client_order_id"] == client_id and ack["order_type"] == "limit"
    assert re.fullmatch(r"C\d{19}", ack["order_id"])
    assert ack["created_at"].endswith("+09:00")

    status, order = await private(http, sim, "GET", "/v1/order", params={"uuid": ack["order_id"]})
    assert status == 200 and order["state"] == "wait" and order["client_order_id"] == client_id
    assert not same_shape(order, {k: v for k, v in load("bithumb_order_get").items()
                                  if k not in ("trades", "time_in_force", "cancel_type")})
    _, listed = await private(http, sim, "GET", "/v1/orders",
                              params={"market": "KRW-BTC", "states[]": "wait"})
    assert ack["order_id"] in {o["uuid"] for o in listed}

    status, cancelled = await private(http, sim, "DELETE", "/v2/order",
                                      params={"client_order_id": client_id})
    assert status == 200 and cancelled == {"order_id": ack["order_id"],
                                           "created_at": ack["created_at"]}
    _, order = await private(http, sim, "GET", "/v1/order", params={"client_order_id": client_id})
    assert order["state"] == "cancel"
    status, body = await private(http, sim, "DELETE", "/v2/order",
                                 params={"order_id": "C0101999999999999999"})
    assert status == 404 and body["error"]["name"] == "order_not_found"


async def test_v1_order_parameter_names_are_refused_by_v2(sim, http):
    body = {"market": "KRW-BTC", "side": "bid", "ord_type": "limit", "price": "100000000",
            "volume": "0.001"}
    status, answer = await private(http, sim, "POST", "/v2/orders", body=body)
    assert status == 400 and answer["error"]["name"] == "invalid_parameter"


async def test_the_public_websocket_has_no_candle_type(sim):
    async with aiohttp.ClientSession() as session, session.ws_connect(
        sim.url("bithumb", "ws") + "/websocket/v1"
    ) as ws:
        await ws.send_str(json.dumps([{"ticket": "t"}, {"type": "candle.1m",
                                                        "codes": ["KRW-BTC"]}]))
        msg = await ws.receive(timeout=5)
        data = msg.data if isinstance(msg.data, str) else msg.data.decode()
        assert json.loads(data)["error"]["name"] == "INVALID_PARAM"


async def test_the_private_websocket_v2_sends_v2_order_names_and_string_assets(sim, http):
    async with aiohttp.ClientSession() as session, session.ws_connect(
        sim.url("bithumb", "ws") + "/websocket/v2/private", headers=auth(sim=sim)
    ) as ws:
        await ws.send_str(json.dumps([{"ticket": "t"}, {"type": "myOrder"}, {"type": "myAsset"}]))
        body = {"market": "KRW-BTC", "side": "ask", "order_type": "market", "volume": "0.001",
                "client_order_id": "ws-v2-1"}
        status, ack = await private(http, sim, "POST", "/v2/orders", body=body)
        assert status == 201, ack
        frames = {}
        while not {"myOrder", "myAsset"} <= set(frames):
            msg = await ws.receive(timeout=5)
            data = json.loads(msg.data if isinstance(msg.data, str) else msg.data.decode())
            if data.get("type") in ("myOrder", "myAsset"):
                frames.setdefault(data["type"], data)
    order, asset = frames["myOrder"], frames["myAsset"]
    assert order["order_id"] == ack["order_id"] and order["side"] == "sell"
    assert order["client_order_id"] == "ws-v2-1" and "uuid" not in order
    assert not same_shape(order, {k: v for k, v in load("bithumb_ws_myorder_v2").items()
                                  if k not in ("time_in_force", "order_price")})
    assert all(isinstance(a["balance"], str) for a in asset["assets"])
    assert not same_shape(asset, load("bithumb_ws_myasset"))


LIMIT = {"market": "KRW-BTC", "side": "bid", "order_type": "limit", "price": "100000000",
         "volume": "0.001"}


def _token(sim, *, key=KEY, secret=SECRET, query="", stamp=None) -> dict:
    stamp = sim.clock_ms() if stamp is None else stamp
    return {"Authorization": f"Bearer {upbit_token(key, secret, query, 'HS256', stamp)}"}


@pytest.mark.parametrize("case,name,message", [
    ("wrong secret", "jwt_verification", "Jwt 토큰 검증에 실패했습니다."),
    ("no token", "jwt_verification", "Jwt 토큰 검증에 실패했습니다."),
    ("unknown key", "invalid_access_key", "잘못된 액세스 키"),
    ("stale timestamp", "expired_jwt", "Jwt가 만료되었습니다."),
    ("other query signed", "invalid_query_payload", "Jwt의 query를 검증하는데 실패하였습니다."),
])
async def test_a_bad_signature_gets_bithumbs_documented_401(sim, http, case, name, message):
    query = "market=KRW-BTC"
    headers = {
        "wrong secret": lambda: _token(sim, secret="not-the-secret", query=query),
        "no token": dict,
        "unknown key": lambda: _token(sim, key="nobody", query=query),
        "stale timestamp": lambda: _token(sim, query=query, stamp=sim.clock_ms() - 61_000),
        "other query signed": lambda: _token(sim, query="market=KRW-ETH"),
    }[case]()
    async with http.get(f"{sim.bithumb_url}/v1/orders/chance?{query}", headers=headers) as resp:
        assert resp.status == 401
        assert await resp.json() == {"error": {"name": name, "message": message}}


@pytest.mark.parametrize("change,name", [
    ({"market": "KRW-NOPE"}, "invalid_parameter"),  # unknown symbol
    ({"volume": "0.00001"}, "under_min_total_bid"),  # 1,000 KRW: under the 5,000 minimum
    ({"volume": "0.000000001"}, "invalid_parameter"),  # 9 decimals: finer than the step
    ({"side": "ask", "order_type": "market", "price": None, "volume": "0.0010000001"},
     "invalid_parameter"),
    ({"price": "100000500"}, "invalid_price_bid"),  # off the 1,000 KRW tick
])
async def test_a_refused_order_gets_a_400_with_the_error_object_and_changes_nothing(
    sim, http, change, name
):
    before = {a: list(v) for a, v in sim.account("bithumb", KEY).balances.items()}
    body = {k: v for k, v in (LIMIT | change).items() if v is not None}
    status, answer = await private(http, sim, "POST", "/v2/orders", body=body)
    assert status == 400, answer
    assert set(answer) == {"error"} and set(answer["error"]) == {"name", "message"}
    assert answer["error"]["name"] == name and answer["error"]["message"]
    assert sim.account("bithumb", KEY).balances == before
    assert not sim.account("bithumb", KEY).orders


async def test_quotation_answers_an_unknown_market_with_code_not_found(sim, http):
    for path, params in (("/v1/ticker", {"markets": "KRW-NOPE"}),
                         ("/v1/candles/minutes/1", {"market": "KRW-NOPE"}),
                         ("/v1/orderbook", {"markets": "KRW-NOPE"})):
        status, _, body = await get(http, sim, path, **params)
        assert status == 404 and body == {"error": {"name": 404, "message": "Code not found"}}


async def test_every_rest_answer_has_every_field_of_the_captures_with_its_type(sim, http):
    """Field by field against shared/exchanges/samples/bithumb_*.json: nothing missing, no
    type mismatch (extra fields are allowed)."""
    answers = {}
    for path, params, name in (
        ("/v1/market/all", {"isDetails": "true"}, "bithumb_market_all"),
        ("/v1/ticker", {"markets": "KRW-BTC"}, "bithumb_ticker"),
        ("/v1/orderbook", {"markets": "KRW-BTC"}, "bithumb_orderbook"),
        ("/v1/trades/ticks", {"market": "KRW-BTC", "count": 3}, "bithumb_trades_ticks"),
        ("/v1/candles/minutes/1", {"market": "KRW-BTC", "count": 2}, "bithumb_candles_minutes"),
        ("/v1/candles/weeks", {"market": "KRW-BTC", "count": 1}, "bithumb_candles_weeks"),
    ):
        status, _, rows = await get(http, sim, path, **params)
        assert status == 200
        answers[name] = (rows[0], load(name)[0])
    _, rows = await private(http, sim, "GET", "/v1/accounts")
    answers["bithumb_accounts"] = (rows[0], load("bithumb_accounts")[0])
    _, chance = await private(http, sim, "GET", "/v1/orders/chance", params={"market": "KRW-BTC"})
    answers["bithumb_orders_chance"] = (chance, load("bithumb_orders_chance"))
    assert chance["market"]["bid"]["price_unit"] == "1000"  # KRW-BTC's tick at its price

    sell = {"market": "KRW-BTC", "side": "ask", "order_type": "limit", "price": "100000000",
            "volume": "0.01", "client_order_id": "shape-1"}  # under the market: fills
    _, ack = await private(http, sim, "POST", "/v2/orders", body=sell)
    answers["bithumb_v2_order_place"] = (ack, load("bithumb_v2_order_place")["response_inferred"])
    _, order = await private(http, sim, "GET", "/v1/order", params={"uuid": ack["order_id"]})
    assert order["state"] == "done" and order["trades"]
    answers["bithumb_order_get"] = (order, load("bithumb_order_get"))
    _, resting = await private(http, sim, "POST", "/v2/orders",
                               body=LIMIT | {"client_order_id": "shape-2"})
    _, listed = await private(http, sim, "GET", "/v1/orders", params={"states[]": "wait"})
    answers["bithumb_orders_list"] = (listed[0], load("bithumb_orders_list")[0])
    _, cancelled = await private(http, sim, "DELETE", "/v2/order",
                                 params={"order_id": resting["order_id"]})
    answers["bithumb_v2_order_cancel"] = (cancelled, load("bithumb_v2_order_cancel"))

    problems = {name: same_shape(got, want) for name, (got, want) in answers.items()}
    assert problems == {name: [] for name in answers}


async def test_order_and_trade_ids_are_bithumbs_and_do_not_repeat_across_restarts(http):
    ids = []
    for start_second in (1_780_000_000, 1_780_000_001):
        async with frozen(0.1) as sim:
            sim.venues["bithumb"].ids.base = start_second * 100_000  # as if started then
            body = LIMIT | {"side": "ask", "price": "100000000", "client_order_id": "r1"}
            status, ack = await private(http, sim, "POST", "/v2/orders", body=body)
            assert status == 201, ack
            _, order = await private(http, sim, "GET", "/v1/order",
                                     params={"uuid": ack["order_id"]})
            ids.append((ack["order_id"], order["trades"][0]["uuid"]))
    assert all(re.fullmatch(r"C0101\d{15}", i) for pair in ids for i in pair)
    assert len({i for pair in ids for i in pair}) == 4


async def test_the_websocket_orderbook_is_stamped_in_microseconds(sim):
    async with aiohttp.ClientSession() as session, session.ws_connect(
        sim.url("bithumb", "ws") + "/websocket/v1"
    ) as ws:
        await ws.send_str(json.dumps([{"ticket": "t"}, {"type": "orderbook",
                                                        "codes": ["KRW-BTC"]}]))
        msg = await ws.receive(timeout=5)
        frame = json.loads(msg.data if isinstance(msg.data, str) else msg.data.decode())
    assert frame["type"] == "orderbook" and not same_shape(frame, load("bithumb_ws_orderbook"))
    assert frame["timestamp"] // 1000 == pytest.approx(sim.clock_ms(), abs=5_000)
