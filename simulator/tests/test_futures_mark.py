"""The futures simulator's mark price and funding: ``/fapi/v1/premiumIndex`` and the
``@markPrice`` streams against Binance's documented examples, and the model behind them."""

from __future__ import annotations

import json
import re
from decimal import Decimal

import numpy as np
import pytest

from simulator.binance.markprice import FUNDING_INTERVAL_MS, MarkBook, next_funding_ms

from .helpers import same_shape, sample
from .test_futures import position, signed

EIGHT = re.compile(r"^-?\d+\.\d{8}$")


async def test_premium_index_of_one_symbol_and_of_all_follow_the_documented_shape(frozen_sim,
                                                                                  http):
    async with http.get(f"{frozen_sim.futures_url}/fapi/v1/premiumIndex",
                        params={"symbol": "BTCUSDT"}) as resp:
        assert resp.status == 200
        one = await resp.json()
        used_one = int(resp.headers["X-MBX-USED-WEIGHT-1M"])
    assert same_shape(one, sample("binance_futures_premium_index.json")["one"]) == []
    for field in ("markPrice", "indexPrice", "estimatedSettlePrice", "lastFundingRate",
                  "interestRate"):
        assert EIGHT.match(one[field]), (field, one[field])
    assert one["interestRate"] == "0.00010000"
    now = one["time"]
    assert one["nextFundingTime"] % FUNDING_INTERVAL_MS == 0
    assert now < one["nextFundingTime"] <= now + FUNDING_INTERVAL_MS
    last = frozen_sim.market("futures", "BTCUSDT").last_price
    assert abs(float(one["markPrice"]) / last - 1) < 0.006
    assert abs(Decimal(one["lastFundingRate"])) <= Decimal("0.0075")

    async with http.get(f"{frozen_sim.futures_url}/fapi/v1/premiumIndex") as resp:
        rows = await resp.json()
        # Binance's weights: 1 with a symbol, 10 without.
        assert int(resp.headers["X-MBX-USED-WEIGHT-1M"]) == used_one + 10
    assert same_shape(rows, sample("binance_futures_premium_index.json")["all"]) == []
    assert {r["symbol"] for r in rows} == set(frozen_sim.venues["futures"].markets)
    async with http.get(f"{frozen_sim.futures_url}/fapi/v1/premiumIndex",
                        params={"symbol": "NOPEUSDT"}) as resp:
        assert resp.status == 400 and (await resp.json())["code"] == -1121


@pytest.mark.parametrize("stream", ["btcusdt@markPrice@1s", "btcusdt@markPrice"])
async def test_mark_price_stream_sends_mark_price_updates(sim, http, stream):
    async with http.ws_connect(f"{sim.futures_ws_url}/market/stream?streams={stream}") as ws:
        msg = json.loads((await ws.receive(timeout=8)).data)
    assert msg["stream"] == stream
    data = msg["data"]
    assert same_shape(data, sample("binance_futures_mark_price_ws.json")) == []
    assert data["e"] == "markPriceUpdate" and data["s"] == "BTCUSDT"
    assert EIGHT.match(data["p"]) and EIGHT.match(data["i"]) and EIGHT.match(data["r"])
    assert data["T"] == next_funding_ms(data["E"])


async def test_a_mark_stream_with_an_unknown_speed_is_refused(sim, http):
    url = f"{sim.futures_ws_url}/market/stream?streams=btcusdt@markPrice@5s"
    async with http.get(url.replace("ws://", "http://")) as resp:
        assert resp.status == 400


async def test_position_pnl_is_marked_to_the_mark_price_not_the_last_trade(frozen_sim, http):
    venue = frozen_sim.venues["futures"]
    last = frozen_sim.market("futures", "BTCUSDT").last_price
    venue.marks.pin("BTCUSDT", mark=round(last * 0.97, 1))
    status, _ = await signed(http, frozen_sim, "POST", "/fapi/v1/order", symbol="BTCUSDT",
                                 side="BUY", type="MARKET", quantity="0.010",
                                 newOrderRespType="RESULT")
    assert status == 200
    row = await position(http, frozen_sim)
    mark = Decimal(row["markPrice"])
    assert mark == Decimal(f"{round(last * 0.97, 1):.8f}")
    expected = (mark - Decimal(row["entryPrice"])) * Decimal("0.010")
    assert Decimal(row["unRealizedProfit"]) == expected.quantize(Decimal("1E-8"))
    assert Decimal(row["unRealizedProfit"]) < 0


def _book(seed: int = 5):
    class M:
        last_price = 100.0

    return MarkBook({"BTCUSDT": M()}, seed, 1_773_240_000_000)


def test_the_index_lags_the_trade_price_and_the_model_is_deterministic():
    a, b = _book(), _book()
    ts = np.arange(1_773_240_000_000, 1_773_240_000_000 + 120_000, 500)
    prices = np.full(len(ts), 100.2)
    a.on_trades("BTCUSDT", ts, prices)
    b.on_trades("BTCUSDT", ts, prices)
    sa, sb = a.state("BTCUSDT", int(ts[-1])), b.state("BTCUSDT", int(ts[-1]))
    assert (sa.mark, sa.index, sa.funding_rate) == (sb.mark, sb.index, sb.funding_rate)
    # Two minutes at 100.2 after 100, time constant 60 s: the index is most of the way there.
    assert 100.0 + 0.2 * 0.8 < sa.index < 100.2
    assert sa.mark > sa.index  # trading above the index: a positive premium
    assert abs(sa.mark / sa.index - 1) <= 0.005
    assert -0.0075 <= sa.funding_rate <= 0.0075
    other = _book(seed=6)
    other.on_trades("BTCUSDT", ts, prices)
    assert other.state("BTCUSDT", int(ts[-1])).mark != sa.mark  # the seed's standing premium


def test_funding_times_are_every_eight_hours_from_midnight_utc():
    midnight = 1_773_187_200_000  # 2026-03-11 00:00 UTC
    assert next_funding_ms(midnight) == midnight + 8 * 3_600_000
    assert next_funding_ms(midnight - 1) == midnight
    assert next_funding_ms(midnight + 9 * 3_600_000) == midnight + 16 * 3_600_000
    book = _book()
    state = book.state("BTCUSDT", midnight + 7 * 3_600_000)
    state.premium = 0.002
    book.state("BTCUSDT", midnight + 8 * 3_600_000 - 1)
    assert state.funding_rate > 0.0001
    book.state("BTCUSDT", midnight + 8 * 3_600_000 + 1)  # a new period starts afresh
    assert state.premium_ms <= 1


def test_pinned_mark_and_rate_override_the_model():
    book = _book()
    book.pin("BTCUSDT", mark=90.0, rate=-0.001)
    state = book.state("BTCUSDT", 1_773_240_000_000)
    assert (state.mark, state.funding_rate) == (90.0, -0.001)
    book.pin("BTCUSDT")
    assert book.state("BTCUSDT", 1_773_240_000_000).mark != 90.0
