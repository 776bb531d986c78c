"""The exchange (private) REST API of the Upbit design, shared by Upbit and Bithumb.

Balances, order rules, place, get, cancel and list, matched by the venue's
:class:`~simulator.balances.SpotEngine`. The two venues differ in names only, so the
dialect is a few class attributes and hooks: the order-type and client-id parameter names, the
order id format, the validation error name, and what placing and cancelling answer (Upbit: the
order object; Bithumb v2: an acknowledgement).
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from aiohttp import web

from simulator.accounts import Account, Order, OrderError, dec
from simulator.market import krw_tick
from simulator.upbit.format import order_json
from simulator.venue import fmt

MIN_TOTAL = Decimal(5000)
MAX_TOTAL = Decimal(1_000_000_000)


def error(status: int, name: str | int, message: str) -> web.Response:
    return web.json_response({"error": {"name": name, "message": message}}, status=status)


def bad_param() -> web.Response:
    return error(400, 400, "Invalid parameter. Check the given value!")


def _decimal(params: dict, key: str) -> Decimal | None:
    value = params.get(key)
    return None if value in (None, "", "None") else dec(value)


class KrOrderDesk:
    """Mixin of a venue with ``engine``, ``fee`` and ``accounts``: the Upbit dialect."""

    ORD_TYPE = "ord_type"  # Bithumb v2: order_type
    CLIENT_ID = "identifier"  # Bithumb v2: client_order_id
    ORDER_ID_PARAMS = ("uuid",)  # Bithumb v2 cancel: order_id
    INVALID = "validation_error"  # Bithumb: invalid_parameter
    CLIENT_ID_UNIQUE_FOREVER = True

    def price_tick(self, price: Decimal) -> Decimal:
        return dec(krw_tick(float(price)))

    def order_id(self, oid: int, uid: str) -> str:
        return uid

    def order_json(self, order: Order, *, listed: bool = False, **kw) -> dict:
        """Upbit sends ``executed_funds`` only in lists (``/v1/orders/open|closed|uuids``), not
        in the answers of POST /v1/orders, GET and DELETE /v1/order (real captures, 2026-03);
        Bithumb sends it in both."""
        row = order_json(order, self.fee, client_key=self.CLIENT_ID, **kw)
        if self.name == "upbit" and not listed:
            row.pop("executed_funds", None)
        return row

    def placed(self, order: Order) -> web.Response:
        return web.json_response(self.order_json(order, created=True), status=201)

    def cancelled(self, order: Order, before: dict) -> web.Response:
        """Upbit answers the order as it was before the cancel."""
        return web.json_response(before)

    # ---- balances and rules -------------------------------------------------------------------

    def _account_row(self, account: Account, currency: str) -> dict:
        return {
            "currency": currency,
            "balance": fmt(account.free(currency)),
            "locked": fmt(account.locked(currency)),
            "avg_buy_price": "0",
            "avg_buy_price_modified": False,
            "unit_currency": "KRW",
        }

    def balances(self, account: Account, params: dict) -> web.Response:
        return web.json_response([self._account_row(account, c) for c in account.balances])

    def chance(self, account: Account, params: dict) -> web.Response:
        market = self._market(params.get("market"))
        if market is None:
            return error(404, "market_does_not_exist", "Market does not exist.")
        spec, fee = market.spec, fmt(self.fee)
        return web.json_response(
            {
                "bid_fee": fee,
                "ask_fee": fee,
                "maker_bid_fee": fee,
                "maker_ask_fee": fee,
                "market": {
                    "id": spec.symbol,
                    "name": f"{spec.base}/{spec.quote}",
                    "order_types": ["limit"],
                    "order_sides": ["ask", "bid"],
                    "bid_types": ["limit", "price"],
                    "ask_types": ["limit", "market"],
                    "bid": {"currency": spec.quote, "min_total": fmt(MIN_TOTAL)},
                    "ask": {"currency": spec.base, "min_total": fmt(MIN_TOTAL)},
                    "max_total": fmt(MAX_TOTAL),
                    "state": "active",
                },
                "bid_account": self._account_row(account, spec.quote),
                "ask_account": self._account_row(account, spec.base),
            }
        )

    # ---- orders -------------------------------------------------------------------------------

    def _invalid(self, message: str) -> web.Response:
        return error(400, self.INVALID, message)

    def create_order(self, account: Account, params: dict) -> web.Response:
        market = self._market(params.get("market"))
        side, ord_type = params.get("side"), params.get(self.ORD_TYPE)
        if market is None:
            return self._invalid("market does not have a valid value")
        if side not in ("bid", "ask") or ord_type not in ("limit", "price", "market"):
            return self._invalid(f"side or {self.ORD_TYPE} does not have a valid value")
        sfx = "bid" if side == "bid" else "ask"
        try:
            price, volume = _decimal(params, "price"), _decimal(params, "volume")
        except InvalidOperation:
            return self._invalid("price or volume does not have a valid value")
        rule = self._order_rule(ord_type, side, price, volume)
        if rule:
            return error(400, f"create_{sfx}_error" if ord_type != "limit" else self.INVALID,
                         rule)
        if (price is not None and price <= 0) or (volume is not None and volume <= 0):
            return self._invalid("price and volume must be positive")
        if ord_type == "limit" and price % self.price_tick(price) != 0:
            return error(
                400,
                f"invalid_price_{sfx}",
                "주문가격 단위를 잘못 입력하셨습니다. 확인 후 시도해주세요.",
            )
        bid, _ = self.engine.quote_prices(market.symbol)
        total = {"limit": lambda: price * volume, "price": lambda: price,
                 "market": lambda: volume * bid}[ord_type]()
        if total < MIN_TOTAL:
            return error(400, f"under_min_total_{sfx}", "최소주문금액 이상으로 주문해주세요.")
        if total > MAX_TOTAL:
            return error(400, f"over_max_total_{sfx}", "최대주문금액 이하로 주문해주세요.")
        client_id = params.get(self.CLIENT_ID)
        if client_id is not None and self._client_id_taken(account, client_id):
            # The exact error name for a reused client id is unconfirmed in the references.
            name = self.CLIENT_ID
            return error(400, f"duplicate_{name}", f"{name}는 중복될 수 없습니다.")
        oid, uid = self.engine.new_ids()
        order = Order(
            oid,
            self.order_id(oid, uid),
            market.symbol,
            "buy" if side == "bid" else "sell",
            "limit" if ord_type == "limit" else "market",
            price if ord_type == "limit" else None,
            volume,
            price if ord_type == "price" else None,
            client_id,
            self.now(),
            time_in_force=params.get("time_in_force"),
            extra={"ord_type": ord_type, "quote_cancels": True, "input_price": price},
        )
        if client_id is not None and self.CLIENT_ID_UNIQUE_FOREVER:
            self.identifiers.setdefault(account.key, set()).add(client_id)
        try:
            self.engine.place(account, order)
        except OrderError:
            return error(400, f"insufficient_funds_{sfx}", "주문가능한 금액이 부족합니다.")
        return self.placed(order)

    def _order_rule(self, ord_type, side, price, volume) -> str | None:
        """What is wrong with the combination of type, side, price and volume, if anything."""
        if ord_type == "limit" and (price is None or volume is None):
            return "limit orders need price and volume"
        if ord_type == "price" and (side != "bid" or price is None or volume is not None):
            return f"{self.ORD_TYPE}=price is a bid with price (total) only"
        if ord_type == "market" and (side != "ask" or volume is None or price is not None):
            return f"{self.ORD_TYPE}=market is an ask with volume only"
        return None

    def _client_id_taken(self, account: Account, client_id: str) -> bool:
        """Upbit: unique forever, even when the order was refused. Bithumb: among open orders
        (the references do not say; the simulator refuses a reuse while the first is open)."""
        if self.CLIENT_ID_UNIQUE_FOREVER:
            return client_id in self.identifiers.setdefault(account.key, set())
        return any(o.client_id == client_id and o.status == "open"
                   for o in account.orders.values())

    def _find(self, account: Account, params: dict) -> Order | None:
        wanted = next((params[k] for k in self.ORDER_ID_PARAMS if params.get(k)), None)
        if wanted:
            return next((o for o in account.orders.values() if o.uuid == wanted), None)
        if params.get(self.CLIENT_ID):
            matches = [o for o in account.orders.values() if o.client_id == params[self.CLIENT_ID]]
            return max(matches, key=lambda o: o.id) if matches else None
        return None

    def get_order(self, account: Account, params: dict) -> web.Response:
        order = self._find(account, params)
        if order is None:
            return error(404, "order_not_found", "주문을 찾지 못했습니다.")
        return web.json_response(self.order_json(order, with_trades=True))

    def cancel_order(self, account: Account, params: dict) -> web.Response:
        order = self._find(account, params)
        if order is None:
            return error(404, "order_not_found", "주문을 찾지 못했습니다.")
        before = self.order_json(order)
        try:
            self.engine.cancel(account, order)
        except OrderError:
            return self._invalid("이미 체결되었거나 취소된 주문입니다.")
        return self.cancelled(order, before)

    def _list(self, account: Account, params: dict, states: set[str], default: set[str], cap: int):
        wanted = set(
            params.get("states") or ([params["state"]] if params.get("state") else default)
        )
        if not wanted <= states:
            return bad_param()
        try:
            limit = int(params.get("limit", "100"))
            page = int(params.get("page", "1"))
        except ValueError:
            return bad_param()
        if not 1 <= limit <= cap or page < 1:
            return bad_param()
        ids, client_ids = params.get("uuids"), params.get(f"{self.CLIENT_ID}s")
        orders = sorted(
            (
                o
                for o in account.orders.values()
                if params.get("market") in (None, o.symbol)
                and (ids is None or o.uuid in ids)
                and (client_ids is None or o.client_id in client_ids)
            ),
            key=lambda o: (o.created_ms, o.id),
            reverse=params.get("order_by", "desc") == "desc",
        )
        rows = [self.order_json(o, listed=True) for o in orders]
        rows = [r for r in rows if r["state"] in wanted]
        return web.json_response(rows[(page - 1) * limit : page * limit])

    def open_orders(self, account: Account, params: dict) -> web.Response:
        return self._list(account, params, {"wait", "watch"}, {"wait", "watch"}, 100)

    def closed_orders(self, account: Account, params: dict) -> web.Response:
        return self._list(account, params, {"done", "cancel"}, {"done", "cancel"}, 1000)
