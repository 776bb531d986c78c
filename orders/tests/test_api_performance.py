"""The performance API (/api/performance/...): each user sees only their own accounts, trades
and configs (another user's id is a 404, as for one that does not exist), and the shapes."""

import datetime as dt
import json
from decimal import Decimal as D

import pytest

from orders.models import ApiToken
from orders.tests.performance_data import closed_trades, snapshots

UTC = dt.UTC


@pytest.fixture
def world(db, symbol, paper, make_config, make_trader, make_account):
    bob = make_trader("bob")
    bob_account = make_account(bob, label="bob-paper")
    bob_config = make_config(bob_account, name="bob-script")
    alice_config = make_config(paper)
    start = dt.datetime.now(UTC) - dt.timedelta(days=2)
    spec = ("long", D("0.1"), D("100"), D("110"), D("0.05"))
    closed_trades(paper, alice_config, symbol, [spec] * 3, start)
    closed_trades(bob_account, bob_config, symbol, [spec] * 2, start)
    for account, base in ((paper, 1000), (bob_account, 5000)):
        snapshots(account, [(start + dt.timedelta(hours=h), base + h) for h in range(40)])
    _, alice = ApiToken.issue(paper.owner, "test")
    _, bob_key = ApiToken.issue(bob, "test")
    return {"alice": alice, "bob": bob_key, "paper": paper, "bob_account": bob_account,
            "bob_config": bob_config, "alice_config": alice_config}


def get(client, path, key):
    response = client.get(path, HTTP_AUTHORIZATION=f"Bearer {key}")
    return response.status_code, response.json()


def test_equity_curve_of_an_own_account(client, world):
    status, body = get(client, f"/api/performance/accounts/{world['paper'].pk}/equity?range=1W",
                       world["alice"])
    assert status == 200 and body["range"] == "1W" and len(body["points"]) == 40
    assert body["points"][0][1] == "1000" and body["points"][-1][1] == "1039"
    status, body = get(client, f"/api/performance/accounts/{world['paper'].pk}/equity?range=2D",
                       world["alice"])
    assert status == 400 and "range" in json.dumps(body)


def test_returns_of_an_own_account(client, world):
    status, body = get(client, f"/api/performance/accounts/{world['paper'].pk}/returns",
                       world["alice"])
    assert status == 200 and body["time_zone"] == "Asia/Seoul"
    assert body["daily"] and body["monthly"]
    first = body["daily"][-1]
    assert first["start_equity"] == "1000" and set(first) == {
        "period", "start_equity", "end_equity", "change", "pct"}


def test_another_users_account_is_not_found(client, world):
    other = world["bob_account"].pk
    for path in (f"/api/performance/accounts/{other}/equity",
                 f"/api/performance/accounts/{other}/returns",
                 f"/api/performance/trades?account={other}",
                 f"/api/performance/configs?account={other}"):
        status, body = get(client, path, world["alice"])
        assert status == 404 and body["error"] == f"no account with id {other}", path
    response = client.post(f"/api/performance/configs/{world['bob_config'].pk}/backtest",
                           HTTP_AUTHORIZATION=f"Bearer {world['alice']}")
    assert response.status_code == 404


def test_trades_and_configs_hold_only_the_callers_own(client, world):
    status, body = get(client, "/api/performance/trades", world["alice"])
    assert status == 200 and body["total"] == 3 and body["pages"] == 1
    assert {t["account"] for t in body["trades"]} == {world["paper"].pk}
    assert body["trades"][0]["pnl"] == "0.9" and body["trades"][0]["exit_price"] == "110"
    status, body = get(client, "/api/performance/trades", world["bob"])
    assert body["total"] == 2 and {t["account"] for t in body["trades"]} == {
        world["bob_account"].pk}
    status, body = get(client, "/api/performance/configs", world["alice"])
    assert [c["name"] for c in body["configs"]] == ["script"]
    assert body["configs"][0]["trades"] == 3 and body["configs"][0]["win_rate"] == 100.0
    assert body["configs"][0]["backtest"]["state"] == "not run yet"


def test_hostile_ids_are_a_400_naming_the_field(client, world):
    for path in (f"/api/performance/trades?account={10**30}", "/api/performance/trades?page=0",
                 "/api/performance/configs?account=-1",
                 f"/api/performance/accounts/{10**30}/equity"):
        status, body = get(client, path, world["alice"])
        assert status == 400 and body["detail"][0]["field"] in ("account", "page", "pk"), path


def test_the_api_needs_a_token_or_a_session(client, world):
    status, _ = get(client, "/api/performance/trades", "not-a-token")
    assert status == 401
