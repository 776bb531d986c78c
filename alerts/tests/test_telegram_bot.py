"""The real bot (python-telegram-bot's Application, long polling) against the local fake Bot API
server: linking, the commands' answers, /stop's confirmation halting only the linked user's
trading, the refusal of an unlinked chat, and a used or expired code."""

from __future__ import annotations

import asyncio
import threading
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from alerts.telegram import bot, commands, linking
from alerts.telegram.models import TelegramLinkCode
from markets.models import Account
from orders.models import Position
from orders.tests.conftest import fund, store
from strategies.models import StrategyConfig

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]
ALICE_CHAT, BOB_CHAT, STRANGER = 8801, 8802, 8803


@pytest.fixture
def running_bot(telegram_settings, fake_telegram, scheduled):
    """The bot's own serve() loop in a thread, polling the fake server (1 s long polls)."""
    application = bot.build_application()
    loop = asyncio.new_event_loop()
    box: dict = {}
    ready = threading.Event()

    def run():
        asyncio.set_event_loop(loop)

        async def main():
            box["stop"] = asyncio.Event()
            ready.set()
            await bot.serve(application, box["stop"], poll_timeout=1)

        try:
            loop.run_until_complete(main())
        except BaseException as exc:  # surfaced by the fixture's teardown
            box["error"] = exc
            ready.set()

    thread = threading.Thread(target=run, name="telegram-bot", daemon=True)
    thread.start()
    assert ready.wait(10)
    fake_telegram.wait_for(lambda: any(m == "getUpdates" for m, _ in fake_telegram.calls),
                           what="the bot's first getUpdates")
    yield application
    if "stop" in box:
        loop.call_soon_threadsafe(box["stop"].set)
    thread.join(20)
    assert not thread.is_alive(), "the bot did not stop"
    assert "error" not in box, box.get("error")
    assert fake_telegram.unknown == []


@pytest.fixture
def world(symbol, paper, make_config, make_trader, make_account):
    alice = paper.owner
    store(symbol, [50_000_000.0, 51_000_000.0])
    config = make_config(paper, name="trend")
    fund(paper, "BTC", "0.02")
    Position.objects.create(account=paper, config=config, symbol=symbol, side="long",
                            quantity=Decimal("0.02"), entry_price=Decimal("50000000"),
                            opened_at=timezone.now())
    bob = make_trader("bob")
    bob_account = make_account(bob, label="bob-paper")
    fund(bob_account, "KRW", "500000")
    bob_config = make_config(bob_account, name="bob-trend")
    return dict(alice=alice, bob=bob, paper=paper, config=config, bob_account=bob_account,
                bob_config=bob_config)


def converse(fake, chat_id, text, **kwargs):
    """Say ``text`` from ``chat_id`` and wait for the bot's answer."""
    before = len(fake.messages_to(chat_id))
    fake.say(chat_id, text, **kwargs)
    return fake.wait_for_message(chat_id, after=before)


def link(fake, user, chat_id):
    code, _ = linking.new_code(user)
    answer = converse(fake, chat_id, f"/start {code}")
    assert answer.text.startswith("Linked"), answer.text
    return code


def test_the_bot_links_a_chat_and_answers_its_commands(world, fake_telegram, running_bot):
    fake = fake_telegram
    # The menu was registered, and the bot asks only for what it handles.
    assert ("setMyCommands" in [m for m, _ in fake.calls])
    polls = [p for m, p in fake.calls if m == "getUpdates"]
    assert polls[0]["allowed_updates"] == ["message", "callback_query"]

    assert converse(fake, ALICE_CHAT, "/status").text == linking.REFUSAL
    code = link(fake, world["alice"], ALICE_CHAT)

    status = converse(fake, ALICE_CHAT, "/status").text
    assert "KRW-BTC long 0.02 @ 50,000,000.00 (trend, alice-paper)" in status
    assert "PnL +20,000.00 KRW (+2.00%)" in status
    # 1,000,000 KRW cash + 0.02 BTC at 51,000,000.
    assert "equity 2,020,000.00 KRW" in converse(fake, ALICE_CHAT, "/balance").text
    assert "Today: 0 (0 closed)" in converse(fake, ALICE_CHAT, "/profit").text
    assert "last 7 day(s)" in converse(fake, ALICE_CHAT, "/daily").text
    assert "ON  trend:" in converse(fake, ALICE_CHAT, "/configs").text
    assert converse(fake, ALICE_CHAT, "/help").text == commands.HELP
    # A command addressed to this bot by name works.
    assert "ON  trend:" in converse(
        fake, ALICE_CHAT, f"/configs@{fake.bot['username']}").text

    # The code is spent: another chat cannot use it; an unlinked chat is refused everything.
    assert "already used" in converse(fake, STRANGER, f"/start {code}").text
    assert converse(fake, STRANGER, "/balance").text == linking.REFUSAL
    assert converse(fake, STRANGER, "hello").text == linking.REFUSAL
    assert all("alice" not in m.text for m in fake.messages_to(STRANGER))


def test_an_expired_code_is_refused_by_the_bot(world, fake_telegram, running_bot):
    code, row = linking.new_code(world["alice"])
    TelegramLinkCode.objects.filter(pk=row.pk).update(
        expires_at=timezone.now() - timedelta(seconds=1))
    assert "expired" in converse(fake_telegram, ALICE_CHAT, f"/start {code}").text
    assert converse(fake_telegram, ALICE_CHAT, "/status").text == linking.REFUSAL


def test_stop_with_its_button_halts_only_the_linked_users_trading(world, fake_telegram,
                                                                  running_bot):
    fake = fake_telegram
    link(fake, world["alice"], ALICE_CHAT)
    link(fake, world["bob"], BOB_CHAT)

    prompt = converse(fake, ALICE_CHAT, "/stop")
    assert [label for label, _ in prompt.buttons] == [
        "Stop trading", "Stop and close all positions", "Cancel"]
    assert StrategyConfig.objects.get(pk=world["config"].pk).is_active  # asking stops nothing

    # A stranger pressing the same button data is refused and stops nothing.
    fake.press_data(STRANGER, prompt.message_id, prompt.buttons[1][1])
    assert fake.wait_for_edit(STRANGER).text == linking.REFUSAL
    assert StrategyConfig.objects.get(pk=world["config"].pk).is_active

    fake.press(prompt, "Stop and close all positions")
    done = fake.wait_for_edit(ALICE_CHAT)
    assert done.message_id == prompt.message_id
    assert done.text.startswith("Kill switch: deactivated 1 config(s), halted 1 account(s)")
    assert "closed 1 position(s)" in done.text
    assert done.reply_markup is None  # the buttons are gone
    assert len(fake.answered) == 2  # each press was answered (the client's spinner stops)

    assert not StrategyConfig.objects.get(pk=world["config"].pk).is_active
    assert Account.objects.get(pk=world["paper"].pk).halted
    assert not Position.objects.filter(account=world["paper"], closed_at__isnull=True).exists()
    # Bob keeps trading.
    assert StrategyConfig.objects.get(pk=world["bob_config"].pk).is_active
    assert not Account.objects.get(pk=world["bob_account"].pk).halted
    assert "nothing to resume" in converse(fake, BOB_CHAT, "/resume").text

    assert converse(fake, ALICE_CHAT, "/resume").text.startswith("Resumed 1 account(s)")
    assert not Account.objects.get(pk=world["paper"].pk).halted


def test_commands_for_another_bot_and_plain_text_are_told_apart():
    assert bot.parse_command("/status", "ThisBot") == ("status", [])
    assert bot.parse_command("/daily@thisbot 14", "ThisBot") == ("daily", ["14"])
    assert bot.parse_command("/status@OtherBot", "ThisBot") is None
    assert bot.parse_command("hello /status", "ThisBot") is None
    assert bot.parse_command("/", "ThisBot") is None
