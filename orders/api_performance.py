"""The JSON API's profit-and-loss endpoints (``/api/performance/...``): the equity curve, the
returns tables, the trade history and each config's performance, of the caller's own accounts
and configs only (another user's id answers 404, like one that does not exist)."""

from __future__ import annotations

from typing import Literal

from django.conf import settings
from django.utils import timezone
from ninja import Path, Query, Router
from ninja.errors import HttpError
from ninja.responses import Status
from pydantic import BaseModel, Field

from markets.models import Account
from orders import performance, performance_configs
from orders.api_auth import TokenOrSession
from orders.api_schemas import Id

router = Router(auth=TokenOrSession(), tags=["performance"])
RangeName = Literal["1D", "1W", "1M", "3M", "1Y", "All"]


class EquityQuery(BaseModel):
    range: RangeName = Field(performance.DEFAULT_RANGE, description="how far back")


class TradesQuery(BaseModel):
    account: Id | None = Field(None, description="one of your accounts; all if absent")
    page: int = Field(1, ge=1, le=1_000_000)


class ConfigsQuery(BaseModel):
    account: Id | None = Field(None, description="one of your accounts; all if absent")


def _account(user, pk: int) -> Account:
    account = Account.objects.filter(owner=user, pk=pk).first()
    if account is None:
        raise HttpError(404, f"no account with id {pk}")
    return account


@router.get("/performance/accounts/{pk}/equity", url_name="performance-equity",
            summary="An account's equity curve")
def equity(request, pk: Path[Id], query: Query[EquityQuery]):
    """``points``: ``[time ms UTC, equity]`` oldest first; long ranges keep the last snapshot
    of each hour or day."""
    account = _account(request.auth, pk)
    return {"account": account.pk, "range": query.range,
            "points": performance.equity_curve(account.pk, query.range, timezone.now())}


@router.get("/performance/accounts/{pk}/returns", url_name="performance-returns",
            summary="An account's daily and monthly returns")
def returns(request, pk: Path[Id]):
    account = _account(request.auth, pk)
    rows = performance.account_returns(account.pk, timezone.now())
    return {"account": account.pk, "time_zone": settings.TIME_ZONE,
            "daily": performance.returns_json(rows["daily"]),
            "monthly": performance.returns_json(rows["monthly"])}


@router.get("/performance/trades", url_name="performance-trades",
            summary="Closed positions, newest first, a page at a time")
def trades(request, query: Query[TradesQuery]):
    if query.account is not None:
        _account(request.auth, query.account)
    page = performance.trade_page(request.auth, query.page, query.account)
    return {"page": page.number, "pages": page.pages, "total": page.total,
            "trades": [t.as_dict() for t in page.trades]}


@router.get("/performance/configs", url_name="performance-configs",
            summary="Each config's trades, win rate, PnL, drawdown and backtest")
def configs(request, query: Query[ConfigsQuery]):
    if query.account is not None:
        _account(request.auth, query.account)
    rows = performance_configs.config_performance(request.auth, query.account)
    return {"configs": [r.as_dict() for r in rows]}


@router.post("/performance/configs/{pk}/backtest", url_name="performance-config-backtest",
             summary="Backtest a config over its live period", response={202: dict})
def backtest(request, pk: Path[Id]):
    try:
        run = performance_configs.request_backtest(request.auth, pk, timezone.now())
    except LookupError as exc:
        raise HttpError(404 if str(exc).startswith("no config") else 409, str(exc)) from None
    return Status(202, {"backtest": run.pk, "status": run.status, "start": run.start.isoformat(),
                        "end": run.end.isoformat()})
