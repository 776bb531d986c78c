"""Binance USDⓈ-M account summaries: ``GET /fapi/v2/account`` and ``GET /fapi/v3/account``
(signed, weight 5) and ``GET /fapi/v1/leverageBracket`` (signed, weight 1).

* v3: totals (``totalWalletBalance``, ``totalUnrealizedProfit``, ``totalMarginBalance``,
  ``availableBalance``, …), ``assets[]`` and ``positions[]`` of the symbols with a position only.
* v2: the same totals plus ``feeTier``, ``canTrade``, ``canDeposit``, ``canWithdraw``,
  ``multiAssetsMargin``, ``tradeGroupId``, ``updateTime``; ``assets[]`` with ``marginAvailable``;
  ``positions[]`` for every symbol with ``leverage``, ``isolated``, ``entryPrice``,
  ``maxNotional``, ``bidNotional``, ``askNotional``.
* leverageBracket: ``[{"symbol","notionalCoef","brackets":[{"bracket","initialLeverage",
  "notionalCap","notionalFloor","maintMarginRatio","cum"}]}]`` (numbers, not strings); with
  ``symbol`` the one object. The simulated table is modelled on BTCUSDT's tiers for every
  symbol; ``cum`` (maintenance amount) follows the venue's rule
  ``cum[n] = cum[n-1] + floor[n] × (mmr[n] − mmr[n-1])``.
"""

from __future__ import annotations

from aiohttp import web

from simulator.accounts import ZERO
from simulator.binance.common import berror
from simulator.binance.positions import FuturesAccount
from simulator.venue import fixed

#: (initialLeverage, notionalCap, maintMarginRatio), tier by tier.
TIERS = (
    (125, 50_000, 0.004),
    (100, 600_000, 0.005),
    (75, 3_000_000, 0.0065),
    (50, 12_000_000, 0.01),
    (25, 70_000_000, 0.02),
    (20, 100_000_000, 0.025),
    (10, 230_000_000, 0.05),
    (5, 480_000_000, 0.1),
    (4, 600_000_000, 0.125),
    (3, 800_000_000, 0.15),
    (2, 1_200_000_000, 0.25),
    (1, 1_800_000_000, 0.5),
)


def brackets() -> list[dict]:
    rows, floor, cum, prev_mmr = [], 0, 0.0, 0.0
    for n, (lev, cap, mmr) in enumerate(TIERS, start=1):
        cum += floor * (mmr - prev_mmr)
        rows.append({"bracket": n, "initialLeverage": lev, "notionalCap": cap,
                     "notionalFloor": floor, "maintMarginRatio": mmr, "cum": round(cum, 8)})
        floor, prev_mmr = cap, mmr
    return rows


def maint_margin(notional) -> float:
    value = abs(float(notional))
    tier = next((b for b in brackets() if value < b["notionalCap"]), brackets()[-1])
    return value * tier["maintMarginRatio"] - tier["cum"]


class FuturesLedger:
    """A mixin of :class:`simulator.binance.futures.FuturesVenue`."""

    def leverage_bracket(self, params, account) -> web.Response:
        if params.get("symbol") and params["symbol"] not in self.markets:
            return berror(400, -1121, "Invalid symbol.")
        rows = [
            {"symbol": s, "notionalCoef": 1.0, "brackets": brackets()}
            for s in self.markets
            if params.get("symbol") in (None, s)
        ]
        return web.json_response(rows[0] if params.get("symbol") else rows)

    def _totals(self, account: FuturesAccount) -> tuple[dict, list[dict]]:
        engine = self.engine
        wallet = account.free("USDT")
        held = [p for p in account.positions.values() if p.amount]
        upnl = sum((engine.unrealized(p) for p in held), ZERO)
        position_im = sum((p.margin() for p in held), ZERO)
        order_im = engine.order_margin(account)
        maint = sum(maint_margin(p.amount * engine.mark(p.symbol)) for p in held)
        available = engine.available(account)
        asset = {
            "asset": "USDT",
            "walletBalance": fixed(wallet, 8),
            "unrealizedProfit": fixed(upnl, 8),
            "marginBalance": fixed(wallet + upnl, 8),
            "maintMargin": fixed(maint, 8),
            "initialMargin": fixed(position_im + order_im, 8),
            "positionInitialMargin": fixed(position_im, 8),
            "openOrderInitialMargin": fixed(order_im, 8),
            "crossWalletBalance": fixed(wallet, 8),
            "crossUnPnl": fixed(upnl, 8),
            "availableBalance": fixed(available, 8),
            "maxWithdrawAmount": fixed(max(available, ZERO), 8),
            "updateTime": self.now(),
        }
        totals = {
            "totalInitialMargin": asset["initialMargin"],
            "totalMaintMargin": asset["maintMargin"],
            "totalWalletBalance": asset["walletBalance"],
            "totalUnrealizedProfit": asset["unrealizedProfit"],
            "totalMarginBalance": asset["marginBalance"],
            "totalPositionInitialMargin": asset["positionInitialMargin"],
            "totalOpenOrderInitialMargin": asset["openOrderInitialMargin"],
            "totalCrossWalletBalance": asset["crossWalletBalance"],
            "totalCrossUnPnl": asset["crossUnPnl"],
            "availableBalance": asset["availableBalance"],
            "maxWithdrawAmount": asset["maxWithdrawAmount"],
        }
        return totals, [asset]

    def _position_summary(self, account: FuturesAccount, symbol: str) -> dict:
        pos = account.position(symbol)
        market, mark = self.markets[symbol], self.engine.mark(symbol)
        isolated = pos.margin_type == "isolated"
        margin = pos.margin()
        return {
            "symbol": symbol,
            "positionSide": "BOTH",
            "positionAmt": self.qx(market, pos.amount),
            "unrealizedProfit": fixed(self.engine.unrealized(pos), 8),
            "isolatedMargin": fixed(margin if isolated else 0, 8),
            "notional": fixed(pos.amount * mark, 8),
            "isolatedWallet": fixed(margin if isolated else 0, 8),
            "initialMargin": fixed(margin, 8),
            "maintMargin": fixed(maint_margin(pos.amount * mark) if pos.amount else 0, 8),
            "updateTime": pos.update_ms,
        }

    def account_v3(self, params, account: FuturesAccount) -> web.Response:
        totals, assets = self._totals(account)
        positions = [
            self._position_summary(account, s)
            for s, p in account.positions.items()
            if p.amount
        ]
        return web.json_response(totals | {"assets": assets, "positions": positions})

    def account_v2(self, params, account: FuturesAccount) -> web.Response:
        totals, assets = self._totals(account)
        positions = []
        for symbol in self.markets:
            row = self._position_summary(account, symbol)
            pos = account.position(symbol)
            orders = account.open_orders(symbol)
            row |= {
                "positionInitialMargin": row["initialMargin"],
                "openOrderInitialMargin": fixed(
                    sum((o.extra.get("margin", ZERO) for o in orders), ZERO), 8
                ),
                "leverage": str(pos.leverage),
                "isolated": pos.margin_type == "isolated",
                "entryPrice": self.px(self.markets[symbol], pos.entry),
                "breakEvenPrice": self.px(self.markets[symbol], pos.entry),
                "maxNotional": "1000000",
                "bidNotional": fixed(sum((o.price or ZERO) * o.qty for o in orders
                                         if o.side == "buy"), 8),
                "askNotional": fixed(sum((o.price or ZERO) * o.qty for o in orders
                                         if o.side == "sell"), 8),
            }
            positions.append(row)
        body = {
            "feeTier": 0,
            "feeBurn": False,
            "canTrade": True,
            "canDeposit": True,
            "canWithdraw": True,
            "updateTime": 0,
            "multiAssetsMargin": False,
            "tradeGroupId": -1,
        }
        return web.json_response(body | totals | {
            "assets": [a | {"marginAvailable": True} for a in assets],
            "positions": positions,
        })
