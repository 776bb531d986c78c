"""Every database constraint of the orders models rejects a bad row at the database, not only
in forms."""

from datetime import timedelta
from decimal import Decimal

import pytest

from markets.tests.constraints import T0, rejected
from orders.models import Fill, Order, Position

pytestmark = pytest.mark.django_db


@pytest.fixture
def order_factory(symbol, make_trader, make_account):
    account = make_account(make_trader("o"))

    def make(**overrides):
        fields = dict(
            account=account,
            symbol=symbol,
            side="buy",
            type="market",
            quantity=Decimal("1"),
            client_order_id=f"id-{Order.objects.count()}",
        )
        fields.update(overrides)
        return Order.objects.create(**fields)

    return make


@pytest.mark.parametrize(
    "overrides",
    [
        {"quantity": Decimal("0")},
        {"filled_quantity": Decimal("2")},
        {"filled_quantity": Decimal("-1")},
        {"price": Decimal("0")},
        {"type": "limit", "price": None},
        {"fee": Decimal("-0.1")},
        {"side": "hold"},
    ],
    ids=["qty=0", "overfilled", "filled<0", "price=0", "limit-no-price", "fee<0", "bad-side"],
)
def test_order_sanity_checks(order_factory, overrides):
    rejected(lambda: order_factory(**overrides))


def test_client_order_id_is_unique(order_factory):
    order_factory(client_order_id="abc")
    rejected(lambda: order_factory(client_order_id="abc"))


def test_fill_unique_per_order_trade_and_positive(order_factory):
    order = order_factory()
    fields = dict(order=order, price=Decimal("1"), quantity=Decimal("1"), ts=T0)
    Fill.objects.create(trade_id="t1", **fields)
    rejected(lambda: Fill.objects.create(trade_id="t1", **fields))
    rejected(lambda: Fill.objects.create(trade_id="t2", **{**fields, "price": Decimal("0")}))
    rejected(lambda: Fill.objects.create(trade_id="t3", **{**fields, "quantity": Decimal("0")}))


def test_one_open_position_per_account_and_symbol(symbol, make_trader, make_account):
    account = make_account(make_trader("p"))
    fields = dict(
        account=account,
        symbol=symbol,
        side="long",
        quantity=Decimal("1"),
        entry_price=Decimal("100"),
        opened_at=T0,
    )
    first = Position.objects.create(**fields)
    rejected(lambda: Position.objects.create(**fields))
    first.closed_at = T0 + timedelta(hours=1)
    first.save()
    Position.objects.create(**fields)  # a closed one does not block a new one
    rejected(lambda: Position.objects.create(**{**fields, "closed_at": T0, "leverage": 200}))
    rejected(
        lambda: Position.objects.create(**{**fields, "closed_at": T0, "entry_price": Decimal("0")})
    )
    rejected(
        lambda: Position.objects.create(**{**fields, "closed_at": T0, "stop_price": Decimal("-1")})
    )
