"""Live balances from the venues (issue 19, item 4): the user-data streams' balance events
(Binance spot ``outboundAccountPosition``, Binance futures ``ACCOUNT_UPDATE``, Upbit
``myAsset``) are stored as
they arrive, reconciliation fetches every balance as the safety net, and each account says when
the venue last confirmed it. Against the exchange simulator over real sockets."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from markets.exchanges import get_adapter
from markets.exchanges.base import Balance as VenueBalance
from markets.exchanges.base import BalanceUpdate, OrderRequest
from markets.models import Account, Balance, Exchange
from orders import services, tasks, userstream, venue_balances
from orders.tests.live_helpers import Following, wait_for
from simulator.server import DEFAULT_ACCOUNTS, SimConfig, start_in_thread

pytestmark = pytest.mark.django_db(transaction=True)

VENUES = {
    # name: (simulator venue, adapter, url attributes, keys)
    "spot": ("binance", "binance_spot", ("binance_url", "binance_ws_url"),
             DEFAULT_ACCOUNTS["binance"][0]),
    "futures": ("futures", "binance_futures", ("futures_url", "futures_ws_url"),
                DEFAULT_ACCOUNTS["futures"][0]),
    "upbit": ("upbit", "upbit", ("upbit_url", "upbit_ws_url"), DEFAULT_ACCOUNTS["upbit"][0]),
}


@pytest.fixture(scope="module")
def simulator():
    handle = start_in_thread(SimConfig(seed=19, history_days=0.02,
                                       venues=("upbit", "binance", "futures")))
    yield handle
    handle.stop()


def live_account(simulator, owner, kind: str) -> Account:
    _, adapter, (rest, ws), (key, secret, _) = VENUES[kind]
    exchange = Exchange.objects.create(
        slug=f"sim{kind}", name=f"Sim {kind}", adapter=adapter,
        rest_url=getattr(simulator, rest), ws_url=getattr(simulator, ws),
    )
    return Account.objects.create(
        owner=owner, exchange=exchange, label=f"live {kind}", mode=Account.Mode.LIVE,
        quote_asset="KRW" if kind == "upbit" else "USDT", api_key=key, api_secret=secret,
    )


def venue_adapter(simulator, kind: str):
    _, adapter, (rest, _), (key, secret, _) = VENUES[kind]
    return get_adapter(adapter, rest_url=getattr(simulator, rest), api_key=key,
                       api_secret=secret)


def stored(account) -> dict[str, Decimal]:
    return {b.asset: b.total for b in Balance.objects.filter(account=account)}


def at_venue(adapter) -> dict[str, Decimal]:
    return {b.asset: b.total for b in adapter.balances()}


ORDERS = {
    # A market buy at the venue: spot spends USDT for BTC, futures pays its fee from the wallet.
    "spot": OrderRequest(symbol="BTCUSDT", side="buy", type="market",
                         quantity=Decimal("0.01"), price=None, client_order_id="elsewhere-1"),
    "futures": OrderRequest(symbol="BTCUSDT", side="buy", type="market",
                            quantity=Decimal("0.01"), price=None, client_order_id="elsewhere-2"),
    # Upbit sizes a market buy by its KRW amount; a market sell by quantity (myAsset).
    "upbit": OrderRequest(symbol="KRW-BTC", side="sell", type="market",
                          quantity=Decimal("0.01"), price=None, client_order_id="elsewhere-3"),
}


@pytest.mark.parametrize("kind", ["spot", "futures", "upbit"])
def test_a_fill_at_the_venue_changes_the_balances_within_a_second_without_reconciliation(
    simulator, trader, settings, kind
):
    settings.TRADING_LIVE = True
    account = live_account(simulator, trader, kind)
    adapter = venue_adapter(simulator, kind)
    try:
        with Following(account) as following:
            # The connection's resync fetches every balance once and confirms the account.
            assert wait_for(lambda: Account.objects.get(pk=account.pk).venue_confirmed_at, 10)
            assert wait_for(lambda: stored(account) == at_venue(adapter), 5)
            confirmed = Account.objects.get(pk=account.pk).venue_confirmed_at
            fetches, before = following.fetches, stored(account)

            adapter.place_order(ORDERS[kind])
            expected = at_venue(adapter)
            assert expected != before
            changed = wait_for(lambda: stored(account) == expected, 1.0)

            assert changed, (f"balances not updated within 1 s of the fill: stored "
                             f"{stored(account)}, venue {expected}")
            assert following.fetches == fetches  # the stream's event, not a REST fetch
            assert Account.objects.get(pk=account.pk).venue_confirmed_at > confirmed
    finally:
        adapter.close()


def test_reconciliation_fetches_the_live_balances_and_confirms_the_account(
    simulator, trader, settings
):
    settings.TRADING_LIVE = True
    account = live_account(simulator, trader, "spot")
    paper = Account.objects.create(owner=trader, exchange=account.exchange, label="paper",
                                   quote_asset="USDT")
    Balance.objects.create(account=paper, asset="USDT", free=Decimal("5"))
    # Stale state: a BTC amount the venue no longer holds, an asset it no longer lists.
    Balance.objects.create(account=account, asset="BTC", free=Decimal("123"))
    Balance.objects.create(account=account, asset="DOGE", free=Decimal("7"))
    adapter = venue_adapter(simulator, "spot")
    try:
        venue = at_venue(adapter)
    finally:
        adapter.close()
    assert Account.objects.get(pk=account.pk).venue_confirmed_at is None

    out = tasks.reconcile_all()

    assert out["live_balances"] == 1
    rows = stored(account)
    assert rows.pop("DOGE") == 0  # the venue omits zero balances: a full fetch zeroes it
    assert rows == venue
    confirmed = Account.objects.get(pk=account.pk).venue_confirmed_at
    assert confirmed is not None and timezone.now() - confirmed < timedelta(minutes=1)
    # Paper books are ours: untouched, never "confirmed by the venue".
    assert stored(paper) == {"USDT": Decimal("5")}
    assert Account.objects.get(pk=paper.pk).venue_confirmed_at is None


def test_reconciliation_leaves_balances_alone_while_live_trading_is_off(
    simulator, trader, settings
):
    settings.TRADING_LIVE = False
    account = live_account(simulator, trader, "spot")
    assert tasks.reconcile_all()["live_balances"] == 0
    assert stored(account) == {}
    assert Account.objects.get(pk=account.pk).venue_confirmed_at is None


def test_a_balance_event_changes_only_the_assets_it_lists(trader, exchange):
    account = Account.objects.create(owner=trader, exchange=exchange, label="live",
                                     mode=Account.Mode.LIVE, api_key="k", api_secret="s")
    Balance.objects.create(account=account, asset="KRW", free=Decimal("1000"))
    Balance.objects.create(account=account, asset="BTC", free=Decimal("1"),
                           locked=Decimal("0.5"))
    event = BalanceUpdate(venue="upbit", ts_ms=0, balances=[
        VenueBalance("BTC", Decimal("0.25"), Decimal("0"))])

    assert userstream.apply_event(account, event, broker=None) == "balances"

    assert stored(account) == {"KRW": Decimal("1000"), "BTC": Decimal("0.25")}
    assert Account.objects.get(pk=account.pk).venue_confirmed_at is not None


def test_a_futures_wallet_event_sets_the_total_and_keeps_the_margin_held(trader, exchange):
    account = Account.objects.create(owner=trader, exchange=exchange, label="live",
                                     mode=Account.Mode.LIVE, api_key="k", api_secret="s")
    Balance.objects.create(account=account, asset="USDT", free=Decimal("900"),
                           locked=Decimal("100"))
    event = BalanceUpdate(venue="binance_futures", ts_ms=0, wallet_totals=True, balances=[
        VenueBalance("USDT", Decimal("990.5"), Decimal("0"))])  # wallet balance after a fee

    userstream.apply_event(account, event, broker=None)

    row = Balance.objects.get(account=account, asset="USDT")
    assert (row.free, row.locked) == (Decimal("890.5"), Decimal("100"))
    # A wallet smaller than the margin last held: all of it held, nothing free.
    venue_balances.store(account, [VenueBalance("USDT", Decimal("40"), Decimal("0"))],
                         full=False, wallet_totals=True)
    row.refresh_from_db()
    assert (row.free, row.locked) == (Decimal("0"), Decimal("40"))


def test_a_negative_balance_from_the_venue_is_refused_by_name(trader, exchange):
    account = Account.objects.create(owner=trader, exchange=exchange, label="live",
                                     mode=Account.Mode.LIVE, api_key="k", api_secret="s")
    with pytest.raises(ValueError, match="negative USDT balance"):
        services.sync_balances(account, [VenueBalance("USDT", Decimal("-1"), Decimal("0"))])
    assert Account.objects.get(pk=account.pk).venue_confirmed_at is None


@pytest.mark.parametrize("seconds, text", [
    (0, "0 s ago"), (3, "3 s ago"), (59, "59 s ago"), (60, "1 min ago"), (3_599, "59 min ago"),
    (7_200, "2 h ago"), (86_400 * 5 + 1, "5 d ago"), (-2, "0 s ago"),
])
def test_age_text(seconds, text):
    now = timezone.now()
    assert venue_balances.age_text(now - timedelta(seconds=seconds), now) == text
    assert venue_balances.age_text(None, now) == "never"


ASSETS = st.sampled_from(["KRW", "USDT", "BTC", "ETH"])
# At most 15 significant digits: what SQLite's money columns (doubles) read back exactly.
AMOUNTS = st.decimals(min_value=0, max_value=Decimal("9999999.99999999"), places=8,
                      allow_nan=False, allow_infinity=False)
ROWS = st.dictionaries(ASSETS, st.tuples(AMOUNTS, AMOUNTS), max_size=4)


@hypothesis_settings(max_examples=25, deadline=None,
                     suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(events=st.lists(ROWS, max_size=5), final=ROWS)
def test_events_change_only_their_assets_and_a_full_fetch_states_everything(
    trader, exchange, events, final
):
    account, _ = Account.objects.get_or_create(
        owner=trader, exchange=exchange, label="live", mode=Account.Mode.LIVE)
    Balance.objects.filter(account=account).delete()
    expected: dict[str, tuple[Decimal, Decimal]] = {}

    def items(rows):
        return [VenueBalance(asset, free, locked) for asset, (free, locked) in rows.items()]

    for rows in events:
        venue_balances.store(account, items(rows), full=False)
        expected.update(rows)
        assert {b.asset: (b.free, b.locked)
                for b in Balance.objects.filter(account=account)} == expected
    venue_balances.store(account, items(final), full=True)
    held = {b.asset: (b.free, b.locked) for b in Balance.objects.filter(account=account)}
    assert {a: v for a, v in held.items() if a in final} == final
    assert all(v == (0, 0) for a, v in held.items() if a not in final)


def test_the_admin_shows_when_the_venue_last_confirmed_the_account(admin_client, trader,
                                                                   exchange):
    account = Account.objects.create(owner=trader, exchange=exchange, label="live",
                                     mode=Account.Mode.LIVE, api_key="k", api_secret="s")
    venue_balances.store(account, [VenueBalance("KRW", Decimal("5"), Decimal("0"))], full=True)
    html = admin_client.get(f"/admin/markets/account/{account.pk}/change/").content.decode()
    assert "Venue confirmed at" in html
    # Read only: posting the form never sets it.
    assert 'name="venue_confirmed_at"' not in html
