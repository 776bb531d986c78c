"""The shell every page extends (templates/base.html): its navigation and what the header shows.

A context processor, so each view renders the shell without passing anything: the links (the
current page's marked from the URL it resolved to), the signed-in user (Django's ``user``) and
the trading day's time zone (``settings.TIME_ZONE``, the day the risk limits and the
dashboard's "today" count in).
"""

from __future__ import annotations

from django.conf import settings
from django.urls import reverse

#: (label, URL name, the URL names that mark it current: its own and its detail pages').
NAV = (
    ("Dashboard", "home", {"home"}),
    ("Markets", "markets", {"markets", "chart"}),
    ("Backtests", "strategies:backtest_list", {"backtest_list", "backtest_detail"}),
    ("Optimizer runs", "strategies:run_list", {"run_list", "run_detail"}),
    ("Screener", "strategies:screener", {"screener"}),
    ("Alerts", "alerts", {"alerts", "alerts-rule-new", "alerts-rule-edit", "alerts-channel-new",
                          "alerts-channel-edit", "alerts-telegram-link"}),
    ("Admin", "admin:index", set()),
)


def shell(request) -> dict:
    match = getattr(request, "resolver_match", None)
    current = match.url_name if match is not None else None
    nav = [
        {"label": label, "url": reverse(name), "current": current in names}
        for label, name, names in NAV
    ]
    return {"shell_nav": nav, "shell_time_zone": settings.TIME_ZONE}
