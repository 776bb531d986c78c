"""What the order drills compare: each signal's outcome against its order rows, and a live
account's order rows against the simulator's own order list (its REST API, signed as the
account). Also the drill-side set-up of a live account on the simulator and a helper that
places manual orders through the real services path (``orders.services.place_manual_order``).
Needs Django set up."""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from decimal import Decimal

import requests

from tradesite.drills.checks import now_ms, retrying
from tradesite.drills.stack import Stack

#: The simulator's Upbit demo account (simulator/server.py DEFAULT_ACCOUNTS).
SIM_KEY, SIM_SECRET = "sim-upbit-access-key", "sim-upbit-secret-key"


@dataclass
class Outcomes:
    signals: int = 0
    without_outcome: int = 0
    doubled_per_bar: int = 0
    orders: int = 0
    not_named: int = 0  # order rows of a signal that its outcome does not name

    @property
    def ok(self) -> bool:
        return not (self.without_outcome or self.doubled_per_bar or self.not_named)

    def __str__(self) -> str:
        return (f"{self.signals} signals, without outcome {self.without_outcome}, doubled per "
                f"bar {self.doubled_per_bar}; {self.orders} signal orders, not named by their "
                f"signal's outcome {self.not_named}")


def signal_outcomes(config) -> Outcomes:
    """Every signal of ``config`` has one outcome (``reason.execution``), none is doubled per
    bar, and each signal's order rows are exactly the orders its outcome names."""
    from django.db.models import Count

    from orders.models import Order
    from strategies.models import Signal

    out = Outcomes()
    for s in Signal.objects.filter(config=config):
        out.signals += 1
        execution = (s.reason or {}).get("execution")
        if not execution:
            out.without_outcome += 1
        named = set((execution or {}).get("orders", []))
        rows = set(Order.objects.filter(signal=s).values_list("pk", flat=True))
        out.not_named += len(rows - named)
    out.doubled_per_bar = (Signal.objects.filter(config=config).values("bar_time", "action")
                           .annotate(n=Count("pk")).filter(n__gt=1).count())
    out.orders = Order.objects.filter(signal__config=config).count()
    return out


def trading_live(on: bool = True):
    """``settings.TRADING_LIVE`` in this (the drill's) process."""
    from django.conf import settings

    settings.TRADING_LIVE = on


@contextlib.contextmanager
def live_account(stack: Stack):
    """A live account of the demo user on the ``sim`` venue with the simulator's demo keys,
    without orders (the simulator starts with fresh balances each drill). TRADING_LIVE is on
    for the processes the stack starts meanwhile and for this process; on the way out it is
    off again and the account's orders are gone (the drills after it trade paper)."""
    from django.contrib.auth import get_user_model

    from markets.models import Account, Exchange

    owner = get_user_model().objects.get(username="demo")
    account = Account.objects.filter(owner=owner, label="Drill live (sim)").first()
    if account is None:
        account = Account(owner=owner, exchange=Exchange.objects.get(slug="sim"),
                          label="Drill live (sim)", mode=Account.Mode.LIVE, quote_asset="KRW")
    account.api_key, account.api_secret = SIM_KEY, SIM_SECRET
    account.halted = False
    account.save()
    forget_orders(account)
    stack.live = True
    trading_live(True)
    try:
        yield account
    finally:
        stack.live = False
        trading_live(False)
        forget_orders(account)


def forget_orders(account) -> None:
    """Order rows and fills of ``account`` from an earlier drill (another simulator)."""
    from orders.models import Fill, Order, Position

    Fill.objects.filter(order__account=account).delete()
    Position.objects.filter(account=account).delete()
    Order.objects.filter(account=account).delete()


def last_price(symbol) -> Decimal:
    from markets.backfill import adapter_for

    adapter = adapter_for(symbol.exchange)
    end = now_ms()
    rows = retrying(lambda: adapter.fetch_candles(symbol.code, "1m", end - 600_000, end + 60_000),
                    f"reading {symbol}'s last price")
    return Decimal(repr(rows[-1].close))


def place_orders(account, symbol, count: int, threads: int = 1) -> list:
    """``count`` market orders through ``place_manual_order`` (its own live broker each, as
    the API's requests get), alternately a buy of 10,000 KRW and a sell of 0.0001 base, from
    ``threads`` threads at once. Returns the order rows."""
    import threading

    from django.db import connection

    from orders import services

    price = last_price(symbol)
    orders: list = []
    errors: list[str] = []

    def work(indexes: list[int]) -> None:
        try:
            for i in indexes:
                if i % 2 == 0:
                    kwargs = {"side": "buy", "quote_amount": Decimal("10000")}
                else:
                    kwargs = {"side": "sell", "quantity": Decimal("0.0001")}
                orders.append(services.place_manual_order(account, symbol, last_price=price,
                                                          **kwargs))
        except Exception as exc:  # reported with the figures
            errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            connection.close()

    workers = [threading.Thread(target=work, args=(list(range(t, count, threads)),))
               for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    if errors:
        raise AssertionError(f"placing {count} orders raised: " + "; ".join(errors[:3]))
    return orders


def _upbit_get(stack: Stack, path: str, query: list[tuple[str, str]]) -> list[dict]:
    from urllib.parse import urlencode

    from markets.exchanges.errors import ExchangeUnavailable
    from simulator.auth import upbit_token

    text = urlencode(query)
    answer = requests.get(f"{stack.sim_url}{path}?{text}", timeout=10, headers={
        "Authorization": "Bearer " + upbit_token(SIM_KEY, SIM_SECRET, text)})
    if answer.status_code >= 500 or answer.status_code == 429:
        raise ExchangeUnavailable(f"{path}: {answer.status_code}")
    answer.raise_for_status()
    return answer.json()


def venue_orders(stack: Stack) -> list[dict]:
    """Every order of the demo account at the simulator (open and closed, all markets)."""
    rows: list[dict] = []
    for path, cap in (("/v1/orders/open", 100), ("/v1/orders/closed", 1000)):
        page = 1
        while True:
            got = retrying(lambda p=path, c=cap, n=page: _upbit_get(
                stack, p, [("limit", str(c)), ("page", str(n))]), f"listing {path}")
            rows += got
            if len(got) < cap:
                break
            page += 1
    return rows


@dataclass
class Ledger:
    venue: int = 0  # orders at the simulator
    rows_at_venue: int = 0  # order rows with an exchange order id
    only_at_venue: int = 0  # client ids at the venue with no order row
    only_here: int = 0  # order rows with an exchange order id the venue does not list
    doubled: int = 0  # a client id twice at the venue, or two rows with one client id
    not_final: int = 0  # order rows still new/submitted (market orders end filled/rejected)
    never_arrived: int = 0  # rows rejected because the venue never got them

    @property
    def ok(self) -> bool:
        return self.venue > 0 and self.venue == self.rows_at_venue and not (
            self.only_at_venue or self.only_here or self.doubled or self.not_final)

    def __str__(self) -> str:
        return (f"venue orders {self.venue}, order rows at the venue {self.rows_at_venue} "
                f"(only at the venue {self.only_at_venue}, only here {self.only_here}), "
                f"doubled {self.doubled}, not final {self.not_final}, rejected as never "
                f"arrived {self.never_arrived}")


def compare_orders(stack: Stack, account) -> Ledger:
    """The account's order rows against the simulator's orders, by client order id."""
    from collections import Counter

    from orders.models import Order

    theirs = Counter(o.get("identifier") for o in venue_orders(stack))
    rows = list(Order.objects.filter(account=account))
    mine = Counter(o.client_order_id for o in rows if o.exchange_order_id)
    out = Ledger(venue=sum(theirs.values()), rows_at_venue=sum(mine.values()))
    out.only_at_venue = len(theirs.keys() - mine.keys())
    out.only_here = len(mine.keys() - theirs.keys())
    out.doubled = sum(n - 1 for n in theirs.values() if n > 1) + sum(
        n - 1 for n in Counter(o.client_order_id for o in rows).values() if n > 1)
    out.not_final = sum(1 for o in rows if o.status in (Order.Status.NEW,
                                                        Order.Status.SUBMITTED))
    out.never_arrived = sum(1 for o in rows if "never arrived" in (o.reject_reason or ""))
    return out


def reconcile_until_settled(account, timeout_s: float = 60.0) -> int:
    """``reconcile_live_orders`` for ``account`` until none of its orders is new/submitted
    (a 5xx on a lookup leaves one for the next round). Returns the rounds it took."""
    from orders import services
    from orders.models import Order

    rounds = 0
    deadline = time.monotonic() + timeout_s
    while True:
        rounds += 1
        services.reconcile_live_orders(account_ids=[account.pk])
        if not Order.objects.filter(account=account, status__in=[
                Order.Status.NEW, Order.Status.SUBMITTED]).exists():
            return rounds
        if time.monotonic() > deadline:
            return rounds
        time.sleep(0.5)
