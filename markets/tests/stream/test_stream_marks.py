"""Mark prices of perpetual symbols: streamed from the futures simulator into ``MarkPrice`` rows,
kept through a dropped connection, filled over REST by the collector when stale, and the
funding settlement kept when the venue moves its next funding time on."""

from __future__ import annotations

import asyncio
import datetime as dt
from decimal import Decimal

import pytest
from django.utils import timezone

from markets.exchanges import get_adapter
from markets.exchanges.base import MarkPrice as MarkInfo
from markets.simulator.server import Simulator, SimulatorThread
from markets.stream import StreamConfig, SymbolSpec, VenueSpec, VenueStream

from .conftest import sim_config
from .test_stream import EVALUATE, Recorder, wait_until


def _futures_exchange(sim):
    from markets.models import Exchange, Symbol

    exchange = Exchange.objects.create(slug="simf", name="Sim futures",
                                       adapter="binance_futures", rest_url=sim.futures_url,
                                       ws_url=sim.futures_ws_url)
    btc = Symbol.objects.create(exchange=exchange, code="BTCUSDT", base="BTC", quote="USDT",
                                market_type="perpetual", timeframes=["1m"], tick_size="0.1",
                                step_size="0.001", max_leverage=125)
    return exchange, btc


@pytest.mark.django_db(transaction=True)
async def test_the_stream_stores_the_mark_price_of_perpetuals_and_survives_a_drop():
    from markets.models import MarkPrice

    async with Simulator(sim_config(venues=("futures",), history_days=0.1)) as sim:
        _, btc = await asyncio.to_thread(_futures_exchange, sim)
        spec = VenueSpec("simf", "binance_futures", sim.futures_url, sim.futures_ws_url,
                         (SymbolSpec("BTCUSDT", btc.id, ("1m",), "perpetual"),))

        def adapter():
            return get_adapter("binance_futures", rest_url=sim.futures_url,
                               ws_url=sim.futures_ws_url)

        rec = Recorder()
        stream = VenueStream(spec, rest_adapter=adapter(), stream_adapter_factory=adapter,
                             publish=rec.publish, send_task=rec.send_task,
                             evaluate_task=EVALUATE, clock_ms=sim.clock_ms,
                             config=StreamConfig(grace_ms=500, catchup_candles=5))
        assert stream.marks is not None and stream.marks.codes == ["BTCUSDT"]
        runner = asyncio.ensure_future(stream.run())

        def row():
            return MarkPrice.objects.filter(symbol=btc).first()

        async def stored():
            return await asyncio.to_thread(row)

        assert await wait_until(lambda: stream.marks.stored >= 1, 15)
        first = await stored()
        venue_mark = sim.venues["futures"].marks.state("BTCUSDT", sim.clock_ms())
        assert abs(float(first.price) / venue_mark.mark - 1) < 0.001
        assert first.funding_rate is not None
        assert first.next_funding_time.timestamp() * 1000 % (8 * 3_600_000) == 0
        await sim.drop_websockets()
        assert await wait_until(lambda: stream.marks.stored >= 4, 20)
        later = await stored()
        assert later.venue_time > first.venue_time and later.updated_at > first.updated_at
        assert stream.counters()["marks"] >= 4
        stream.stop()
        await asyncio.wait_for(runner, 20)


@pytest.mark.django_db(transaction=True)
async def test_a_spot_venue_has_no_mark_stream():
    spec = VenueSpec("sim", "upbit", "http://127.0.0.1:9", "ws://127.0.0.1:9",
                     (SymbolSpec("KRW-BTC", 1, ("1m",)),))

    def adapter():
        return get_adapter("upbit", rest_url=spec.rest_url, ws_url=spec.ws_url)

    rec = Recorder()
    stream = VenueStream(spec, rest_adapter=adapter(), stream_adapter_factory=adapter,
                         publish=rec.publish, send_task=rec.send_task, evaluate_task=EVALUATE,
                         store=lambda *a: (0, 0), last_stored=lambda *a: None)
    assert stream.marks is None and "marks" not in stream.counters()


@pytest.mark.django_db
def test_the_collector_fills_a_stale_mark_over_rest_and_leaves_a_fresh_one():
    from markets.adapters import adapter_for
    from markets.markprice import refresh_stale
    from markets.models import MarkPrice

    sim = SimulatorThread(sim_config(venues=("futures",), history_days=0.1))
    try:
        _, btc = _futures_exchange(sim)
        assert refresh_stale(adapter_for) == 1  # nothing stored: fetched
        row = MarkPrice.objects.get(symbol=btc)
        assert row.price > 0 and row.funding_rate is not None
        MarkPrice.objects.filter(symbol=btc).update(price=Decimal("1"))
        assert refresh_stale(adapter_for) == 0  # fresh: not asked again
        assert MarkPrice.objects.get(symbol=btc).price == Decimal("1")
        MarkPrice.objects.filter(symbol=btc).update(
            updated_at=timezone.now() - dt.timedelta(seconds=61))
        assert refresh_stale(adapter_for) == 1  # the stream is down: REST fills it
        assert MarkPrice.objects.get(symbol=btc).price > Decimal("1000")
    finally:
        sim.stop()


@pytest.mark.django_db
def test_a_funding_time_moving_on_keeps_the_settled_rate():
    from markets.markprice import store_marks
    from markets.models import Exchange, MarkPrice, Symbol

    exchange = Exchange.objects.create(slug="f", name="F", adapter="binance_futures",
                                       rest_url="http://127.0.0.1:9", ws_url="ws://127.0.0.1:9")
    btc = Symbol.objects.create(exchange=exchange, code="BTCUSDT", base="BTC", quote="USDT",
                                market_type="perpetual")
    funding = 1_773_244_800_000  # 2026-03-11 16:00 UTC
    before = MarkInfo("BTCUSDT", Decimal("100"), Decimal("99.9"), Decimal("0.0003"), funding,
                      funding - 1000)
    after = MarkInfo("BTCUSDT", Decimal("101"), Decimal("100.9"), Decimal("0.0001"),
                     funding + 8 * 3_600_000, funding + 1000)
    assert store_marks("f", [before]) == 1
    assert store_marks("f", [after, before]) == 1  # the newest of a batch wins
    row = MarkPrice.objects.get(symbol=btc)
    assert (row.price, row.funding_rate) == (Decimal("101"), Decimal("0.0001"))
    assert row.last_funding_time == dt.datetime.fromtimestamp(funding / 1000, tz=dt.UTC)
    assert (row.last_funding_rate, row.last_funding_price) == (Decimal("0.0003"), Decimal("100"))
    assert store_marks("f", [before]) == 0  # older than what is stored: ignored
    assert store_marks("f", [MarkInfo("NOPE", Decimal(1), None, None, None, 1)]) == 0
