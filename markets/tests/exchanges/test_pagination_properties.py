"""Property tests: candle paging returns exactly the closed candles in range, whatever the gaps,
page sizes and boundaries. The venues are subclasses serving an in-memory series with the
documented paging rules (Upbit/Bithumb: newest first before ``to``; Binance: oldest first from
``startTime`` to ``endTime`` inclusive)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from markets.exchanges.base import Capabilities
from markets.exchanges.binance_spot import BinanceSpotAdapter
from markets.exchanges.bithumb import BithumbAdapter
from markets.exchanges.upbit import UpbitAdapter

MIN = 60_000
NOW_MS = 1_785_400_000_000 + 31_000
FORMING = NOW_MS - NOW_MS % MIN


def _row(open_ms: int) -> dict:
    utc = datetime.fromtimestamp(open_ms / 1000, UTC)
    return {"candle_date_time_utc": utc.strftime("%Y-%m-%dT%H:%M:%S"), "opening_price": 1.0,
            "high_price": 2.0, "low_price": 0.5, "trade_price": 1.5,
            "candle_acc_trade_volume": 3.0, "candle_acc_trade_price": 4.5}


def _small_pages(caps: Capabilities, limit: int) -> Capabilities:
    return dataclasses.replace(caps, max_candles_per_request=limit)


class SeriesUpbit(UpbitAdapter):
    def __init__(self, opens: list[int], limit: int) -> None:
        super().__init__(clock=lambda: NOW_MS / 1000)
        self.capabilities = _small_pages(UpbitAdapter.capabilities, limit)
        self.opens, self.calls = opens, 0

    def _public(self, path, params, group):
        self.calls += 1
        args = dict(params)
        to = datetime.fromisoformat(args["to"].replace("Z", "+00:00"))
        to_ms = int(to.timestamp() * 1000)
        rows = [o for o in self.opens if o < to_ms][-int(args["count"]):]
        return [_row(o) for o in reversed(rows)]


class SeriesBithumb(BithumbAdapter):
    def __init__(self, opens: list[int], limit: int) -> None:
        super().__init__(clock=lambda: NOW_MS / 1000)
        self.capabilities = _small_pages(BithumbAdapter.capabilities, limit)
        self.opens, self.calls = opens, 0

    def _public(self, path, params, group):
        self.calls += 1
        args = dict(params)
        assert "Z" not in args["to"] and "+" not in args["to"]
        kst = datetime.fromisoformat(args["to"])
        to_ms = int((kst - timedelta(hours=9)).replace(tzinfo=UTC).timestamp() * 1000)
        rows = [o for o in self.opens if o < to_ms][-int(args["count"]):]
        return [_row(o) for o in reversed(rows)]


class SeriesBinance(BinanceSpotAdapter):
    def __init__(self, opens: list[int], limit: int) -> None:
        super().__init__(clock=lambda: NOW_MS / 1000)
        self.capabilities = _small_pages(BinanceSpotAdapter.capabilities, limit)
        self.opens, self.calls = opens, 0

    def _public(self, path, params=None, weight=1):
        self.calls += 1
        args = dict(params)
        rows = [o for o in self.opens if args["startTime"] <= o <= args["endTime"]]
        return [[o, "1", "2", "0.5", "1.5", "3", o + MIN - 1, "4.5", 1, "0", "0", "0"]
                for o in rows[:args["limit"]]]


series = st.lists(st.booleans(), min_size=1, max_size=400).map(
    lambda present: [FORMING - i * MIN for i, keep in enumerate(present) if keep][::-1])


@settings(max_examples=60, deadline=None)
@given(opens=series, limit=st.integers(1, 50), start_back=st.integers(-5, 420),
       end_back=st.integers(-5, 420),
       venue=st.sampled_from([SeriesUpbit, SeriesBithumb, SeriesBinance]))
def test_paging_returns_exactly_the_closed_candles_in_range(opens, limit, start_back,
                                                            end_back, venue):
    adapter = venue(opens, limit)
    start, end = FORMING - start_back * MIN, FORMING - end_back * MIN
    got = [c.open_time_ms for c in adapter.fetch_candles("X", "1m", start, end)]
    assert got == [o for o in opens if start <= o < end and o < FORMING]
    assert adapter.calls <= len(got) // limit + 2
