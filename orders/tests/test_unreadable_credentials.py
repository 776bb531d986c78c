"""A stored API key that FIELD_ENCRYPTION_KEY cannot decrypt is a state of its account, not an
error for every reader: the kill switch, equity snapshots, the dashboard, the admin and the API
keep working for it and for everyone else; live orders on it are refused with the reason; the
keys can be entered again in the admin."""

import logging
from decimal import Decimal

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command
from django.db import connection
from django.test import Client

from markets.fields import UNREADABLE
from markets.models import Account
from orders import killswitch, services, tasks, userstream
from orders.brokers import BrokerUnavailable, broker_for
from orders.models import ApiToken, EquitySnapshot, Order
from orders.tests.conftest import MINUTE, T0, fund, store
from strategies.models import Signal, StrategyConfig

pytestmark = pytest.mark.django_db(transaction=True)
PRICE = 50_000_000.0


def seal_with_another_key(account) -> None:
    """Store ``account``'s credentials as encrypted under a key this server does not have (as
    after FIELD_ENCRYPTION_KEY changed without the old key listed)."""
    foreign = Fernet(Fernet.generate_key())
    key, secret = (
        "fernet:" + foreign.encrypt(text.encode()).decode() for text in ("old-key", "old-secret")
    )
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE markets_account SET api_key = %s, api_secret = %s WHERE id = %s",
            [key, secret, account.pk],
        )


def make_order(account, symbol, status, client_order_id, **fields):
    return Order.objects.create(
        account=account, symbol=symbol, side="buy", type="limit", price=Decimal("40000000"),
        quantity=Decimal("0.001"), client_order_id=client_order_id, status=status, **fields,
    )


@pytest.fixture
def world(settings, symbol, paper, make_config, make_trader, make_account):
    """Alice: a paper account and a live one whose keys cannot be decrypted, a config on each,
    a live order open at the venue and one never sent, a paper order resting. Bob: a paper
    account with readable keys."""
    settings.TRADING_LIVE = True
    live = make_account(paper.owner, label="alice-live", mode=Account.Mode.LIVE,
                        api_key="k", api_secret="s")
    fund(live, "KRW", "1000000")
    seal_with_another_key(live)
    paper_config = make_config(paper, name="paper-script")
    live_config = make_config(live, name="live-script")
    at_venue = make_order(live, symbol, Order.Status.OPEN, "at-venue", exchange_order_id="x1",
                          config=live_config)
    unsent = make_order(live, symbol, Order.Status.NEW, "never-sent", config=live_config)
    resting = services.place_manual_order(
        paper, symbol, side="buy", quantity=Decimal("0.001"), price=Decimal("40000000"),
        last_price=Decimal(str(PRICE)), ts_ms=T0,
    )
    assert resting.status == "open"
    bob = make_account(make_trader("bob"), label="bob-paper", api_key="bk", api_secret="bs")
    fund(bob, "KRW", "1000")
    return {
        "paper": paper, "live": live, "bob": bob, "paper_config": paper_config,
        "live_config": live_config, "at_venue": at_venue, "unsent": unsent, "resting": resting,
    }


def test_the_account_loads_and_says_its_keys_are_unreadable(world):
    live = Account.objects.get(pk=world["live"].pk)
    assert live.credentials_state == "unreadable" and not live.has_keys
    assert Account.objects.get(pk=world["bob"].pk).credentials() == ("bk", "bs")


def test_kill_switch_halts_every_account_and_reports_the_venue_orders(world):
    result = killswitch.stop_trading(user=world["paper"].owner, configs=killswitch.ALL,
                                     reason="panic")

    assert result.accounts_halted == 2 and result.configs_deactivated == 2
    assert set(Account.objects.filter(halted=True).values_list("label", flat=True)) == {
        "alice-paper", "alice-live"
    }
    assert not StrategyConfig.objects.filter(is_active=True, owner=world["paper"].owner).exists()
    # Cancelled here: the paper order, and the live order no venue ever received.
    for name in ("resting", "unsent"):
        order = Order.objects.get(pk=world[name].pk)
        assert order.status == "cancelled" and order.reject_reason == "cancelled: panic", name
    # Left open: the order at the venue, which only the venue (or new keys) can cancel.
    assert Order.objects.get(pk=world["at_venue"].pk).status == "open"
    assert result.orders_cancelled == 2 and result.live_orders_open == 1
    assert result.errors == [
        f"account alice-live: 1 order(s) could not be cancelled at the venue: {UNREADABLE}"
    ]
    assert "still open at the venue" in result.summary()


def test_stop_trading_command_with_another_field_key_halts_everyone(world, settings, capsys):
    settings.FIELD_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]  # no stored key readable

    call_command("stop_trading", "--all")

    assert not Account.objects.filter(halted=False).exists()
    assert Account.objects.count() == 3
    out = capsys.readouterr().out
    assert "halted 3 account(s)" in out and UNREADABLE in out


def test_equity_snapshots_are_taken_for_every_account(world, settings):
    assert services.snapshot_equity() == 3
    assert set(EquitySnapshot.objects.values_list("account__label", flat=True)) == {
        "alice-paper", "alice-live", "bob-paper"
    }
    live = EquitySnapshot.objects.get(account=world["live"])
    assert live.equity == Decimal("1000000")  # valued from the stored balances, no keys needed


def test_a_live_signal_on_the_account_is_refused_with_the_reason(world, symbol):
    StrategyConfig.objects.filter(pk=world["paper_config"].pk).update(is_active=False)
    store(symbol, [PRICE] * 4)

    tasks.evaluate("sim", "KRW-BTC", "1m", T0 + 3 * MINUTE)

    signal = Signal.objects.get(config=world["live_config"])
    assert signal.reason["execution"]["status"] == "rejected"
    assert signal.reason["execution"]["reason"] == UNREADABLE
    assert not Order.objects.filter(account=world["live"]).exclude(
        pk__in=[world["at_venue"].pk, world["unsent"].pk]
    ).exists()


def test_a_manual_live_order_is_refused_with_the_reason(world, symbol):
    live = Account.objects.get(pk=world["live"].pk)
    with pytest.raises(BrokerUnavailable, match=UNREADABLE):
        broker_for(live)
    with pytest.raises(BrokerUnavailable, match=UNREADABLE):
        services.place_manual_order(
            live, symbol, side="buy", quantity=Decimal("0.001"), last_price=Decimal(str(PRICE))
        )


def test_pages_render_for_the_owner_and_the_superuser(world, symbol, admin_user):
    owner, superuser = Client(), Client()
    owner.force_login(world["paper"].owner)
    superuser.force_login(admin_user)
    live, config = world["live"], world["live_config"]
    pages = [
        "/",
        "/markets/",
        f"/chart/{symbol.exchange.slug}/{symbol.code}/",
        "/admin/markets/account/",
        f"/admin/markets/account/{live.pk}/change/",
        "/admin/strategies/strategyconfig/",
        f"/admin/strategies/strategyconfig/{config.pk}/change/",
        "/admin/orders/order/",
    ]
    for client in (owner, superuser):
        for page in pages:
            response = client.get(page)
            assert response.status_code == 200, page
        for page in ("/admin/markets/account/", f"/admin/markets/account/{live.pk}/change/"):
            assert UNREADABLE in client.get(page).content.decode(), page
    # The dashboard is the owner's own desk (a superuser's shows only the superuser's accounts).
    assert UNREADABLE in owner.get("/").content.decode()


def test_the_api_balances_name_the_credentials_state(world, client):
    _, key = ApiToken.issue(world["paper"].owner, "test")
    body = client.get("/api/balances", HTTP_AUTHORIZATION=f"Bearer {key}").json()
    states = {a["label"]: a["credentials"] for a in body["accounts"]}
    assert states == {"alice-paper": "none", "alice-live": "unreadable"}


def account_form(account, **overrides):
    return {
        "label": account.label, "exchange": account.exchange_id, "mode": account.mode,
        "quote_asset": account.quote_asset, "new_api_key": "", "new_api_secret": "",
        "halted_reason": "", "balances-TOTAL_FORMS": "0", "balances-INITIAL_FORMS": "0",
        **overrides,
    }


def test_new_keys_entered_in_the_admin_replace_the_unreadable_ones(world):
    client = Client()
    client.force_login(world["paper"].owner)
    live = world["live"]
    url = f"/admin/markets/account/{live.pk}/change/"

    only_key = client.post(url, account_form(live, new_api_key="NEW-K"))
    assert only_key.status_code == 200
    assert "enter both the API key and the API secret again" in only_key.content.decode()

    saved = client.post(url, account_form(live, new_api_key="NEW-K", new_api_secret="NEW-S"))
    assert saved.status_code == 302
    live.refresh_from_db()
    assert live.credentials_state == "stored" and live.credentials() == ("NEW-K", "NEW-S")
    assert "stored (hidden)" in client.get(url).content.decode()


def test_the_admin_can_halt_or_clear_an_account_with_unreadable_keys(world):
    client = Client()
    client.force_login(world["paper"].owner)
    live = world["live"]
    url = f"/admin/markets/account/{live.pk}/change/"
    halted = client.post(url, account_form(live, halted="on", halted_reason="keys lost"))
    assert halted.status_code == 302
    assert Account.objects.get(pk=live.pk).halted
    cleared = client.post(url, account_form(live, mode="paper", clear_keys="on"))
    assert cleared.status_code == 302
    assert Account.objects.get(pk=live.pk).credentials_state == "none"


@pytest.mark.parametrize(("changelist", "action", "row", "message", "done"), [
    ("markets/account", "halt_accounts", "live", "Halted 1 account(s).",
     lambda row: Account.objects.get(pk=row.pk).halted),
    ("strategies/strategyconfig", "stop_trading_action", "live_config", UNREADABLE,
     lambda row: not StrategyConfig.objects.get(pk=row.pk).is_active),
])
def test_the_admin_actions_work_on_a_row_with_unreadable_keys(world, admin_user, changelist,
                                                               action, row, message, done):
    """The account admin's halt action and the config admin's stop action both act on the
    row whose account's keys cannot be read, and say so."""
    client = Client()
    client.force_login(admin_user)
    target = world[row]
    response = client.post(f"/admin/{changelist}/", {
        "action": action, "_selected_action": [target.pk],
    }, follow=True)
    assert response.status_code == 200 and message in response.content.decode()
    assert done(target)


def test_user_streams_and_reconciliation_skip_the_account_and_count_it(world, make_account,
                                                                       caplog):
    readable = make_account(world["bob"].owner, label="bob-live", mode=Account.Mode.LIVE,
                            api_key="bk2", api_secret="bs2")
    assert userstream.live_accounts() == ([readable.pk], [world["live"].pk])
    assert userstream.live_account_ids() == [readable.pk]
    with caplog.at_level(logging.WARNING, logger="orders.tasks"):
        out = tasks.reconcile_all()
    assert out["live_accounts_skipped"] == 1
    lines = [r.getMessage() for r in caplog.records if r.name == "orders.tasks"]
    assert lines == [f"reconcile: 1 live account(s) skipped, API {UNREADABLE}: "
                     f"alice-live (id {world['live'].pk})"]


class RecordingBroker:
    """Counts placements: an order the kill switch already cancelled must not be sent."""

    live = True
    costs = None

    def __init__(self):
        self.placed = []

    def place(self, request, **kwargs):
        self.placed.append(request)
        raise AssertionError("must not be sent")


def test_a_live_order_cancelled_before_it_was_sent_is_not_sent(world, symbol):
    killswitch.stop_trading(user=world["paper"].owner, configs=killswitch.ALL)
    unsent = Order.objects.select_related("symbol__exchange").get(pk=world["unsent"].pk)
    assert unsent.status == "cancelled"
    broker = RecordingBroker()
    after = services.send_order(unsent, broker, last_price=Decimal(str(PRICE)), ts_ms=T0)
    assert broker.placed == [] and after.status == "cancelled"
