"""Hostile input for every JSON API operation, generated from the API's own OpenAPI description
by schemathesis (positive and negative data) and mixed with hostile values: huge, NaN and
infinite numbers, too many digits, deep nesting, wrong types, out-of-range times, unknown ids
and other users' ids.

Whatever comes in: never a 5xx; a refusal (4xx) changes no row of Order, Fill, Position,
Balance, Account or StrategyConfig (the one exception: a gate-rejected order, 422, is recorded
as the caller's own rejected order); an accepted call changes only the caller's own rows.
Bounded: ``EXAMPLES`` per operation and mode, about 300 requests in all.
"""

import json
from decimal import Decimal
from urllib.parse import quote, urlencode

import pytest
import schemathesis
from django.contrib.auth import get_user_model
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from markets.timeframes import TIMEFRAMES
from orders import tasks
from orders.models import ApiToken, Order
from orders.tests.conftest import MINUTE, T0, fund, store
from orders.tests.trading_state import changed_owners, snapshot
from tradesite.api import api

pytestmark = pytest.mark.django_db(transaction=True)
EXAMPLES = 14
SCHEMA = schemathesis.openapi.from_dict(api.get_openapi_schema(path_prefix="/api/"))
OPERATIONS = [result.ok() for result in SCHEMA.get_all_operations()]

# -- hostile values -----------------------------------------------------------------------------

HUGE_NUMBERS = ["1e308", "1e999999", "-1e999999", "1" * 35, "0." + "1" * 35, "1e-30",
                "NaN", "Infinity", "-0", "0", "9" * 5000, "1_000", " 1 ", "0x10", "1e18"]
RAW_BODIES = ["[" * 50_000, "{" * 5_000, '{"a": ' * 40 + "1" + "}" * 40, "{", "", "null",
              '{"account": NaN}', '{"quantity": Infinity}', '{"all": true,}', '"all"',
              '{"price": 1e999999}', "\ufeff{}", '{"configs": [' + "1," * 5_000 + "1]}"]
TIMES = [-1, 0, 253_402_300_799_999, 253_402_300_800_000, 2**63, -(2**63), "1e3", "now"]


def hostile_scalars() -> st.SearchStrategy:
    return st.one_of(
        st.sampled_from(HUGE_NUMBERS),
        st.sampled_from([None, True, False, [], {}, [1], {"a": 1}, "", "\x00", "é" * 300]),
        st.integers(min_value=-(2**80), max_value=2**80),
        st.floats(allow_nan=False, allow_infinity=False),
        st.decimals(allow_nan=False, allow_infinity=False).map(lambda d: str(d)),
        st.text(max_size=20),
    )


def ids(world) -> st.SearchStrategy:
    """Ids to aim at: the caller's, the other user's, unknown ones and out-of-range ones."""
    return st.one_of(
        st.sampled_from(world["alice_ids"] + world["bob_ids"]),
        st.sampled_from([0, -1, 999_999, 2**63 - 1, 2**63, 2**70, "abc", "1.5", "١٢"]),
    )


@st.composite
def near_valid_order(draw, world, caller):
    """An order that would go through, with at most one field made hostile: so the service,
    its rounding and its gates run, not only the schema."""
    order = {
        "account": world["bob_ids" if caller == "bob" else "alice_ids"][0],
        "symbol": "sim:KRW-BTC",
        "side": draw(st.sampled_from(["buy", "sell"])),
        "quantity": str(draw(st.decimals(min_value=Decimal("0.0002"), max_value=Decimal("0.01"),
                                         places=draw(st.integers(2, 14))))),
    }
    if draw(st.booleans()):
        order["price"] = draw(st.sampled_from(["40000000", "50000000.5", "0.000000001", "1e17"])
                              | st.decimals(min_value=Decimal("1e-12"), max_value=10**17,
                                            places=8).map(str))
    if draw(st.integers(0, 2)) == 0:
        name = draw(st.sampled_from(sorted(order)))
        order[name] = draw(hostile_scalars() | ids(world))
    return order


# -- the world ----------------------------------------------------------------------------------


@pytest.fixture
def world(symbol, paper, make_config, make_trader, make_account, settings):
    """Alice (the caller, usually) and Bob each have an account, a config, an order and a
    position; a superuser with a token owns nothing. Throttling is lifted so the refused tokens
    the test sends do not lock the test client out (throttling has its own test)."""
    settings.AXES_FAILURE_LIMIT = 10**9
    alice_config = make_config(paper)
    bob = make_trader("bob")
    bob_account = make_account(bob, label="bob-paper")
    fund(bob_account, "KRW", "1000000")
    bob_config = make_config(bob_account, name="bob-script")
    store(symbol, [50_000_000.0] * 4)
    tasks.evaluate("sim", "KRW-BTC", "1m", T0 + 3 * MINUTE)
    fund(paper, "KRW", "100000000")  # room for the manual orders the test places
    root = get_user_model().objects.create_superuser("root", password="pw-root")
    users = {"alice": paper.owner, "bob": bob, "root": root}
    return {
        "users": users,
        "tokens": {name: ApiToken.issue(user, "prop")[1] for name, user in users.items()},
        "alice_ids": [paper.pk, alice_config.pk,
                      *Order.objects.filter(account=paper).values_list("pk", flat=True)],
        "bob_ids": [bob_account.pk, bob_config.pk,
                    *Order.objects.filter(account=bob_account).values_list("pk", flat=True)],
    }


# -- one request --------------------------------------------------------------------------------


def _encode(body) -> str:
    return json.dumps(body, default=str)


@st.composite
def requests_for(draw, operation, mode, world):
    """(method, url, raw body or None, caller name or None, Authorization header)."""
    case = draw(operation.as_strategy(generation_mode=mode))
    caller = draw(st.sampled_from(["alice", "alice", "alice", "bob", "root", None, "garbage"]))
    path_params = dict(case.path_parameters or {})
    for name in path_params:
        if draw(st.booleans()):
            path_params[name] = draw(ids(world))
    path = operation.path
    for name, value in path_params.items():
        path = path.replace("{" + name + "}", quote(str(value), safe=""))
    query = dict(case.query or {}) if isinstance(case.query, dict) else {}
    if operation.path == "/api/candles" and draw(st.booleans()):
        # Aim at the stored market, so the candle code runs, not only the 404.
        query.update(venue="sim", symbol="KRW-BTC", timeframe=draw(st.sampled_from(TIMEFRAMES)))
    for name in ("before", "after", "limit", "config"):
        if (name in query or draw(st.integers(0, 6)) == 0) and draw(st.integers(0, 3)) == 0:
            query[name] = draw(st.sampled_from(TIMES) | ids(world))
    if operation.method.upper() == "GET":
        body = None
    else:
        kind = draw(st.integers(0, 5))
        if kind >= 4 and operation.path == "/api/orders":
            body = _encode(draw(near_valid_order(world, caller)))
        elif kind == 0:
            body = draw(st.sampled_from(RAW_BODIES))
        elif isinstance(case.body, dict) and kind <= 3:
            generated = dict(case.body)
            for name in draw(st.lists(st.sampled_from(
                    ["account", "symbol", "side", "quantity", "price", "all", "configs",
                     "close_positions", "reason"]), max_size=3)):
                generated[name] = draw(hostile_scalars() | ids(world)
                                       | st.lists(ids(world), max_size=3))
            if "account" in generated and draw(st.booleans()):
                generated["account"] = draw(ids(world))
            if draw(st.booleans()):
                generated["symbol"] = "sim:KRW-BTC"
            body = _encode(generated)
        else:
            body = _encode(case.body) if case.body is not None else ""
    if caller in world["tokens"]:
        header = f"Bearer {world['tokens'][caller]}"
    elif caller == "garbage":
        header = draw(st.sampled_from(["Bearer nope", "Bearer ", "Basic abc", "Bearer " + "x" * 500,
                                       "Token \x7f", "bearer" + " " * 3]))
    else:
        header = None
    url = path + ("?" + urlencode(query, doseq=True) if query else "")
    return operation.method.upper(), url, body, caller if caller in world["tokens"] else None, \
        header


def check(client, world, request) -> None:
    method, url, body, caller, header = request
    extra = {"HTTP_AUTHORIZATION": header} if header is not None else {}
    before = snapshot()
    if method == "GET":
        response = client.get(url, **extra)
    else:
        response = client.generic(method, url, data=(body or "").encode("utf-8", "surrogatepass"),
                                  content_type="application/json", **extra)
    after = snapshot()
    status = response.status_code
    where = f"{method} {url[:200]} body={str(body)[:200]!r} -> {status} {response.content[:300]!r}"
    assert status < 500, where
    is_json = response.get("Content-Type", "").startswith("application/json")
    rejected_order = status == 422 and method == "POST" and url.startswith("/api/orders")
    if rejected_order:  # a gate refused it: the order is recorded, rejected, with the reason
        order = response.json()["order"]
        assert order["status"] == "rejected" and order["reject_reason"], where
    elif status >= 400:
        assert is_json and isinstance(response.json().get("error"), str), where
    owners = changed_owners(before, after)
    if status >= 400 and not rejected_order:
        assert not owners, f"a refused call changed rows of {owners}: {where}"
    else:
        allowed = {world["users"][caller].pk} if caller else set()
        assert owners <= allowed, f"rows of {owners - allowed} changed: {where}"


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_every_operation_survives_hostile_input(client, world, mode):
    assert {(op.method.upper(), op.path) for op in OPERATIONS} == {
        ("GET", "/api/balances"), ("GET", "/api/positions"), ("GET", "/api/orders"),
        ("POST", "/api/orders"), ("POST", "/api/orders/{pk}/cancel"), ("GET", "/api/signals"),
        ("GET", "/api/configs"), ("POST", "/api/configs/{pk}/activate"),
        ("POST", "/api/configs/{pk}/deactivate"), ("POST", "/api/kill-switch"),
        ("GET", "/api/candles"), ("POST", "/api/positions/{pk}/close"),
        ("GET", "/api/performance/accounts/{pk}/equity"),
        ("GET", "/api/performance/accounts/{pk}/returns"), ("GET", "/api/performance/trades"),
        ("GET", "/api/performance/configs"), ("POST", "/api/performance/configs/{pk}/backtest"),
        ("GET", "/api/alerts/rules"), ("POST", "/api/alerts/rules"),
        ("GET", "/api/alerts/rules/{pk}"), ("PUT", "/api/alerts/rules/{pk}"),
        ("DELETE", "/api/alerts/rules/{pk}"), ("GET", "/api/alerts/channels"),
        ("POST", "/api/alerts/channels"), ("PUT", "/api/alerts/channels/{pk}"),
        ("DELETE", "/api/alerts/channels/{pk}"), ("POST", "/api/alerts/channels/{pk}/test"),
        ("GET", "/api/alerts/notifications"),
    }
    for operation in OPERATIONS:

        @settings(max_examples=EXAMPLES, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(request=requests_for(operation, mode, world))
        def run(request):
            check(client, world, request)

        run()
