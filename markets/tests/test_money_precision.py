"""What each database keeps of an amount: PostgreSQL's numeric all of it, SQLite (where Django
stores a DecimalField as a REAL) about 15 significant digits, which ``SQLITE_MONEY_WARNING``
tells a trader whose live account runs there (``/health``, the account admin)."""

from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.db import connection

from markets.models import SQLITE_MONEY_WARNING, Account, Balance, Exchange
from tradesite.health import check_database

pytestmark = pytest.mark.django_db


@pytest.fixture
def account():
    owner = get_user_model().objects.create_user("precise")
    venue = Exchange.objects.create(slug="px", name="PX", adapter="upbit",
                                    rest_url="http://127.0.0.1:1", ws_url="ws://127.0.0.1:1")
    return Account.objects.create(owner=owner, exchange=venue, label="main")


def test_the_warning_example_is_what_each_database_stores(account):
    Balance.objects.create(account=account, asset="KRW", free=Decimal("12345678.123456789"))
    stored = Balance.objects.get(account=account).free
    if connection.vendor == "sqlite":
        assert stored == Decimal("12345678.1234568")  # the warning's example
        assert "12345678.1234568" in SQLITE_MONEY_WARNING
    else:
        assert stored == Decimal("12345678.123456789")


def test_health_warns_only_when_a_live_account_keeps_its_money_on_sqlite(account):
    assert "warning" not in check_database()  # paper accounts only: no real money at stake
    Account.objects.filter(pk=account.pk).update(mode=Account.Mode.LIVE)
    checked = check_database()
    assert checked["ok"] is True  # it trades; the warning says what to change
    assert (checked.get("warning") == SQLITE_MONEY_WARNING) == (connection.vendor == "sqlite")
