"""The trader's dashboard at ``/``: thin views over the owned querysets and ``services``."""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Exists, OuterRef, Prefetch
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from markets.fields import UNREADABLE
from markets.models import Account
from orders import killswitch, risk, services, venue_balances
from orders.equity import position_prices, value_accounts
from orders.models import EquitySnapshot, Order, Position
from orders.performance_views import dashboard_context
from orders.positions import net_positions
from orders.ticket import ticket_context
from strategies.models import Signal, StrategyConfig

RECENT = 20


def _today(account: Account, equity: Decimal) -> dict:
    """Today's PnL (trading day of settings.TIME_ZONE) against the day's first snapshot."""
    now_ms = services.now_ms()
    start, end = risk.day_bounds_ms(now_ms, settings.TIME_ZONE)
    first = (
        EquitySnapshot.objects.filter(
            account=account, ts__gte=services.ms_to_dt(start), ts__lt=services.ms_to_dt(end)
        )
        .order_by("ts")
        .first()
    )
    if first is None or not first.equity:
        return {"pnl": None, "pct": None, "start": None}
    pnl = equity - first.equity
    return {"pnl": pnl, "pct": pnl / first.equity * 100, "start": first.equity}


@login_required
def dashboard(request):
    user = request.user
    now = timezone.now()
    accounts = []
    # Balances and active configs prefetched once; every account valued in one go.
    own = list(Account.objects.own(user).select_related("exchange").prefetch_related(
        "balances", Prefetch("strategy_configs", StrategyConfig.objects.filter(is_active=True),
                             to_attr="active_configs")
    ))
    valuations = value_accounts(own, {a.pk: list(a.balances.all()) for a in own})
    for account in own:
        valuation = valuations[account.pk]
        configs = account.active_configs
        accounts.append(
            {
                "account": account,
                "credentials_note": UNREADABLE
                if account.credentials_state == Account.CREDENTIALS_UNREADABLE
                else "",
                "equity": valuation.equity,
                # Live accounts: "confirmed by the venue 3 s ago" (stream or reconciliation).
                "confirmed": venue_balances.age_text(account.venue_confirmed_at, now)
                if account.mode == Account.Mode.LIVE
                else "",
                "balances": list(account.balances.all()),
                "today": _today(account, valuation.equity),
                "targets": sorted(
                    {c.daily_target_pct for c in configs if c.daily_target_pct is not None}
                ),
                "limits": sorted(
                    {c.daily_max_loss_pct for c in configs if c.daily_max_loss_pct is not None}
                ),
            }
        )
    positions = list(
        Position.objects.own(user)
        .filter(closed_at__isnull=True)
        .select_related("symbol__exchange", "account", "config")
    )
    prices, marked = position_prices(positions)
    rows = []
    for position in positions:
        price = prices.get(position.symbol_id)
        direction = 1 if position.side == Position.PositionSide.LONG else -1
        rows.append(
            {
                "position": position,
                "price": price,
                "marked": position.symbol_id in marked,
                "pnl": None
                if price is None
                else (price - position.entry_price) * position.quantity * direction,
            }
        )
    # The account's net per symbol: what the venue holds (the sum over configs and manual).
    nets = [
        {"net": n, "account": next(p.account for p in positions
                                    if p.account_id == n.account_id)}
        for n in net_positions(positions)
    ]
    signals = Signal.objects.select_related("config", "symbol__exchange").order_by(
        "-bar_time", "-id"
    )
    signals = signals.filter(config__owner=user)
    context = {
        "accounts": accounts,
        "positions": rows,
        "nets": nets,
        "signals": [
            {"signal": s, "execution": (s.reason or {}).get("execution") or {}}
            for s in signals[:RECENT]
        ],
        # Owned through EXISTS: the newest-first index then serves the 20 (a join on the
        # owner makes SQLite sort every order of the user's accounts).
        "orders": Order.objects.filter(
            Exists(Account.objects.filter(pk=OuterRef("account_id"), owner=user))
        ).select_related("symbol__exchange", "account")[:RECENT],
        "configs": StrategyConfig.objects.own(user).select_related(
            "symbol__exchange", "account"
        ),
        "now": timezone.localtime(),
        "time_zone": settings.TIME_ZONE,
        "ticket": ticket_context(user),
        **dashboard_context(user, accounts, request.GET),
    }
    return render(request, "orders/dashboard.html", context)


@login_required
@require_POST
def toggle_config(request, pk):
    config = get_object_or_404(StrategyConfig.objects.own(request.user), pk=pk)
    active = not config.is_active
    if active and config.account.owner_id != config.owner_id:
        messages.error(request, "This config's account is not yours; pick one of your accounts.")
        return redirect("home")
    StrategyConfig.objects.filter(pk=config.pk).update(is_active=active)
    state = "on" if active else "off"
    messages.success(request, f"{config.name} switched {state}.")
    if active and config.account.halted:
        messages.warning(
            request,
            f"Account {config.account.label} is halted ({config.account.halted_reason}); the "
            "config trades once the account is resumed in the admin.",
        )
    return redirect("home")


@login_required
@require_POST
def kill_switch(request):
    """Stop all of the user's trading (``scope=all``) or the configs named (``config`` ids).
    Anything else, an empty selection included, changes nothing and says so."""
    scope = request.POST.get("scope")
    close = request.POST.get("close_positions", "")
    if close not in ("", "1"):
        messages.error(
            request, "Kill switch: close_positions must be 1 or absent; nothing was stopped."
        )
        return redirect("home")
    try:
        if scope == "all":
            configs = killswitch.ALL
        elif scope == "selected":
            configs = [int(pk) for pk in request.POST.getlist("config")]
        else:
            raise killswitch.NothingSelected(
                "say what to stop (all, or the selected configs); nothing was stopped"
            )
        result = killswitch.stop_trading(
            user=request.user,
            configs=configs,
            reason="kill switch (dashboard)",
            close_positions=close == "1",
        )
    except ValueError as exc:  # NothingSelected, or a config id that is not a number
        text = str(exc) if isinstance(exc, killswitch.NothingSelected) else (
            "config ids must be numbers; nothing was stopped"
        )
        messages.error(request, f"Kill switch: {text}.")
        return redirect("home")
    messages.warning(request, f"Kill switch: {result.summary()}.")
    return redirect("home")
