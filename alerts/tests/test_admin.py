"""The alerts admin: each user's own rules, channels and history; write-only channel targets;
the "send test" action."""

from __future__ import annotations

import pytest
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alerts.models import AlertRule, Channel, Notification

pytestmark = pytest.mark.django_db
SECRET = "s3cr3t-T0KEN-do-not-show"


@pytest.fixture
def two_users(make_trader, receiver):
    users = {}
    for name in ("alice", "bob"):
        user = make_trader(name)
        channel = Channel.objects.create(
            owner=user, name=f"{name} hook", kind="webhook",
            target=f"{receiver.url}?token={SECRET}-{name}",
        )
        rule = AlertRule.objects.create(owner=user, name=f"{name} fills", kind="order_filled")
        rule.channels.add(channel)
        note = Notification.objects.create(
            owner=user, rule=rule, channel=channel, dedupe_key="k", title=f"{name} was filled"
        )
        client = Client()
        client.force_login(user)
        users[name] = dict(user=user, channel=channel, rule=rule, note=note, client=client)
    return users


@pytest.mark.parametrize("model", ["alertrule", "channel", "notification"])
def test_a_user_lists_and_opens_only_their_own_rows(two_users, model):
    alice, bob = two_users["alice"], two_users["bob"]
    obj = {"alertrule": "rule", "channel": "channel", "notification": "note"}[model]
    listing = alice["client"].get(f"/admin/alerts/{model}/")
    assert listing.status_code == 200
    assert [o.pk for o in listing.context["cl"].result_list] == [alice[obj].pk]
    assert "bob" not in listing.content.decode()
    own = alice["client"].get(f"/admin/alerts/{model}/{alice[obj].pk}/change/")
    assert own.status_code == 200
    other = alice["client"].get(f"/admin/alerts/{model}/{bob[obj].pk}/change/", follow=True)
    assert "doesn’t exist" in other.content.decode()  # Django's "not found" for another's row


def test_a_user_cannot_edit_or_delete_anothers_rule_or_channel(two_users):
    alice, bob = two_users["alice"], two_users["bob"]
    response = alice["client"].post(
        f"/admin/alerts/alertrule/{bob['rule'].pk}/change/",
        {"name": "taken", "kind": "order_filled", "cooldown_s": 0, "params": "{}"},
    )
    assert response.status_code == 302  # redirected away, nothing changed
    bob["rule"].refresh_from_db()
    assert bob["rule"].name == "bob fills"
    alice["client"].post("/admin/alerts/channel/", {
        "action": "delete_selected", "_selected_action": [bob["channel"].pk], "post": "yes",
    })
    assert Channel.objects.filter(pk=bob["channel"].pk).exists()


def test_a_rule_may_use_only_the_users_own_channels(two_users):
    alice, bob = two_users["alice"], two_users["bob"]
    response = alice["client"].post("/admin/alerts/alertrule/add/", {
        "name": "sneaky", "kind": "position_closed", "cooldown_s": 0, "params": "{}",
        "is_active": "on", "channels": [bob["channel"].pk],
    })
    assert response.status_code == 200
    assert "Select a valid choice" in response.content.decode()
    assert not AlertRule.objects.filter(name="sneaky").exists()
    form = alice["client"].get("/admin/alerts/alertrule/add/").content.decode()
    assert "alice hook" in form and "bob hook" not in form


def test_rule_parameters_and_cooldown_are_bounded(two_users):
    client = two_users["alice"]["client"]
    base = {"name": "r", "kind": "order_filled", "is_active": "on"}
    response = client.post("/admin/alerts/alertrule/add/",
                           base | {"cooldown_s": 0, "params": '{"level": 1}'})
    assert "trading-event rules take no parameters" in response.content.decode()
    response = client.post("/admin/alerts/alertrule/add/",
                           base | {"cooldown_s": 10**7, "params": "{}"})
    assert "at most 604,800 seconds" in response.content.decode()
    response = client.post("/admin/alerts/alertrule/add/",
                           base | {"cooldown_s": 0, "params": "[" * 50000})
    assert "nests arrays or objects more than" in response.content.decode()
    assert not AlertRule.objects.filter(name="r").exists()


def test_a_channel_target_is_stored_encrypted_and_never_rendered(two_users, receiver):
    client = two_users["alice"]["client"]
    url = f"{receiver.url}?token={SECRET}-new"
    response = client.post("/admin/alerts/channel/add/", {
        "name": "new hook", "kind": "webhook", "new_target": url, "is_active": "on",
    })
    assert response.status_code == 302
    channel = Channel.objects.get(name="new hook")
    assert channel.owner == two_users["alice"]["user"]
    stored = Channel.objects.filter(pk=channel.pk).values_list("target", flat=True).get()
    assert stored.token.startswith("fernet:") and SECRET not in stored.token
    assert channel.target.reveal() == url
    for page in (f"/admin/alerts/channel/{channel.pk}/change/", "/admin/alerts/channel/",
                 f"/admin/alerts/notification/{two_users['alice']['note'].pk}/change/"):
        html = client.get(page).content.decode()
        assert SECRET not in html and "fernet:" not in html
    assert "stored (hidden)" in client.get(f"/admin/alerts/channel/{channel.pk}/change/"
                                           ).content.decode()
    # Saving without typing a URL keeps the stored one.
    client.post(f"/admin/alerts/channel/{channel.pk}/change/",
                {"name": "renamed", "kind": "webhook", "new_target": "", "is_active": "on"})
    channel.refresh_from_db()
    assert channel.name == "renamed" and channel.target.reveal() == url


def test_a_channel_needs_a_url_apprise_understands_and_a_valid_address(two_users):
    client = two_users["alice"]["client"]
    response = client.post("/admin/alerts/channel/add/", {
        "name": "bad", "kind": "webhook", "new_target": "nonsense://x", "is_active": "on"})
    assert "not a URL apprise can send to" in response.content.decode()
    response = client.post("/admin/alerts/channel/add/", {
        "name": "mail", "kind": "email", "new_target": "a@b", "is_active": "on"})
    assert "not an e-mail address" in response.content.decode()
    assert not Channel.objects.filter(name__in=["bad", "mail"]).exists()


def test_send_test_delivers_to_the_channel_once(two_users, receiver):
    alice = two_users["alice"]
    response = alice["client"].post("/admin/alerts/channel/", {
        "action": "send_test", "_selected_action": [alice["channel"].pk],
    }, follow=True)
    assert "Test sent to alice hook." in response.content.decode()
    assert len(receiver.accepted) == 1
    headers, body = receiver.requests[0]
    assert body["title"] == "tradesite test: alice hook"
    test_row = Notification.objects.get(payload__kind="test")
    assert test_row.status == "sent" and headers["X-Idempotency-Key"] == (
        f"tradesite-notification-{test_row.pk}"
    )
    assert test_row.owner == alice["user"]


def test_notification_history_is_read_only_for_traders(two_users):
    alice = two_users["alice"]
    note = alice["note"]
    alice["client"].post(f"/admin/alerts/notification/{note.pk}/change/", {"title": "edited"})
    note.refresh_from_db()
    assert note.title == "alice was filled"
    assert alice["client"].get("/admin/alerts/notification/add/").status_code == 403


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(target=st.text(max_size=300) | st.from_regex(r"(https?|json|discord|slack)://[ -~]{0,80}"))
def test_any_typed_url_is_accepted_or_refused_with_a_message_never_an_error(db, target):
    from django.contrib.auth import get_user_model
    from django.forms import modelform_factory

    from alerts.admin import ChannelForm

    user, _ = get_user_model().objects.get_or_create(username="hypothesis")
    form_class = modelform_factory(Channel, form=ChannelForm, exclude=["target", "owner"])
    form = form_class(
        data={"name": "h", "kind": "webhook", "new_target": target, "is_active": "on"},
        instance=Channel(owner=user),
    )
    if form.is_valid():
        assert form.instance.target == target.strip() and target.strip()
    else:
        assert list(form.errors) == ["new_target"], form.errors
