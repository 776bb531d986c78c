"""The bot's commands as plain functions (no Telegram): what each answers for the linked user,
and /stop halting only that user's trading."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alerts.telegram import commands, reports
from alerts.telegram.models import TelegramLink
from markets.models import Account
from orders.models import Position
from orders.tests.conftest import fund, store
from strategies.models import StrategyConfig

pytestmark = pytest.mark.django_db(transaction=True)
ALICE_CHAT, BOB_CHAT = 7001, 7002
SEOUL = ZoneInfo("Asia/Seoul")
NOW = datetime(2026, 3, 10, 12, 0, tzinfo=SEOUL)


def position(config, *, side="long", qty="0.01", entry="50000000", **fields):
    return Position.objects.create(
        account=config.account, config=config, symbol=config.symbol, side=side,
        quantity=Decimal(qty), entry_price=Decimal(entry), opened_at=NOW - timedelta(hours=2),
        **fields,
    )


@pytest.fixture
def world(symbol, paper, make_config, make_trader, make_account, settings):
    settings.TIME_ZONE = "Asia/Seoul"
    alice = paper.owner
    store(symbol, [51_000_000.0, 52_000_000.0])  # last close 52,000,000 KRW
    trend = make_config(paper, name="trend")
    dip = make_config(paper, name="dip", is_active=False)
    fund(paper, "BTC", "0.01")  # the open long's coins (a paper spot account holds them)
    position(trend)
    # Closed positions: today (+1,000), yesterday (-250.5), 10 days ago (+3,000),
    # 40 days ago (+99,999: outside every window).
    for days, pnl in ((0, "1000"), (1, "-250.5"), (10, "3000"), (40, "99999")):
        position(dip, realized_pnl=Decimal(pnl), closed_at=NOW - timedelta(days=days, hours=1),
                 close_reason="signal")
    bob = make_trader("bob")
    bob_account = make_account(bob, label="bob-paper")
    fund(bob_account, "KRW", "500000")
    bob_config = make_config(bob_account, name="bob-trend")
    fund(bob_account, "BTC", "0.01")
    position(bob_config)
    TelegramLink.objects.create(user=alice, chat_id=ALICE_CHAT)
    TelegramLink.objects.create(user=bob, chat_id=BOB_CHAT)
    return dict(alice=alice, bob=bob, paper=paper, bob_account=bob_account, trend=trend,
                dip=dip, bob_config=bob_config)


def ask(chat_id, text):
    name, *args = text.lstrip("/").split()
    return commands.handle_command(chat_id=chat_id, chat_type="private", command=name,
                                   args=args)


def test_status_lists_open_positions_with_pnl(world):
    text = ask(ALICE_CHAT, "/status").text
    assert "Open positions (1):" in text
    assert "KRW-BTC long 0.01 @ 50,000,000.00 (trend, alice-paper)" in text
    # (52,000,000 - 50,000,000) x 0.01 = +20,000 KRW, +4% of the cost.
    assert "last 52,000,000.00  PnL +20,000.00 KRW (+4.00%)" in text
    assert "Unrealized: +20,000.00 KRW" in text
    assert "bob" not in text


def test_balance_values_each_account(world):
    text = ask(ALICE_CHAT, "/balance").text
    # 1,000,000 KRW + 0.01 BTC at 52,000,000.
    assert "alice-paper (Simulator, paper)" in text
    assert "equity 1,520,000.00 KRW, cash 1,000,000.00 KRW" in text
    assert "BTC: 0.01" in text
    assert "bob-paper" not in text


def test_profit_sums_closed_positions_today_7_and_30_days(world):
    text = reports.profit(world["alice"], now=NOW)
    assert "Today: +1,000.00 KRW (1 closed)" in text
    assert "Last 7 days: +749.50 KRW (2 closed)" in text
    assert "Last 30 days: +3,749.50 KRW (3 closed)" in text


def test_daily_lists_each_day_newest_first(world):
    text = reports.daily(world["alice"], 3, now=NOW)
    lines = text.splitlines()
    assert lines[1:] == [
        "2026-03-10: +1,000.00 KRW (1 closed)",
        "2026-03-09: -250.50 KRW (1 closed)",
        "2026-03-08: 0 (0 closed)",
    ]
    assert "1 to 31" in ask(ALICE_CHAT, "/daily 400").text
    assert "number of days" in ask(ALICE_CHAT, "/daily x").text


def test_configs_says_which_are_on(world):
    text = ask(ALICE_CHAT, "/configs").text
    assert text.splitlines() == [
        "Configs (1 of 2 on):",
        "ON  trend: test_script KRW-BTC 1m, alice-paper",
        "off dip: test_script KRW-BTC 1m, alice-paper",
    ]


def test_stop_asks_first_and_halts_only_the_linked_users_trading(world):
    prompt = ask(ALICE_CHAT, "/stop")
    labels = [label for row in prompt.buttons for label, _ in row]
    assert labels == ["Stop trading", "Stop and close all positions", "Cancel"]
    assert "1 active config(s)" in prompt.text
    # Asking changed nothing.
    assert StrategyConfig.objects.get(pk=world["trend"].pk).is_active

    data = dict(b for row in prompt.buttons for b in row)
    stamp = int(data["Cancel"].rsplit(":", 1)[1])
    cancelled = commands.handle_button(chat_id=ALICE_CHAT, chat_type="private",
                                       data=data["Cancel"], now=stamp)
    assert cancelled.text.startswith("Cancelled")
    assert StrategyConfig.objects.get(pk=world["trend"].pk).is_active

    stale = commands.handle_button(chat_id=ALICE_CHAT, chat_type="private",
                                   data=data["Stop and close all positions"],
                                   now=stamp + commands.CONFIRM_S + 1)
    assert "older than" in stale.text
    assert StrategyConfig.objects.get(pk=world["trend"].pk).is_active

    done = commands.handle_button(chat_id=ALICE_CHAT, chat_type="private",
                                  data=data["Stop and close all positions"], now=stamp + 5)
    assert done.text.startswith("Kill switch: deactivated 1 config(s), halted 1 account(s)")
    assert "closed 1 position(s)" in done.text
    assert not StrategyConfig.objects.get(pk=world["trend"].pk).is_active
    assert Account.objects.get(pk=world["paper"].pk).halted
    assert not Position.objects.filter(account=world["paper"], closed_at__isnull=True).exists()
    # Bob's trading goes on.
    assert StrategyConfig.objects.get(pk=world["bob_config"].pk).is_active
    assert not Account.objects.get(pk=world["bob_account"].pk).halted
    assert Position.objects.filter(account=world["bob_account"], closed_at__isnull=True).exists()

    # /resume lifts the halt on Alice's account only; her configs stay off.
    resumed = ask(ALICE_CHAT, "/resume").text
    assert resumed.startswith("Resumed 1 account(s): alice-paper")
    assert not Account.objects.get(pk=world["paper"].pk).halted
    assert not StrategyConfig.objects.get(pk=world["trend"].pk).is_active
    assert "nothing to resume" in ask(ALICE_CHAT, "/resume").text


def test_a_button_press_from_another_linked_chat_stops_that_chats_user_only(world):
    """The button acts for the chat that presses it, whatever message it sits under."""
    prompt = ask(ALICE_CHAT, "/stop")
    data = dict(b for row in prompt.buttons for b in row)["Stop trading"]
    stamp = int(data.rsplit(":", 1)[1])
    commands.handle_button(chat_id=BOB_CHAT, chat_type="private", data=data, now=stamp)
    assert not StrategyConfig.objects.get(pk=world["bob_config"].pk).is_active
    assert StrategyConfig.objects.get(pk=world["trend"].pk).is_active
    assert not Account.objects.get(pk=world["paper"].pk).halted


@pytest.mark.parametrize("data", ["", "stop", "stop:all", "stop:keep:soon", "close:keep:1",
                                  "stop:keep:1:2"])
def test_a_malformed_button_stops_nothing(world, data):
    reply = commands.handle_button(chat_id=ALICE_CHAT, chat_type="private", data=data)
    assert "nothing was stopped" in reply.text or "not known" in reply.text
    assert StrategyConfig.objects.get(pk=world["trend"].pk).is_active


def test_help_and_unknown_commands(world):
    assert "/status" in ask(ALICE_CHAT, "/help").text
    assert ask(ALICE_CHAT, "/frobnicate").text.startswith("Unknown command /frobnicate")


def trading_state():
    return (sorted(StrategyConfig.objects.values_list("pk", "is_active")),
            sorted(Account.objects.values_list("pk", "halted")),
            Position.objects.filter(closed_at__isnull=True).count())


WORD = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)


@settings(max_examples=80, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(command=WORD, args=st.lists(WORD, max_size=4), data=WORD,
       chat=st.sampled_from([ALICE_CHAT, 1, -100]), chat_type=st.sampled_from(
           ["private", "group", "supergroup", "channel", ""]))
def test_no_hostile_message_or_button_data_stops_trading_or_fails(world, command, args, data,
                                                                  chat, chat_type):
    """Whatever a chat sends (any command, arguments, button data), the answer is a text and
    trading is unchanged: only a linked chat's press of a fresh /stop button stops anything."""
    before = trading_state()
    if command.lower() in ("unlink", "start", "link"):
        command = "x" + command
    reply = commands.handle_command(chat_id=chat, chat_type=chat_type, command=command,
                                    args=args)
    assert isinstance(reply.text, str) and reply.text
    pressed = commands.handle_button(chat_id=chat, chat_type=chat_type, data=data)
    assert isinstance(pressed.text, str) and pressed.text
    assert trading_state() == before
