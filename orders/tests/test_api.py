"""The JSON API: token authentication, each user's own objects only (another user's id is a
404), errors a trader understands, and the actions going through the services."""

import json

import pytest

from orders import tasks
from orders.models import ApiToken, Order, Position
from orders.tests.conftest import MINUTE, T0, fund, store
from strategies.models import StrategyConfig

pytestmark = pytest.mark.django_db(transaction=True)
PRICE = 50_000_000.0


@pytest.fixture
def world(symbol, paper, make_config, make_trader, make_account):
    """Alice traded once (an open position); Bob has an account, a config and an order."""
    alice_config = make_config(paper)
    bob = make_trader("bob")
    bob_account = make_account(bob, label="bob-paper")
    fund(bob_account, "KRW", "1000000")
    bob_config = make_config(bob_account, name="bob-script", params={"enter": 3})
    store(symbol, [PRICE] * 4)
    tasks.evaluate("sim", "KRW-BTC", "1m", T0 + 3 * MINUTE)
    _, alice_key = ApiToken.issue(paper.owner, "test")
    _, bob_key = ApiToken.issue(bob, "test")
    return {
        "alice": alice_key, "bob": bob_key, "alice_config": alice_config,
        "bob_config": bob_config, "bob_account": bob_account, "alice_account": paper,
        "bob_order": Order.objects.get(account=bob_account),
        "bob_position": Position.objects.get(account=bob_account),
    }


def call(client, method, path, key=None, body=None):
    headers = {"HTTP_AUTHORIZATION": f"Bearer {key}"} if key else {}
    if method == "get":
        response = client.get(path, **headers)
    else:
        response = client.post(
            path, data=json.dumps(body or {}), content_type="application/json", **headers
        )
    return response.status_code, response.json()


def test_requests_without_a_valid_token_are_refused(client, world):
    status, body = call(client, "get", "/api/orders")
    assert status == 401 and "API token" in body["error"]
    status, body = call(client, "get", "/api/orders", key="not-a-token")
    assert status == 401 and body["error"] == "this API token is not valid (revoked or mistyped)"


def test_lists_hold_only_the_callers_objects(client, world):
    _, body = call(client, "get", "/api/orders", world["alice"])
    assert [o["account"] for o in body["orders"]] == [world["alice_account"].pk]
    _, body = call(client, "get", "/api/positions", world["alice"])
    assert len(body["positions"]) == 1 and body["positions"][0]["unrealized_pnl"] is not None
    _, body = call(client, "get", "/api/balances", world["alice"])
    assert [a["account"] for a in body["accounts"]] == [world["alice_account"].pk]
    _, body = call(client, "get", "/api/signals", world["alice"])
    assert {s["config"] for s in body["signals"]} == {world["alice_config"].pk}
    assert body["signals"][0]["execution"]["status"] == "ordered"
    _, body = call(client, "get", "/api/configs", world["alice"])
    assert [c["id"] for c in body["configs"]] == [world["alice_config"].pk]


def test_another_users_ids_answer_404_and_change_nothing(client, world):
    alice = world["alice"]
    bob_order, bob_config = world["bob_order"], world["bob_config"]
    status, body = call(client, "post", f"/api/orders/{bob_order.pk}/cancel", alice)
    assert status == 404 and body["error"] == f"no order with id {bob_order.pk}"
    status, _ = call(client, "post", f"/api/configs/{bob_config.pk}/deactivate", alice)
    assert status == 404 and StrategyConfig.objects.get(pk=bob_config.pk).is_active
    status, body = call(client, "post", "/api/orders", alice, {
        "account": world["bob_account"].pk, "symbol": "sim:KRW-BTC", "side": "sell",
        "quantity": "0.001",
    })
    assert status == 404 and body["error"] == f"no account with id {world['bob_account'].pk}"
    status, _ = call(client, "post", "/api/kill-switch", alice, {"configs": [bob_config.pk]})
    assert status == 404
    assert not world["bob_account"].__class__.objects.get(pk=world["bob_account"].pk).halted
    assert Order.objects.filter(account=world["bob_account"]).count() == 1


def test_place_and_cancel_a_limit_order(client, world):
    alice = world["alice"]
    fund(world["alice_account"], "KRW", "100000")
    status, body = call(client, "post", "/api/orders", alice, {
        "account": world["alice_account"].pk, "symbol": "sim:KRW-BTC", "side": "buy",
        "quantity": "0.001", "price": "40000000",
    })
    assert status == 201 and body["order"]["status"] == "open"
    order_id = body["order"]["id"]
    status, body = call(client, "post", f"/api/orders/{order_id}/cancel", alice)
    assert status == 200 and body["order"]["status"] == "cancelled"
    status, body = call(client, "post", f"/api/orders/{order_id}/cancel", alice)
    assert status == 409 and body["error"] == f"order {order_id} is already cancelled"


def test_order_errors_read_like_advice(client, world):
    alice, account = world["alice"], world["alice_account"].pk
    status, body = call(client, "post", "/api/orders", alice, {
        "account": account, "symbol": "sim:KRW-BTC", "side": "buy", "quantity": "0.00001",
    })
    assert status == 422 and body["order"]["status"] == "rejected"
    assert "below the venue minimum 5000 KRW" in body["order"]["reject_reason"]
    status, body = call(client, "post", "/api/orders", alice, {
        "account": account, "symbol": "BTC", "side": "buy", "quantity": "1",
    })
    assert status == 404 and "venue:code" in body["error"]
    status, body = call(client, "post", "/api/orders", alice, {
        "account": account, "symbol": "sim:KRW-BTC", "side": "long", "quantity": "1",
    })
    assert status == 400 and body["error"] == "side must be 'buy' or 'sell'"
    status, body = call(client, "get", "/api/candles?venue=sim&symbol=KRW-BTC&timeframe=2m", alice)
    assert status == 400 and "1m" in body["error"]


def test_configs_toggle_and_kill_switch_through_the_api(client, world):
    alice, config = world["alice"], world["alice_config"]
    status, body = call(client, "post", f"/api/configs/{config.pk}/deactivate", alice)
    assert status == 200 and body["config"]["is_active"] is False
    call(client, "post", f"/api/configs/{config.pk}/activate", alice)
    status, body = call(
        client, "post", "/api/kill-switch", alice, {"all": True, "close_positions": True}
    )
    assert status == 200 and body["accounts_halted"] == 1 and body["positions_closed"] == 1
    assert not Position.objects.filter(account=world["alice_account"], closed_at=None).exists()
    assert Position.objects.filter(account=world["bob_account"], closed_at=None).exists()
    status, body = call(client, "post", f"/api/configs/{config.pk}/activate", alice)
    assert status == 200 and "is halted" in body["config"]["warning"]


def test_candles_are_served_oldest_first_with_a_token(client, world):
    url = "/api/candles?venue=sim&symbol=KRW-BTC&timeframe=1m&limit=2"
    status, body = call(client, "get", url, world["bob"])
    assert status == 200 and body["candles"]["t"] == [T0 + 2 * MINUTE, T0 + 3 * MINUTE]
    assert body["candles"]["c"][0] == PRICE
    status, body = call(client, "get", url, "not-a-token")
    assert status == 401 and "not valid" in body["error"]


def test_tokens_are_stored_hashed(world):
    assert not ApiToken.objects.filter(key_hash=world["alice"]).exists()
    assert ApiToken.objects.filter(key_hash=ApiToken.hash(world["alice"])).exists()


@pytest.mark.parametrize(
    "field, value",
    [("price", 2**63), ("price", "1e308"), ("quantity", "1e999999"), ("quantity", "9" * 35),
     ("price", "NaN"), ("quantity", "-1")],
)
def test_the_service_refuses_an_amount_no_column_can_hold(world, field, value):
    """Seen through the old API: a price of 2**63 was stored on SQLite as a double no query
    could read back, and every order list failed from then on. The service (the only writer)
    refuses such amounts whoever calls it, not only the API's schemas."""
    from decimal import Decimal

    from markets.models import Symbol
    from orders import services

    symbol = Symbol.objects.get(code="KRW-BTC")
    kwargs = {"quantity": Decimal("0.001"), "price": Decimal("40000000")} | {field: value}
    count = Order.objects.count()
    with pytest.raises(ValueError, match=f"{field} must be"):
        services.place_manual_order(
            world["alice_account"], symbol, side="buy", last_price=Decimal("40000000"), **kwargs
        )
    assert Order.objects.count() == count and len(list(Order.objects.all())) == count


def test_balances_say_when_the_venue_last_confirmed_a_live_account(client, world, make_account):
    from django.utils import timezone

    from markets.models import Account

    live = make_account(world["alice_account"].owner, label="alice-live",
                        mode=Account.Mode.LIVE, api_key="k", api_secret="s")
    at = timezone.now().replace(microsecond=0)
    Account.objects.filter(pk=live.pk).update(venue_confirmed_at=at)

    status, body = call(client, "get", "/api/balances", world["alice"])

    assert status == 200
    accounts = {a["label"]: a for a in body["accounts"]}
    assert accounts["alice-live"]["venue_confirmed_at"] == at.isoformat()
    assert accounts["alice-paper"]["venue_confirmed_at"] is None
    assert accounts["alice-paper"]["balances"] and {"asset", "free", "locked"} == set(
        accounts["alice-paper"]["balances"][0])
