"""REST market data that Binance spot and USDⓈ-M futures answer alike: ``depth``, ``aggTrades``
and ``ticker/24hr``.

* ``GET /api/v3/depth`` (weight by ``limit``: 1–100 → 5, 101–500 → 25, 501–1000 → 50,
  1001–5000 → 250; default 100) answers ``{"lastUpdateId", "bids", "asks"}``; ``GET
  /fapi/v1/depth`` (``limit`` 5, 10, 20, 50 → weight 2; 100 → 5; 500 → 10; 1000 → 20; default
  500) adds ``"E"`` (message time) and ``"T"`` (transaction time). Levels are ``[price, qty]``
  strings, bids high to low, asks low to high, one tick apart from the simulator's quote.
* ``GET /api/v3/aggTrades`` (weight 4) / ``GET /fapi/v1/aggTrades`` (weight 20): ``fromId``,
  ``startTime``/``endTime`` (at most one hour apart, else ``-1127``), ``limit`` ≤ 1000 (default
  500). Rows ``{"a","p","q","f","l","T","m"}`` (spot also ``"M"``); each simulated trade is its
  own aggregate (``a`` = ``f`` = ``l`` = the trade id).
* ``GET /fapi/v1/trades`` (weight 5): the latest ``limit`` trades (≤ 1000, default 500), rows
  ``{"id","price","qty","quoteQty","time","isBuyerMaker"}`` (spot's ``/api/v3/trades`` adds
  ``isBestMatch``; it is ``SpotMarketData.trades``).
* ``GET /api/v3/ticker/24hr`` (weight 2 with ``symbol``, 80 without) / ``GET
  /fapi/v1/ticker/24hr`` (1 with ``symbol``, 40 without): the rolling 24 h window; futures rows
  have no bid/ask/prevClose fields.
"""

from __future__ import annotations

import random
from decimal import Decimal

import numpy as np
from aiohttp import web

from simulator.binance.protocol import berror
from simulator.market import tick_of

FUTURES_DEPTHS = (5, 10, 20, 50, 100, 500, 1000)
HOUR_MS = 3_600_000


def spot_depth_weight(query: dict) -> int:
    limit = _int(query.get("limit"), 100)
    return 5 if limit <= 100 else 25 if limit <= 500 else 50 if limit <= 1000 else 250


def futures_depth_weight(query: dict) -> int:
    limit = _int(query.get("limit"), 500)
    return 2 if limit <= 50 else 5 if limit <= 100 else 10 if limit <= 500 else 20


def _int(text, default: int) -> int:
    try:
        return int(text) if text else default
    except ValueError:
        return default


class BinanceMarketRest:
    """A mixin of the Binance venues (it needs ``symbol_market``, ``px``, ``qx``, ``engine``)."""

    def book_levels(self, market, depth: int) -> tuple[list[list[str]], list[list[str]]]:
        """``depth`` synthetic levels a tick apart from the quote; sizes fixed for a second."""
        bid, ask = self.engine.quote_prices(market.symbol)
        tick = Decimal(repr(tick_of(market.spec, market.last_price)))
        rng = random.Random(f"{self.ctx.seed}:{market.symbol}:{self.now() // 1000}")
        def level(price: Decimal) -> list[str]:
            qty = rng.uniform(0.05, 2.0) * market.spec.volume_1m
            return [self.px(market, price), self.qx(market, qty)]

        bids = [level(bid - tick * i) for i in range(depth) if bid - tick * i > 0]
        asks = [level(ask + tick * i) for i in range(depth)]
        return bids, asks

    def depth(self, params, account) -> web.Response:
        market, err = self.symbol_market(params)
        if err:
            return err
        try:
            limit = int(params.get("limit") or (500 if self.name == "futures" else 100))
        except ValueError:
            return berror(400, -1100, "Illegal characters found in parameter 'limit'.")
        if self.name == "futures":
            limit = next((n for n in FUTURES_DEPTHS if n >= limit), FUTURES_DEPTHS[-1])
        else:
            limit = min(max(limit, 1), 5000)
        bids, asks = self.book_levels(market, limit)
        now = self.now()
        body = {"lastUpdateId": self.update_id(market, now)}
        if self.name == "futures":
            body |= {"E": now, "T": now}
        return web.json_response(body | {"bids": bids, "asks": asks})

    def recent_trades(self, params, account) -> web.Response:
        market, err = self.symbol_market(params)
        if err:
            return err
        try:
            limit = min(max(int(params.get("limit") or 500), 1), 1000)
        except ValueError:
            return berror(400, -1100, "Illegal characters found in a parameter.")
        t = market.trades(max(0, market.visible - limit))
        rows = []
        for i in range(len(t["ts"])):
            price, qty = self.px(market, t["price"][i]), self.qx(market, t["qty"][i])
            rows.append({
                "id": int(t["id"][i]),
                "price": price,
                "qty": qty,
                "quoteQty": str(Decimal(price) * Decimal(qty)),
                "time": int(t["ts"][i]),
                "isBuyerMaker": bool(t["buyer_maker"][i]),
            })
        return web.json_response(rows)

    def agg_trades(self, params, account) -> web.Response:
        market, err = self.symbol_market(params)
        if err:
            return err
        try:
            limit = min(max(int(params.get("limit") or 500), 1), 1000)
            from_id = int(params["fromId"]) if params.get("fromId") else None
            start = int(params["startTime"]) if params.get("startTime") else None
            end = int(params["endTime"]) if params.get("endTime") else None
        except ValueError:
            return berror(400, -1100, "Illegal characters found in a parameter.")
        if start is not None and end is not None and end - start > HOUR_MS:
            return berror(400, -1127, "More than 1 hours between startTime and endTime.")
        t = market.trades()
        if from_id is not None:
            lo = int(np.searchsorted(t["id"], from_id, side="left"))
            idx = np.arange(lo, min(lo + limit, len(t["id"])))
        elif start is not None or end is not None:
            lo = int(np.searchsorted(t["ts"], start, side="left")) if start is not None else 0
            hi = (
                int(np.searchsorted(t["ts"], end, side="right")) if end is not None
                else len(t["ts"])
            )
            idx = np.arange(lo, min(hi, lo + limit))
        else:
            idx = np.arange(max(0, len(t["id"]) - limit), len(t["id"]))
        spot = self.name != "futures"
        rows = []
        for i in idx:
            tid = int(t["id"][i])
            row = {
                "a": tid,
                "p": self.px(market, t["price"][i]),
                "q": self.qx(market, t["qty"][i]),
                "f": tid,
                "l": tid,
                "T": int(t["ts"][i]),
                "m": bool(t["buyer_maker"][i]),
            }
            rows.append(row | {"M": True} if spot else row)
        return web.json_response(rows)

    def ticker_row(self, market) -> dict:
        now = self.now()
        t = market.trades()
        lo = int(np.searchsorted(t["ts"], now - 86_400_000, side="right"))
        price, qty = t["price"][lo:], t["qty"][lo:]
        last = market.last_price
        if len(price) == 0:
            price, qty = np.array([last]), np.array([0.0])
        open_ = float(price[0])
        vol = float(qty.sum())
        quote = float((price * qty).sum())
        row = {
            "symbol": market.symbol,
            "priceChange": self.px(market, last - open_),
            "priceChangePercent": f"{(last - open_) / open_ * 100:.3f}",
            "weightedAvgPrice": self.px(market, quote / vol if vol else last),
            "prevClosePrice": self.px(market, float(t["price"][lo - 1]) if lo else open_),
            "lastPrice": self.px(market, last),
            "lastQty": self.qx(market, t["qty"][-1] if len(t["qty"]) else 0),
            "bidPrice": "",
            "bidQty": self.qx(market, market.spec.volume_1m),
            "askPrice": "",
            "askQty": self.qx(market, market.spec.volume_1m),
            "openPrice": self.px(market, open_),
            "highPrice": self.px(market, price.max()),
            "lowPrice": self.px(market, price.min()),
            "volume": self.qx(market, vol),
            "quoteVolume": f"{quote:.8f}",
            "openTime": now - 86_400_000,
            "closeTime": now,
            "firstId": int(t["id"][lo]) if lo < len(t["id"]) else -1,
            "lastId": int(t["id"][-1]) if len(t["id"]) else -1,
            "count": len(t["ts"]) - lo,
        }
        if self.name == "futures":
            for key in ("bidPrice", "bidQty", "askPrice", "askQty", "prevClosePrice"):
                del row[key]
        else:
            bid, ask = self.engine.quote_prices(market.symbol)
            row |= {"bidPrice": self.px(market, bid), "askPrice": self.px(market, ask)}
        return row

    def ticker_24hr(self, params, account) -> web.Response:
        if params.get("symbol"):
            market, err = self.symbol_market(params)
            return err or web.json_response(self.ticker_row(market))
        return web.json_response([self.ticker_row(m) for m in self.markets.values()])
