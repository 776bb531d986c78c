"""Retry-After on every refusal, 418 bans for clients that ignore them, and the counters of the
simulator's answers by status (``Simulator.answers`` and ``GET /_sim/stats``)."""

from __future__ import annotations

import json

from simulator.faults import Bans, Faults


async def _get(http, url, **params):
    async with http.get(url, params=params) as resp:
        return resp.status, dict(resp.headers), await resp.read()


async def test_upbit_429_carries_retry_after_and_remaining_req(frozen_sim, http):
    frozen_sim.set_faults(rate_limit_budget=1)
    answers = [await _get(http, frozen_sim.upbit_url + "/v1/ticker", markets="KRW-BTC")
               for _ in range(3)]
    refused = [(s, h) for s, h, _ in answers if s == 429]
    assert refused, [s for s, _, _ in answers]
    for _status, headers in refused:
        assert headers["Retry-After"] == "1"  # the one-second window's end, in whole seconds
        assert headers["Remaining-Req"].endswith("sec=0")


async def test_retry_after_can_be_turned_off_to_test_clients_without_it(frozen_sim, http):
    frozen_sim.set_faults(rate_limit_budget=1, retry_after=False)
    statuses = []
    for _ in range(3):
        status, headers, _ = await _get(http, frozen_sim.upbit_url + "/v1/ticker",
                                        markets="KRW-BTC")
        statuses.append(status)
        assert "Retry-After" not in headers
    assert 429 in statuses


async def test_answers_are_counted_by_venue_and_status_and_served_at_sim_stats(frozen_sim, http):
    frozen_sim.set_faults(rate_limit_budget=5)  # Binance klines weigh 2: 2 pass, then 429
    for _ in range(4):
        await _get(http, frozen_sim.binance_url + "/api/v3/klines", symbol="BTCUSDT",
                   interval="1m")
    frozen_sim.set_faults(rate_limit_budget=None, error_ratio=1.0)
    await _get(http, frozen_sim.upbit_url + "/v1/ticker", markets="KRW-BTC")

    # the stats endpoint is not a venue endpoint: no injected 5xx, not counted itself
    status, _, body = await _get(http, frozen_sim.futures_url + "/_sim/stats")
    assert status == 200


    stats = json.loads(body)
    assert stats["answers"] == {"binance": {"200": 2, "429": 2}, "upbit": {"500": 1}}
    assert stats["by_status"] == {"200": 2, "429": 2, "500": 1} and stats["total"] == 5
    assert frozen_sim.answers.total(429) == 2
    assert frozen_sim.answers.total(venue="upbit") == 1
    assert frozen_sim.answers.snapshot() == {"binance": {200: 2, 429: 2}, "upbit": {500: 1}}

    async with http.delete(frozen_sim.upbit_url + "/_sim/stats") as resp:
        assert resp.status == 200 and (await resp.json())["total"] == 0
    assert frozen_sim.answers.total() == 0


async def test_a_client_ignoring_retry_after_is_banned_with_418(frozen_sim, http):
    frozen_sim.set_faults(rate_limit_budget=2, ban_after=2, ban_s=90.0)
    statuses, headers = [], []
    for _ in range(5):  # klines weigh 2: one passes per (60 s) window
        status, head, _body = await _get(http, frozen_sim.binance_url + "/api/v3/klines",
                                        symbol="BTCUSDT", interval="1m")
        statuses.append(status)
        headers.append(head)
    # 200, then a 429 saying "wait", then two requests sent anyway: the second is banned
    assert statuses == [200, 429, 429, 418, 418]
    assert 1 <= int(headers[1]["Retry-After"]) <= 60
    assert headers[3]["Retry-After"] == "90" and 89 <= int(headers[4]["Retry-After"]) <= 90
    assert frozen_sim.answers.total(418) == 2


def test_bans_grow_for_repeat_offenders_and_spare_clients_that_wait():
    now = [1000.0]
    bans = Bans(clock=lambda: now[0])
    faults = Faults(ban_after=2, ban_s=10.0)
    bans.refused("a", 1.0)
    now[0] += 1.5  # waited as told: no strike
    assert bans.check("a", faults) == 0.0
    bans.refused("a", 5.0)
    assert bans.check("a", faults) == 0.0  # one strike
    assert bans.check("a", faults) == 10.0  # the second strike bans
    assert bans.check("b", faults) == 0.0  # per client
    now[0] += 10.0
    bans.refused("a", 5.0)
    bans.check("a", faults)
    assert bans.check("a", faults) == 20.0  # a repeat offender's ban doubles
    assert bans.check("a", Faults()) > 0  # a ban runs out even if the knob is turned off
