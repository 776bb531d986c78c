"""The dashboard at /: login required, the user's own balances, positions (with PnL and
stop/target), signals with their outcome, orders with rejection reasons, toggles, kill switch."""

from decimal import Decimal

import pytest

from markets.models import Account
from orders import tasks
from orders.models import Position
from orders.tests.conftest import MINUTE, T0, fund, store
from strategies.models import StrategyConfig

pytestmark = pytest.mark.django_db(transaction=True)
PRICE = 50_000_000.0


@pytest.fixture
def scene(symbol, paper, make_config, make_trader, make_account, client):
    mine = make_config(paper, stop_loss_pct=Decimal("2"))
    bob = make_trader("bob")
    bob_account = make_account(bob, label="bob-secret-account")
    fund(bob_account, "KRW", "1000")  # too little: a rejection Alice must not see
    make_config(bob_account, name="bob-config")
    store(symbol, [PRICE] * 4)
    tasks.evaluate("sim", "KRW-BTC", "1m", T0 + 3 * MINUTE)
    client.force_login(paper.owner)
    return {"config": mine, "client": client, "paper": paper}


def test_dashboard_needs_a_login(client, db):
    response = client.get("/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_dashboard_shows_only_the_users_own_trading(scene):
    html = scene["client"].get("/").content.decode()
    assert "alice-paper" in html and "bob-secret-account" not in html
    assert "bob-config" not in html
    assert "sim:KRW-BTC" in html and "49024500.00" in html  # the position's stop
    assert "enter_long" in html and "ordered" in html
    assert "Kill switch" in html


def test_toggle_and_kill_switch_from_the_dashboard(scene):
    client, config = scene["client"], scene["config"]
    response = client.post(f"/dashboard/configs/{config.pk}/toggle", follow=True)
    assert "script switched off" in response.content.decode()
    assert not StrategyConfig.objects.get(pk=config.pk).is_active
    response = client.post(
        "/dashboard/kill-switch", {"scope": "all", "close_positions": "1"}, follow=True
    )
    assert "closed 1 position(s)" in response.content.decode()
    assert Account.objects.get(pk=scene["paper"].pk).halted
    assert not Position.objects.filter(closed_at__isnull=True).exists()


def test_another_users_config_cannot_be_toggled(scene):
    other = StrategyConfig.objects.get(name="bob-config")
    response = scene["client"].post(f"/dashboard/configs/{other.pk}/toggle")
    assert response.status_code == 404 and StrategyConfig.objects.get(pk=other.pk).is_active


def test_signal_bar_times_are_labelled_with_the_zone_they_are_shown_in(scene, settings):
    html = scene["client"].get("/").content.decode()
    # The bar opened 2026-01-01 00:03 UTC, shown in TIME_ZONE (Asia/Seoul, UTC+9).
    assert settings.TIME_ZONE == "Asia/Seoul"
    assert "Bar (Asia/Seoul)" in html and "Bar (UTC)" not in html
    assert "2026-01-01 09:03" in html


def test_a_superusers_dashboard_shows_their_own_trading_only(scene, django_user_model):
    """The admin is where a superuser sees every user's objects; the dashboard, like the chart
    page and the API, is one trader's own desk."""
    root = django_user_model.objects.create_superuser("root", password="pw-root")
    client = scene["client"].__class__()
    client.force_login(root)
    html = client.get("/").content.decode()
    assert "alice-paper" not in html and "bob-secret-account" not in html
    assert "bob-config" not in html and "enter_long" not in html
    other = StrategyConfig.objects.get(name="bob-config")
    assert client.post(f"/dashboard/configs/{other.pk}/toggle").status_code == 404


def test_live_accounts_say_when_the_venue_last_confirmed_them(scene, make_account):
    """A live account's row: "confirmed by the venue 3 h ago" (stream or reconciliation), or
    "never confirmed by the venue"; a paper account's book is ours and says neither."""
    from datetime import timedelta

    from django.utils import timezone

    owner = scene["paper"].owner
    confirmed = make_account(owner, label="alice-live", mode=Account.Mode.LIVE,
                             api_key="k", api_secret="s")
    make_account(owner, label="alice-live-new", mode=Account.Mode.LIVE, api_key="k2",
                 api_secret="s2")
    Account.objects.filter(pk=confirmed.pk).update(
        venue_confirmed_at=timezone.now() - timedelta(hours=3, seconds=5))

    html = scene["client"].get("/").content.decode()

    rows = {label: next(r for r in html.split("<tr>") if f"{label} <span" in r)
            for label in ("alice-paper", "alice-live", "alice-live-new")}
    assert "confirmed by the venue 3 h ago" in rows["alice-live"]
    assert "never confirmed by the venue" in rows["alice-live-new"]
    assert "confirmed by the venue" not in rows["alice-paper"]
    assert "<script>" not in html and "style=" not in html  # CSP: no inline script or style
