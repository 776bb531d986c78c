"""Linking a Telegram chat with a one-time code: once, before it expires, from a private chat,
to one user; every other chat is refused. Plus the linking page."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alerts.models import Channel
from alerts.telegram import commands, linking
from alerts.telegram.models import TelegramLink, TelegramLinkCode

pytestmark = pytest.mark.django_db
CHAT = 5550001


def send(chat_id, text, chat_type="private"):
    name, *args = text.lstrip("/").split()
    return commands.handle_command(chat_id=chat_id, chat_type=chat_type, command=name,
                                   args=args, username="al").text


def test_a_code_links_the_chat_once_and_only_its_hash_is_stored(trader):
    code, row = linking.new_code(trader)
    assert row.code_hash == hashlib.sha256(code.encode()).hexdigest()
    assert code not in str(list(TelegramLinkCode.objects.values()))
    assert linking.user_for_chat(CHAT) is None

    answer = send(CHAT, f"/start {code}")
    assert answer.startswith("Linked")
    assert linking.user_for_chat(CHAT) == trader
    link = TelegramLink.objects.get()
    assert (link.user, link.chat_id, link.username) == (trader, CHAT, "al")
    # The user gets a Telegram alert channel (rules with no channel chosen reach the chat).
    assert Channel.objects.filter(owner=trader, kind=Channel.Kind.TELEGRAM).count() == 1

    # Used: a second chat (or the same) cannot use it again.
    assert "already used" in send(CHAT + 1, f"/start {code}")
    assert linking.user_for_chat(CHAT + 1) is None


def test_an_expired_code_is_refused(trader):
    code, row = linking.new_code(trader)
    later = row.expires_at + timedelta(seconds=1)
    result = linking.redeem(code, chat_id=CHAT, chat_type="private", now=later)
    assert not result.ok and "expired" in result.message
    assert not TelegramLink.objects.exists()
    # ... and it is still spent-proof: the same code just before expiry works.
    result = linking.redeem(code, chat_id=CHAT, chat_type="private",
                            now=row.expires_at - timedelta(seconds=1))
    assert result.ok


def test_a_new_code_spends_the_older_one(trader):
    old, _ = linking.new_code(trader)
    new, _ = linking.new_code(trader)
    assert "already used" in send(CHAT, f"/link {old}")
    assert send(CHAT, f"/link {new}").startswith("Linked")


def test_a_group_chat_cannot_link_or_command(trader):
    code, _ = linking.new_code(trader)
    assert "private chat" in send(-100123, f"/start {code}", chat_type="group")
    assert not TelegramLink.objects.exists()
    TelegramLink.objects.create(user=trader, chat_id=-100123)
    assert send(-100123, "/status", chat_type="group") == linking.REFUSAL


def test_a_chat_linked_to_one_user_cannot_be_taken_by_another(trader, make_trader):
    bob = make_trader("bob")
    TelegramLink.objects.create(user=trader, chat_id=CHAT)
    code, _ = linking.new_code(bob)
    assert "another tradesite user" in send(CHAT, f"/start {code}")
    assert linking.user_for_chat(CHAT) == trader
    # Bob links his own chat; relinking replaces a user's earlier chat.
    assert send(CHAT + 7, f"/start {code}").startswith("Linked")
    code2, _ = linking.new_code(bob)
    assert send(CHAT + 8, f"/start {code2}").startswith("Linked")
    assert linking.user_for_chat(CHAT + 7) is None
    assert linking.user_for_chat(CHAT + 8) == bob


@pytest.mark.parametrize("command", ["status", "balance", "profit", "daily", "configs", "stop",
                                     "resume", "help", "start", "unlink", "nonsense"])
def test_an_unlinked_chat_gets_only_the_refusal(trader, command):
    assert send(CHAT, f"/{command}") == linking.REFUSAL
    pressed = commands.handle_button(chat_id=CHAT, chat_type="private", data="stop:keep:1")
    assert pressed.text == linking.REFUSAL


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(code=st.text(max_size=80))
def test_no_guessed_or_hostile_code_links_a_chat(trader, code):
    linking.new_code(trader)
    result = linking.redeem(code, chat_id=CHAT, chat_type="private")
    assert not result.ok
    assert not TelegramLink.objects.exists()


def test_unlink_ends_the_chats_commands(trader):
    TelegramLink.objects.create(user=trader, chat_id=CHAT)
    assert send(CHAT, "/unlink").startswith("Unlinked")
    assert send(CHAT, "/status") == linking.REFUSAL


def test_the_page_shows_a_code_once_and_never_the_token(trader, settings):
    settings.TELEGRAM_BOT_TOKEN = "999:SECRET-token-not-to-show"
    settings.TELEGRAM_BOT_USERNAME = "tradesite_bot"
    client = Client()
    assert client.get("/alerts/telegram/link").status_code == 302  # login first
    client.force_login(trader)
    page = client.get("/alerts/telegram/link").content.decode()
    assert "No Telegram chat is linked" in page and "telegram-code" not in page
    response = client.post("/alerts/telegram/link")
    page = response.content.decode()
    assert "no-store" in response["Cache-Control"]
    row = TelegramLinkCode.objects.get(user=trader)
    code = page.split('id="telegram-code">/start ')[1].split("<")[0]
    assert hashlib.sha256(code.encode()).hexdigest() == row.code_hash
    assert f"https://t.me/tradesite_bot?start={code}" in page
    assert "SECRET-token" not in page
    assert code not in client.get("/alerts/telegram/link").content.decode()

    assert send(CHAT, f"/start {code}").startswith("Linked")
    assert "Linked to Telegram user @al" in client.get("/alerts/telegram/link").content.decode()
    client.post("/alerts/telegram/unlink")
    assert not TelegramLink.objects.exists()


def test_the_code_expiry_follows_the_setting(trader, settings):
    settings.TELEGRAM_LINK_CODE_TTL_S = 60
    now = timezone.now()
    _, row = linking.new_code(trader, now=now)
    assert row.expires_at == now + timedelta(seconds=60)
