"""The JSON API's trading endpoints: thin views over ``orders.services`` and the caller's rows.

A django-ninja ``Router``; ``tradesite.api`` mounts it under ``/api/`` with the candles endpoint,
the body parser and the error shape. Authentication is ``orders.api_auth.TokenOrSession``.
Every object is looked up among the caller's own — superusers included: the API is personal,
like the chart — so another user's id answers 404, exactly like an id that does not exist.

Errors are ``{"error": "<message a trader understands>"}`` with the HTTP status (the schemas in
``orders.api_schemas`` name the field of a malformed request).
"""

from __future__ import annotations

from django.http import JsonResponse
from ninja import Path, Query, Router
from ninja.errors import HttpError

from markets.models import Account, Symbol
from orders import killswitch, services
from orders.api_auth import TokenOrSession
from orders.api_schemas import (
    BalancesOut,
    Id,
    KillSwitchIn,
    OrderIn,
    OrdersQuery,
    PositionsQuery,
    SignalsQuery,
)
from orders.brokers import BrokerUnavailable
from orders.equity import last_prices, position_prices, value_account
from orders.models import Order, Position
from orders.positions import net_positions
from strategies.models import Signal, StrategyConfig

router = Router(auth=TokenOrSession(), tags=["trading"])

#: The reason a position closed by hand records (on its closing order and on the position).
MANUAL_CLOSE = "manual_close"

#: The caller's rows of each model, never anyone else's (``owned_by`` lets superusers see all,
#: which the admin wants and the API must not).
OWNER = {Account: "owner", StrategyConfig: "owner", Order: "account__owner",
         Position: "account__owner", Signal: "config__owner"}


def mine(queryset, user):
    return queryset.filter(**{OWNER[queryset.model]: user})


def _owned(queryset, user, pk: int, what: str):
    obj = mine(queryset, user).filter(pk=pk).first()
    if obj is None:
        raise HttpError(404, f"no {what} with id {pk}")
    return obj


def _symbol(text: str) -> Symbol:
    venue, _, code = text.partition(":")
    symbol = (
        Symbol.objects.select_related("exchange").filter(exchange__slug=venue, code=code).first()
        if venue and code
        else None
    )
    if symbol is None:
        raise HttpError(404, f"unknown symbol {text!r}; write it as venue:code, e.g. upbit:KRW-BTC")
    return symbol


# ------------------------------------------------------------------------ reads


@router.get("/balances", url_name="balances", response=BalancesOut,
            summary="Your accounts, balances and equity")
def balances(request):
    out = []
    for account in mine(Account.objects, request.auth).select_related("exchange"):
        valuation = value_account(account)
        out.append(
            {
                "account": account.pk,
                "label": account.label,
                "venue": account.exchange.slug,
                "mode": account.mode,
                "halted": account.halted,
                "halted_reason": account.halted_reason,
                "credentials": account.credentials_state,  # none | stored | unreadable
                "quote_asset": account.quote_asset,
                "equity": str(valuation.equity),
                # Live accounts: when the venue last stated the balances (ISO 8601 UTC; null
                # for paper accounts and for a live account the venue never confirmed).
                "venue_confirmed_at": account.venue_confirmed_at.isoformat()
                if account.venue_confirmed_at else None,
                "unpriced_assets": list(valuation.unpriced_assets),
                "balances": [
                    {"asset": b.asset, "free": str(b.free), "locked": str(b.locked)}
                    for b in account.balances.all()
                ],
            }
        )
    return {"accounts": out}


@router.get("/positions", url_name="positions", summary="Your positions (open ones by default)")
def positions(request, q: Query[PositionsQuery]):
    qs = mine(Position.objects, request.auth).select_related("symbol__exchange", "config")
    if q.open != "0":
        qs = qs.filter(closed_at__isnull=True)
    rows = list(qs[: q.limit])
    last = last_prices({p.symbol_id for p in rows})
    prices, marked = position_prices(rows, last)
    out = []
    for position in rows:
        item = services.position_payload(position)
        price = prices.get(position.symbol_id)
        direction = 1 if position.side == Position.PositionSide.LONG else -1
        item["last_price"] = None if last.get(position.symbol_id) is None else str(
            last[position.symbol_id])
        # Perpetuals: PnL at the fresh mark price (None: the last trade price was used).
        item["mark_price"] = str(price) if position.symbol_id in marked else None
        item["unrealized_pnl"] = (
            None
            if price is None or position.closed_at
            else str((price - position.entry_price) * position.quantity * direction)
        )
        out.append(item)
    # The account's net per symbol (what the venue holds): the sum over its configs' and
    # manual open positions, all of them (not only the page above).
    nets = net_positions(
        mine(Position.objects, request.auth).filter(closed_at__isnull=True)
        .select_related("symbol__exchange").order_by("account_id", "symbol_id", "pk")
    )
    return {"positions": out, "net": [n.payload() for n in nets]}


@router.get("/orders", url_name="orders", summary="Your orders, newest first")
def orders(request, q: Query[OrdersQuery]):
    qs = mine(Order.objects, request.auth).select_related("symbol__exchange")
    if q.status:
        qs = qs.filter(status=q.status)
    return {"orders": [services.order_payload(o) for o in qs[: q.limit]]}


@router.get("/signals", url_name="signals", summary="Your configs' signals, newest first")
def signals(request, q: Query[SignalsQuery]):
    from orders.evaluation import signal_payload

    qs = mine(Signal.objects, request.auth).select_related("config", "symbol__exchange")
    qs = qs.order_by("-bar_time", "-id")
    if q.config is not None:
        qs = qs.filter(config_id=q.config)
    return {"signals": [signal_payload(s) for s in qs[: q.limit]]}


def _pct(value) -> str | None:
    return None if value is None else str(value)


def _config_payload(config: StrategyConfig) -> dict:
    return {
        "id": config.pk,
        "name": config.name,
        "strategy": config.strategy,
        "params": config.params,
        "symbol": f"{config.symbol.exchange.slug}:{config.symbol.code}",
        "timeframe": config.timeframe,
        "account": config.account_id,
        "is_active": config.is_active,
        "leverage": config.leverage,
        "stop_loss_pct": _pct(config.stop_loss_pct),
        "take_profit_pct": _pct(config.take_profit_pct),
        "trailing_stop_pct": _pct(config.trailing_stop_pct),
        "daily_target_pct": _pct(config.daily_target_pct),
        "daily_max_loss_pct": _pct(config.daily_max_loss_pct),
        "sizing_method": config.sizing_method,
        "sizing_params": config.sizing_params,
    }


@router.get("/configs", url_name="configs", summary="Your strategy configs")
def configs(request):
    qs = mine(StrategyConfig.objects, request.auth).select_related("symbol__exchange")
    return {"configs": [_config_payload(c) for c in qs]}


# ---------------------------------------------------------------------- actions


@router.post("/orders", url_name="order-place", summary="Place a manual order",
             response={201: dict, 422: dict})
def place_order(request, payload: OrderIn):
    """201 with the order; 422 with the order when a gate rejected it (``reject_reason``)."""
    user = request.auth
    account = _owned(Account.objects, user, payload.account, "account")
    symbol = _symbol(payload.symbol)
    if symbol.exchange_id != account.exchange_id:
        raise HttpError(400, f"account {account.label} trades on {account.exchange}, not {symbol}")
    last = last_prices([symbol.pk]).get(symbol.pk)
    if last is None:
        raise HttpError(409, f"no price is known for {symbol} yet; wait for the first candle")
    try:
        order = services.place_manual_order(
            account, symbol, side=payload.side, quantity=payload.quantity, price=payload.price,
            quote_amount=payload.quote_amount, last_price=last,
        )
    except (ValueError, BrokerUnavailable) as exc:
        raise HttpError(400, str(exc)) from None
    order = Order.objects.select_related("symbol__exchange").get(pk=order.pk)
    status = 201 if order.status != "rejected" else 422
    return JsonResponse({"order": services.order_payload(order)}, status=status)


@router.post("/positions/{pk}/close", url_name="position-close",
             summary="Close one open position (a reduce-only market order)",
             response={200: dict, 409: dict, 422: dict})
def close_position(request, pk: Path[Id]):
    """The whole position closed through ``services.close_position``, as the kill switch closes
    it: 200 with the order (filled, or working at the venue); 422 with the order when the venue
    refused it (``reject_reason``); 409 when it is closed already or its close is in flight."""
    position = _owned(Position.objects.select_related("account", "symbol__exchange", "config"),
                      request.auth, pk, "position")
    if position.closed_at is not None:
        raise HttpError(409, f"position {pk} is closed already")
    last = last_prices([position.symbol_id]).get(position.symbol_id)
    if last is None:
        raise HttpError(409, f"no price is known for {position.symbol} yet; wait for the first "
                        "candle")
    try:
        order = services.close_position(position, MANUAL_CLOSE, last_price=last)
    except BrokerUnavailable as exc:
        raise HttpError(400, str(exc)) from None
    if order is None:
        raise HttpError(409, f"position {pk} is closed already, or its close is already working")
    order = Order.objects.select_related("symbol__exchange").get(pk=order.pk)
    position = Position.objects.select_related("symbol__exchange", "config").get(pk=pk)
    status = 422 if order.status == "rejected" else 200
    return JsonResponse({"order": services.order_payload(order),
                         "position": services.position_payload(position)}, status=status)


@router.post("/orders/{pk}/cancel", url_name="order-cancel", summary="Cancel an open order")
def cancel_order(request, pk: Path[Id]):
    order = _owned(Order.objects.select_related("account", "symbol__exchange"), request.auth, pk,
                   "order")
    if not order.is_open:
        raise HttpError(409, f"order {pk} is already {order.status}")
    try:
        order = services.cancel_order(order)
    except BrokerUnavailable as exc:
        raise HttpError(400, str(exc)) from None
    order = Order.objects.select_related("symbol__exchange").get(pk=order.pk)
    return {"order": services.order_payload(order)}


def _switch(user, pk: int, active: bool) -> dict:
    config = _owned(StrategyConfig.objects.select_related("symbol__exchange"), user, pk, "config")
    if active and config.account.owner_id != config.owner_id:
        raise HttpError(409, "this config's account is not yours; pick one of your accounts")
    StrategyConfig.objects.filter(pk=config.pk).update(is_active=active)
    config.is_active = active
    payload = _config_payload(config)
    if active and config.account.halted:
        payload["warning"] = (
            f"account {config.account.label} is halted ({config.account.halted_reason}); "
            "the config trades once a person resumes the account"
        )
    return {"config": payload}


@router.post("/configs/{pk}/activate", url_name="config-activate", summary="Switch a config on")
def activate_config(request, pk: Path[Id]):
    return _switch(request.auth, pk, True)


@router.post("/configs/{pk}/deactivate", url_name="config-deactivate",
             summary="Switch a config off")
def deactivate_config(request, pk: Path[Id]):
    return _switch(request.auth, pk, False)


@router.post("/kill-switch", url_name="kill-switch", summary="Stop trading: all, or some configs")
def kill_switch(request, payload: KillSwitchIn):
    """``{"all": true}`` stops everything of the caller's; ``{"configs": [ids]}`` stops only
    those configs. Exactly one of the two; an empty or unknown selection changes nothing."""
    configs = killswitch.ALL if payload.all is True else payload.configs
    try:
        result = killswitch.stop_trading(
            user=request.auth,
            configs=configs,
            reason=payload.reason or "kill switch (API)",
            close_positions=payload.close_positions,
        )
    except killswitch.NothingSelected as exc:
        raise HttpError(404 if configs else 400, str(exc)) from None
    return result.as_dict()
