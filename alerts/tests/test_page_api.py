"""The alerts page (``/alerts/``), the JSON API (``/api/alerts/...``) and the alerts socket
(``/ws/alerts/``): each user sees and changes only their own rules, channels and history, and a
channel's target is never rendered back."""

from __future__ import annotations

import asyncio
import json

import pytest
from django.test import Client

from alerts.models import AlertRule, Channel, Notification

SECRET = "s3cr3t-token"


@pytest.fixture
def users(make_trader, symbol, receiver):
    out = {}
    for name in ("alice", "bob"):
        user = make_trader(name)
        channel = Channel.objects.create(owner=user, name=f"{name} hook", kind="webhook",
                                         target=f"{receiver.url}?token={SECRET}-{name}")
        rule = AlertRule.objects.create(owner=user, name=f"{name} cross", kind="price_cross",
                                        symbol=symbol, params={"level": "100",
                                                               "direction": "up"})
        note = Notification.objects.create(owner=user, rule=rule, channel=channel,
                                           dedupe_key="k", title=f"{name} crossed")
        client = Client()
        client.force_login(user)
        out[name] = dict(user=user, channel=channel, rule=rule, note=note, client=client)
    return out


@pytest.mark.django_db
def test_the_page_lists_only_the_users_own_and_never_a_target(users):
    alice = users["alice"]
    page = alice["client"].get("/alerts/")
    html = page.content.decode()
    assert page.status_code == 200
    assert "alice cross" in html and "alice hook" in html and "alice crossed" in html
    assert "bob" not in html
    assert SECRET not in html and "http://127.0.0.1/…" in html  # the masked hint only


@pytest.mark.django_db
def test_the_page_needs_a_login():
    assert Client().get("/alerts/").status_code == 302


@pytest.mark.django_db
def test_a_rule_is_created_edited_and_deleted_on_the_page(users):
    alice = users["alice"]
    c = alice["client"]
    response = c.post("/alerts/rules/new", {
        "rule-name": "rsi low", "rule-kind": "indicator", "rule-symbol": alice["rule"].symbol_id,
        "rule-params": '{"indicator": "rsi", "period": 14, "timeframe": "15m", "op": "below", '
                       '"value": 25}',
        "rule-channels": [alice["channel"].pk], "rule-cooldown_s": 600, "rule-is_active": "on"})
    assert response.status_code == 302
    rule = AlertRule.objects.get(name="rsi low")
    assert rule.owner == alice["user"] and rule.params["value"] == "25"
    response = c.post(f"/alerts/rules/{rule.pk}/edit", {
        "rule-name": "rsi very low", "rule-kind": "indicator",
        "rule-symbol": rule.symbol_id, "rule-params": json.dumps(rule.params | {"value": "20"}),
        "rule-cooldown_s": 600})
    assert response.status_code == 302
    rule.refresh_from_db()
    assert rule.name == "rsi very low" and rule.params["value"] == "20" and not rule.is_active
    assert c.post(f"/alerts/rules/{rule.pk}/delete").status_code == 302
    assert not AlertRule.objects.filter(pk=rule.pk).exists()


@pytest.mark.django_db
def test_bad_parameters_are_refused_on_the_page_naming_the_field(users):
    c = users["alice"]["client"]
    response = c.post("/alerts/rules/new", {
        "rule-name": "x", "rule-kind": "price_cross", "rule-symbol": users["alice"]["rule"]
        .symbol_id, "rule-params": '{"level": -5}', "rule-cooldown_s": 0})
    assert response.status_code == 400
    assert "level: must be greater than 0" in response.content.decode()
    response = c.post("/alerts/rules/new", {
        "rule-name": "x", "rule-kind": "price_cross", "rule-params": '{"level": 5}',
        "rule-cooldown_s": 0})
    assert "a market rule watches one symbol" in response.content.decode()


@pytest.mark.django_db
def test_another_users_rows_answer_404_on_the_page(users):
    alice, bob = users["alice"], users["bob"]
    c = alice["client"]
    for url in (f"/alerts/rules/{bob['rule'].pk}/edit",
                f"/alerts/channels/{bob['channel'].pk}/edit"):
        assert c.get(url).status_code == 404
    for url in (f"/alerts/rules/{bob['rule'].pk}/delete",
                f"/alerts/channels/{bob['channel'].pk}/delete",
                f"/alerts/channels/{bob['channel'].pk}/test"):
        assert c.post(url).status_code == 404
    response = c.post("/alerts/rules/new", {
        "rule-name": "steal", "rule-kind": "order_filled", "rule-params": "{}",
        "rule-channels": [bob["channel"].pk], "rule-cooldown_s": 0})
    assert response.status_code == 400 and not AlertRule.objects.filter(name="steal").exists()
    assert AlertRule.objects.filter(pk=bob["rule"].pk).exists()
    assert Channel.objects.filter(pk=bob["channel"].pk).exists()


@pytest.mark.django_db
def test_a_channel_is_created_with_a_write_only_target_and_tested_on_the_page(users, receiver):
    c = users["alice"]["client"]
    response = c.post("/alerts/channels/new", {
        "channel-name": "second", "channel-kind": "webhook",
        "channel-new_target": f"{receiver.url}?token={SECRET}", "channel-is_active": "on"})
    assert response.status_code == 302
    channel = Channel.objects.get(name="second")
    edit = c.get(f"/alerts/channels/{channel.pk}/edit").content.decode()
    assert SECRET not in edit
    # saved again with a blank target: the stored one is kept
    c.post(f"/alerts/channels/{channel.pk}/edit", {
        "channel-name": "second!", "channel-kind": "webhook", "channel-is_active": "on"})
    channel.refresh_from_db()
    assert channel.name == "second!" and SECRET in channel.target.reveal()
    page = c.post(f"/alerts/channels/{channel.pk}/test", follow=True).content.decode()
    assert "Test sent to second!." in page and len(receiver.accepted) == 1


# ------------------------------------------------------------------------------------ API


def api(client, method, path, body=None):
    kwargs = {"content_type": "application/json", "data": json.dumps(body)} if body else {}
    response = getattr(client, method)(f"/api{path}", **kwargs)
    return response.status_code, (response.json() if response.content else None)


@pytest.mark.django_db
def test_the_api_lists_only_the_callers_rows(users):
    c = users["alice"]["client"]
    assert [r["name"] for r in api(c, "get", "/alerts/rules")[1]["rules"]] == ["alice cross"]
    channels = api(c, "get", "/alerts/channels")[1]["channels"]
    assert [ch["name"] for ch in channels] == ["alice hook"]
    assert SECRET not in json.dumps(channels) and "target" not in channels[0]
    notes = api(c, "get", "/alerts/notifications")[1]["notifications"]
    assert [n["title"] for n in notes] == ["alice crossed"]


@pytest.mark.django_db
def test_the_api_creates_updates_and_deletes_own_rules(users, symbol):
    alice = users["alice"]
    c = alice["client"]
    status, rule = api(c, "post", "/alerts/rules", {
        "name": "vol", "kind": "volume_spike", "symbol": "sim:KRW-BTC",
        "params": {"timeframe": "1m", "factor": 3, "bars": 20},
        "channels": [alice["channel"].pk], "cooldown_s": 60})
    assert status == 201 and rule["params"] == {"timeframe": "1m", "factor": "3", "bars": 20}
    status, rule = api(c, "put", f"/alerts/rules/{rule['id']}", {
        "name": "vol2", "kind": "volume_spike", "symbol": "sim:KRW-BTC",
        "params": {"timeframe": "5m", "factor": 4, "bars": 10}})
    assert status == 200 and rule["name"] == "vol2" and rule["channels"] == []
    assert api(c, "delete", f"/alerts/rules/{rule['id']}")[0] == 204
    assert api(c, "get", f"/alerts/rules/{rule['id']}")[0] == 404


@pytest.mark.django_db
def test_the_api_refuses_bad_rules_and_internal_webhooks_naming_the_field(users, settings):
    c = users["alice"]["client"]
    status, body = api(c, "post", "/alerts/rules", {
        "name": "x", "kind": "price_move", "symbol": "sim:KRW-BTC",
        "params": {"percent": 5, "window_s": 10 ** 9}})
    assert status == 400 and "window_s: must be between" in body["error"]
    assert body["detail"][0]["field"] == "params"
    settings.ALERTS_ALLOW_PRIVATE_WEBHOOKS = False
    status, body = api(c, "post", "/alerts/channels", {
        "name": "in", "kind": "webhook", "target": "http://169.254.169.254/latest"})
    assert status == 400 and body["detail"][0]["field"] == "target"
    assert "private or local address" in body["error"]
    # A channel id the database cannot hold is refused by name, not an overflow (a 500).
    status, body = api(c, "post", "/alerts/rules", {
        "name": "x", "kind": "price_cross", "symbol": "sim:KRW-BTC",
        "params": {"level": 100, "direction": "above"}, "channels": [2 ** 63]})
    assert status == 400 and "must be an id between 1 and" in body["error"]


@pytest.mark.django_db
def test_another_users_rows_answer_404_in_the_api(users):
    alice, bob = users["alice"], users["bob"]
    c = alice["client"]
    rule_body = {"name": "taken", "kind": "order_filled"}
    assert api(c, "get", f"/alerts/rules/{bob['rule'].pk}")[0] == 404
    assert api(c, "put", f"/alerts/rules/{bob['rule'].pk}", rule_body)[0] == 404
    assert api(c, "delete", f"/alerts/rules/{bob['rule'].pk}")[0] == 404
    assert api(c, "put", f"/alerts/channels/{bob['channel'].pk}",
               {"name": "t", "kind": "in_app"})[0] == 404
    assert api(c, "delete", f"/alerts/channels/{bob['channel'].pk}")[0] == 404
    assert api(c, "post", f"/alerts/channels/{bob['channel'].pk}/test")[0] == 404
    status, body = api(c, "post", "/alerts/rules", rule_body | {"channels": [bob["channel"].pk]})
    assert status == 400 and body["detail"][0]["field"] == "channels"
    bob["rule"].refresh_from_db()
    assert bob["rule"].name == "bob cross"


@pytest.mark.django_db
def test_the_readme_alert_curl_examples_work(users, settings):
    """``curl -d`` sends a form content type: the body is read as JSON anyway."""
    settings.ALERTS_ALLOW_PRIVATE_WEBHOOKS = False
    c, form = users["alice"]["client"], "application/x-www-form-urlencoded"
    response = c.post("/api/alerts/rules", content_type=form, data=(
        '{"name": "BTC 150M", "kind": "price_cross", "symbol": "sim:KRW-BTC", '
        '"params": {"level": "150000000", "direction": "up"}, "cooldown_s": 300}'))
    assert response.status_code == 201, response.content
    response = c.post("/api/alerts/channels", content_type=form, data=(
        '{"name": "phone", "kind": "webhook", "target": "ntfys://ntfy.sh/my-topic"}'))
    assert response.status_code in (201, 400), response.content  # 400: no DNS here
    if response.status_code == 400:
        assert "cannot be resolved" in response.json()["error"]
    assert c.get("/api/alerts/notifications?limit=20").status_code == 200


@pytest.mark.django_db
def test_the_api_needs_a_login():
    assert Client().get("/api/alerts/rules").status_code == 401


# ------------------------------------------------------------------------------ WebSocket


@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_the_alerts_socket_carries_only_the_users_own_alerts(make_trader, clean_redis):
    from channels.testing import WebsocketCommunicator
    from django.contrib.auth.models import AnonymousUser

    from alerts import delivery
    from tradesite.alert_socket import AlertsConsumer

    alice, bob = make_trader("alice"), make_trader("bob")

    async def scenario():
        sockets = {}
        for user in (alice, bob, AnonymousUser()):
            ws = WebsocketCommunicator(AlertsConsumer.as_asgi(), "/ws/alerts/")
            ws.scope["user"] = user
            assert (await ws.connect())[0]
            sockets[user.pk] = ws
        anonymous = sockets.pop(None)
        assert json.loads(await anonymous.receive_from())["code"] == 4401
        for ws in sockets.values():
            assert json.loads(await ws.receive_from())["type"] == "hello"
        await asyncio.to_thread(delivery.tell_in_app, alice.pk, {"id": 7, "title": "for alice"})
        frame = json.loads(await sockets[alice.pk].receive_from(timeout=5))
        assert frame["type"] == "alert.created" and frame["title"] == "for alice"
        assert await sockets[bob.pk].receive_nothing(timeout=0.5)
        for ws in sockets.values():
            await ws.disconnect()

    asyncio.run(scenario())
