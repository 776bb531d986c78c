"""The wire vocabulary Binance spot and futures share: kline intervals, ``{"code","msg"}`` errors
and the gap filling of klines (Binance answers a kline for every interval)."""

from __future__ import annotations

import math

import numpy as np
from aiohttp import web

from simulator.market import CandleArrays, Frame

#: Binance order statuses by the engine's.
STATUS = {"open": "NEW", "filled": "FILLED", "canceled": "CANCELED", "expired": "EXPIRED"}

INTERVALS = {
    "1s": Frame("s"),
    "1m": Frame("m"),
    "3m": Frame("m", 3),
    "5m": Frame("m", 5),
    "15m": Frame("m", 15),
    "30m": Frame("m", 30),
    "1h": Frame("h"),
    "2h": Frame("h", 2),
    "4h": Frame("h", 4),
    "6h": Frame("h", 6),
    "8h": Frame("h", 8),
    "12h": Frame("h", 12),
    "1d": Frame("d"),
    "3d": Frame("d", 3),
    "1w": Frame("w"),
    "1M": Frame("M"),
}


def berror(status: int, code: int, msg: str) -> web.Response:
    return web.json_response({"code": code, "msg": msg}, status=status)


def missing(name: str) -> web.Response:
    return berror(
        400, -1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed."
    )


def decimals(step: float) -> int:
    return max(0, -math.floor(math.log10(step) + 1e-9))


def fill_gaps(c: CandleArrays, frame: Frame, until_open: int | None) -> CandleArrays:
    """Binance produces a kline for every interval: gaps get OHLC = previous close, volume 0."""
    width = frame.width_ms
    if width is None or len(c) == 0:
        return c
    last = int(c.open_time[-1]) if until_open is None else max(int(c.open_time[-1]), until_open)
    grid = np.arange(int(c.open_time[0]), last + 1, width, dtype=np.int64)
    if len(grid) == len(c):
        return c
    pos = np.searchsorted(c.open_time, grid, side="right") - 1  # last real candle at or before
    real = c.open_time[pos] == grid
    prev_close = c.close[pos]
    out = {}
    for name, default in (
        ("open", None),
        ("high", None),
        ("low", None),
        ("close", None),
        ("volume", 0.0),
        ("quote_volume", 0.0),
        ("count", 0),
        ("first_id", -1),
        ("last_id", -1),
        ("last_ts", 0),
        ("taker_buy_volume", 0.0),
        ("taker_buy_quote", 0.0),
    ):
        values = getattr(c, name)[pos]
        out[name] = np.where(real, values, prev_close if default is None else default)
    return CandleArrays(open_time=grid, **out)
