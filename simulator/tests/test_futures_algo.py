"""Binance USDⓈ-M futures conditional ("algo") orders on the simulator: STOP_MARKET and
TAKE_PROFIT_MARKET on ``/fapi/v1/algoOrder``, triggered by the venue's own trades, filled as a
reduce-only market order, reported by query and by ALGO_UPDATE on the user stream."""

from __future__ import annotations

import json
from decimal import Decimal

from .helpers import FUTURES_KEY
from .test_futures import position, signed


async def open_long(http, sim, qty="0.010"):
    status, order = await signed(
        http, sim, "POST", "/fapi/v1/order", symbol="BTCUSDT", side="BUY", type="MARKET",
        quantity=qty, newOrderRespType="RESULT",
    )
    assert status == 200 and order["status"] == "FILLED"
    return Decimal(order["avgPrice"])


async def algo(http, sim, kind, trigger, client_id, qty="0.010", side="SELL", **extra):
    return await signed(
        http, sim, "POST", "/fapi/v1/algoOrder", algoType="CONDITIONAL", symbol="BTCUSDT",
        side=side, type=kind, quantity=qty, triggerPrice=f"{trigger:.1f}", reduceOnly="true",
        workingType="CONTRACT_PRICE", clientAlgoId=client_id, **extra,
    )


async def test_a_stop_triggers_on_a_trade_fills_reduce_only_and_the_target_stays(frozen_sim, http):
    entry = await open_long(http, frozen_sim)
    stop, target = (entry * Decimal("0.98")).quantize(Decimal("0.1")), (
        entry * Decimal("1.03")
    ).quantize(Decimal("0.1"))
    status, placed = await algo(http, frozen_sim, "STOP_MARKET", stop, "sl-1")
    assert status == 200, placed
    assert placed["algoStatus"] == "NEW" and placed["orderType"] == "STOP_MARKET"
    assert placed["triggerPrice"] == f"{stop:.1f}" and placed["reduceOnly"] is True
    status, _ = await algo(http, frozen_sim, "TAKE_PROFIT_MARKET", target, "tp-1")
    assert status == 200
    status, dup = await algo(http, frozen_sim, "STOP_MARKET", stop, "sl-1")
    assert (status, dup["code"]) == (400, -4116)
    status, body = await signed(http, frozen_sim, "GET", "/fapi/v1/openAlgoOrders",
                                symbol="BTCUSDT")
    assert sorted(r["clientAlgoId"] for r in body) == ["sl-1", "tp-1"]

    frozen_sim.print_trade("futures", "BTCUSDT", float(stop) - 5)

    status, got = await signed(http, frozen_sim, "GET", "/fapi/v1/algoOrder", clientAlgoId="sl-1")
    assert status == 200 and got["algoStatus"] == "FINISHED"
    assert got["actualOrderId"] and got["actualQty"] == "0.010"
    status, fill_order = await signed(http, frozen_sim, "GET", "/fapi/v1/order",
                                      symbol="BTCUSDT", orderId=got["actualOrderId"])
    assert fill_order["status"] == "FILLED" and fill_order["reduceOnly"] is True
    assert fill_order["side"] == "SELL" and Decimal(fill_order["avgPrice"]) < stop
    assert got["actualPrice"] == fill_order["avgPrice"]
    assert (await position(http, frozen_sim))["positionAmt"] == "0.000"
    status, tp = await signed(http, frozen_sim, "GET", "/fapi/v1/algoOrder", clientAlgoId="tp-1")
    assert tp["algoStatus"] == "NEW" and tp["actualOrderId"] == ""

    status, cancelled = await signed(http, frozen_sim, "DELETE", "/fapi/v1/algoOrder",
                                     clientAlgoId="tp-1")
    assert status == 200 and cancelled["clientAlgoId"] == "tp-1" and cancelled["code"] == "200"
    status, again = await signed(http, frozen_sim, "DELETE", "/fapi/v1/algoOrder",
                                 clientAlgoId="tp-1")
    assert (status, again["code"]) == (400, -2011)
    status, triggered = await signed(http, frozen_sim, "DELETE", "/fapi/v1/algoOrder",
                                     clientAlgoId="sl-1")
    assert (status, triggered["code"]) == (400, -2011)  # a triggered stop cannot be cancelled
    status, missing = await signed(http, frozen_sim, "GET", "/fapi/v1/algoOrder",
                                   clientAlgoId="nope")
    assert (status, missing["code"]) == (400, -2013)


async def test_a_stop_that_would_trigger_at_once_is_refused(frozen_sim, http):
    entry = await open_long(http, frozen_sim)
    status, body = await algo(http, frozen_sim, "STOP_MARKET", entry * Decimal("1.01"), "sl-x")
    assert (status, body["code"]) == (400, -2021)
    status, body = await algo(http, frozen_sim, "TAKE_PROFIT_MARKET", entry * Decimal("0.99"),
                              "tp-x")
    assert (status, body["code"]) == (400, -2021)
    status, body = await signed(
        http, frozen_sim, "POST", "/fapi/v1/algoOrder", algoType="CONDITIONAL",
        symbol="BTCUSDT", side="SELL", type="STOP_MARKET", quantity="0.010",
        triggerPrice=f"{entry * Decimal('0.9'):.2f}", clientAlgoId="sl-tick",
    )
    assert (status, body["code"]) == (400, -4014)


async def test_a_triggered_reduce_only_stop_with_no_position_left_is_rejected(frozen_sim, http):
    entry = await open_long(http, frozen_sim)
    stop = (entry * Decimal("0.98")).quantize(Decimal("0.1"))
    assert (await algo(http, frozen_sim, "STOP_MARKET", stop, "sl-late"))[0] == 200
    status, _ = await signed(
        http, frozen_sim, "POST", "/fapi/v1/order", symbol="BTCUSDT", side="SELL",
        type="MARKET", quantity="0.010", reduceOnly="true",
    )
    assert status == 200
    frozen_sim.print_trade("futures", "BTCUSDT", float(stop) - 5)
    _, got = await signed(http, frozen_sim, "GET", "/fapi/v1/algoOrder", clientAlgoId="sl-late")
    assert got["algoStatus"] == "REJECTED" and got["actualOrderId"] == ""
    assert (await position(http, frozen_sim))["positionAmt"] == "0.000"  # never flipped short


async def test_algo_updates_on_the_user_stream(frozen_sim, http):
    entry = await open_long(http, frozen_sim)
    async with http.post(
        frozen_sim.futures_url + "/fapi/v1/listenKey", headers={"X-MBX-APIKEY": FUTURES_KEY}
    ) as resp:
        key = (await resp.json())["listenKey"]
    url = f"{frozen_sim.futures_ws_url}/private/ws?listenKey={key}&events=ALGO_UPDATE"
    stop = (entry * Decimal("0.98")).quantize(Decimal("0.1"))
    async with http.ws_connect(url) as ws:
        assert (await algo(http, frozen_sim, "STOP_MARKET", stop, "sl-ws"))[0] == 200
        frozen_sim.print_trade("futures", "BTCUSDT", float(stop) - 5)
        events = [json.loads((await ws.receive(timeout=5)).data) for _ in range(3)]
    assert [(e["e"], e["o"]["X"]) for e in events] == [
        ("ALGO_UPDATE", "NEW"), ("ALGO_UPDATE", "TRIGGERED"), ("ALGO_UPDATE", "FINISHED"),
    ]
    last = events[-1]["o"]
    assert last["caid"] == "sl-ws" and last["ai"] and last["aq"] == "0.010"
    assert last["o"] == "STOP_MARKET" and last["at"] == "CONDITIONAL"
