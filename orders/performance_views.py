"""The dashboard's profit-and-loss sections (``orders.performance``): their context, the trade
history as CSV (streamed) and the button that runs a config's backtest over its live period."""

from __future__ import annotations

import csv

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponseBadRequest, StreamingHttpResponse
from django.shortcuts import redirect
from django.utils import timezone
from django.views.decorators.http import require_POST

from orders import performance, performance_configs
from orders.api_schemas import MAX_ID

CSV_COLUMNS = ["closed_at", "opened_at", "account_label", "symbol", "side", "size",
               "entry_price", "exit_price", "pnl", "fees", "duration_s", "config_name",
               "exit_reason", "id"]
CSV_CHUNK = 500


def _int(value, default: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def dashboard_context(user, accounts, query) -> dict:
    """What ``_equity``, ``_returns``, ``_trades`` and ``_config_performance`` show.
    ``accounts``: the dashboard's rows (each with ``account``); ``query``: ``request.GET``."""
    now = timezone.now()
    for row in accounts:
        row["returns"] = performance.account_returns(row["account"].pk, now)
    return {
        "trade_page": performance.trade_page(user, _int(query.get("trades_page"), 1)),
        "config_performance": performance_configs.config_performance(user),
        "equity_ranges": list(performance.RANGES),
        "default_range": performance.DEFAULT_RANGE,
        "trading_time_zone": settings.TIME_ZONE,
    }


class _Echo:
    def write(self, value):
        return value


def _csv_rows(user, account_id):
    writer = csv.writer(_Echo())
    yield writer.writerow(CSV_COLUMNS)
    rows = performance.closed_positions(user, account_id)
    last = None
    # Keyset paging (close time, id): each chunk is three queries, memory stays flat.
    while True:
        chunk = rows
        if last is not None:
            closed_at, pk = last
            chunk = chunk.filter(closed_at__lte=closed_at).exclude(
                closed_at=closed_at, id__gte=pk
            )
        chunk = list(chunk[:CSV_CHUNK])
        if not chunk:
            return
        for trade in performance.with_fills(chunk):
            data = trade.as_dict()
            yield writer.writerow([data[c] if data[c] is not None else "" for c in CSV_COLUMNS])
        last = (chunk[-1].closed_at, chunk[-1].pk)


@login_required
def trades_csv(request):
    """``/dashboard/trades.csv`` (``?account=<id>`` for one account): every closed position of
    the user's accounts, newest first."""
    account = request.GET.get("account")
    account_id = _int(account, -1) if account else None
    if account_id is not None and not 1 <= account_id <= MAX_ID:
        return HttpResponseBadRequest(
            f"account must be one of your account ids (a whole number from 1 to {MAX_ID})",
            content_type="text/plain; charset=utf-8")
    response = StreamingHttpResponse(_csv_rows(request.user, account_id),
                                     content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = 'attachment; filename="trades.csv"'
    return response


@login_required
@require_POST
def run_config_backtest(request, pk):
    try:
        run = performance_configs.request_backtest(request.user, pk, timezone.now())
    except LookupError as exc:
        messages.error(request, f"Backtest: {exc}.")
    else:
        messages.success(request, f"Backtest of {run.config.name} from {run.start:%Y-%m-%d %H:%M}"
                                  " UTC queued; its result shows here when it is done.")
    return redirect("/#config-performance")
