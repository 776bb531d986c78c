"""What the read-only bot commands answer, as plain text, for one user: no Telegram here, so
each is tested on the database alone (``alerts.telegram.bot`` only sends the text).

Money stays Decimal; amounts are shown in each account's quote asset and never summed across
assets. Days are trading days of ``settings.TIME_ZONE`` (as the daily limits count them).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from django.conf import settings
from django.utils import timezone

from markets.models import Account
from orders.equity import position_prices, value_accounts
from orders.models import Position
from strategies.models import StrategyConfig

ZERO = Decimal("0")
#: Rows listed before "... and N more" (a Telegram message holds 4,096 characters).
MAX_ROWS = 25
DAILY_DAYS = 7
DAILY_MAX_DAYS = 31


def money(value: Decimal | None, asset: str = "") -> str:
    if value is None:
        return "n/a"
    text = f"{value:,.2f}"
    if text in ("-0.00", "-0"):
        text = "0.00"
    return f"{text} {asset}".strip()


def signed_money(value: Decimal, asset: str = "") -> str:
    text = money(value, asset)
    return text if text.startswith("-") or value == 0 else "+" + text


def quantity(value: Decimal) -> str:
    text = f"{value.normalize():f}"
    return text


def _more(lines: list[str], total: int) -> list[str]:
    if total > MAX_ROWS:
        lines.append(f"... and {total - MAX_ROWS} more (see the dashboard)")
    return lines


def status(user) -> str:
    """Open positions with their unrealized PnL at the last price (mark price for perpetuals)."""
    positions = list(
        Position.objects.own(user).filter(closed_at__isnull=True)
        .select_related("symbol__exchange", "account", "config").order_by("opened_at", "id")
    )
    if not positions:
        return "No open positions."
    prices, marked = position_prices(positions)
    lines = [f"Open positions ({len(positions)}):"]
    totals: dict[str, Decimal] = defaultdict(lambda: ZERO)
    for position in positions:
        asset = position.account.quote_asset
        price = prices.get(position.symbol_id)
        owner = position.config.name if position.config_id else "manual"
        head = (f"• {position.symbol.code} {position.side} {quantity(position.quantity)} "
                f"@ {money(position.entry_price)} ({owner}, {position.account.label})")
        if price is None:
            body = "  no price yet: PnL unknown"
        else:
            direction = 1 if position.side == Position.PositionSide.LONG else -1
            pnl = (price - position.entry_price) * position.quantity * direction
            totals[asset] += pnl
            cost = position.entry_price * position.quantity
            pct = f" ({pnl / cost * 100:+.2f}%)" if cost else ""
            at = "mark" if position.symbol_id in marked else "last"
            body = f"  {at} {money(price)}  PnL {signed_money(pnl, asset)}{pct}"
        if len(lines) <= MAX_ROWS * 2:
            lines += [head, body]
    _more(lines, len(positions))
    lines.append("Unrealized: " + ", ".join(
        signed_money(total, asset) for asset, total in sorted(totals.items())
    ) if totals else "Unrealized: n/a")
    return "\n".join(lines)


def balance(user) -> str:
    """Each account's equity, cash and holdings; halted accounts say so."""
    accounts = list(Account.objects.own(user).select_related("exchange")
                    .prefetch_related("balances").order_by("label", "id"))
    if not accounts:
        return "You have no trading accounts yet (add one in the admin)."
    valuations = value_accounts(accounts, {a.pk: list(a.balances.all()) for a in accounts})
    lines = []
    for account in accounts[:MAX_ROWS]:
        valuation = valuations[account.pk]
        state = f"  HALTED: {account.halted_reason or 'kill switch'}" if account.halted else ""
        lines.append(f"{account.label} ({account.exchange.name}, {account.mode}){state}")
        lines.append(f"  equity {money(valuation.equity, account.quote_asset)}, "
                     f"cash {money(valuation.cash, account.quote_asset)}")
        held = [b for b in account.balances.all() if b.total and b.asset != account.quote_asset]
        for row in sorted(held, key=lambda b: b.asset)[:10]:
            lines.append(f"  {row.asset}: {quantity(row.total)}"
                         + (f" ({quantity(row.locked)} locked)" if row.locked else ""))
        if valuation.unpriced_assets:
            lines.append("  not priced (counted as 0): " + ", ".join(valuation.unpriced_assets))
    return "\n".join(_more(lines, len(accounts)))


def _zone() -> ZoneInfo:
    return ZoneInfo(settings.TIME_ZONE)


def _day_start(now: datetime, days_back: int = 0) -> datetime:
    local = timezone.localtime(now, _zone()).date() - timedelta(days=days_back)
    return datetime(local.year, local.month, local.day, tzinfo=_zone())


def _closed(user, since: datetime):
    return (Position.objects.own(user).filter(closed_at__gte=since)
            .values_list("closed_at", "realized_pnl", "account__quote_asset"))


def realized(user, since: datetime) -> tuple[dict[str, Decimal], int]:
    """Realized PnL of the positions closed since ``since``, per quote asset, and their count."""
    totals: dict[str, Decimal] = defaultdict(lambda: ZERO)
    count = 0
    for _closed_at, pnl, asset in _closed(user, since):
        totals[asset] += pnl
        count += 1
    return dict(totals), count


def _totals(totals: dict[str, Decimal]) -> str:
    if not totals:
        return "0"
    return ", ".join(signed_money(v, k) for k, v in sorted(totals.items()))


def profit(user, now=None) -> str:
    """Realized PnL of closed positions today, over the last 7 and 30 trading days."""
    now = now or timezone.now()
    lines = [f"Realized profit (closed positions, days in {settings.TIME_ZONE}):"]
    for label, days_back in (("Today", 0), ("Last 7 days", 6), ("Last 30 days", 29)):
        totals, count = realized(user, _day_start(now, days_back))
        lines.append(f"{label}: {_totals(totals)} ({count} closed)")
    return "\n".join(lines)


def daily(user, days: int = DAILY_DAYS, now=None) -> str:
    """Realized PnL per trading day, newest first, for the last ``days`` days."""
    days = max(1, min(int(days), DAILY_MAX_DAYS))
    now = now or timezone.now()
    since = _day_start(now, days - 1)
    per_day: dict = defaultdict(lambda: defaultdict(lambda: ZERO))
    counts: dict = defaultdict(int)
    for closed_at, pnl, asset in _closed(user, since):
        day = timezone.localtime(closed_at, _zone()).date()
        per_day[day][asset] += pnl
        counts[day] += 1
    lines = [f"Daily realized profit, last {days} day(s) ({settings.TIME_ZONE}):"]
    for back in range(days):
        day = _day_start(now, back).date()
        lines.append(f"{day:%Y-%m-%d}: {_totals(dict(per_day.get(day, {})))} "
                     f"({counts.get(day, 0)} closed)")
    return "\n".join(lines)


def configs(user) -> str:
    """The user's strategy configs: on/off, what they trade, and a halted account."""
    rows = list(StrategyConfig.objects.own(user).select_related("symbol", "account")
                .order_by("-is_active", "name", "id"))
    if not rows:
        return "You have no strategy configs yet."
    lines = [f"Configs ({sum(c.is_active for c in rows)} of {len(rows)} on):"]
    for config in rows[:MAX_ROWS]:
        state = "ON " if config.is_active else "off"
        halted = " (account halted)" if config.account.halted else ""
        lines.append(f"{state} {config.name}: {config.strategy} {config.symbol.code} "
                     f"{config.timeframe}, {config.account.label}{halted}")
    return "\n".join(_more(lines, len(rows)))
