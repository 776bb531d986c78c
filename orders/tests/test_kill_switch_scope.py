"""The kill switch's scope is said out loud on every path (service, command, admin, dashboard,
API): "all" explicitly, or a non-empty list of the caller's own configs. An empty, stale or
foreign selection, or a boolean that is not a boolean, changes nothing at all."""

import json
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.test import Client

from markets.models import Account
from orders import killswitch
from orders.models import ApiToken, Order
from orders.tests.conftest import fund
from strategies.models import StrategyConfig

pytestmark = pytest.mark.django_db(transaction=True)
STALE = 999_999


@pytest.fixture
def world(symbol, paper, make_config, make_trader, make_account):
    """Alice: two active configs on one paper account, each with a resting order. Bob: one
    config, one account, one resting order. A superuser who owns nothing."""
    alice = paper.owner
    first = make_config(paper, name="first")
    second = make_config(paper, name="second")
    bob = make_trader("bob")
    bob_account = make_account(bob, label="bob-paper")
    fund(bob_account, "KRW", "1000000")
    bob_config = make_config(bob_account, name="bob-script")
    for i, config in enumerate([first, second, bob_config]):
        Order.objects.create(
            account=config.account, symbol=symbol, config=config, side="buy", type="limit",
            quantity=Decimal("0.001"), price=Decimal("40000000"), status="open",
            client_order_id=f"resting-{i}",
        )
    root = get_user_model().objects.create_superuser("root", password="pw-root")
    return dict(alice=alice, bob=bob, root=root, first=first, second=second,
                bob_config=bob_config, alice_account=paper, bob_account=bob_account)


def state():
    """Everything a kill switch could change."""
    return (
        sorted(StrategyConfig.objects.values_list("pk", "is_active")),
        sorted(Account.objects.values_list("pk", "halted")),
        sorted(Order.objects.values_list("pk", "status")),
    )


def test_the_service_refuses_an_empty_stale_or_foreign_selection(world):
    before = state()
    for user, configs in [
        (world["alice"], []),
        (world["alice"], [STALE]),
        (world["alice"], [world["first"].pk, STALE]),
        (world["alice"], [world["bob_config"].pk]),
        (None, []),
        (None, [STALE]),
        (world["alice"], None),
        (world["alice"], "everything"),
        (world["alice"], ""),
    ]:
        with pytest.raises(killswitch.NothingSelected):
            killswitch.stop_trading(user=user, configs=configs)
        assert state() == before, (user, configs)


def test_the_command_needs_a_scope_and_refuses_stale_ids(world):
    before = state()
    with pytest.raises(CommandError):
        call_command("stop_trading", "--user", "alice")
    with pytest.raises(CommandError, match=f"no config with id {STALE}"):
        call_command("stop_trading", "--config", str(STALE))
    with pytest.raises(CommandError, match="no config with id"):
        call_command("stop_trading", "--user", "alice", "--config", str(world["bob_config"].pk))
    assert state() == before


@pytest.mark.parametrize("who", ["root", "alice"])
def test_a_stale_admin_selection_stops_nothing(world, who):
    client = Client()
    client.force_login(world[who])
    before = state()
    response = client.post(
        "/admin/strategies/strategyconfig/",
        {"action": "stop_trading_action", "_selected_action": [str(STALE)]},
        follow=True,
    )
    assert response.status_code == 200
    assert state() == before
    if who == "alice":  # another user's config is as unknown to her as a deleted one
        client.post(
            "/admin/strategies/strategyconfig/",
            {"action": "stop_trading_action", "_selected_action": [str(world["bob_config"].pk)]},
        )
        assert state() == before


def test_the_dashboard_needs_a_scope(world):
    client = Client()
    client.force_login(world["alice"])
    before = state()
    for data in [
        {},
        {"close_positions": "1"},
        {"scope": "selected"},
        {"scope": "selected", "config": [str(STALE)]},
        {"scope": "selected", "config": ["abc"]},
        {"scope": "selected", "config": [str(world["bob_config"].pk)]},
        {"scope": "everything"},
        {"scope": "all", "close_positions": "false"},
    ]:
        response = client.post("/dashboard/kill-switch", data, follow=True)
        assert response.status_code == 200 and "nothing was stopped" in response.content.decode()
        assert state() == before, data


def api(client, key, body):
    response = client.post(
        "/api/kill-switch", data=json.dumps(body), content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {key}",
    )
    return response.status_code, response.json()


def test_the_api_needs_an_explicit_scope_and_json_booleans(client, world):
    _, key = ApiToken.issue(world["alice"], "test")
    before = state()
    for body in [
        {},
        {"configs": []},
        {"configs": [STALE]},
        {"configs": [world["bob_config"].pk]},
        {"configs": [True]},
        {"configs": "all"},
        {"all": "true"},
        {"all": 1},
        {"all": False},
        {"all": None},
        {"all": True, "close_positions": "false"},
        {"all": True, "close_positions": 0},
        {"all": True, "configs": [world["first"].pk]},
        {"close_positions": True},
    ]:
        status, answer = api(client, key, body)
        assert status in (400, 404, 422) and answer.get("error"), (body, status, answer)
        assert state() == before, body


def test_stopping_selected_configs_leaves_the_rest_of_the_account_trading(client, world):
    _, key = ApiToken.issue(world["alice"], "test")
    status, answer = api(client, key, {"configs": [world["first"].pk]})
    assert status == 200 and answer["configs_deactivated"] == 1
    assert answer["accounts_halted"] == 0 and answer["orders_cancelled"] == 1
    assert not StrategyConfig.objects.get(pk=world["first"].pk).is_active
    assert StrategyConfig.objects.get(pk=world["second"].pk).is_active
    assert not Account.objects.get(pk=world["alice_account"].pk).halted
    statuses = dict(Order.objects.values_list("config_id", "status"))
    assert statuses[world["first"].pk] == "cancelled"
    assert statuses[world["second"].pk] == "open" and statuses[world["bob_config"].pk] == "open"


def test_all_stops_everything_of_the_caller_and_nothing_of_others(client, world):
    _, key = ApiToken.issue(world["alice"], "test")
    status, answer = api(client, key, {"all": True})
    assert status == 200 and answer["configs_deactivated"] == 2 and answer["accounts_halted"] == 1
    assert Account.objects.get(pk=world["alice_account"].pk).halted
    assert not Account.objects.get(pk=world["bob_account"].pk).halted
    assert StrategyConfig.objects.get(pk=world["bob_config"].pk).is_active
    assert Order.objects.get(config=world["bob_config"]).status == "open"
