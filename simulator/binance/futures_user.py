"""Binance USDⓈ-M futures user data: the listenKey lifecycle (60 min, extended by PUT, the
active key returned again by POST, ``listenKeyExpired`` then -1125) and the stream on
``/private/ws?listenKey=...&events=...`` with ORDER_TRADE_UPDATE, ACCOUNT_UPDATE,
ACCOUNT_CONFIG_UPDATE and ALGO_UPDATE.
"""

from __future__ import annotations

from aiohttp import web

from simulator.accounts import ZERO, Order
from simulator.binance.common import berror
from simulator.binance.positions import FuturesAccount
from simulator.binance.protocol import STATUS
from simulator.streams import Connection, serve
from simulator.venue import fixed

LISTEN_KEY_MS = 60 * 60_000


class FuturesUserStream:
    """Mixin for the futures venue: needs ``engine``, ``markets``, ``listen_keys``,
    ``user_conns``, ``sockets``, ``px``/``qx`` and ``now()``."""

    # ---- user data stream ---------------------------------------------------------------------

    def _listen_key_handler(self, method: str):
        def handler(params, account) -> web.Response:
            now = self.now()
            current = next(
                (k for k, (a, exp) in self.listen_keys.items() if a == account.key and exp > now),
                None,
            )
            if method == "POST":
                key = current or f"{self.engine.rng.getrandbits(256):064x}"
                self.listen_keys[key] = (account.key, now + LISTEN_KEY_MS)
                return web.json_response({"listenKey": key})
            if current is None:
                return berror(400, -1125, "This listenKey does not exist.")
            if method == "PUT":
                self.listen_keys[current] = (account.key, now + LISTEN_KEY_MS)
                return web.json_response({"listenKey": current})
            del self.listen_keys[current]
            return web.json_response({})

        return handler

    def _expire_listen_keys(self) -> None:
        now = self.now()
        for key, (_, expires) in list(self.listen_keys.items()):
            if expires <= now:
                del self.listen_keys[key]
                for conn in self.user_conns:
                    if key in conn.state["keys"]:
                        conn.send({"e": "listenKeyExpired", "E": str(now), "listenKey": key})

    async def user_ws(self, request: web.Request) -> web.StreamResponse:
        keys = [k for k in request.query.get("listenKey", "").split("/") if k]
        if not keys or any(k not in self.listen_keys for k in keys):
            return berror(400, -1125, "This listenKey does not exist.")
        events = {e for e in request.query.get("events", "").split("/") if e}

        def on_open(conn: Connection) -> None:
            conn.state.update(
                keys=set(keys), accounts={self.listen_keys[k][0] for k in keys}, events=events
            )

        return await serve(
            request,
            self.sockets,
            self.user_conns,
            binary=False,
            on_text=lambda conn, text: None,
            heartbeat=self.ping_s,
            on_open=on_open,
        )

    def _send_user(self, account: FuturesAccount, event: dict) -> None:
        for conn in list(self.user_conns):
            events = conn.state["events"]
            if account.key in conn.state["accounts"] and (not events or event["e"] in events):
                conn.send(event)

    def _on_account(self, account: FuturesAccount, kind: str, event: dict) -> None:
        if kind == "algo":
            self._send_user(account, self._algo_update(event["algo"]))
        elif kind == "order":
            self._send_user(account, self._order_update(event["order"], event["fill"]))
        elif kind == "position":
            symbol = event["symbol"]
            pos = account.position(symbol)
            market = self.markets[symbol]
            wallet = fixed(account.free("USDT"), 8)
            self._send_user(
                account,
                {
                    "e": "ACCOUNT_UPDATE",
                    "E": self.now(),
                    "T": self.now(),
                    "a": {
                        "m": "ORDER",
                        "B": [{"a": "USDT", "wb": wallet, "cw": wallet, "bc": "0"}],
                        "P": [
                            {
                                "s": symbol,
                                "pa": self.qx(market, pos.amount),
                                "ep": self.px(market, pos.entry),
                                "bep": self.px(market, pos.entry),
                                "cr": fixed(pos.realized, 8),
                                "up": fixed(self.engine.unrealized(pos), 8),
                                "mt": pos.margin_type,
                                "iw": fixed(
                                    pos.margin() if pos.margin_type == "isolated" else 0, 8
                                ),
                                "ps": "BOTH",
                                "ma": "USDT",
                            }
                        ],
                    },
                },
            )

    def _algo_update(self, algo) -> dict:
        """ALGO_UPDATE with the documented keys: ``caid`` client algo id, ``aid`` algo id,
        ``at`` CONDITIONAL, ``o`` type, ``X`` algo status, ``ai`` the triggered order's id,
        ``ap``/``aq`` its average price and executed quantity, ``tp`` the trigger price."""
        market = self.markets[algo.symbol]
        order = algo.order
        executed = order.executed_qty if order else ZERO
        avg = order.executed_quote / executed if executed else ZERO
        return {
            "e": "ALGO_UPDATE",
            "T": algo.updated_ms,
            "E": self.now(),
            "o": {
                "caid": algo.client_id,
                "aid": algo.algo_id,
                "at": "CONDITIONAL",
                "o": algo.type,
                "s": algo.symbol,
                "S": algo.side.upper(),
                "ps": "BOTH",
                "f": "GTC",
                "q": self.qx(market, algo.qty),
                "X": algo.status,
                "ai": str(order.id) if order else "",
                "ap": self.px(market, avg),
                "aq": self.qx(market, executed),
                "act": "MARKET" if order else "",
                "tp": self.px(market, algo.trigger),
                "p": self.px(market, 0),
                "wt": "CONTRACT_PRICE",
                "R": algo.reduce_only,
                "cp": algo.close_position,
            },
        }

    def _order_update(self, order: Order, fill) -> dict:
        market = self.markets[order.symbol]
        if fill is not None:
            exec_type = "TRADE"
        else:
            exec_type = {"open": "NEW", "canceled": "CANCELED", "expired": "EXPIRED"}.get(
                order.status, "NEW"
            )
        executed = order.executed_qty
        avg = order.executed_quote / executed if executed else ZERO
        return {
            "e": "ORDER_TRADE_UPDATE",
            "E": self.now(),
            "T": self.now(),
            "o": {
                "s": order.symbol,
                "c": order.client_id,
                "S": order.side.upper(),
                "o": order.extra["type"],
                "f": order.extra["tif"],
                "q": self.qx(market, order.qty),
                "p": self.px(market, order.price or 0),
                "ap": self.px(market, avg),
                "sp": "0",
                "x": exec_type,
                "X": STATUS[order.status],
                "i": order.id,
                "l": self.qx(market, fill.qty if fill else 0),
                "z": self.qx(market, executed),
                "L": self.px(market, fill.price if fill else 0),
                "n": fixed(fill.fee if fill else 0, 8),
                "N": "USDT",
                "T": fill.ts_ms if fill else order.updated_ms,
                "t": fill.trade_id if fill else 0,
                "b": "0",
                "a": "0",
                "m": bool(fill and fill.is_maker),
                "R": order.extra["reduce_only"],
                "wt": "CONTRACT_PRICE",
                "ot": order.extra["type"],
                "ps": "BOTH",
                "cp": False,
                "rp": fixed(order.extra.get("realized", ZERO) if fill else 0, 8),
                "pP": False,
                "si": 0,
                "ss": 0,
                "V": "EXPIRE_MAKER",
                "pm": "NONE",
                "gtd": 0,
                "er": "0",
            },
        }
