"""Upbit protocol over real HTTP on 127.0.0.1: market data, auth, orders, balances."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pytest

from simulator.auth import upbit_token
from simulator.market import Frame
from simulator.server import Simulator
from simulator.venue import parse_time, utc_naive

from .conftest import config
from .helpers import UPBIT_KEY, UPBIT_SECRET, body_query, jwt, same_shape, sample_body, upbit_auth

MINUTE_UNITS = (1, 3, 5, 10, 15, 30, 60, 240)


async def get(http, sim, path, **params):
    async with http.get(sim.upbit_url + path, params=params) as resp:
        return resp.status, resp.headers, await resp.json(content_type=None)


async def private(http, sim, method, path, *, params=None, body=None, **auth):
    if body is not None:
        headers = upbit_auth(body_query(body), **auth)
        call = http.request(method, sim.upbit_url + path, json=body, headers=headers)
    else:
        query = "&".join(f"{k}={v}" for k, v in (params or {}).items())
        headers = upbit_auth(query, **auth)
        call = http.request(
            method, sim.upbit_url + path + (f"?{query}" if query else ""), headers=headers
        )
    async with call as resp:
        return resp.status, await resp.json(content_type=None)


@pytest.mark.parametrize(
    "path,frame",
    [(f"/v1/candles/minutes/{n}", Frame("m", n)) for n in MINUTE_UNITS]
    + [("/v1/candles/days", Frame("d"))],
)
async def test_rest_candles_of_every_timeframe_equal_the_aggregation_of_the_trades(
    frozen_sim, http, path, frame
):
    status, _, rows = await get(http, frozen_sim, path, market="KRW-BTC", count=200)
    assert status == 200 and rows
    expected = frozen_sim.market("upbit", "KRW-BTC").candles(frame)
    by_open = {utc_naive(int(t)): i for i, t in enumerate(expected.open_time)}
    for row in rows:
        i = by_open[row["candle_date_time_utc"]]
        assert row["opening_price"] == expected.open[i]
        assert row["high_price"] == expected.high[i]
        assert row["low_price"] == expected.low[i]
        assert row["trade_price"] == expected.close[i]
        assert row["timestamp"] == expected.last_ts[i]
        assert row["candle_acc_trade_volume"] == pytest.approx(expected.volume[i], abs=1e-8)


async def test_candles_are_newest_first_and_the_newest_row_is_the_forming_candle(frozen_sim, http):
    _, _, rows = await get(http, frozen_sim, "/v1/candles/minutes/1", market="KRW-BTC", count=5)
    opens = [parse_time(r["candle_date_time_utc"]) for r in rows]
    assert opens == sorted(opens, reverse=True)
    now = frozen_sim.clock_ms()
    assert opens[0] == now - now % 60_000  # still forming: the client must drop it
    assert rows[0]["unit"] == 1


async def test_to_is_an_exclusive_end_for_paging_backwards(frozen_sim, http):
    _, _, first = await get(http, frozen_sim, "/v1/candles/minutes/5", market="KRW-BTC", count=3)
    oldest = first[-1]["candle_date_time_utc"]
    _, _, page = await get(
        http, frozen_sim, "/v1/candles/minutes/5", market="KRW-BTC", count=3, to=oldest + "Z"
    )
    assert parse_time(page[0]["candle_date_time_utc"]) == parse_time(oldest) - 300_000
    _, _, kst = await get(
        http,
        frozen_sim,
        "/v1/candles/minutes/5",
        market="KRW-BTC",
        count=3,
        to=utc_naive(parse_time(oldest) + 9 * 3_600_000) + "+09:00",
    )
    assert kst == page


async def test_count_above_200_and_unknown_markets_get_the_quotation_errors(frozen_sim, http):
    status, _, body = await get(
        http, frozen_sim, "/v1/candles/minutes/1", market="KRW-BTC", count=201
    )
    assert status == 400 and body["error"]["name"] == 400
    status, _, body = await get(http, frozen_sim, "/v1/candles/days", market="KRW-NOPE")
    assert status == 404 and body == {"error": {"name": 404, "message": "Code not found"}}


async def test_every_response_carries_remaining_req(frozen_sim, http):
    for path, params, group in [
        ("/v1/candles/minutes/1", {"market": "KRW-BTC"}, "candles"),
        ("/v1/ticker", {"markets": "KRW-BTC"}, "ticker"),
        ("/v1/trades/ticks", {"market": "KRW-BTC"}, "crix-trades"),
        ("/v1/orderbook", {"markets": "KRW-BTC"}, "orderbook"),
        ("/v1/market/all", {}, "market"),
    ]:
        _, headers, _ = await get(http, frozen_sim, path, **params)
        assert headers["Remaining-Req"].startswith(f"group={group}; min=600; sec=")


@pytest.mark.parametrize(
    "path,params,sample",
    [
        ("/v1/candles/minutes/1", {"market": "KRW-BTC"}, "upbit_candles_minutes.json"),
        ("/v1/candles/days", {"market": "KRW-BTC"}, "upbit_candles_days.json"),
        ("/v1/ticker", {"markets": "KRW-BTC"}, "upbit_ticker.json"),
        ("/v1/trades/ticks", {"market": "KRW-BTC"}, "upbit_trades_ticks.json"),
        ("/v1/orderbook", {"markets": "KRW-BTC"}, "upbit_orderbook.json"),
    ],
)
async def test_quotation_responses_have_the_recorded_shapes(frozen_sim, http, path, params, sample):
    status, _, body = await get(http, frozen_sim, path, **params)
    assert status == 200
    assert same_shape(body, sample_body(sample)) == []


async def test_trades_ticks_page_backwards_with_the_cursor(frozen_sim, http):
    _, _, first = await get(http, frozen_sim, "/v1/trades/ticks", market="KRW-BTC", count=5)
    _, _, older = await get(
        http,
        frozen_sim,
        "/v1/trades/ticks",
        market="KRW-BTC",
        count=5,
        cursor=first[-1]["sequential_id"],
    )
    ids = [r["sequential_id"] for r in first + older]
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == 10


async def test_private_responses_have_the_recorded_shapes(frozen_sim, http):
    status, accounts = await private(http, frozen_sim, "GET", "/v1/accounts")
    assert status == 200 and same_shape(accounts, sample_body("upbit_accounts.json")) == []
    status, chance = await private(
        http, frozen_sim, "GET", "/v1/orders/chance", params={"market": "KRW-BTC"}
    )
    assert status == 200 and same_shape(chance, sample_body("upbit_orders_chance.json")) == []
    body = {
        "market": "KRW-BTC",
        "side": "bid",
        "volume": "0.0005",
        "price": "10000000",
        "ord_type": "limit",
    }
    status, created = await private(http, frozen_sim, "POST", "/v1/orders", body=body)
    assert status == 201
    assert same_shape(created, sample_body("upbit_order_create_get_cancel.json", 0)) == []
    assert created["locked"] == "5002.5" and created["reserved_fee"] == "2.5"
    status, got = await private(
        http, frozen_sim, "GET", "/v1/order", params={"uuid": created["uuid"]}
    )
    assert status == 200
    assert same_shape(got, sample_body("upbit_order_create_get_cancel.json", 1)) == []


@pytest.mark.parametrize("alg", ["HS256", "HS512"])
async def test_jwt_signed_with_hs256_or_hs512_is_accepted(frozen_sim, http, alg):
    status, body = await private(http, frozen_sim, "GET", "/v1/accounts", alg=alg)
    assert status == 200 and body[0]["currency"] == "KRW"


async def test_bad_secret_wrong_query_hash_and_reused_nonce_are_401(frozen_sim, http):
    status, body = await private(http, frozen_sim, "GET", "/v1/accounts", secret="wrong")
    assert status == 401 and body["error"]["name"] == "jwt_verification"
    status, body = await private(
        http,
        frozen_sim,
        "GET",
        "/v1/orders/chance",
        params={"market": "KRW-BTC"},
        query_hash="0" * 128,
    )
    assert status == 401 and body["error"]["name"] == "invalid_query_payload"
    assert (await private(http, frozen_sim, "GET", "/v1/accounts", nonce="n-1"))[0] == 200
    status, body = await private(http, frozen_sim, "GET", "/v1/accounts", nonce="n-1")
    assert status == 401 and body["error"]["name"] == "nonce_used"
    async with http.get(frozen_sim.upbit_url + "/v1/accounts") as resp:
        assert resp.status == 401
    token = jwt({"access_key": "unknown", "nonce": "x"}, UPBIT_SECRET)
    async with http.get(
        frozen_sim.upbit_url + "/v1/accounts", headers={"Authorization": f"Bearer {token}"}
    ) as resp:
        assert resp.status == 401


async def test_market_buy_ends_in_cancel_with_executed_volume_and_balances_move(frozen_sim, http):
    body = {"market": "KRW-BTC", "side": "bid", "price": "10000", "ord_type": "price"}
    status, created = await private(http, frozen_sim, "POST", "/v1/orders", body=body)
    assert status == 201 and created["state"] == "wait" and created["locked"] == "10005"
    assert "volume" not in created
    _, order = await private(http, frozen_sim, "GET", "/v1/order", params={"uuid": created["uuid"]})
    assert order["state"] == "cancel" and float(order["executed_volume"]) > 0
    trade = order["trades"][0]
    spent = float(trade["funds"]) + float(order["paid_fee"])
    assert spent + float(order["locked"]) == pytest.approx(10005)
    assert same_shape(order, sample_body("upbit_order_market_buy_sell.json", 1)) == []
    account = frozen_sim.account("upbit", "sim-upbit-access-key")
    assert float(account.free("KRW")) == pytest.approx(100_000_000 - spent)
    assert account.free("BTC") == 1 + Decimal(order["executed_volume"])
    sell = {
        "market": "KRW-BTC",
        "side": "ask",
        "volume": order["executed_volume"],
        "ord_type": "market",
    }
    status, sold = await private(http, frozen_sim, "POST", "/v1/orders", body=sell)
    assert status == 201
    _, done = await private(http, frozen_sim, "GET", "/v1/order", params={"uuid": sold["uuid"]})
    assert done["state"] == "done" and done["remaining_volume"] == "0"


async def test_limit_buy_rests_then_fills_when_the_price_crosses(frozen_sim, http):
    last = frozen_sim.market("upbit", "KRW-BTC").last_price
    price = int(last * 0.98) // 1000 * 1000
    body = {
        "market": "KRW-BTC",
        "side": "bid",
        "volume": "0.001",
        "price": str(price),
        "ord_type": "limit",
        "identifier": "rest-1",
    }
    status, _ = await private(http, frozen_sim, "POST", "/v1/orders", body=body)
    assert status == 201
    account = frozen_sim.account("upbit", "sim-upbit-access-key")
    assert float(account.locked("KRW")) == pytest.approx(price * 0.001 * 1.0005)
    _, still = await private(http, frozen_sim, "GET", "/v1/order", params={"identifier": "rest-1"})
    assert still["state"] == "wait"
    frozen_sim.print_trade("upbit", "KRW-BTC", price - 1000)
    _, filled = await private(http, frozen_sim, "GET", "/v1/order", params={"identifier": "rest-1"})
    assert filled["state"] == "done" and filled["executed_volume"] == "0.001"
    assert filled["trades"][0]["price"] == str(price)
    assert account.locked("KRW") == 0 and str(account.free("BTC")) == "1.001"


async def test_identifier_is_unique_forever_even_after_cancel(frozen_sim, http):
    body = {
        "market": "KRW-BTC",
        "side": "bid",
        "volume": "0.001",
        "price": "10000000",
        "ord_type": "limit",
        "identifier": "once",
    }
    status, created = await private(http, frozen_sim, "POST", "/v1/orders", body=body)
    assert status == 201
    status, snapshot = await private(
        http, frozen_sim, "DELETE", "/v1/order", params={"uuid": created["uuid"]}
    )
    assert status == 200 and snapshot["state"] == "wait"  # as it was when the cancel arrived
    _, after = await private(http, frozen_sim, "GET", "/v1/order", params={"uuid": created["uuid"]})
    assert after["state"] == "cancel"
    status, body2 = await private(http, frozen_sim, "POST", "/v1/orders", body=body)
    assert status == 400 and "error" in body2
    _, closed = await private(
        http, frozen_sim, "GET", "/v1/orders/closed", params={"market": "KRW-BTC"}
    )
    assert [o["identifier"] for o in closed] == ["once"]


async def test_wrong_tick_min_total_and_insufficient_funds_are_refused(frozen_sim, http):
    base = {"market": "KRW-BTC", "side": "bid", "ord_type": "limit"}
    cases = [
        ({"volume": "0.001", "price": "10000500"}, "invalid_price_bid"),
        ({"volume": "0.0001", "price": "10000000"}, "under_min_total_bid"),
        ({"volume": "100", "price": "10000000"}, "insufficient_funds_bid"),
    ]
    for extra, name in cases:
        status, body = await private(http, frozen_sim, "POST", "/v1/orders", body=base | extra)
        assert status == 400 and body["error"]["name"] == name
    _, open_orders = await private(http, frozen_sim, "GET", "/v1/orders/open")
    assert open_orders == []


async def test_market_all_lists_the_configured_markets_with_details(frozen_sim, http):
    _, _, rows = await get(http, frozen_sim, "/v1/market/all", is_details="true")
    assert {r["market"] for r in rows} >= {"KRW-BTC", "KRW-ETH"}
    assert rows[0]["market_event"]["warning"] is False


def test_candle_levels_are_realistic(frozen_sim):
    closes = frozen_sim.market("upbit", "KRW-BTC").candles(Frame("d")).close
    assert np.all((closes > 0.5e8) & (closes < 3e8))


async def test_two_simulators_with_one_seed_serve_the_same_history_and_fresh_order_uuids(http):
    answers = []
    for _ in range(2):
        async with Simulator(config(speed=0.0, tick_s=3600.0)) as sim:
            _, _, candles = await get(
                http, sim, "/v1/candles/minutes/15", market="KRW-ETH", count=50
            )
            body = {"market": "KRW-ETH", "side": "bid", "price": "10000", "ord_type": "price"}
            _, order = await private(http, sim, "POST", "/v1/orders", body=body)
            answers.append((candles, order["uuid"]))
    assert answers[0][0] == answers[1][0]
    assert answers[0][1] != answers[1][1]  # uuids never repeat across restarts (issue 17)


@pytest.mark.parametrize(
    "path,key",
    [
        ("/v1/candles/weeks", "first_day_of_period"),
        ("/v1/candles/months", "first_day_of_period"),
        ("/v1/candles/days", "prev_closing_price"),
    ],
)
async def test_period_candles_carry_their_extra_fields(frozen_sim, http, path, key):
    status, _, rows = await get(http, frozen_sim, path, market="KRW-BTC", count=2)
    assert status == 200 and key in rows[0] and "unit" not in rows[0]


async def test_a_bithumb_style_timestamp_claim_is_checked(frozen_sim, http):
    now = frozen_sim.clock_ms()
    for stamp, expected in ((now, 200), (now - 3_600_000, 401)):
        token = upbit_token(UPBIT_KEY, UPBIT_SECRET, timestamp_ms=stamp, alg="HS256")
        async with http.get(
            frozen_sim.upbit_url + "/v1/accounts", headers={"Authorization": f"Bearer {token}"}
        ) as resp:
            assert resp.status == expected


async def test_bithumb_spelling_of_is_details_gets_market_warning(frozen_sim, http):
    _, _, rows = await get(http, frozen_sim, "/v1/market/all", isDetails="true")
    assert rows[0]["market_warning"] == "NONE" and "market_event" not in rows[0]
