"""Binance spot market data over REST: ``exchangeInfo`` (PRICE_FILTER, LOT_SIZE, NOTIONAL),
``trades`` and ``ticker/price`` (``depth``, ``aggTrades`` and ``ticker/24hr``:
:mod:`simulator.binance.market_rest`)."""

from __future__ import annotations

import json
from decimal import Decimal

from aiohttp import web

from simulator.binance.common import berror
from simulator.market import tick_of
from simulator.venue import fixed

MIN_NOTIONAL = Decimal(5)
RATE_LIMITS = [
    {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 6000},
    {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 100},
    {"rateLimitType": "RAW_REQUESTS", "interval": "MINUTE", "intervalNum": 5, "limit": 61000},
]


def d8(value) -> str:
    return fixed(value, 8)


class SpotMarketData:
    """A mixin of :class:`simulator.binance.spot.BinanceSpotVenue`."""

    # ---- market data --------------------------------------------------------------------------

    def _symbol_info(self, market) -> dict:
        spec = market.spec
        tick, step = d8(tick_of(spec, market.last_price)), d8(spec.step)
        return {
            "symbol": spec.symbol,
            "status": "TRADING",
            "baseAsset": spec.base,
            "baseAssetPrecision": 8,
            "quoteAsset": spec.quote,
            "quotePrecision": 8,
            "quoteAssetPrecision": 8,
            "baseCommissionPrecision": 8,
            "quoteCommissionPrecision": 8,
            "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET"],
            "icebergAllowed": False,
            "ocoAllowed": False,
            "otoAllowed": False,
            "opoAllowed": False,
            "quoteOrderQtyMarketAllowed": True,
            "allowTrailingStop": False,
            "cancelReplaceAllowed": False,
            "amendAllowed": False,
            "pegInstructionsAllowed": False,
            "isSpotTradingAllowed": True,
            "isMarginTradingAllowed": False,
            "filters": [
                {
                    "filterType": "PRICE_FILTER",
                    "minPrice": tick,
                    "maxPrice": d8(1_000_000),
                    "tickSize": tick,
                },
                {"filterType": "LOT_SIZE", "minQty": step, "maxQty": d8(9_000), "stepSize": step},
                {
                    "filterType": "MARKET_LOT_SIZE",
                    "minQty": d8(0),
                    "maxQty": d8(9_000),
                    "stepSize": d8(0),
                },
                {
                    "filterType": "NOTIONAL",
                    "minNotional": d8(MIN_NOTIONAL),
                    "applyMinToMarket": True,
                    "maxNotional": d8(9_000_000),
                    "applyMaxToMarket": False,
                    "avgPriceMins": 5,
                },
            ],
            "permissions": [],
            "permissionSets": [["SPOT"]],
            "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
            "allowedSelfTradePreventionModes": [
                "NONE",
                "EXPIRE_TAKER",
                "EXPIRE_MAKER",
                "EXPIRE_BOTH",
            ],
        }

    def exchange_info(self, params, account) -> web.Response:
        names = list(self.markets)
        if params.get("symbol"):
            names = [params["symbol"]]
        elif params.get("symbols"):
            try:
                names = json.loads(params["symbols"])
            except json.JSONDecodeError:
                return berror(400, -1100, "Illegal characters found in parameter 'symbols'.")
        if any(n not in self.markets for n in names):
            return berror(400, -1121, "Invalid symbol.")
        return web.json_response(
            {
                "timezone": "UTC",
                "serverTime": self.now(),
                "rateLimits": RATE_LIMITS,
                "exchangeFilters": [],
                "symbols": [self._symbol_info(self.markets[n]) for n in names],
            }
        )

    def trades(self, params, account) -> web.Response:
        market, err = self.symbol_market(params)
        if err:
            return err
        limit = min(max(int(params.get("limit", "500")), 1), 1000)
        t = market.trades(max(0, market.visible - limit))
        return web.json_response(
            [
                {
                    "id": int(t["id"][i]),
                    "price": self.px(market, t["price"][i]),
                    "qty": self.qx(market, t["qty"][i]),
                    "quoteQty": d8(float(t["price"][i]) * float(t["qty"][i])),
                    "time": int(t["ts"][i]),
                    "isBuyerMaker": bool(t["buyer_maker"][i]),
                    "isBestMatch": True,
                }
                for i in range(len(t["ts"]))
            ]
        )

    def ticker_price(self, params, account) -> web.Response:
        rows = [
            {"symbol": m.symbol, "price": self.px(m, m.last_price)}
            for m in self.markets.values()
            if params.get("symbol") in (None, m.symbol)
        ]
        if params.get("symbol") and not rows:
            return berror(400, -1121, "Invalid symbol.")
        return web.json_response(rows[0] if params.get("symbol") else rows)
