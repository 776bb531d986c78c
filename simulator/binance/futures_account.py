"""Binance USDⓈ-M account requests: leverage, margin type and position mode per account
(one-way only), ``positionRisk`` (v2/v3, marked to the mark price) and ``balance``."""

from __future__ import annotations

from aiohttp import web

from simulator.accounts import ZERO
from simulator.binance.common import berror, missing
from simulator.binance.positions import FuturesAccount
from simulator.venue import fixed


class FuturesAccountRequests:
    """A mixin of :class:`simulator.binance.futures.FuturesVenue`."""

    def leverage(self, params, account: FuturesAccount) -> web.Response:
        market, err = self.symbol_market(params)
        if err:
            return err
        try:
            value = int(params.get("leverage", ""))
        except ValueError:
            return missing("leverage")
        if not 1 <= value <= 125:
            return berror(400, -4028, f"Leverage {value} is not valid")
        pos = account.position(market.symbol)
        pos.leverage = value
        self._send_user(
            account,
            {
                "e": "ACCOUNT_CONFIG_UPDATE",
                "E": self.now(),
                "T": self.now(),
                "ac": {"s": market.symbol, "l": value},
            },
        )
        return web.json_response(
            {"leverage": value, "maxNotionalValue": "1000000", "symbol": market.symbol}
        )

    def margin_type(self, params, account: FuturesAccount) -> web.Response:
        market, err = self.symbol_market(params)
        if err:
            return err
        wanted = {"ISOLATED": "isolated", "CROSSED": "cross"}.get(params.get("marginType", ""))
        if wanted is None:
            return berror(
                400,
                -1116 if params.get("marginType") else -1102,
                "Invalid marginType."
                if params.get("marginType")
                else "Mandatory parameter 'marginType' was not sent, was empty/null, or malformed.",
            )
        pos = account.position(market.symbol)
        if pos.margin_type == wanted:
            return berror(400, -4046, "No need to change margin type.")
        if account.open_orders(market.symbol):
            return berror(400, -4047, "Margin type cannot be changed if there exists open orders.")
        if pos.amount:
            return berror(400, -4048, "Margin type cannot be changed if there exists position.")
        pos.margin_type = wanted
        return web.json_response({"code": 200, "msg": "success"})

    def get_dual(self, params, account) -> web.Response:
        return web.json_response({"dualSidePosition": False})

    def set_dual(self, params, account) -> web.Response:
        if params.get("dualSidePosition") == "false":
            return berror(400, -4059, "No need to change position side.")
        return berror(400, -1000, "Hedge mode is not simulated; use one-way mode.")

    def _position_row(self, account: FuturesAccount, symbol: str) -> dict:
        market = self.markets[symbol]
        pos = account.position(symbol)
        mark = self.engine.mark(symbol)
        margin = pos.margin()
        return {
            "symbol": symbol,
            "positionAmt": self.qx(market, pos.amount),
            "entryPrice": self.px(market, pos.entry),
            "breakEvenPrice": self.px(market, pos.entry),
            "markPrice": fixed(mark, 8),
            "unRealizedProfit": fixed(self.engine.unrealized(pos), 8),
            "liquidationPrice": "0",
            "leverage": str(pos.leverage),
            "maxNotionalValue": "1000000",
            "marginType": pos.margin_type,
            "isolatedMargin": fixed(margin if pos.margin_type == "isolated" else 0, 8),
            "isAutoAddMargin": "false",
            "positionSide": "BOTH",
            "notional": fixed(pos.amount * mark, 8),
            "isolatedWallet": fixed(margin if pos.margin_type == "isolated" else 0, 8),
            "updateTime": pos.update_ms,
        }

    def position_risk(self, params, account: FuturesAccount) -> web.Response:
        symbols = [params["symbol"]] if params.get("symbol") else list(self.markets)
        if any(s not in self.markets for s in symbols):
            return berror(400, -1121, "Invalid symbol.")
        return web.json_response([self._position_row(account, s) for s in symbols])

    def balance(self, params, account: FuturesAccount) -> web.Response:
        wallet = account.free("USDT")
        upnl = sum((self.engine.unrealized(p) for p in account.positions.values()), ZERO)
        available = self.engine.available(account)
        return web.json_response(
            [
                {
                    "accountAlias": "SgsR",
                    "asset": "USDT",
                    "balance": fixed(wallet, 8),
                    "crossWalletBalance": fixed(wallet, 8),
                    "crossUnPnl": fixed(upnl, 8),
                    "availableBalance": fixed(available, 8),
                    "maxWithdrawAmount": fixed(max(available, ZERO), 8),
                    "marginAvailable": True,
                    "updateTime": self.now(),
                }
            ]
        )
