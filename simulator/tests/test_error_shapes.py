"""Error answers per venue, exactly as the venues document them (status and body): a bad
signature, an unknown symbol, a too-small order and a too-precise quantity or price.

Sources: ``simulator/payloads/upbit_errors.json``, ``binance_spot_errors.json`` and the shared
notes (upbit.md "Errors", binance-spot.md "Filters", binance-futures.md "Errors"). Upbit's
answer to a volume with more than 8 decimals is not documented in them (only ``invalid_price_*``
for a price off the tick grid is), so Upbit's "too precise" case is the price.
"""

from __future__ import annotations

import pytest

from .helpers import (
    BINANCE_KEY,
    BINANCE_SECRET,
    FUTURES_KEY,
    FUTURES_SECRET,
    binance_query,
    body_query,
    sample,
    upbit_auth,
)


def upbit_documented(name) -> tuple[int, dict]:
    for example in sample("upbit_errors.json")["examples"]:
        if example.get("body", {}).get("error", {}).get("name") == name:
            return example["status"], example["body"]
    raise KeyError(name)


def binance_documented(code: int, text: str = "") -> dict:
    return next(e for e in sample("binance_spot_errors.json")["examples"]
                if e["code"] == code and text in e["msg"])


async def upbit_order(sim, http, body, secret=None):
    auth = upbit_auth(body_query(body), **({"secret": secret} if secret else {}))
    async with http.post(f"{sim.upbit_url}/v1/orders", json=body, headers=auth) as resp:
        return resp.status, await resp.json()


LIMIT = {"market": "KRW-BTC", "side": "bid", "volume": "0.001", "price": "10000000",
         "ord_type": "limit"}


async def test_upbit_error_shapes(sim, http):
    assert await upbit_order(sim, http, LIMIT, secret="not-the-secret") == upbit_documented(
        "jwt_verification")
    async with http.get(f"{sim.upbit_url}/v1/ticker", params={"markets": "KRW-NOPE"}) as resp:
        assert (resp.status, await resp.json()) == upbit_documented(404)
    status, body = await upbit_order(sim, http, LIMIT | {"market": "KRW-NOPE"})
    assert status == 400 and body["error"]["name"] == "validation_error"
    assert body["error"]["message"].endswith("does not have a valid value")
    status, body = await upbit_order(sim, http, LIMIT | {"volume": "0.0001"})  # 1,000 KRW
    assert status == 400 and set(body) == {"error"}
    assert body["error"]["name"] == "under_min_total_bid"  # upbit.md: 400 under_min_total_*
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert await upbit_order(sim, http, LIMIT | {"price": "10000500"}) == upbit_documented(
        "invalid_price_bid")


async def binance_order(http, url, key, secret, params, clock_ms):
    query = binance_query(params, secret, timestamp_ms=clock_ms)
    async with http.post(f"{url}?{query}", headers={"X-MBX-APIKEY": key}) as resp:
        return resp.status, await resp.json()


BTC = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC",
       "price": "50000"}


@pytest.mark.parametrize(
    ("params", "secret", "expected"),
    [
        (BTC | {"quantity": "0.002"}, "bad", binance_documented(-1022)),
        (BTC | {"symbol": "NOPEUSDT", "quantity": "0.002"}, None,
         {"code": -1121, "msg": "Invalid symbol."}),
        (BTC | {"quantity": "0.00001"}, None, {"code": -1013, "msg": "Filter failure: NOTIONAL"}),
        # more decimals than the asset has: -1111; within them but off the step: LOT_SIZE
        (BTC | {"quantity": "0.000000001"}, None,
         {"code": -1111, "msg": "Parameter 'quantity' has too much precision."}),
        (BTC | {"quantity": "0.0010001"}, None, binance_documented(-1013, "LOT_SIZE")),
    ],
    ids=["bad-signature", "unknown-symbol", "too-small", "too-precise", "off-step"],
)
async def test_binance_spot_error_shapes(sim, http, params, secret, expected):
    answer = await binance_order(http, f"{sim.binance_url}/api/v3/order", BINANCE_KEY,
                                 secret or BINANCE_SECRET, params, sim.clock_ms())
    assert answer == (400, expected)


@pytest.mark.parametrize(
    ("params", "secret", "expected"),
    [
        (BTC | {"quantity": "0.002"}, "bad",
         {"code": -1022, "msg": "Signature for this request is not valid."}),
        (BTC | {"symbol": "NOPEUSDT", "quantity": "0.002"}, None,
         {"code": -1121, "msg": "Invalid symbol."}),
        # BTCUSDT's minimum notional is 100 USDT
        (BTC | {"quantity": "0.001"}, None, {"code": -4164, "msg": "Order's notional must be no "
                                             "smaller than 100 (unless you choose reduce only)."}),
        (BTC | {"quantity": "0.0011"}, None,
         {"code": -1111, "msg": "Precision is over the maximum defined for this asset."}),
        (BTC | {"quantity": "0.003", "price": "50000.001"}, None,
         {"code": -1111, "msg": "Precision is over the maximum defined for this asset."}),
        # within the symbol's pricePrecision (2) but off its 0.1 tick
        (BTC | {"quantity": "0.003", "price": "50000.01"}, None,
         {"code": -4014, "msg": "Price not increased by tick size."}),
    ],
    ids=["bad-signature", "unknown-symbol", "too-small", "too-precise-qty", "too-precise-price",
         "off-tick"],
)
async def test_binance_futures_error_shapes(sim, http, params, secret, expected):
    answer = await binance_order(http, f"{sim.futures_url}/fapi/v1/order", FUTURES_KEY,
                                 secret or FUTURES_SECRET, params, sim.clock_ms())
    assert answer == (400, expected)
