"""The Upbit protocol (REST ``/v1/...``); bithumb.py is its Bithumb dialect and kr_orders.py
the private REST (orders, balances) both share.

Quotation numbers are JSON numbers, exchange (private) amounts are strings; candles are newest
first and only exist for intervals with trades; the forming candle is the newest row. Every
response carries ``Remaining-Req``; over budget is a plain-text 429 (with ``Retry-After``), and
requests sent while told to wait can earn a 418 ban (``Faults.ban_after``). WebSockets: upbit_ws.py.
"""

from __future__ import annotations

import json
from urllib.parse import parse_qsl

from aiohttp import web

from simulator.accounts import Account, dec
from simulator.auth import AuthError, JwtVerifier, upbit_query_string
from simulator.balances import FeeModel, SpotEngine
from simulator.faults import Budget, delay_order_response, retry_after_value
from simulator.market import Frame, krw_tick
from simulator.upbit.format import candle_rows, orderbook_json, ticker_json, trade_rows
from simulator.upbit.orders import KrOrderDesk, bad_param, error
from simulator.venue import Venue, fmt, parse_time

MINUTE_UNITS = (1, 3, 5, 10, 15, 30, 60, 240)
# group -> (calls per second, the fixed "min" value shown in the header)
GROUPS = {
    "market": (10, 600),
    "candles": (10, 600),
    "crix-trades": (10, 600),
    "ticker": (10, 600),
    "orderbook": (10, 600),
    "default": (30, 1800),
    "order": (8, 480),
}



def market_codes(request: web.Request) -> list[str]:
    """``markets`` as a comma-separated list or repeated (``markets=A&markets=B``, as
    ``requests`` encodes a Python list, e.g. pyupbit's ``get_current_price([...])``): the venue's
    list binding takes both."""
    return [c for value in request.query.getall("markets", []) for c in value.split(",") if c]

class UpbitVenue(KrOrderDesk, Venue):
    name = "upbit"
    GROUPS = GROUPS
    REMAINING_REQ = True  # Bithumb documents no Remaining-Req header

    def __init__(
        self,
        ctx,
        markets,
        accounts: list[Account],
        *,
        fee: str = "0.0005",
        spread_bps: float = 4.0,
        require_timestamp: bool = False,
    ) -> None:
        super().__init__(ctx, markets, accounts)
        self.engine = SpotEngine(
            markets,
            FeeModel(dec(fee), dec(fee), in_quote=True),
            spread_bps=spread_bps,
            seed=ctx.seed,
            clock_ms=ctx.clock_ms,
        )
        self.jwt = JwtVerifier(
            {a.key: a.secret for a in accounts},
            clock_ms=ctx.clock_ms,
            require_timestamp=require_timestamp,
        )
        self.budget = Budget({g: (n, 1.0) for g, (n, _) in self.GROUPS.items()})
        self.identifiers: dict[str, set[str]] = {a.key: set() for a in accounts}
        self.fee = dec(fee)
        self.streams = self.make_streams()

    def make_streams(self):
        from simulator.upbit.ws import UpbitStreams

        return UpbitStreams(self)

    # ---- plumbing ---------------------------------------------------------------------------

    def unknown_route(self, status: int, method: str, path: str) -> web.Response:
        """``{"error":{"name":404,"message":...}}``, the venue's numeric-name error shape."""
        return error(status, status, f"{method} {path}: not found")

    def server_error(self) -> web.Response:
        return error(500, "server_error", "Simulated internal server error.")

    def routes(self, app: web.Application) -> None:
        get, add = app.router.add_get, app.router.add_route
        get("/v1/market/all", self._public("market", self.market_all))
        for unit in MINUTE_UNITS:
            get(
                f"/v1/candles/minutes/{unit}",
                self._public("candles", self.candles, Frame("m", unit)),
            )
        for path, frame in (
            ("seconds", Frame("s")),
            ("days", Frame("d")),
            ("weeks", Frame("w")),
            ("months", Frame("M")),
            ("years", Frame("y")),
        ):
            get(f"/v1/candles/{path}", self._public("candles", self.candles, frame))
        get("/v1/ticker", self._public("ticker", self.ticker))
        get("/v1/ticker/all", self._public("ticker", self.ticker_all))
        get("/v1/trades/ticks", self._public("crix-trades", self.trades_ticks))
        get("/v1/orderbook", self._public("orderbook", self.orderbook))
        get("/v1/orderbook/instruments", self._public("orderbook", self.instruments))
        get("/v1/accounts", self._private("default", self.balances))
        get("/v1/orders/chance", self._private("default", self.chance))
        add("POST", "/v1/orders", self._private("order", self.create_order))
        get("/v1/order", self._private("default", self.get_order))
        add("DELETE", "/v1/order", self._private("default", self.cancel_order))
        get("/v1/orders/open", self._private("default", self.open_orders))
        get("/v1/orders/closed", self._private("default", self.closed_orders))
        get("/websocket/v1", self.streams.public)
        get("/websocket/v1/private", self.streams.private)

    def _limited(self, group: str, who: str):
        faults = self.ctx.faults
        if not faults.rate_limits:
            return None, self._header(group, self.GROUPS[group][0] - 1)
        banned = self.bans.check(who, faults)
        if banned:
            # Upbit: 418 after repeated 429s, "with the block duration" (field unconfirmed).
            resp = error(418, "too_many_requests",
                         f"Blocked for {retry_after_value(banned)} s after repeated 429s.")
            if faults.retry_after:
                resp.headers["Retry-After"] = retry_after_value(banned)
            return resp, self._header(group, 0)
        ok, used, limit, reset = self.budget.spend(group, 1, faults.rate_limit_budget, who)
        header = self._header(group, max(0, limit - used))
        if not ok:
            resp = web.Response(status=429, text="Too many API requests.")
            self._stamp(resp, header)
            # Upbit does not document Retry-After (shared/exchanges/upbit.md); the simulator
            # sends the seconds to its window's end unless ``retry_after`` is off.
            if faults.retry_after:
                resp.headers["Retry-After"] = retry_after_value(reset)
            self.bans.refused(who, reset)
            return resp, header
        return None, header

    def _header(self, group: str, sec: int) -> str:
        return f"group={group}; min={self.GROUPS[group][1]}; sec={sec}"

    def _stamp(self, resp: web.StreamResponse, header: str) -> None:
        if self.REMAINING_REQ:
            resp.headers["Remaining-Req"] = header

    def _public(self, group: str, handler, *args):
        async def wrapped(request: web.Request) -> web.StreamResponse:
            limited, header = self._limited(group, request.remote or "")
            if limited is not None:
                return limited
            resp = handler(request, *args)
            self._stamp(resp, header)
            resp.headers["Limit-By-Ip"] = "Yes"
            return resp

        return wrapped

    def _private(self, group: str, handler):
        async def wrapped(request: web.Request) -> web.StreamResponse:
            try:
                params, pairs = await self._params(request)
                key = self.jwt.verify(
                    request.headers.get("Authorization"), upbit_query_string(pairs)
                )
            except AuthError as exc:
                return error(exc.status, exc.name, exc.message)
            except ValueError as exc:
                return error(400, "validation_error", str(exc))
            limited, header = self._limited(group, key)
            if limited is not None:
                return limited
            resp = handler(self.accounts[key], params)
            if group == "order" and resp.status == 201:
                await delay_order_response(self.ctx.faults)
            self._stamp(resp, header)
            return resp

        return wrapped

    async def _params(self, request: web.Request):
        """(params, pairs in the order sent) from the query and the body; ``k[]`` -> list.

        The venue reads parameters wherever they are sent, whatever the method: the query
        string, a JSON body or a form body (a GET ``/v1/order`` with a form body, a DELETE
        ``/v1/order`` with a JSON body both work). ``query_hash`` covers the unencoded
        ``k=v&k=v`` string of those parameters in the order sent, wherever they were.
        """
        pairs: list[tuple[str, str]] = list(request.rel_url.query.items())
        text = await request.text() if request.can_read_body else ""
        if text.strip() and request.content_type == "application/x-www-form-urlencoded":
            pairs.extend(parse_qsl(text, keep_blank_values=True))
        elif text.strip():
            try:
                body = json.loads(text)
            except json.JSONDecodeError:
                raise ValueError("The request body must be JSON.") from None
            if not isinstance(body, dict):
                raise ValueError("The request body must be a JSON object.")
            for key, value in body.items():
                values = value if isinstance(value, list) else [value]
                name = f"{key}[]" if isinstance(value, list) and not key.endswith("[]") else key
                pairs.extend((name, str(v)) for v in values)
        params: dict = {}
        for key, value in pairs:
            if key.endswith("[]"):
                params.setdefault(key[:-2], []).append(value)
            else:
                params[key] = value
        return params, pairs

    def _market(self, code: str | None):
        return self.markets.get(code or "")

    # ---- quotation --------------------------------------------------------------------------

    def market_all(self, request: web.Request) -> web.Response:
        details = "true" in (request.query.get("is_details"), request.query.get("isDetails"))
        rows = []
        for code, market in self.markets.items():
            row = {
                "market": code,
                "korean_name": market.spec.base,
                "english_name": market.spec.base,
            }
            if request.query.get("isDetails") == "true":  # Bithumb's spelling and field
                row["market_warning"] = "NONE"
            elif details:
                row["market_event"] = {
                    "warning": False,
                    "caution": dict.fromkeys(
                        (
                            "PRICE_FLUCTUATIONS",
                            "TRADING_VOLUME_SOARING",
                            "DEPOSIT_AMOUNT_SOARING",
                            "GLOBAL_PRICE_DIFFERENCES",
                            "CONCENTRATION_OF_SMALL_ACCOUNTS",
                        ),
                        False,
                    ),
                }
            rows.append(row)
        return web.json_response(rows)

    def parse_to(self, text: str) -> int:
        """Upbit's ``to``: ISO 8601 with ``Z`` or an offset; without one it is UTC."""
        return parse_time(text)

    def candles(self, request: web.Request, frame: Frame) -> web.Response:
        market = self._market(request.query.get("market"))
        if market is None:
            return error(404, 404, "Code not found")
        try:
            count = int(request.query.get("count", "1"))
            end = self.parse_to(request.query["to"]) if "to" in request.query else None
        except (ValueError, KeyError):
            return bad_param()
        if not 1 <= count <= 200:
            return bad_param()
        span = frame.width_ms  # bound the work to the window when the grid is fixed
        ref = end if end is not None else self.now() + (span or 0)
        start = None if span is None else ref - (count + 2) * span
        arrays = market.candles(frame, end_ms=end, start_ms=start)
        if start is not None and len(arrays) < count + 1:
            arrays = market.candles(frame, end_ms=end)
        return web.json_response(candle_rows(market.symbol, frame, arrays, count))

    def ticker(self, request: web.Request) -> web.Response:
        codes = market_codes(request)
        if not codes:
            return error(
                400, 400, "Missing request parameter error. Check the required parameters!"
            )
        if any(c not in self.markets for c in codes):
            return error(404, 404, "Code not found")
        return web.json_response([ticker_json(self.markets[c], self.now()) for c in codes])

    def ticker_all(self, request: web.Request) -> web.Response:
        quotes = set(request.query.get("quote_currencies", "").split(",")) - {""}
        rows = [
            ticker_json(m, self.now())
            for m in self.markets.values()
            if not quotes or m.spec.quote in quotes
        ]
        return web.json_response(rows)

    def trades_ticks(self, request: web.Request) -> web.Response:
        market = self._market(request.query.get("market"))
        if market is None:
            return error(404, 404, "Code not found")
        try:
            count = int(request.query.get("count", "1"))
            cursor = int(request.query["cursor"]) if request.query.get("cursor") else None
        except ValueError:
            return bad_param()
        if not 1 <= count <= 500:
            return bad_param()
        return web.json_response(trade_rows(market, count, cursor))

    def orderbook(self, request: web.Request) -> web.Response:
        codes = market_codes(request)
        if not codes or any(c not in self.markets for c in codes):
            return error(404, 404, "Code not found")
        try:
            depth = int(request.query.get("count", "30"))
        except ValueError:
            return bad_param()
        depth = min(max(depth, 1), 30)
        return web.json_response([orderbook_json(self, self.markets[c], depth) for c in codes])

    def instruments(self, request: web.Request) -> web.Response:
        codes = market_codes(request)
        if any(c not in self.markets for c in codes):
            return error(404, 404, "Code not found")
        return web.json_response(
            [
                {
                    "market": c,
                    "quote_currency": self.markets[c].spec.quote,
                    "tick_size": fmt(dec(krw_tick(self.markets[c].last_price))),
                    "supported_levels": ["0"],  # strings, as the venue sends them
                }
                for c in codes
            ]
        )

    # ---- feed -------------------------------------------------------------------------------

    def on_trades(self, symbol: str, trades: dict) -> None:
        self.engine.on_trades(symbol, trades["price"], list(self.accounts.values()))
        self.streams.on_trades(symbol, trades)
