"""Celery tasks of the site itself (the demo's one-off preparation)."""

from __future__ import annotations

from celery import shared_task


@shared_task(name="tradesite.tasks.prepare_demo")
def prepare_demo() -> str:
    """Beat, once (a one-off job ``bootstrap_demo`` creates): the demo's history, screener and
    example backtest (``tradesite.demo_data.prepare``)."""
    from tradesite import demo_data

    return demo_data.prepare().summary()
