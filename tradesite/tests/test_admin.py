"""The admin as a product surface: per-user isolation, write-only secrets, clear errors."""

import dataclasses
import re
from decimal import Decimal

import pytest
from django.test import Client
from django.urls import reverse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from markets.models import Account
from orders.models import Order
from strategies import registry
from strategies.base import Signals, Strategy
from strategies.models import StrategyConfig
from strategies.params import Params, param

pytestmark = pytest.mark.django_db


@dataclasses.dataclass(frozen=True)
class ThresholdParams(Params):
    period: int = param(14, min=2, max=200, help="bars")
    threshold: float = param(0.5, min=0.0, max=1.0)


class ThresholdStrategy(Strategy):
    name = "test_threshold"
    Params = ThresholdParams

    def lookback(self):
        return self.params.period

    def signals(self, candles):
        import numpy as np

        return Signals(actions=np.zeros(len(candles), dtype=np.int8))


@pytest.fixture(autouse=True)
def test_strategy():
    registry.register(ThresholdStrategy)
    yield
    registry.unregister(ThresholdStrategy.name)


@pytest.fixture
def two_traders(make_trader, make_account, symbol):
    a, b = make_trader("alice"), make_trader("bob")
    acc_a = make_account(
        a, label="alice paper", api_key="ALICE-KEY-123", api_secret="ALICE-SECRET-xyz"
    )
    acc_b = make_account(b, label="bob paper", api_key="BOB-KEY-456", api_secret="BOB-SECRET-uvw")
    cfg_a = StrategyConfig.objects.create(
        owner=a, name="alice cfg", strategy="test_threshold", symbol=symbol, account=acc_a
    )
    cfg_b = StrategyConfig.objects.create(
        owner=b, name="bob cfg", strategy="test_threshold", symbol=symbol, account=acc_b
    )
    order_b = Order.objects.create(
        account=acc_b,
        symbol=symbol,
        side="buy",
        type="market",
        quantity=Decimal("1"),
        client_order_id="bob-order-1",
    )
    order_a = Order.objects.create(
        account=acc_a,
        symbol=symbol,
        side="buy",
        type="market",
        quantity=Decimal("1"),
        client_order_id="alice-order-1",
    )
    client = Client()
    client.force_login(a)
    return dict(
        a=a,
        b=b,
        acc_a=acc_a,
        acc_b=acc_b,
        cfg_a=cfg_a,
        cfg_b=cfg_b,
        order_a=order_a,
        order_b=order_b,
        client=client,
        symbol=symbol,
    )


def config_form(symbol, account, **overrides):
    data = {
        "name": "new config",
        "strategy": "test_threshold",
        "params": "{}",
        "symbol": symbol.pk,
        "timeframe": "1m",
        "account": account.pk,
        "is_active": "on",
        "leverage": "1",
        "sizing_method": "fraction",
        "sizing_params": "{}",
    }
    data.update(overrides)
    return data


@pytest.mark.parametrize(
    "model, own, other",
    [
        ("strategies/strategyconfig", "cfg_a", "cfg_b"),
        ("markets/account", "acc_a", "acc_b"),
        ("orders/order", "order_a", "order_b"),
    ],
)
def test_changelist_shows_only_own_rows(two_traders, model, own, other):
    response = two_traders["client"].get(f"/admin/{model}/")
    assert response.status_code == 200
    ids = {obj.pk for obj in response.context["cl"].result_list}
    assert ids == {two_traders[own].pk}
    assert two_traders[other].pk not in ids


@pytest.mark.parametrize(
    "model, other",
    [
        ("strategies/strategyconfig", "cfg_b"),
        ("markets/account", "acc_b"),
        ("orders/order", "order_b"),
    ],
)
def test_change_view_of_another_users_row_is_not_found(two_traders, model, other):
    url = f"/admin/{model}/{two_traders[other].pk}/change/"
    response = two_traders["client"].get(url, follow=True)
    assert response.redirect_chain[-1][0] == "/admin/"
    html = response.content.decode()
    assert "doesn’t exist" in html
    assert "bob cfg" not in html and "bob paper" not in html and "bob-order-1" not in html


def test_crafted_post_cannot_change_another_users_config(two_traders):
    cfg_b = two_traders["cfg_b"]
    url = f"/admin/strategies/strategyconfig/{cfg_b.pk}/change/"
    data = config_form(two_traders["symbol"], two_traders["acc_b"], name="hijacked", leverage="5")
    two_traders["client"].post(url, data)
    cfg_b.refresh_from_db()
    assert cfg_b.name == "bob cfg" and cfg_b.leverage == 1


def test_crafted_post_cannot_use_another_users_account(two_traders):
    data = config_form(two_traders["symbol"], two_traders["acc_b"])
    response = two_traders["client"].post("/admin/strategies/strategyconfig/add/", data)
    assert response.status_code == 200  # the form comes back with an error
    assert "Select a valid choice" in response.content.decode()
    assert not StrategyConfig.objects.filter(name="new config").exists()


def test_crafted_list_editable_post_ignores_other_users_rows(two_traders):
    cfg_a, cfg_b = two_traders["cfg_a"], two_traders["cfg_b"]
    data = {
        "form-TOTAL_FORMS": "1",
        "form-INITIAL_FORMS": "1",
        "form-0-id": str(cfg_b.pk),
        "form-0-is_active": "on",
        "form-0-leverage": "7",
        "form-0-stop_loss_pct": "",
        "form-0-take_profit_pct": "",
        "_save": "Save",
    }
    two_traders["client"].post("/admin/strategies/strategyconfig/", data)
    cfg_b.refresh_from_db()
    assert cfg_b.leverage == 1 and not cfg_b.is_active
    cfg_a.refresh_from_db()
    assert cfg_a.leverage == 1


def test_crafted_action_post_cannot_touch_other_users_configs(two_traders):
    cfg_b = two_traders["cfg_b"]
    cfg_b.is_active = True
    cfg_b.save()
    two_traders["client"].post(
        "/admin/strategies/strategyconfig/",
        {"action": "deactivate", "_selected_action": [str(cfg_b.pk)]},
    )
    cfg_b.refresh_from_db()
    assert cfg_b.is_active


def test_new_config_is_owned_by_the_requesting_user(two_traders):
    data = config_form(two_traders["symbol"], two_traders["acc_a"])
    response = two_traders["client"].post("/admin/strategies/strategyconfig/add/", data)
    assert response.status_code == 302, response.content.decode()[:2000]
    assert StrategyConfig.objects.get(name="new config").owner == two_traders["a"]


def test_account_form_offers_only_own_accounts(two_traders):
    response = two_traders["client"].get("/admin/strategies/strategyconfig/add/")
    choices = {pk for pk, _ in response.context["adminform"].form.fields["account"].choices if pk}
    assert {int(str(pk)) for pk in choices} == {two_traders["acc_a"].pk}


def test_api_secrets_never_appear_in_any_admin_page(two_traders, admin_user):
    secret_texts = ["ALICE-KEY-123", "ALICE-SECRET-xyz", "BOB-KEY-456", "BOB-SECRET-uvw"]
    pages = [
        "/admin/",
        "/admin/markets/account/",
        f"/admin/markets/account/{two_traders['acc_a'].pk}/change/",
        f"/admin/markets/account/{two_traders['acc_b'].pk}/change/",
        "/admin/markets/account/add/",
        "/admin/strategies/strategyconfig/",
        f"/admin/strategies/strategyconfig/{two_traders['cfg_a'].pk}/change/",
        "/admin/orders/order/",
        f"/admin/orders/order/{two_traders['order_a'].pk}/change/",
    ]
    superuser = Client()
    superuser.force_login(admin_user)
    for client in (two_traders["client"], superuser):
        for page in pages:
            response = client.get(page, follow=True)
            assert response.status_code == 200, page
            html = response.content.decode()
            for text in secret_texts:
                assert text not in html, f"{text} leaked on {page}"
            # Also not as the encrypted token.
            assert "fernet:" not in html


def test_account_keys_are_write_only_and_blank_keeps_them(two_traders):
    acc = two_traders["acc_a"]
    url = f"/admin/markets/account/{acc.pk}/change/"
    data = {
        "label": "alice paper",
        "exchange": acc.exchange_id,
        "mode": "paper",
        "quote_asset": "KRW",
        "new_api_key": "",
        "new_api_secret": "",
        "halted_reason": "",
        "balances-TOTAL_FORMS": "0",
        "balances-INITIAL_FORMS": "0",
    }
    response = two_traders["client"].post(url, data)
    assert response.status_code == 302, response.content.decode()[:3000]
    acc.refresh_from_db()
    assert acc.credentials() == ("ALICE-KEY-123", "ALICE-SECRET-xyz")
    response = two_traders["client"].post(
        url, {**data, "new_api_key": "NEW-K", "new_api_secret": "NEW-S"}
    )
    assert response.status_code == 302
    acc.refresh_from_db()
    assert acc.credentials() == ("NEW-K", "NEW-S")
    page = two_traders["client"].get(url).content.decode()
    assert "NEW-K" not in page and "NEW-S" not in page and "stored (hidden)" in page


def form_errors(response) -> str:
    html = response.content.decode()
    return " ".join(re.findall(r'<ul class="errorlist[^"]*"[^>]*>(.*?)</ul>', html, re.S))


@pytest.mark.parametrize(
    "leverage, message",
    [
        ("0", "Leverage is at least 1x"),
        ("126", "Leverage can be at most 125x"),
        ("20", "allows leverage up to 10x"),
    ],
)
def test_leverage_out_of_range_message(two_traders, leverage, message):
    data = config_form(two_traders["symbol"], two_traders["acc_a"], leverage=leverage)
    response = two_traders["client"].post("/admin/strategies/strategyconfig/add/", data)
    assert response.status_code == 200
    assert message in form_errors(response)


def test_unknown_strategy_param_message(two_traders):
    data = config_form(two_traders["symbol"], two_traders["acc_a"], params='{"perod": 10}')
    response = two_traders["client"].post("/admin/strategies/strategyconfig/add/", data)
    errors = form_errors(response)
    assert "unknown parameter perod for strategy &#x27;test_threshold&#x27;" in errors
    assert "it takes: period, threshold" in errors


def test_out_of_bounds_strategy_param_message(two_traders):
    data = config_form(two_traders["symbol"], two_traders["acc_a"], params='{"period": 1}')
    response = two_traders["client"].post("/admin/strategies/strategyconfig/add/", data)
    assert "period must be between 2 and 200; got 1" in form_errors(response)


def test_params_are_stored_complete_with_defaults(two_traders):
    data = config_form(two_traders["symbol"], two_traders["acc_a"], params='{"period": "21"}')
    two_traders["client"].post("/admin/strategies/strategyconfig/add/", data)
    assert StrategyConfig.objects.get(name="new config").params == {"period": 21, "threshold": 0.5}


@pytest.mark.parametrize("field", ["stop_loss_pct", "take_profit_pct", "daily_max_loss_pct"])
def test_a_negative_risk_percentage_is_a_plain_message(two_traders, field):
    data = config_form(two_traders["symbol"], two_traders["acc_a"], **{field: "-1"})
    response = two_traders["client"].post("/admin/strategies/strategyconfig/add/", data)
    errors = form_errors(response)
    assert "must be more than 0 %, or blank for none; got -1" in errors
    assert "Constraint" not in errors and not StrategyConfig.objects.filter(
        name="new config"
    ).exists()


def test_bad_sizing_params_message(two_traders):
    data = config_form(two_traders["symbol"], two_traders["acc_a"], sizing_params='{"fraction": 2}')
    response = two_traders["client"].post("/admin/strategies/strategyconfig/add/", data)
    assert "fraction must be between 0.0001 and 1.0; got 2.0" in form_errors(response)


def test_stop_selected_action_stops_only_the_selected_configs(two_traders):
    cfg_a = two_traders["cfg_a"]
    cfg_a.is_active = True
    cfg_a.save()
    two_traders["client"].post(
        "/admin/strategies/strategyconfig/",
        {"action": "stop_trading_action", "_selected_action": [str(cfg_a.pk)]},
    )
    cfg_a.refresh_from_db()
    two_traders["order_b"].refresh_from_db()
    assert not cfg_a.is_active
    # Stopping configs is not halting their account: that is "stop all" (issue 19).
    assert not Account.objects.get(pk=two_traders["acc_a"].pk).halted
    assert not Account.objects.get(pk=two_traders["acc_b"].pk).halted
    assert two_traders["order_b"].status == Order.Status.NEW


def test_changelists_do_not_query_per_row(two_traders, django_assert_max_num_queries, symbol):
    for i in range(20):
        Order.objects.create(
            account=two_traders["acc_a"],
            symbol=symbol,
            side="sell",
            type="market",
            quantity=Decimal("1"),
            client_order_id=f"bulk-{i}",
        )
        StrategyConfig.objects.create(
            owner=two_traders["a"],
            name=f"bulk {i}",
            strategy="test_threshold",
            symbol=symbol,
            account=two_traders["acc_a"],
        )
    for url in (
        "/admin/orders/order/",
        "/admin/strategies/strategyconfig/",
        "/admin/markets/account/",
    ):
        with django_assert_max_num_queries(20):
            assert two_traders["client"].get(url).status_code == 200


def test_periodic_task_admin_is_present(admin_client):
    assert (
        admin_client.get(reverse("admin:django_celery_beat_periodictask_changelist")).status_code
        == 200
    )


@pytest.mark.parametrize(
    "path, other",
    [
        ("/admin/markets/symbol/?strategy_configs={}", "cfg_b"),
        ("/admin/markets/symbol/?orders={}", "order_b"),
        ("/admin/markets/symbol/?orders__account__owner={}", "b"),
        ("/admin/markets/symbol/?strategy_configs__owner__username=bob", None),
        ("/admin/markets/symbol/?positions__isnull=False", None),
        ("/admin/markets/exchange/?accounts={}", "acc_b"),
        ("/admin/markets/exchange/?accounts__owner={}", "b"),
        ("/admin/markets/exchange/?symbols__strategy_configs={}", "cfg_b"),
        ("/admin/markets/candle/?symbol__orders={}", "order_b"),
        ("/admin/strategies/symbolscreen/?symbol__signals__isnull=False", None),
    ],
)
def test_shared_lists_cannot_be_filtered_into_other_users_rows(two_traders, path, other):
    """The reproduction: a staff trader listed symbols through another user's config or order
    (``?strategy_configs=4``) and venues through another user's account (``?accounts=2``)."""
    url = path.format(two_traders[other].pk if other else "")
    response = two_traders["client"].get(url)
    assert response.status_code == 400, url
    assert "bob" not in response.content.decode()


@pytest.mark.parametrize(
    "path",
    [
        "/admin/markets/symbol/?exchange__id__exact={exchange}",
        "/admin/markets/symbol/?is_active__exact=1&quote=KRW",
        "/admin/markets/candle/?symbol__exchange__id__exact={exchange}",
        "/admin/markets/exchange/?is_active__exact=1",
        "/admin/strategies/symbolscreen/?symbol__exchange__id__exact={exchange}",
    ],
)
def test_shared_lists_keep_their_filters_on_shared_rows(two_traders, path):
    url = path.format(exchange=two_traders["symbol"].exchange_id)
    assert two_traders["client"].get(url).status_code == 200, url


def test_a_superuser_may_still_filter_shared_rows_through_owned_ones(two_traders):
    from django.contrib.auth import get_user_model

    root = get_user_model().objects.create_superuser("root", password="pw-root")
    client = Client()
    client.force_login(root)
    response = client.get(f"/admin/markets/symbol/?strategy_configs={two_traders['cfg_b'].pk}")
    assert response.status_code == 200
    assert [s.pk for s in response.context["cl"].result_list] == [two_traders["symbol"].pk]


def test_the_candle_list_reads_the_series_index_and_counts_at_most_its_cap(
    two_traders, monkeypatch, exchange
):
    """The candle list sorted the whole table newest-first and counted every row on every page
    (500 symbols x a year of 1m: minutes a page). Now it reads the (symbol, timeframe,
    open_time) index backwards, newest first within each series, and counts at most CAP + 1
    rows."""
    from markets.admin import CappedCountPaginator
    from markets.candles import upsert_candles
    from markets.models import Symbol

    other = Symbol.objects.create(exchange=exchange, code="KRW-ETH", base="ETH", quote="KRW")
    t0 = 1_767_225_600_000
    for sym in (two_traders["symbol"], other):
        upsert_candles(sym.pk, "1m", [(t0 + i * 60_000, 10.0, 11.0, 9.0, 10.5, 1.0)
                                      for i in range(4)])
    monkeypatch.setattr(CappedCountPaginator, "CAP", 5)
    response = two_traders["client"].get("/admin/markets/candle/")
    assert response.status_code == 200
    changelist = response.context["cl"]
    assert changelist.result_count == 6  # 8 stored: counted up to the cap + 1
    shown = [(c.symbol_id, int(c.open_time.timestamp() * 1000)) for c in changelist.result_list]
    newest_first = sorted(shown, key=lambda r: (-r[0], -r[1]))
    assert shown == newest_first and shown[0] == (other.pk, t0 + 3 * 60_000)
    # A search names symbols by their code (part of it, any case): their candles only.
    searched = two_traders["client"].get("/admin/markets/candle/?q=eth").context["cl"]
    assert {c.symbol_id for c in searched.result_list} == {other.pk}
    assert two_traders["client"].get("/admin/markets/candle/?q=nope").context[
        "cl"].result_count == 0


def test_equity_snapshots_list_newest_first_per_account_and_count_at_most_the_cap(
    two_traders, make_account, monkeypatch
):
    """A snapshot a minute per account; the list sorted and counted them all on every page."""
    import datetime as dt

    from markets.admin import CappedCountPaginator
    from orders.models import EquitySnapshot

    second = make_account(two_traders["a"], label="alice second")
    bob = two_traders["acc_b"]
    t0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    for account in (two_traders["acc_a"], second, bob):
        EquitySnapshot.objects.bulk_create(
            EquitySnapshot(account=account, ts=t0 + dt.timedelta(minutes=i),
                           equity=Decimal(100 + i), cash=Decimal(100)) for i in range(3))
    monkeypatch.setattr(CappedCountPaginator, "CAP", 4)
    response = two_traders["client"].get("/admin/orders/equitysnapshot/")
    assert response.status_code == 200
    changelist = response.context["cl"]
    assert changelist.result_count == 5  # alice's 6 rows, counted up to the cap + 1
    shown = [(s.account_id, s.ts) for s in changelist.result_list]
    assert {a for a, _ in shown} == {two_traders["acc_a"].pk, second.pk}  # never bob's
    assert shown == sorted(shown, key=lambda r: (-r[0], -r[1].timestamp()))


def test_every_admin_a_trader_sees_is_per_owner_or_guards_its_lookups(two_traders):
    """A new shared admin must refuse lookups into owned rows too (SharedAdminMixin)."""
    from django.contrib import admin
    from django.test import RequestFactory

    from markets.admin_ownership import OwnedAdminMixin, SharedAdminMixin

    request = RequestFactory().get("/admin/")
    request.user = two_traders["a"]
    visible = [
        model_admin for model_admin in admin.site._registry.values()
        if model_admin.has_view_or_change_permission(request)
    ]
    assert len(visible) >= 10
    unguarded = [
        type(m).__name__ for m in visible
        if not isinstance(m, OwnedAdminMixin | SharedAdminMixin)
    ]
    assert unguarded == []


RELATIONS = ["strategy_configs", "orders", "positions", "signals", "accounts", "owner", "symbols",
             "exchange", "symbol", "candles", "screen", "backtests", "account", "config", "id",
             "username", "is_active", "code", "pk"]


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    path=st.lists(st.sampled_from(RELATIONS) | st.text(min_size=1, max_size=8), min_size=1,
                  max_size=4),
    lookup=st.sampled_from(["", "__exact", "__in", "__isnull", "__gte", "__icontains"]),
    value=st.text(max_size=20),
    model=st.sampled_from(["markets/symbol", "markets/exchange", "markets/candle",
                           "strategies/symbolscreen", "orders/order", "markets/account"]),
)
def test_hostile_admin_filters_never_reach_other_users_rows_nor_fail(
    two_traders, path, lookup, value, model
):
    """Whatever a trader puts in a list's query string: an answer (200, a redirect asking to
    fix the filter, or 400), never a server error, and never another user's rows."""
    from urllib.parse import urlencode

    query = urlencode({"__".join(path) + lookup: value})
    response = two_traders["client"].get(f"/admin/{model}/?{query}")
    assert response.status_code in (200, 302, 400), query
    if response.status_code == 200:
        html = response.content.decode()
        assert "bob paper" not in html and "bob-order-1" not in html and "bob cfg" not in html


def test_saving_a_live_account_on_sqlite_warns_that_amounts_keep_15_digits(two_traders):
    from django.db import connection

    from markets.models import SQLITE_MONEY_WARNING

    acc = two_traders["acc_a"]  # has keys
    data = {
        "label": "alice live", "exchange": acc.exchange_id, "quote_asset": "KRW",
        "new_api_key": "", "new_api_secret": "", "halted_reason": "",
        "balances-TOTAL_FORMS": "0", "balances-INITIAL_FORMS": "0",
    }
    url = f"/admin/markets/account/{acc.pk}/change/"
    client = two_traders["client"]
    live = client.post(url, {**data, "mode": "live"}, follow=True)
    shown = [str(m) for m in live.context["messages"]]
    acc.refresh_from_db()
    assert acc.mode == Account.Mode.LIVE
    assert (SQLITE_MONEY_WARNING in shown) == (connection.vendor == "sqlite"), shown
    paper = client.post(url, {**data, "mode": "paper"}, follow=True)
    assert SQLITE_MONEY_WARNING not in [str(m) for m in paper.context["messages"]]
