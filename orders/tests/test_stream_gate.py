"""The stream gate (``orders.stream_gate``): the stream sends an evaluation task only for a
symbol and timeframe an active config trades, and an exit-guard task only for a symbol with an
active config, an open position or an open order."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest
from django.utils import timezone

from markets import stream_hooks
from markets.models import Symbol
from orders.models import Order, Position
from orders.stream_gate import StreamGate

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def coins(exchange):
    def make(code):
        return Symbol.objects.create(exchange=exchange, code=code, base=code[4:], quote="KRW")

    return {code: make(code) for code in ("KRW-ETH", "KRW-XRP", "KRW-SOL", "KRW-ADA")}


def test_before_its_first_read_the_gate_lets_everything_through():
    gate = StreamGate()
    assert gate.wants("sim", "KRW-BTC", "1m") and gate.guards("sim", "KRW-BTC")


def test_the_gate_follows_active_configs_open_positions_and_open_orders(
        symbol, coins, paper, make_config):
    make_config(paper, name="btc-1m")  # KRW-BTC 1m, active
    make_config(paper, name="btc-5m-off", timeframe="5m", is_active=False)
    make_config(paper, name="sol", symbol=coins["KRW-SOL"], timeframe="15m", is_active=False)
    Position.objects.create(account=paper, symbol=coins["KRW-ETH"], side="long",
                            quantity=Decimal("1"), entry_price=Decimal("100"),
                            opened_at=timezone.now())
    Position.objects.create(account=paper, symbol=coins["KRW-ADA"], side="long",
                            quantity=Decimal("1"), entry_price=Decimal("100"),
                            opened_at=timezone.now(), closed_at=timezone.now())
    Order.objects.create(account=paper, symbol=coins["KRW-XRP"], side="buy", type="limit",
                         price=Decimal("500"), quantity=Decimal("10"), client_order_id="gate-1",
                         status=Order.Status.OPEN)
    Order.objects.create(account=paper, symbol=coins["KRW-ADA"], side="buy", type="limit",
                         price=Decimal("500"), quantity=Decimal("10"), client_order_id="gate-2",
                         status=Order.Status.FILLED)
    gate = StreamGate()
    asyncio.run(gate.refresh())

    assert gate.wants("sim", "KRW-BTC", "1m")
    assert not gate.wants("sim", "KRW-BTC", "5m")  # its config is off
    assert not gate.wants("sim", "KRW-SOL", "15m")
    assert not gate.wants("other", "KRW-BTC", "1m")  # another venue's symbol of that code
    assert not gate.wants("sim", "KRW-ETH", "1m")  # a position, but no config
    assert gate.guards("sim", "KRW-BTC")  # its config will open positions
    assert gate.guards("sim", "KRW-ETH")  # open position
    assert gate.guards("sim", "KRW-XRP")  # open (resting) order
    assert not gate.guards("sim", "KRW-ADA")  # only a closed position and a filled order
    assert not gate.guards("sim", "KRW-SOL")

    # Activating a config is seen on the next refresh.
    from strategies.models import StrategyConfig

    StrategyConfig.objects.filter(name="sol").update(is_active=True)
    asyncio.run(gate.refresh())
    assert gate.wants("sim", "KRW-SOL", "15m") and gate.guards("sim", "KRW-SOL")


def test_a_failed_read_keeps_the_last_sets(symbol, paper, make_config, monkeypatch, caplog):
    make_config(paper)
    gate = StreamGate()
    asyncio.run(gate.refresh())

    def down():
        raise RuntimeError("database is down")

    monkeypatch.setattr(gate, "_read", down)
    asyncio.run(gate.refresh())
    assert gate.wants("sim", "KRW-BTC", "1m") and not gate.wants("sim", "KRW-ETH", "1m")
    assert "database is down" in caplog.text


def test_the_orders_app_registers_the_gate_the_stream_runner_uses():
    from markets.stream.runner import StreamRunner

    assert isinstance(stream_hooks.make_gate(), StreamGate)
    assert isinstance(StreamRunner(watchers=[]).gate, StreamGate)
