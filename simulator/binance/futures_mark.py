"""The futures venue's mark price on the wire: ``GET /fapi/v1/premiumIndex`` (one symbol or
all) and the ``<symbol>@markPrice`` (every 3 s) / ``<symbol>@markPrice@1s`` streams, with
Binance's field names and string formats (8 decimals; times int ms). The numbers come from
:class:`simulator.binance.markprice.MarkBook`.
"""

from __future__ import annotations

from decimal import Decimal

from aiohttp import web

from simulator.binance.common import berror
from simulator.binance.markprice import INTEREST, MarkBook, next_funding_ms
from simulator.streams import Connection

#: stream suffix -> push period (ms)
MARK_STREAMS = {"markPrice": 3000, "markPrice@1s": 1000}


def f8(value: float) -> str:
    return f"{value:.8f}"


class FuturesMarkMixin:
    """Mixed into the futures venue (needs ``markets``, ``now()``, ``stream_conns``,
    ``_emit``, ``ctx``)."""

    marks: MarkBook

    def init_marks(self) -> None:
        self.marks = MarkBook(self.markets, self.ctx.seed, self.now())

    def mark_decimal(self, symbol: str) -> Decimal:
        return Decimal(f8(self.marks.state(symbol, self.now()).mark))

    def _premium_row(self, symbol: str, now: int) -> dict:
        state = self.marks.state(symbol, now)
        return {
            "symbol": symbol,
            "markPrice": f8(state.mark),
            "indexPrice": f8(state.index),
            "estimatedSettlePrice": f8(state.index),
            "lastFundingRate": f8(state.funding_rate),
            "interestRate": f8(INTEREST),
            "nextFundingTime": next_funding_ms(now),
            "time": now,
        }

    def premium_index(self, params, account) -> web.Response:
        now = self.now()
        symbol = params.get("symbol")
        if symbol:
            if symbol not in self.markets:
                return berror(400, -1121, "Invalid symbol.")
            return web.json_response(self._premium_row(symbol, now))
        return web.json_response([self._premium_row(s, now) for s in self.markets])

    def mark_stream_period(self, kind: str) -> int | None:
        return MARK_STREAMS.get(kind)

    def push_marks(self, now_ms: int) -> None:
        """Send ``markPriceUpdate`` on each subscribed mark stream whose period turned."""
        for conn in list(self.stream_conns):
            sent = conn.state.setdefault("marks", {})
            for name in conn.state["streams"]:
                symbol, _, kind = name.partition("@")
                period = MARK_STREAMS.get(kind)
                if period is None:
                    continue
                slot = now_ms // period
                if sent.get(name) == slot:
                    continue
                sent[name] = slot
                self._emit_mark(conn, name, symbol.upper(), now_ms)

    def _emit_mark(self, conn: Connection, name: str, symbol: str, now_ms: int) -> None:
        state = self.marks.state(symbol, now_ms)
        self._emit(conn, name, {
            "e": "markPriceUpdate",
            "E": now_ms,
            "s": symbol,
            "p": f8(state.mark),
            "i": f8(state.index),
            "P": f8(state.index),
            "r": f8(state.funding_rate),
            "T": next_funding_ms(now_ms),
        })
