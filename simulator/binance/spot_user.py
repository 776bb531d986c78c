"""Binance spot user data over the WebSocket API (``/ws-api/v3``).

``userDataStream.subscribe.signature`` (HMAC over the params sorted by name) starts a
subscription; events arrive wrapped as ``{"subscriptionId", "event"}``: ``executionReport`` and
``outboundAccountPosition``. ``session.logon`` with an HMAC key is refused with -2028, as the
venue does. The REST listenKey was retired in 2026 and is not served.
"""

from __future__ import annotations

import json

from aiohttp import web

from simulator.accounts import Account, Order
from simulator.auth import AuthError
from simulator.binance.protocol import STATUS
from simulator.streams import Connection, serve
from simulator.venue import fixed

WEIGHT = {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 6000}


def d8(value) -> str:
    return fixed(value, 8)


class SpotUserStream:
    """Mixin for the spot venue: needs ``hmac``, ``sockets``, ``now()`` and ``api_conns``."""

    # ---- WebSocket API: user data stream ------------------------------------------------------

    async def ws_api(self, request: web.Request) -> web.StreamResponse:
        def on_open(conn: Connection) -> None:
            conn.state.update(subscriptions={})

        return await serve(
            request,
            self.sockets,
            self.api_conns,
            binary=False,
            on_text=self._on_api_text,
            heartbeat=self.ping_s,
            on_open=on_open,
        )

    def _on_api_text(self, conn: Connection, text: str) -> None:
        try:
            msg = json.loads(text)
            req_id, method, params = msg.get("id"), msg["method"], msg.get("params", {})
        except (json.JSONDecodeError, KeyError, AttributeError):
            conn.send(
                {"id": None, "status": 400, "error": {"code": -1100, "msg": "Malformed request."}}
            )
            return
        limits = [dict(WEIGHT, count=1)]

        def fail(status: int, code: int, text_: str) -> None:
            conn.send(
                {
                    "id": req_id,
                    "status": status,
                    "error": {"code": code, "msg": text_},
                    "rateLimits": limits,
                }
            )

        if method == "userDataStream.subscribe.signature":
            try:
                key = self.hmac.verify_sorted(params)
            except AuthError as exc:
                fail(exc.status, exc.name, exc.message)
                return
            sub_id = self.next_subscription
            self.next_subscription += 1
            conn.state["subscriptions"][sub_id] = key
            conn.send(
                {
                    "id": req_id,
                    "status": 200,
                    "result": {"subscriptionId": sub_id},
                    "rateLimits": limits,
                }
            )
        elif method == "userDataStream.unsubscribe":
            subs = conn.state["subscriptions"]
            ids = [params["subscriptionId"]] if "subscriptionId" in params else list(subs)
            for sub_id in ids:
                if subs.pop(sub_id, None) is not None:
                    conn.send(
                        {
                            "subscriptionId": sub_id,
                            "event": {"e": "eventStreamTerminated", "E": self.now()},
                        }
                    )
            conn.send({"id": req_id, "status": 200, "result": {}, "rateLimits": limits})
        elif method == "session.logon":
            fail(400, -2028, "HMAC-SHA-256 API key is not supported.")
        elif method == "ping":
            conn.send({"id": req_id, "status": 200, "result": {}, "rateLimits": limits})
        elif method == "time":
            conn.send(
                {
                    "id": req_id,
                    "status": 200,
                    "result": {"serverTime": self.now()},
                    "rateLimits": limits,
                }
            )
        else:
            fail(400, -1100, f"Unknown method {method!r} (not simulated).")

    def _on_account(self, account: Account, kind: str, event: dict) -> None:
        targets = [
            (c, sid)
            for c in self.api_conns
            for sid, key in c.state["subscriptions"].items()
            if key == account.key
        ]
        if not targets:
            return
        if kind == "balance":
            data = {
                "e": "outboundAccountPosition",
                "E": self.now(),
                "u": self.now(),
                "B": [
                    {"a": a, "f": d8(account.free(a)), "l": d8(account.locked(a))}
                    for a in event["assets"]
                ],
            }
        else:
            data = self._execution_report(event["order"], event["fill"])
        for conn, sid in targets:
            conn.send({"subscriptionId": sid, "event": data})

    def _execution_report(self, order: Order, fill) -> dict:
        status = STATUS[order.status]
        if fill is not None:
            exec_type = "TRADE"
        elif order.status == "open":
            exec_type = "NEW"
        else:
            exec_type = "CANCELED" if order.status == "canceled" else "EXPIRED"
        canceled = exec_type == "CANCELED"
        return {
            "e": "executionReport",
            "E": self.now(),
            "s": order.symbol,
            "c": order.extra.get("cancel_id", order.client_id) if canceled else order.client_id,
            "S": order.side.upper(),
            "o": order.extra["type"],
            "f": order.extra["tif"],
            "q": d8(order.qty or 0),
            "p": d8(order.price or 0),
            "P": d8(0),
            "F": d8(0),
            "g": -1,
            "C": order.client_id if canceled else "",
            "x": exec_type,
            "X": status,
            "r": "NONE",
            "i": order.id,
            "l": d8(fill.qty if fill else 0),
            "z": d8(order.executed_qty),
            "L": d8(fill.price if fill else 0),
            "n": d8(fill.fee) if fill else "0",
            "N": fill.fee_asset if fill else None,
            "T": fill.ts_ms if fill else order.updated_ms,
            "t": fill.trade_id if fill else -1,
            "v": 0,
            "I": order.id * 10 + len(order.fills),
            "w": order.status == "open",
            "m": bool(fill and fill.is_maker),
            "M": False,
            "O": order.created_ms,
            "Z": d8(order.executed_quote),
            "Y": d8(fill.quote if fill else 0),
            "Q": d8(order.extra.get("quote_in") or 0),
            "W": order.created_ms,
            "V": "NONE",
        }
