"""A hostile and careless user's sweep over every surface: the JSON API, the pages and forms, the
admin, the WebSockets and the commands, as two traders, a superuser and a plain user.

Every attempt must end in an answer (a page, a form error, a JSON 4xx, a closed socket, a
command error), never in a 5xx, an unhandled exception, a change to another user's objects, a
leak of another user's objects, or (for an answer that refused) any change at all. The test
prints the counts per surface (``pytest -s``) and fails listing every attempt that did not hold.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import io
import json
import os
import tempfile
from collections.abc import Callable
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client

from markets.models import Account, Balance, Symbol
from orders.models import ApiToken, Order, Position
from orders.tests.conftest import fund
from strategies.models import Signal, StrategyConfig

pytestmark = [pytest.mark.redis, pytest.mark.django_db(transaction=True)]

BOB_MARK = "bob-private-7f3a"  # in Bob's labels and names: must never reach Alice
STALE = 999_999
#: Values a careless or hostile caller puts in any field.
HOSTILE = [
    "abc", "", " ", "\x00", "1e999999", "NaN", "Infinity", "-Infinity", "-1", "0", "1e-30",
    "9" * 35, "1e308", "253402300800000", "-253402300800000", "99999999999999999999999",
    "A" * 5000, "[1]", "{}", "null", "true", "2026-13-45", "0001-01-01", "9999-12-31",
    "<script>alert(1)</script>", "' OR 1=1 --", "../../etc/passwd", "%00", "😀",
]
JSON_HOSTILE = [
    "abc", "", None, True, False, -1, 0, 1e308, -1e308, 2**63, -(2**63), 2**200, "1e999999",
    "NaN", "Infinity", "9" * 35, "1e-30", [1], [], {}, {"a": 1}, [[[[[]]]]], "A" * 5000,
]
RAW_BODIES = [
    b"[" * 50_000, b"{" * 50_000, b"not json", b"\xff\xfe\x00", b'{"a":' * 10_000, b"[]",
    b'"text"', b"1e999999", b"{" + b'"k":1,' * 20_000 + b'"k":1}',
]


@dataclasses.dataclass
class Outcome:
    surface: str
    name: str
    ok: bool
    detail: str = ""


def snapshot() -> tuple:
    """Every row a money-moving or data-changing attempt could touch."""
    return (
        sorted(Order.objects.values_list("pk", "status", "quantity", "price")),
        sorted(Position.objects.values_list("pk", "quantity", "closed_at")),
        sorted(Balance.objects.values_list("pk", "free", "locked")),
        sorted(Account.objects.values_list("pk", "halted", "label", "mode")),
        sorted(StrategyConfig.objects.values_list("pk", "is_active", "params", "name")),
        sorted(Symbol.objects.values_list("pk", "is_active")),
        ApiToken.objects.count(),
    )


def _purge_new_orders(before: tuple) -> None:
    """Remove the orders an attempt stored that no query can load (raw SQL: loading them is
    what fails), so the sweep goes on and counts the rest."""
    from django.db import connection

    known = [row[0] for row in before[0]] or [0]
    with connection.cursor() as cursor:
        cursor.execute(
            f"DELETE FROM {Order._meta.db_table} WHERE id > %s", [max(known)]
        )


def owned_snapshot(owner) -> tuple:
    return (
        sorted(Order.objects.filter(account__owner=owner).values_list("pk", "status")),
        sorted(Position.objects.filter(account__owner=owner).values_list("pk", "closed_at")),
        sorted(Account.objects.filter(owner=owner).values_list("pk", "halted")),
        sorted(StrategyConfig.objects.filter(owner=owner).values_list("pk", "is_active")),
        sorted(Balance.objects.filter(account__owner=owner).values_list("pk", "free", "locked")),
    )


@pytest.fixture
def world(symbol, make_trader, make_account):
    from orders.tests.conftest import MINUTE, T0, store

    alice, bob = make_trader("alice"), make_trader("bob")
    root = get_user_model().objects.create_superuser("root", password="pw-root")
    plain = get_user_model().objects.create_user("plain", password="pw-plain")
    alice_account = make_account(alice, label="alice-paper", quote_asset="KRW")
    bob_account = make_account(bob, label=f"{BOB_MARK}-paper", quote_asset="KRW")
    fund(alice_account, "KRW", "1000000")
    fund(bob_account, "KRW", "1000000")
    common = dict(strategy="rsi", params={}, symbol=symbol, timeframe="1m", is_active=True)
    alice_config = StrategyConfig.objects.create(
        owner=alice, name="alice-rsi", account=alice_account, **common
    )
    bob_config = StrategyConfig.objects.create(
        owner=bob, name=f"{BOB_MARK}-rsi", account=bob_account, **common
    )
    store(symbol, [50_000_000.0] * 30)
    orders = {}
    for user, account, config in [(alice, alice_account, alice_config),
                                  (bob, bob_account, bob_config)]:
        orders[user.username] = Order.objects.create(
            account=account, symbol=symbol, config=config, side="buy", type="limit",
            quantity=Decimal("0.001"), price=Decimal("40000000"), status="open",
            client_order_id=f"resting-{user.username}",
        )
        Position.objects.create(
            account=account, symbol=symbol, config=config, side="long",
            quantity=Decimal("0.001"), entry_price=Decimal("50000000"), opened_at=_dt(T0),
        )
        Signal.objects.create(
            config=config, symbol=symbol, timeframe="1m", bar_time=_dt(T0 + 20 * MINUTE),
            action="enter_long",
            price=Decimal("50000000"),
        )
    tokens = {u.username: ApiToken.issue(u, "sweep")[1] for u in (alice, bob, root, plain)}
    return dict(alice=alice, bob=bob, root=root, plain=plain, tokens=tokens,
                alice_config=alice_config, bob_config=bob_config, orders=orders,
                alice_account=alice_account, bob_account=bob_account, symbol=symbol)


def _dt(ms):
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ms / 1000, tz=UTC)


class Sweep:
    def __init__(self, world):
        self.world = world
        self.outcomes: list[Outcome] = []

    def check(self, surface: str, name: str, attempt: Callable[[], tuple[int, str]], *,
              user=None, may_change: bool = False, sees_all: bool = False,
              unavailable_ok: bool = False) -> None:
        """Run one attempt; ``attempt()`` returns (status, body text). ``sees_all``: the
        superuser's admin, where every user's objects are meant to be seen; ``unavailable_ok``:
        a 503 is the right answer (``/health`` without workers)."""
        others = [u for u in (self.world["alice"], self.world["bob"]) if u != user]
        before, before_others = snapshot(), [owned_snapshot(u) for u in others]
        try:
            status, body = attempt()
        except Exception as exc:  # an unhandled error is what the sweep looks for
            self.outcomes.append(Outcome(surface, name, False, f"{type(exc).__name__}: {exc}"))
            return
        problems = []
        try:
            after = snapshot()
        except Exception as exc:  # a stored value no reader can load: corrupt data
            self.outcomes.append(Outcome(surface, name, False, f"stored unreadable rows: {exc!r}"))
            _purge_new_orders(before)
            return
        if status >= 500 and not (unavailable_ok and status == 503):
            problems.append(f"HTTP {status}")
        if user is not None and user.username != "bob" and not sees_all and BOB_MARK in body:
            problems.append("leaks Bob's objects")
        if (user is None or not user.is_superuser) and [
            owned_snapshot(u) for u in others
        ] != before_others:
            problems.append("changed another user's objects")
        if 400 <= status < 500 and not may_change and after != before:
            problems.append(f"refused with {status} but changed rows")
        self.outcomes.append(Outcome(surface, name, not problems, "; ".join(problems)))

    def report(self) -> str:
        counts = collections.Counter()
        for o in self.outcomes:
            counts[(o.surface, "attempts")] += 1
            counts[(o.surface, "passed")] += int(o.ok)
        surfaces = sorted({o.surface for o in self.outcomes})
        lines = [f"{'surface':12} {'attempts':>8} {'passed':>7}"]
        for s in surfaces:
            lines.append(f"{s:12} {counts[(s, 'attempts')]:8d} {counts[(s, 'passed')]:7d}")
        total, passed = len(self.outcomes), sum(o.ok for o in self.outcomes)
        lines.append(f"{'all':12} {total:8d} {passed:7d}")
        return "\n".join(lines)


def http(client: Client, method: str, path: str, *, token=None, body=None, raw=None, data=None):
    headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token else {}

    def attempt():
        if method == "get":
            response = client.get(path, **headers)
        elif raw is not None:
            response = client.post(path, data=raw, content_type="application/json", **headers)
        elif data is not None:
            response = client.post(path, data=data, **headers)
        else:
            response = client.post(path, data=json.dumps(body), content_type="application/json",
                                   **headers)
        return response.status_code, response.content.decode("utf-8", "replace")

    return attempt


def api_attempts(sweep: Sweep, world) -> None:
    client = Client(raise_request_exception=False)
    valid_order = {"account": world["alice_account"].pk, "symbol": "sim:KRW-BTC", "side": "buy",
                   "quantity": "0.001", "price": "40000000"}
    gets = {
        "/api/positions": ["open", "limit"],
        "/api/orders": ["status", "limit"],
        "/api/signals": ["config", "limit"],
        "/api/candles?venue=sim&symbol=KRW-BTC&timeframe=1m": ["before", "after", "limit",
                                                              "indicators", "timeframe"],
    }
    for who in ("alice", "root", "plain"):
        user, token = world[who], world["tokens"][who]
        for path in ("/api/balances", "/api/configs", "/api/orders", "/api/positions",
                     "/api/signals"):
            sweep.check("api", f"{who} GET {path}", http(client, "get", path, token=token),
                        user=user)
        for path, names in gets.items():
            for name in names:
                for value in HOSTILE:
                    sep = "&" if "?" in path else "?"
                    url = f"{path}{sep}{name}={value}"
                    sweep.check("api", f"{who} GET {url[:80]}", http(client, "get", url,
                                                                     token=token), user=user)
    alice, token = world["alice"], world["tokens"]["alice"]
    for field in ("account", "symbol", "side", "quantity", "price"):
        for value in JSON_HOSTILE:
            body = valid_order | {field: value}
            sweep.check("api", f"POST /api/orders {field}={str(value)[:30]}",
                        http(client, "post", "/api/orders", token=token, body=body),
                        user=alice, may_change=field in ("price", "quantity"))
    for raw in RAW_BODIES:
        for path in ("/api/orders", "/api/kill-switch"):
            sweep.check("api", f"POST {path} raw {raw[:12]!r}",
                        http(client, "post", path, token=token, raw=raw), user=alice)
    for key in ("all", "configs", "close_positions", "reason"):
        for value in JSON_HOSTILE:
            if key == "all" and value is True:
                continue  # a real "stop all"; covered by the kill switch tests
            body = {key: value}
            sweep.check("api", f"POST /api/kill-switch {key}={str(value)[:30]}",
                        http(client, "post", "/api/kill-switch", token=token, body=body),
                        user=alice)
    bob_order, bob_config = world["orders"]["bob"].pk, world["bob_config"].pk
    for path in (f"/api/orders/{bob_order}/cancel", f"/api/orders/{STALE}/cancel",
                 f"/api/configs/{bob_config}/activate", f"/api/configs/{bob_config}/deactivate",
                 f"/api/configs/{STALE}/activate", "/api/orders/abc/cancel",
                 f"/api/orders/{2**70}/cancel"):
        for who in ("alice", "plain"):
            sweep.check("api", f"{who} POST {path}",
                        http(client, "post", path, token=world["tokens"][who], body={}),
                        user=world[who])
    for bad in ("", "Bearer", "Bearer x", "Basic abc", "Bearer " + "x" * 5000, "Token \x00"):
        sweep.check("api", f"auth {bad[:20]!r}", lambda bad=bad: _auth(client, bad))


def _auth(client, header):
    response = client.get("/api/orders", HTTP_AUTHORIZATION=header)
    return response.status_code, response.content.decode()


PAGES = [
    "/", "/markets/", "/chart/sim/KRW-BTC/", "/chart/nope/KRW-BTC/", "/chart/sim/NOPE/",
    "/strategies/screener/", "/strategies/screener/?exchange=nope",
    "/strategies/screener/?sort=nope&dir=sideways", "/strategies/optimizer/runs/",
    f"/strategies/optimizer/runs/{STALE}/", "/strategies/backtests/",
    f"/strategies/backtests/{STALE}/", f"/strategies/backtests/{STALE}.json",
    "/strategies/backtests/?sort=<x>", "/health",
    "/admin/", "/admin/markets/symbol/", "/admin/markets/account/",
    "/admin/strategies/strategyconfig/", "/admin/orders/order/",
    "/admin/orders/order/?created_at__year=99999", "/admin/orders/order/?created_at__month=13",
    "/admin/orders/order/?o=99", "/admin/orders/order/?p=abc", "/admin/orders/order/?q=%00",
    "/admin/markets/symbol/?strategy_configs=2", "/admin/markets/symbol/?orders=2",
    "/admin/markets/exchange/?accounts=2", "/admin/markets/candle/?open_time__gte=abc",
    f"/admin/markets/account/{STALE}/change/", "/admin/markets/account/abc/change/",
    "/admin/strategies/strategyconfig/?account__owner__username=bob",
    "/admin/orders/order/?account__label__contains=bob",
]


def page_attempts(sweep: Sweep, world) -> None:
    for who in ("alice", "root", "plain", None):
        client = Client(raise_request_exception=False)
        if who:
            client.force_login(world[who])
        user = world[who] if who else None
        for page in PAGES:
            sweep.check("pages", f"{who} GET {page}", http(client, "get", page), user=user,
                        sees_all=who == "root" and page.startswith("/admin/"),
                        unavailable_ok=page == "/health")
        bob_config = world["bob_config"].pk
        forms = [
            ("/strategies/optimizer/runs/start/", {"config": v, "trials": t, "days": d})
            for v, t, d in [("abc", "10", "30"), (str(bob_config), "10", "30"),
                            (str(world["alice_config"].pk), "-1", "30"),
                            (str(world["alice_config"].pk), "1000000000000", "30"),
                            (str(world["alice_config"].pk), "10", "0"),
                            (str(world["alice_config"].pk), "10", "1000000000"),
                            (str(world["alice_config"].pk), "abc", "1e999")]
        ] + [
            ("/strategies/screener/top/", {"config": v, "top_n": n})
            for v, n in [("abc", "3"), (str(bob_config), "3"), (str(STALE), "3")]
        ] + [
            ("/strategies/backtests/", {"strategy": "rsi", "params": p, "symbol": world[
                "symbol"].pk, "timeframe": "1m", "start": s, "end": e, "fee_bps": "5",
                "slippage_bps": "0", "cash": "1000000"})
            for p, s, e in [("[" * 50_000, "2026-01-01", "2026-01-02"),
                            ('{"period": "x"}', "2026-01-01", "2026-01-02"),
                            ("{}", "0001-01-01", "9999-12-31"),
                            ("{}", "2026-01-02", "2026-01-01"),
                            ('{"a":' * 5000, "2026-01-01", "2026-01-02")]
        ] + [
            ("/dashboard/kill-switch", {}), ("/dashboard/kill-switch", {"scope": "selected"}),
            ("/dashboard/kill-switch", {"scope": "selected", "config": str(bob_config)}),
            (f"/dashboard/configs/{bob_config}/toggle", {}),
            (f"/strategies/screener/activate/{STALE}/", {}),
            (f"/strategies/optimizer/runs/{STALE}/apply/", {}),
        ]
        for path, data in forms:
            sweep.check("forms", f"{who} POST {path} {str(data)[:60]}",
                        http(client, "post", path, data=data), user=user,
                        may_change=path.startswith("/strategies/backtests/"))
        admin_posts = [
            ("/admin/strategies/strategyconfig/",
             {"action": "stop_trading_action", "_selected_action": [str(STALE)]}),
            ("/admin/strategies/strategyconfig/",
             {"action": "stop_trading_action", "_selected_action": ["abc"]}),
            ("/admin/strategies/strategyconfig/",
             {"action": "stop_trading_action", "_selected_action": [str(bob_config)]}),
            ("/admin/strategies/strategyconfig/", {"action": "nope", "_selected_action": ["1"]}),
            ("/admin/markets/account/",
             {"action": "halt_accounts", "_selected_action": [str(world["bob_account"].pk)]}),
            ("/admin/strategies/strategyconfig/add/",
             {"name": "deep", "strategy": "rsi", "params": "[" * 50_000,
              "symbol": world["symbol"].pk, "timeframe": "1m",
              "account": world["alice_account"].pk, "leverage": "1",
              "sizing_method": "fraction", "sizing_params": "{}"}),
            ("/admin/strategies/strategyconfig/add/",
             {"name": "deep2", "strategy": "rsi", "params": "{}", "symbol": world["symbol"].pk,
              "timeframe": "1m", "account": world["alice_account"].pk, "leverage": "1",
              "sizing_method": "fraction", "sizing_params": '{"a":' * 5000}),
            ("/admin/strategies/strategyconfig/add/",
             {"name": "neg", "strategy": "rsi", "params": "{}", "symbol": world["symbol"].pk,
              "timeframe": "1m", "account": world["alice_account"].pk, "leverage": "1",
              "stop_loss_pct": "-1", "sizing_method": "fraction", "sizing_params": "{}"}),
        ]
        for path, data in admin_posts:
            sweep.check("admin", f"{who} POST {path} {str(data)[:60]}",
                        http(client, "post", path, data=data), user=user, sees_all=who == "root",
                        may_change=who == "root" and data.get("action") == "halt_accounts")


def websocket_attempts(sweep: Sweep, world) -> None:
    from channels.testing import WebsocketCommunicator

    from tradesite.asgi import application

    paths = ["/ws/chart/sim/KRW-BTC/user.3/", "/ws/nope/", "/ws/chart/sim/KRW-BTC/1m/extra/",
             "/ws/chart/%00/x/1m/", "/ws/" + "a" * 3000 + "/", "/ws/markets/x/"]
    frames = ["[" * 50_000, "{" * 50_000, "not json", "A" * 1_000_000, '{"type": "x"}',
              json.dumps({"type": "subscribe", "symbol": [1] * 10}), "\x00", "null"]

    async def unmatched(path):
        comm = WebsocketCommunicator(application, path, headers=[(b"origin",
                                                                  b"http://127.0.0.1")])
        connected, _ = await comm.connect(timeout=5)
        await comm.disconnect()
        return (403 if not connected else 200), ""

    async def frame(text):
        from channels.routing import URLRouter

        from tradesite.routing import websocket_urlpatterns

        comm = WebsocketCommunicator(URLRouter(websocket_urlpatterns), "/ws/chart/sim/KRW-BTC/1m/")
        comm.scope["user"] = world["alice"]
        connected, _ = await comm.connect(timeout=5)
        assert connected
        await comm.receive_from(timeout=5)  # hello
        await comm.send_to(text_data=text)
        await asyncio.sleep(0.05)
        # The socket stays usable or was closed on purpose; either way no exception escaped.
        await comm.send_to(text_data=json.dumps({"type": "ping"}))
        await comm.disconnect()
        return 200, ""

    for path in paths:
        sweep.check("websockets", f"connect {path[:40]}", lambda p=path: asyncio.run(unmatched(p)))
    for text in frames:
        sweep.check("websockets", f"frame {text[:20]!r}", lambda t=text: asyncio.run(frame(t)),
                    user=world["alice"])


def command_attempts(sweep: Sweep, world) -> None:
    def run(*args, files: dict[str, bytes] | None = None):
        def attempt():
            with tempfile.TemporaryDirectory() as tmp:
                argv = []
                for a in args:
                    if isinstance(a, str) and a.startswith("@"):
                        path = os.path.join(tmp, "in.csv")
                        with open(path, "wb") as fh:
                            fh.write(files[a])
                        argv.append(path)
                    else:
                        argv.append(a)
                try:
                    call_command(*argv, stdout=io.StringIO(), stderr=io.StringIO())
                except CommandError as exc:
                    return 400, str(exc)
                except SystemExit as exc:
                    return 400, f"exit {exc.code}"
            return 200, ""
        return attempt

    header = b"open_time,open,high,low,close,volume\n"
    csvs = {
        "@y10000": header + b"10000-01-01T00:00:00Z,1,2,0.5,1.5,10\n",
        "@6e20": header + b"600000000000000000000,1,2,0.5,1.5,10\n",
        "@binary": bytes(range(256)) * 40,
        "@bigfield": header + b"2026-01-01T00:00:00Z," + b"9" * 200_000 + b",2,0.5,1.5,10\n",
        "@nan": header + b"2026-01-01T00:00:00Z,NaN,inf,-inf,1,1\n",
        "@empty": b"",
        "@neg": header + b"-1,1,2,0.5,1.5,10\n",
        "@cols": header + b"2026-01-01T00:00:00Z,1\n",
    }
    for name in csvs:
        sweep.check("commands", f"import_candles {name}", run(
            "import_candles", name, "--venue", "sim", "--symbol", "KRW-BTC", "--timeframe", "1m",
            files=csvs))
    for argv in [
        ("stop_trading",), ("stop_trading", "--config", str(STALE)),
        ("stop_trading", "--user", "alice", "--config", str(world["bob_config"].pk)),
        ("stop_trading", "--user", "nobody", "--all"),
        ("api_token", "--user", "alice", "--name", ""),
        ("api_token", "--user", "alice", "--name", "x" * 1000),
        ("api_token", "--user", "nobody"),
        ("parity", "--config", str(world["alice_config"].pk), "--start", "abc", "--end", "x"),
        ("parity", "--config", str(world["alice_config"].pk), "--start", "2026-01-01",
         "--end", "2026-01-02", "--cash", "NaN"),
        ("backtest", "--strategy", "rsi", "--params", "[" * 50_000, "--venue", "sim",
         "--symbol", "KRW-BTC", "--timeframe", "1m", "--start", "2026-01-01",
         "--end", "2026-01-02"),
        ("backtest", "--strategy", "rsi", "--venue", "sim", "--symbol", "KRW-BTC",
         "--timeframe", "1m", "--start", "0001-01-01", "--end", "9999-12-31"),
        ("export_candles", "--venue", "sim", "--symbol", "KRW-BTC", "--timeframe", "1m",
         "--start", "99999-01-01"),
        ("backfill", "--venue", "nope", "--symbol", "KRW-BTC", "--timeframe", "1m"),
        ("backfill", "--venue", "sim", "--symbol", "KRW-BTC", "--timeframe", "7m"),
        *([] if os.environ.get("SWEEP_UNBOUNDED_SKIP") else [
            ("optimize", "--config", str(world["alice_config"].pk), "--trials", "1000000000000")
        ]),
        ("optimize", "--config", str(world["alice_config"].pk), "--trials", "0"),
        ("optimize", "--config", "abc"),
    ]:
        sweep.check("commands", " ".join(a[:30] for a in argv), run(*argv))


def test_no_hostile_attempt_ends_in_an_error_a_leak_or_a_change(world, capsys):
    sweep = Sweep(world)
    api_attempts(sweep, world)
    page_attempts(sweep, world)
    websocket_attempts(sweep, world)
    command_attempts(sweep, world)
    report = sweep.report()
    with capsys.disabled():
        print("\nhostile sweep:\n" + report)
    failures = [f"{o.surface}: {o.name}: {o.detail}" for o in sweep.outcomes if not o.ok]
    assert not failures, f"{len(failures)} attempt(s) did not hold:\n" + "\n".join(failures)
