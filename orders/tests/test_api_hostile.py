"""Issue 13's reproductions against the JSON API: malformed bodies, types, numbers, times and
ids are a JSON 400 naming the field (never a 5xx, never a changed row); a superuser's token
sees only its own objects; ``api_token --name`` is checked; refused tokens are throttled."""

import json
import logging

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.test import Client

from markets.models import Account
from orders import tasks
from orders.models import ApiToken, Order, Position
from orders.tests.conftest import MINUTE, T0, fund, store
from orders.tests.trading_state import snapshot

pytestmark = pytest.mark.django_db(transaction=True)


def short(value) -> str:
    """Test ids of at most 40 characters (some parameters are 50,000 long)."""
    text = str(value)
    return text if len(text) <= 40 else f"{text[:30]}...({len(text)})"


@pytest.fixture
def world(symbol, paper, make_config, make_trader, make_account):
    """Alice (funded paper account, one config, one filled order); Bob likewise; a superuser
    who owns nothing of it."""
    make_config(paper)
    bob = make_trader("bob")
    bob_account = make_account(bob, label="bob-paper")
    fund(bob_account, "KRW", "1000000")
    make_config(bob_account, name="bob-script")
    store(symbol, [50_000_000.0] * 4)
    tasks.evaluate("sim", "KRW-BTC", "1m", T0 + 3 * MINUTE)
    root = get_user_model().objects.create_superuser("root", password="pw-root")
    return {
        "alice": ApiToken.issue(paper.owner, "test")[1], "bob": ApiToken.issue(bob, "test")[1],
        "root": ApiToken.issue(root, "test")[1], "account": paper.pk,
        "bob_account": bob_account.pk, "root_user": root,
    }


def post(client, path, key, raw: bytes | str):
    response = client.post(path, data=raw, content_type="application/json",
                           HTTP_AUTHORIZATION=f"Bearer {key}")
    return response.status_code, response.json()


def order_body(world, **fields) -> str:
    body = {"account": world["account"], "symbol": "sim:KRW-BTC", "side": "buy",
            "quantity": "0.001", "price": "40000000"} | fields
    return json.dumps(body)


@pytest.mark.parametrize(
    "raw, field",
    [
        ({"account": "abc"}, "account"),
        ({"account": [1]}, "account"),
        ({"account": {}}, "account"),
        ({"account": True}, "account"),
        ({"account": 2**70}, "account"),
        ({"account": 1.5}, "account"),
        ({"symbol": 5}, "symbol"),
        ({"symbol": ["sim:KRW-BTC"]}, "symbol"),
        ({"symbol": "sim:KRW-BTC\x00"}, "symbol"),
        ('"symbol": "sim:\\ud800"', "symbol"),
        ({"side": None}, "side"),
        ({"quantity": 1e308}, "quantity"),
        ({"quantity": "1e308"}, "quantity"),
        ({"price": 1e308}, "price"),
        ({"quantity": "1" * 35}, "quantity"),
        ({"quantity": "0." + "1" * 35}, "quantity"),
        ({"price": "1" * 35}, "price"),
        ({"price": "1e-30"}, "price"),
        ({"price": "NaN"}, "price"),
        ({"quantity": "-Infinity"}, "quantity"),
        ({"quantity": "0"}, "quantity"),
        ({"quantity": False}, "quantity"),
        ('"quantity": 1e999999', "quantity"),
        ('"price": 1e999999', "price"),
        ('"price": ' + "9" * 40, "price"),
    ],
    ids=short,
)
def test_a_malformed_order_field_is_a_400_naming_it_and_changes_nothing(
    client, world, raw, field
):
    if isinstance(raw, dict):
        body = order_body(world, **raw)
    else:  # a raw JSON member json.dumps cannot write (1e999999 parses to infinity)
        name = raw.split(":")[0].strip('"')
        body = order_body(world, **{name: 0}).replace(f'"{name}": 0', raw)
    before = snapshot()
    status, answer = post(client, "/api/orders", world["alice"], body)
    assert status == 400, answer
    assert field in answer["error"] and answer["detail"][0]["field"] == field, answer
    assert snapshot() == before


def test_a_price_that_rounds_to_nothing_on_the_tick_is_refused(client, world):
    before = snapshot()
    status, answer = post(client, "/api/orders", world["alice"],
                          order_body(world, price="0.000000001"))
    assert status == 400 and answer["error"].startswith("price rounds to 0"), answer
    status, answer = post(client, "/api/orders", world["alice"],
                          order_body(world, quantity="90000000000"))
    assert status == 400 and "beyond any balance" in answer["error"], answer
    assert snapshot() == before


@pytest.mark.parametrize(
    "raw, message",
    [
        ("[" * 50_000, "nests deeper than"),
        ("{" * 50_000, "nests deeper than"),
        ('{"a": ' * 30 + "1" + "}" * 30, "nests deeper than"),
        ('{"account": NaN}', "not valid JSON"),
        ('{"account": Infinity}', "not valid JSON"),
        ('{"account": 1,', "not valid JSON"),
        ('{"account": ' + "1" * 5000 + "}", "not valid JSON"),
        (b'{"symbol": "\xff\xfe"}', "not valid JSON"),
        ('{"x": "' + "a" * 70_000 + '"}', "over 64 KB"),
        ("[1]", "send a JSON object"),
        ('"text"', "send a JSON object"),
    ],
    ids=short,
)
def test_hostile_bodies_are_a_400_before_anything_runs(client, world, raw, message):
    before = snapshot()
    for path in ("/api/orders", "/api/kill-switch"):
        status, answer = post(client, path, world["alice"], raw)
        assert status == 400 and message in answer["error"], (path, answer)
    assert snapshot() == before


@pytest.mark.parametrize(
    "url, field",
    [
        ("/api/signals?config=abc", "config"),
        ("/api/signals?config=0", "config"),
        ("/api/signals?config=99999999999999999999999", "config"),
        ("/api/signals?limit=abc", "limit"),
        ("/api/orders?status=nonsense", "status"),
        ("/api/positions?limit=" + "9" * 5000, "limit"),
        ("/api/orders/99999999999999999999999/cancel", "pk"),
        ("/api/orders/abc/cancel", "pk"),
        ("/api/positions/99999999999999999999999/close", "pk"),
        ("/api/positions/0/close", "pk"),
        ("/api/configs/-1/activate", "pk"),
    ],
    ids=short,
)
def test_malformed_query_and_path_values_are_a_400_naming_them(client, world, url, field):
    before = snapshot()
    headers = {"HTTP_AUTHORIZATION": f"Bearer {world['alice']}"}
    method = client.post if url.endswith(("cancel", "activate", "close")) else client.get
    response = method(url, **headers)
    assert response.status_code == 400, response.content
    assert field in response.json()["error"], response.json()
    assert snapshot() == before


@pytest.mark.parametrize(
    "params, message",
    [
        ("before=253402300800000", "before must be a time in ms since the epoch"),
        ("after=253402300800000", "after must be a time"),
        ("before=-1", "before must be a time"),
        ("after=-99999999999999999999", "after must be a time"),
        ("before=" + "9" * 5000, "before must be a whole number"),
        ("limit=" + "9" * 5000, "limit must be a whole number"),
        ("symbol=" + "x" * 1000, "symbol must be text of at most 64 characters"),
        ("venue=sim%00", "venue must be text"),
        ("indicators=" + "x," * 5000, "unknown indicator(s)"),
    ],
    ids=short,
)
def test_out_of_range_candle_times_are_a_400(client, world, params, message):
    url = f"/api/candles?venue=sim&symbol=KRW-BTC&timeframe=1m&{params}"
    response = client.get(url, HTTP_AUTHORIZATION=f"Bearer {world['alice']}")
    assert response.status_code == 400, response.content[:300]
    assert message in response.json()["error"]


def test_the_newest_and_oldest_times_still_answer(client, world):
    for params in ("before=253402300799999", "after=0", "before=0"):
        url = f"/api/candles?venue=sim&symbol=KRW-BTC&timeframe=1m&indicators=all&{params}"
        response = client.get(url, HTTP_AUTHORIZATION=f"Bearer {world['alice']}")
        assert response.status_code == 200, response.content[:300]


def test_a_superusers_token_sees_and_acts_on_only_its_own_objects(client, world):
    root = world["root"]
    headers = {"HTTP_AUTHORIZATION": f"Bearer {root}"}
    for url, key in [("/api/balances", "accounts"), ("/api/positions?open=0", "positions"),
                     ("/api/orders", "orders"), ("/api/signals", "signals"),
                     ("/api/configs", "configs")]:
        response = client.get(url, **headers)
        assert response.status_code == 200 and response.json()[key] == [], (url, response.json())
    before = snapshot()
    order = Order.objects.filter(account_id=world["bob_account"]).first()
    status, answer = post(client, f"/api/orders/{order.pk}/cancel", root, "")
    assert status == 404
    position = Position.objects.filter(account_id=world["bob_account"]).first()
    status, answer = post(client, f"/api/positions/{position.pk}/close", root, "")
    assert status == 404 and answer["error"] == f"no position with id {position.pk}"
    status, answer = post(client, "/api/orders", root,
                          order_body(world, account=world["bob_account"], side="sell"))
    assert status == 404 and answer["error"] == f"no account with id {world['bob_account']}"
    status, answer = post(client, "/api/kill-switch", root, '{"all": true}')
    assert status == 200 and answer["configs_deactivated"] == 0, answer
    assert answer["accounts_halted"] == 0 and answer["orders_cancelled"] == 0
    assert snapshot() == before


def test_api_token_names_must_be_1_to_64_characters(world):
    user = world["root_user"]
    for name in ["", "   ", "x" * 65, "x" * 1000]:
        with pytest.raises(CommandError, match="--name must be 1 to 64 characters"):
            call_command("api_token", "--user", "root", "--name", name)
    assert ApiToken.objects.filter(owner=user).count() == 1
    call_command("api_token", "--user", "root", "--name", "x" * 64)
    assert ApiToken.objects.filter(owner=user, name="x" * 64).exists()


def test_refused_tokens_are_logged_with_the_address_and_then_throttled(
    client, world, settings, caplog
):
    settings.AXES_FAILURE_LIMIT = 3
    settings.AXES_COOLOFF_TIME = 0.25
    attacker = {"REMOTE_ADDR": "10.9.8.7"}
    with caplog.at_level(logging.WARNING, logger="orders.api_auth"):
        for _ in range(3):
            response = client.get("/api/orders", HTTP_AUTHORIZATION="Bearer guess", **attacker)
            assert response.status_code == 401
            assert response.json()["error"] == "this API token is not valid (revoked or mistyped)"
    assert "10.9.8.7" in caplog.text
    for key in ("guess", world["alice"]):  # locked out: even a valid token waits
        response = client.get("/api/orders", HTTP_AUTHORIZATION=f"Bearer {key}", **attacker)
        assert response.status_code == 429
        assert response.json() == {"error": "too many failed attempts; try again in 15 minutes"}
    response = client.get("/api/orders", HTTP_AUTHORIZATION=f"Bearer {world['alice']}")
    assert response.status_code == 200  # another address is not affected


def test_a_session_needs_the_csrf_token_for_actions(world, symbol):
    alice = ApiToken.objects.get(name="test", owner__username="alice").owner
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    assert client.get("/api/orders").status_code == 200
    before = snapshot()
    response = client.post("/api/kill-switch", data='{"all": true}',
                           content_type="application/json")
    assert response.status_code == 403 and "CSRF" in response.json()["error"]
    assert snapshot() == before
    client.get("/api/docs")  # any page that sets the CSRF cookie
    token = client.cookies["csrftoken"].value
    response = client.post("/api/kill-switch", data='{"all": true}',
                           content_type="application/json", HTTP_X_CSRFTOKEN=token)
    assert response.status_code == 200, response.content


def test_an_unknown_api_path_is_a_json_404(client, world):
    response = client.get("/api/nothing/here", HTTP_AUTHORIZATION=f"Bearer {world['alice']}")
    assert response.status_code == 404 and "/api/docs" in response.json()["error"]
    response = client.delete("/api/orders", HTTP_AUTHORIZATION=f"Bearer {world['alice']}")
    assert response.status_code == 405 and response.json()["error"] in (
        "use GET or POST here", "use POST or GET here")


def test_the_openapi_description_and_the_docs_page_work_offline(client, world):
    from django.contrib.staticfiles import finders

    schema = client.get("/api/openapi.json").json()
    assert set(schema["paths"]) == {
        "/api/balances", "/api/positions", "/api/positions/{pk}/close", "/api/orders",
        "/api/orders/{pk}/cancel",
        "/api/signals", "/api/configs", "/api/configs/{pk}/activate",
        "/api/configs/{pk}/deactivate", "/api/kill-switch", "/api/candles",
        "/api/alerts/rules", "/api/alerts/rules/{pk}", "/api/alerts/channels",
        "/api/alerts/channels/{pk}", "/api/alerts/channels/{pk}/test",
        "/api/alerts/notifications",
        "/api/performance/accounts/{pk}/equity", "/api/performance/accounts/{pk}/returns",
        "/api/performance/trades", "/api/performance/configs",
        "/api/performance/configs/{pk}/backtest",
    }
    page = client.get("/api/docs").content.decode()
    scripts = page.split("<script")[1:]
    assert scripts and all("//" not in s.split(">")[0] for s in scripts), page
    for src in ("ninja/swagger-ui-bundle.js", "ninja/swagger-ui-init.js", "ninja/swagger-ui.css"):
        assert f"/static/{src}" in page and finders.find(src), src
    assert all('type="application/json"' in s.split(">")[0] or "src=" in s.split(">")[0]
               for s in scripts), "no inline script (CSP)"


def test_the_readme_curl_examples_still_work(client, world):
    """``curl -d`` sends ``application/x-www-form-urlencoded``: the body is read as JSON anyway,
    as it always was."""
    headers = {"HTTP_AUTHORIZATION": f"Bearer {world['alice']}"}
    form = "application/x-www-form-urlencoded"
    fund(Account.objects.get(pk=world["account"]), "KRW", "1000000")
    for url in ["/api/balances", "/api/positions?open=1", "/api/orders?status=open&limit=50",
                "/api/signals?limit=20", "/api/configs",
                "/api/candles?venue=sim&symbol=KRW-BTC&timeframe=1m&limit=500"]:
        assert client.get(url, **headers).status_code == 200, url
    body = ('{"account": ACCOUNT, "symbol": "sim:KRW-BTC", "side": "buy", "quantity": "0.001", '
            '"price": "40000000"}').replace("ACCOUNT", str(world["account"]))
    response = client.post("/api/orders", data=body, content_type=form, **headers)
    assert response.status_code == 201, response.content
    order = response.json()["order"]
    assert order["status"] == "open" and order["price"] == "40000000"
    response = client.post(f"/api/orders/{order['id']}/cancel", **headers)
    assert response.status_code == 200 and response.json()["order"]["status"] == "cancelled"
    config = client.get("/api/configs", **headers).json()["configs"][0]["id"]
    assert client.post(f"/api/configs/{config}/activate", **headers).status_code == 200
    body = '{"configs": [ID], "close_positions": true}'.replace("ID", str(config))
    response = client.post("/api/kill-switch", data=body, content_type=form, **headers)
    assert response.status_code == 200 and response.json()["configs_deactivated"] == 1
    response = client.post("/api/kill-switch", data='{"all": true}', content_type=form, **headers)
    assert response.status_code == 200 and response.json()["accounts_halted"] == 1
