"""Profit and loss over time for the dashboard and the API: the equity curve, daily and monthly
returns, the trade history (closed positions) and each config's performance.

Returns. A period's return is (equity at the next period's first snapshot, or the period's
last snapshot for the newest period) − (equity at the period's first snapshot), over the
latter: the same "day start equity" the daily limits use (``orders.services.equity``), so the
table and the limits agree. Periods are trading days of ``settings.TIME_ZONE`` as
``orders.risk.day_bounds_ms`` defines them (the only definition), and months of those days.
Deposits and withdrawals: the project has no record of them (a balance edited in the admin is
not a transfer), so a period holding one shows it as a return; the tables say so.

Queries are bounded: their number grows with accounts, never with snapshots, trades or
configs (``tests/test_performance.py`` pins it); long ranges are downsampled in SQL.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from decimal import Decimal
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db.models import Max, Subquery
from django.db.models.functions import TruncDay, TruncHour

from orders import risk
from orders.models import EquitySnapshot, Fill, Position, Side

ZERO = Decimal("0")
HOUR = dt.timedelta(hours=1)
#: Range button → (how far back, the SQL bucket that keeps a curve near a few hundred points).
RANGES: dict[str, tuple[dt.timedelta | None, type | None]] = {
    "1D": (dt.timedelta(days=1), None),
    "1W": (dt.timedelta(days=7), TruncHour),
    "1M": (dt.timedelta(days=31), TruncHour),
    "3M": (dt.timedelta(days=92), TruncDay),
    "1Y": (dt.timedelta(days=366), TruncDay),
    "All": (None, TruncDay),
}
DEFAULT_RANGE = "1M"
DAILY_ROWS = 31
MONTHLY_ROWS = 12
PAGE_SIZE = 50


def _ms(moment: dt.datetime) -> int:
    return int(moment.timestamp() * 1000)


# -- equity curve -------------------------------------------------------------------------------


def equity_curve(account_id: int, range_name: str, now: dt.datetime) -> list[list]:
    """``[[time ms, equity text], ...]`` oldest first: every snapshot of 1D, else the last
    snapshot of each UTC hour (1W, 1M) or day (3M, 1Y, All). One query."""
    if range_name not in RANGES:
        raise ValueError(f"range must be one of {', '.join(RANGES)}, not {range_name!r}")
    back, bucket = RANGES[range_name]
    rows = EquitySnapshot.objects.filter(account_id=account_id)
    if back is not None:
        rows = rows.filter(ts__gte=now - back)
    if bucket is not None:
        last = (
            rows.annotate(b=bucket("ts", tzinfo=dt.UTC)).values("b").annotate(last=Max("ts"))
            .values("last")
        )
        rows = EquitySnapshot.objects.filter(account_id=account_id, ts__in=Subquery(last))
    return [
        [_ms(ts), format(equity.normalize(), "f")]
        for ts, equity in rows.order_by("ts").values_list("ts", "equity")
    ]


# -- returns ------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class PeriodReturn:
    period: dt.date  # the trading day, or the first of the month
    start_equity: Decimal
    end_equity: Decimal

    @property
    def change(self) -> Decimal:
        return self.end_equity - self.start_equity

    @property
    def pct(self) -> Decimal | None:
        """Percent; None when the period started with no equity."""
        return self.change / self.start_equity * 100 if self.start_equity else None

    # Formatted here rather than by ``floatformat`` in the template: a dashboard shows
    # hundreds of these and the filter costs ~0.1 ms each.
    @property
    def start_text(self) -> str:
        return f"{self.start_equity:.2f}"

    @property
    def change_text(self) -> str:
        return f"{self.change:.2f}"

    @property
    def pct_text(self) -> str:
        return "\u2013" if self.pct is None else f"{self.pct:.2f}%"


def trading_date(ts_ms: int, tz_name: str) -> dt.date:
    """The trading day holding ``ts_ms``: the local date of ``risk.day_bounds_ms``'s start."""
    start, _ = risk.day_bounds_ms(ts_ms, tz_name)
    return dt.datetime.fromtimestamp(start / 1000, tz=ZoneInfo(tz_name)).date()


def period_returns(points, tz_name: str, monthly: bool = False) -> list[PeriodReturn]:
    """Returns per trading day (or month) from ``points`` ``[(time ms, equity), ...]`` sorted
    oldest first; newest period first. Pure."""
    firsts: list[tuple[dt.date, Decimal]] = []
    last_equity = None
    for ts_ms, equity in points:
        day = trading_date(ts_ms, tz_name)
        key = day.replace(day=1) if monthly else day
        if not firsts or firsts[-1][0] != key:
            firsts.append((key, equity))
        last_equity = equity
    out = []
    for i, (key, start) in enumerate(firsts):
        end = firsts[i + 1][1] if i + 1 < len(firsts) else last_equity
        out.append(PeriodReturn(key, start, end))
    return out[::-1]


def _day_start(date: dt.date, tz_name: str) -> int:
    """Start (ms UTC) of the trading day of local ``date``, by ``risk.day_bounds_ms``."""
    noon = dt.datetime(date.year, date.month, date.day, 12, tzinfo=ZoneInfo(tz_name))
    return risk.day_bounds_ms(_ms(noon), tz_name)[0]


def _month_before(date: dt.date) -> dt.date:
    return (date.replace(day=1) - dt.timedelta(days=1)).replace(day=1)


def first_snapshots(account_id: int, starts_ms: list[int]) -> list[tuple[int, Decimal]]:
    """The first snapshot at or after each of ``starts_ms`` and the newest snapshot, as
    ``[(time ms, equity), ...]`` oldest first, without repeats: one query of index seeks on
    (account, ts), a ``UNION ALL`` of ``LIMIT 1`` look-ups. Written out by hand: the ORM
    refuses ``LIMIT`` inside a compound on SQLite and takes ~50 ms to compile the equivalent
    scalar subqueries."""
    from django.db import connection

    quote = connection.ops.quote_name
    meta = EquitySnapshot._meta
    table, ts, account = (quote(meta.db_table), quote(meta.get_field("ts").column),
                          quote(meta.get_field("account").column))
    columns = ", ".join(quote(f.column) for f in meta.concrete_fields)
    parts = [f"SELECT * FROM (SELECT {columns} FROM {table} WHERE {account} = %s "
             f"ORDER BY {ts} DESC LIMIT 1) newest"]
    params: list = [account_id]
    for i, start in enumerate(starts_ms):
        parts.append(f"SELECT * FROM (SELECT {columns} FROM {table} WHERE {account} = %s AND "
                     f"{ts} >= %s ORDER BY {ts} LIMIT 1) s{i}")
        moment = dt.datetime.fromtimestamp(start / 1000, tz=dt.UTC)
        params += [account_id, connection.ops.adapt_datetimefield_value(moment)]
    found = EquitySnapshot.objects.raw(" UNION ALL ".join(parts), params)
    return sorted({_ms(row.ts): row.equity for row in found}.items())


def account_returns(account_id: int, now: dt.datetime, tz_name: str | None = None) -> dict:
    """``{"daily": [...DAILY_ROWS], "monthly": [...MONTHLY_ROWS]}``, newest first. One
    query: the first snapshot of each of the last ``DAILY_ROWS`` trading days and of each of
    the last ``MONTHLY_ROWS`` months, and the newest."""
    tz_name = tz_name or settings.TIME_ZONE
    today = trading_date(_ms(now), tz_name)
    days = [today - dt.timedelta(days=i) for i in range(DAILY_ROWS)]
    months = [today.replace(day=1)]
    while len(months) < MONTHLY_ROWS:
        months.append(_month_before(months[-1]))
    day_starts = [_day_start(d, tz_name) for d in days]
    month_starts = [_day_start(m, tz_name) for m in months]
    points = first_snapshots(account_id, sorted(set(day_starts + month_starts)))
    # Within the daily window every point is a day's first (a month's first is its first
    # day's); a day's first inside a month does not move that month's first or its end.
    return {
        "daily": period_returns(_since(points, days[-1], tz_name), tz_name)[:DAILY_ROWS],
        "monthly": period_returns(_since(points, months[-1], tz_name), tz_name,
                                  monthly=True)[:MONTHLY_ROWS],
    }


def _since(points, first: dt.date, tz_name: str):
    """``points`` from the trading day ``first`` on (none when every snapshot is older)."""
    start = _day_start(first, tz_name)
    return [p for p in points if p[0] >= start]


def returns_json(rows: list[PeriodReturn]) -> list[dict]:
    return [
        {
            "period": r.period.isoformat(),
            "start_equity": _text(r.start_equity),
            "end_equity": _text(r.end_equity),
            "change": _text(r.change),
            "pct": None if r.pct is None else float(r.pct),
        }
        for r in rows
    ]


def _text(value: Decimal | None) -> str | None:
    return None if value is None else format(value.normalize(), "f")


# -- trade history ------------------------------------------------------------------------------


@dataclasses.dataclass
class Trade:
    position: Position
    size: Decimal = ZERO
    exit_quantity: Decimal = ZERO
    exit_value: Decimal = ZERO
    fees: Decimal = ZERO

    @property
    def exit_price(self) -> Decimal | None:
        return self.exit_value / self.exit_quantity if self.exit_quantity else None

    @property
    def texts(self) -> dict:
        """The row's numbers as the table shows them (two decimals, size eight)."""
        p, exit_price = self.position, self.exit_price
        return {"size": f"{self.size:.8f}", "entry": f"{p.entry_price:.2f}",
                "exit": "?" if exit_price is None else f"{exit_price:.2f}",
                "pnl": f"{p.realized_pnl:.2f}", "fees": f"{self.fees:.2f}"}

    @property
    def duration(self) -> dt.timedelta:
        return self.position.closed_at - self.position.opened_at

    @property
    def duration_text(self) -> str:
        seconds = int(self.duration.total_seconds())
        days, rest = divmod(seconds, 86400)
        hours, rest = divmod(rest, 3600)
        minutes, seconds = divmod(rest, 60)
        if days:
            return f"{days}d {hours}h"
        if hours:
            return f"{hours}h {minutes}m"
        return f"{minutes}m {seconds}s"

    def as_dict(self) -> dict:
        p = self.position
        return {
            "id": p.pk,
            "account": p.account_id,
            "account_label": p.account.label,
            "config": p.config_id,
            "config_name": p.config.name if p.config_id else "manual",
            "symbol": f"{p.symbol.exchange.slug}:{p.symbol.code}",
            "side": p.side,
            "size": _text(self.size),
            "entry_price": _text(p.entry_price),
            "exit_price": _text(self.exit_price),
            "pnl": _text(p.realized_pnl),
            "fees": _text(self.fees),
            "opened_at": p.opened_at.isoformat(),
            "closed_at": p.closed_at.isoformat(),
            "duration_s": int(self.duration.total_seconds()),
            "exit_reason": p.close_reason,
        }


def closed_positions(user, account_id: int | None = None):
    """The user's closed positions (their own accounts only), newest close first."""
    rows = Position.objects.filter(account__owner=user, closed_at__isnull=False)
    if account_id is not None:
        rows = rows.filter(account_id=account_id)
    return rows.select_related("account", "config", "symbol__exchange").order_by(
        "-closed_at", "-id"
    )


def with_fills(positions) -> list[Trade]:
    """Each position's size (entry fills), exit price (average of the exit fills) and fees
    (every fill's fee, in the fee's asset as the venue charged it), in one query. A fill
    belongs to a position of its order's account, config and symbol when it lies in the
    position's life: entry-side fills from the open up to the close, exit-side fills after
    the open up to and including the close."""
    trades = [Trade(p) for p in positions]
    if not trades:
        return trades
    by_key: dict[tuple, list[Trade]] = {}
    for t in trades:
        p = t.position
        by_key.setdefault((p.account_id, p.config_id, p.symbol_id), []).append(t)
    # The page's time window alone, on the fills' ts index; fills of other accounts, configs
    # or symbols in it are skipped below. (Conditions on the orders' columns make SQLite
    # walk an order index instead and read every order of the symbol.)
    fills = Fill.objects.filter(
        ts__gte=min(t.position.opened_at for t in trades),
        ts__lte=max(t.position.closed_at for t in trades),
    ).values_list(
        "order__account_id", "order__config_id", "order__symbol_id", "order__side", "ts",
        "price", "quantity", "fee",
    )
    for account_id, config_id, symbol_id, side, ts, price, quantity, fee in fills:
        for t in by_key.get((account_id, config_id, symbol_id), ()):
            p = t.position
            entry_side = Side.BUY if p.side == Position.PositionSide.LONG else Side.SELL
            if side == entry_side and p.opened_at <= ts < p.closed_at:
                t.size += quantity
                t.fees += fee
            elif side != entry_side and p.opened_at < ts <= p.closed_at:
                t.exit_quantity += quantity
                t.exit_value += quantity * price
                t.fees += fee
    return trades


@dataclasses.dataclass(frozen=True)
class Page:
    trades: list[Trade]
    number: int
    pages: int
    total: int

    @property
    def has_previous(self) -> bool:
        return self.number > 1

    @property
    def has_next(self) -> bool:
        return self.number < self.pages


def trade_page(user, number: int = 1, account_id: int | None = None,
               size: int = PAGE_SIZE) -> Page:
    """One page of the trade history (``number`` from 1; past the end gives the last page).
    Three queries: the count, the page, its fills."""
    rows = closed_positions(user, account_id)
    total = rows.count()
    pages = max(1, -(-total // size))
    number = min(max(1, number), pages)
    chunk = list(rows[(number - 1) * size: number * size])
    return Page(with_fills(chunk), number, pages, total)


# -- per-config performance ---------------------------------------------------------------------


def max_drawdown(pnls) -> Decimal:
    """The largest fall of the cumulative PnL from its running peak (the peak starts at 0, the
    money the config had made before its first trade), as a positive amount. Pure."""
    peak = total = worst = ZERO
    for pnl in pnls:
        total += pnl
        peak = max(peak, total)
        worst = max(worst, peak - total)
    return worst
