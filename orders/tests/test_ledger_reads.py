"""The ledger reads an order's balance rows together (``orders.services.paper_book``): the
amounts it moves must be exactly those of reading each row on its own before each move, on
SQLite (15 significant digits) and PostgreSQL (the column's scale) alike."""

from __future__ import annotations

import pytest

from markets.models import Balance
from orders import evaluation
from orders.models import Order, Position
from orders.services import paper_book
from orders.tests.conftest import MINUTE, T0, fund, store

pytestmark = pytest.mark.django_db(transaction=True)


class _OneByOne:
    """The ledger's scope of read rows, switched off for one account: that account's moves
    read their row one by one, as before the rows were read together."""

    def __init__(self, real, account_id):
        self.real, self.account_id = real, account_id

    def get(self):
        scope = self.real.get()
        return None if scope is not None and scope["account"] == self.account_id else scope

    def set(self, value):
        return self.real.set(value)

    def reset(self, token):
        self.real.reset(token)


def _book(account):
    balances = {
        b.asset: (b.free, b.locked) for b in Balance.objects.filter(account=account)
    }
    positions = [
        (p.quantity, p.entry_price, p.margin, p.realized_pnl, p.closed_at is None)
        for p in Position.objects.filter(account=account).order_by("pk")
    ]
    orders = [
        (o.status, o.quantity, o.filled_quantity, o.average_price, o.fee)
        for o in Order.objects.filter(account=account).order_by("pk")
    ]
    return balances, positions, orders


@pytest.mark.parametrize(
    "closes",
    [
        [50_000_123.456789, 50_000_123.456789, 50_000_123.456789, 50_001_987.654321,
         50_001_987.654321, 49_876_543.210987, 49_876_543.210987, 49_876_543.210987],
        [31_415_926.535897, 31_415_926.535897, 31_415_926.535897, 27_182_818.284590,
         27_182_818.284590, 33_333_333.333333, 33_333_333.333333, 33_333_333.333333],
    ],
)
def test_fills_move_the_same_amounts_as_when_each_move_read_its_row(
    symbol, make_trader, make_account, make_config, monkeypatch, closes
):
    trader = make_trader("alice")
    together = make_account(trader, label="together", quote_asset="KRW")
    one_by_one = make_account(trader, label="one-by-one", quote_asset="KRW")
    for account in (together, one_by_one):
        # 21 significant digits: more than SQLite's REAL keeps.
        fund(account, "KRW", "987654321.123456789012")
        make_config(account, name=account.label, params={"enter": 3, "exit": 5})
    store(symbol, closes)
    monkeypatch.setattr(
        paper_book, "_locked_balances", _OneByOne(paper_book._locked_balances, one_by_one.pk)
    )

    for minute in (3, 5):  # an entry (reserve released, quote spent, base bought), an exit
        report = evaluation.evaluate_bar("sim", "KRW-BTC", "1m", T0 + minute * MINUTE)
        assert report.executions == {"ordered": 2} and report.errors == 0
        assert _book(together) == _book(one_by_one)

    balances, positions, orders = _book(together)
    assert set(balances) == {"KRW", "BTC"} and len(positions) == 1 and not positions[0][4]
    assert [o[0] for o in orders] == [Order.Status.FILLED, Order.Status.FILLED]
    assert paper_book._locked_balances.get() is None  # the scope ends with each fill's transaction


def test_a_perpetual_fill_moves_the_same_margin_as_when_each_move_read_its_row(
    perpetual, make_trader, make_account, make_config, monkeypatch
):
    trader = make_trader("bob")
    together = make_account(trader, label="together", quote_asset="USDT")
    one_by_one = make_account(trader, label="one-by-one", quote_asset="USDT")
    for account in (together, one_by_one):
        fund(account, "USDT", "10000.123456789012")
        make_config(account, name=account.label, symbol=perpetual,
                    params={"enter": 3, "exit": 5})
    store(perpetual, [64_123.45, 64_123.45, 64_123.45, 64_321.98, 64_321.98, 63_987.65,
                      63_987.65, 63_987.65])
    monkeypatch.setattr(
        paper_book, "_locked_balances", _OneByOne(paper_book._locked_balances, one_by_one.pk)
    )

    for minute in (3, 5):
        report = evaluation.evaluate_bar("sim", "BTCUSDT", "1m", T0 + minute * MINUTE)
        assert report.executions == {"ordered": 2} and report.errors == 0
        assert _book(together) == _book(one_by_one)
    assert Position.objects.filter(account=together, closed_at__isnull=False).count() == 1
