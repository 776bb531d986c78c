"""The JSON API: thin views over ``orders.services`` and the owned querysets.

Authentication: ``Authorization: Bearer <token>`` (an :class:`orders.models.ApiToken`, made
with ``manage.py api_token``), or the browser's session (then unsafe methods need the CSRF
token, as every Django form does). Every object is looked up among the caller's own: another
user's id answers 404, exactly like an id that does not exist.

Errors are ``{"error": "<message a trader understands>"}`` with the HTTP status.
"""

from __future__ import annotations

import functools
import json
from decimal import Decimal, InvalidOperation

from django.http import JsonResponse
from django.middleware.csrf import CsrfViewMiddleware
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt

from markets.models import Account, Symbol
from orders import killswitch, services
from orders.brokers import BrokerUnavailable
from orders.equity import last_prices, value_account
from orders.models import ApiToken, Order, Position
from strategies.models import Signal, StrategyConfig

PAGE = 100


class ApiError(Exception):
    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def authenticate(request):
    """The requesting user from an API token (``Authorization: Bearer <token>``) or the
    session; ApiError (401/403) otherwise. Used by every JSON endpoint, the candles one too."""
    return _authenticate(request)


def _authenticate(request):
    header = request.headers.get("Authorization", "")
    if header:
        scheme, _, key = header.partition(" ")
        if scheme.lower() not in ("bearer", "token") or not key.strip():
            raise ApiError("use the header 'Authorization: Bearer <your API token>'", 401)
        token = (
            ApiToken.objects.select_related("owner")
            .filter(key_hash=ApiToken.hash(key.strip()))
            .first()
        )
        if token is None or not token.owner.is_active:
            raise ApiError("this API token is not valid (revoked or mistyped)", 401)
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=timezone.now())
        return token.owner
    if request.user.is_authenticated:
        if request.method not in ("GET", "HEAD", "OPTIONS"):
            reason = CsrfViewMiddleware(lambda r: None).process_view(request, None, (), {})
            if reason is not None:
                raise ApiError("CSRF check failed: reload the page and try again", 403)
        return request.user
    raise ApiError("log in, or send an API token: 'Authorization: Bearer <token>'", 401)


def endpoint(*methods):
    """JSON in and out, authentication, errors as ``{"error": ...}``."""

    def wrap(view):
        @csrf_exempt
        @functools.wraps(view)
        def inner(request, *args, **kwargs):
            try:
                if request.method not in methods:
                    raise ApiError(f"use {' or '.join(methods)} here", 405)
                user = _authenticate(request)
                result = view(request, user, *args, **kwargs)
            except ApiError as exc:
                return JsonResponse({"error": str(exc)}, status=exc.status)
            status = 200
            if isinstance(result, tuple):
                result, status = result
            return JsonResponse(result, status=status, safe=False)

        return inner

    return wrap


def _body(request) -> dict:
    if not request.body:
        return {}
    try:
        data = json.loads(request.body)
    except ValueError:
        raise ApiError("the request body is not valid JSON") from None
    if not isinstance(data, dict):
        raise ApiError("send a JSON object")
    return data


def _owned(queryset, user, pk, what: str):
    obj = queryset.owned_by(user).filter(pk=pk).first()
    if obj is None:
        raise ApiError(f"no {what} with id {pk}", 404)
    return obj


def _decimal(value, name: str) -> Decimal:
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise ApiError(f"{name} must be a number, got {value!r}") from None
    if not number.is_finite() or number <= 0:
        raise ApiError(f"{name} must be more than 0")
    return number


def _symbol(text: str) -> Symbol:
    venue, _, code = (text or "").partition(":")
    symbol = (
        Symbol.objects.select_related("exchange").filter(exchange__slug=venue, code=code).first()
        if venue and code
        else None
    )
    if symbol is None:
        raise ApiError(f"unknown symbol {text!r}; write it as venue:code, e.g. upbit:KRW-BTC", 404)
    return symbol


def _limit(request) -> int:
    try:
        return max(1, min(int(request.GET.get("limit", PAGE)), 1000))
    except ValueError:
        raise ApiError("limit must be a whole number") from None


# ------------------------------------------------------------------------ reads


@endpoint("GET")
def balances(request, user):
    out = []
    for account in Account.objects.owned_by(user).select_related("exchange"):
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
                "unpriced_assets": list(valuation.unpriced_assets),
                "balances": [
                    {"asset": b.asset, "free": str(b.free), "locked": str(b.locked)}
                    for b in account.balances.all()
                ],
            }
        )
    return {"accounts": out}


@endpoint("GET")
def positions(request, user):
    qs = Position.objects.owned_by(user).select_related("symbol__exchange")
    if request.GET.get("open", "1") != "0":
        qs = qs.filter(closed_at__isnull=True)
    rows = list(qs[: _limit(request)])
    prices = last_prices({p.symbol_id for p in rows})
    out = []
    for position in rows:
        item = services.position_payload(position)
        price = prices.get(position.symbol_id)
        direction = 1 if position.side == Position.PositionSide.LONG else -1
        item["last_price"] = None if price is None else str(price)
        item["unrealized_pnl"] = (
            None
            if price is None or position.closed_at
            else str((price - position.entry_price) * position.quantity * direction)
        )
        out.append(item)
    return {"positions": out}


@endpoint("GET", "POST")
def orders(request, user):
    if request.method == "POST":
        return place_order(request, user)
    qs = Order.objects.owned_by(user).select_related("symbol__exchange")
    if request.GET.get("status"):
        qs = qs.filter(status=request.GET["status"])
    return {"orders": [services.order_payload(o) for o in qs[: _limit(request)]]}


def place_order(request, user):
    data = _body(request)
    account = _owned(Account.objects, user, data.get("account"), "account")
    symbol = _symbol(data.get("symbol", ""))
    if symbol.exchange_id != account.exchange_id:
        raise ApiError(f"account {account.label} trades on {account.exchange}, not {symbol}")
    side = data.get("side")
    if side not in ("buy", "sell"):
        raise ApiError("side must be 'buy' or 'sell'")
    quantity = _decimal(data.get("quantity"), "quantity")
    price = _decimal(data["price"], "price") if data.get("price") is not None else None
    last = last_prices([symbol.pk]).get(symbol.pk)
    if last is None:
        raise ApiError(f"no price is known for {symbol} yet; wait for the first candle", 409)
    try:
        order = services.place_manual_order(
            account, symbol, side=side, quantity=quantity, price=price, last_price=last
        )
    except (ValueError, BrokerUnavailable) as exc:
        raise ApiError(str(exc)) from None
    order = Order.objects.select_related("symbol__exchange").get(pk=order.pk)
    return {"order": services.order_payload(order)}, 201 if order.status != "rejected" else 422


@endpoint("POST")
def cancel_order(request, user, pk):
    order = _owned(Order.objects.select_related("account", "symbol__exchange"), user, pk, "order")
    if not order.is_open:
        raise ApiError(f"order {pk} is already {order.status}", 409)
    try:
        order = services.cancel_order(order)
    except BrokerUnavailable as exc:
        raise ApiError(str(exc)) from None
    order = Order.objects.select_related("symbol__exchange").get(pk=order.pk)
    return {"order": services.order_payload(order)}


@endpoint("GET")
def signals(request, user):
    qs = Signal.objects.filter(config__owner=user) if not user.is_superuser else Signal.objects
    qs = qs.select_related("config", "symbol__exchange").order_by("-bar_time", "-id")
    if request.GET.get("config"):
        qs = qs.filter(config_id=request.GET["config"])
    from orders.evaluation import signal_payload

    return {"signals": [signal_payload(s) for s in qs[: _limit(request)]]}


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
        "stop_loss_pct": None if config.stop_loss_pct is None else str(config.stop_loss_pct),
        "take_profit_pct": (
            None if config.take_profit_pct is None else str(config.take_profit_pct)
        ),
        "trailing_stop_pct": (
            None if config.trailing_stop_pct is None else str(config.trailing_stop_pct)
        ),
        "daily_target_pct": (
            None if config.daily_target_pct is None else str(config.daily_target_pct)
        ),
        "daily_max_loss_pct": (
            None if config.daily_max_loss_pct is None else str(config.daily_max_loss_pct)
        ),
        "sizing_method": config.sizing_method,
        "sizing_params": config.sizing_params,
    }


@endpoint("GET")
def configs(request, user):
    qs = StrategyConfig.objects.owned_by(user).select_related("symbol__exchange")
    return {"configs": [_config_payload(c) for c in qs]}


def _switch(user, pk, active: bool):
    config = _owned(StrategyConfig.objects.select_related("symbol__exchange"), user, pk, "config")
    if active and config.account.owner_id != config.owner_id:
        raise ApiError("this config's account is not yours; pick one of your accounts", 409)
    StrategyConfig.objects.filter(pk=config.pk).update(is_active=active)
    config.is_active = active
    payload = _config_payload(config)
    if active and config.account.halted:
        payload["warning"] = (
            f"account {config.account.label} is halted ({config.account.halted_reason}); "
            "the config trades once a person resumes the account"
        )
    return {"config": payload}


@endpoint("POST")
def activate_config(request, user, pk):
    return _switch(user, pk, True)


@endpoint("POST")
def deactivate_config(request, user, pk):
    return _switch(user, pk, False)


@endpoint("POST")
def kill_switch(request, user):
    """``{"all": true}`` stops everything of the caller's; ``{"configs": [ids]}`` stops only
    those configs. Exactly one of the two; an empty or unknown selection changes nothing."""
    data = _body(request)
    for key in ("all", "close_positions"):
        if key in data and not isinstance(data[key], bool):
            raise ApiError(f"{key} must be true or false (a JSON boolean)")
    if data.get("all") is True and "configs" in data:
        raise ApiError("send either \"all\": true or \"configs\": [ids], not both")
    if data.get("all") is True:
        configs = killswitch.ALL
    elif "configs" in data:
        configs = data["configs"]
        if not isinstance(configs, list) or not all(
            isinstance(i, int) and not isinstance(i, bool) for i in configs
        ):
            raise ApiError("configs must be a list of config ids")
    else:
        raise ApiError('say what to stop: {"all": true} or {"configs": [ids]}')
    reason = data.get("reason", "kill switch (API)")
    if not isinstance(reason, str):
        raise ApiError("reason must be text")
    try:
        result = killswitch.stop_trading(
            user=user,
            configs=configs,
            reason=(reason or "kill switch (API)")[:200],
            close_positions=data.get("close_positions", False),
        )
    except killswitch.NothingSelected as exc:
        raise ApiError(str(exc), 404 if configs else 400) from None
    return result.as_dict()
