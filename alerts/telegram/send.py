"""Sending a notification to the owner's linked Telegram chat (called by
``alerts.delivery.send`` for a Telegram channel, inside the outbox worker).

Through python-telegram-bot, the library the bot uses, because it takes the API server as a
setting (``TELEGRAM_API_BASE_URL``): apprise's Telegram plugin has api.telegram.org built in,
so it could not be pointed at a local fake server in tests and drills.

Telegram has no idempotency key: the outbox's claim and lease make a send happen once, except
when a worker dies between Telegram's answer and the ``sent`` mark, where the lease's retry
sends it again (at least once, never lost).
"""

from __future__ import annotations

import asyncio
import threading

from telegram import Bot
from telegram.error import BadRequest, Forbidden, InvalidToken, RetryAfter, TelegramError
from telegram.request import HTTPXRequest

from alerts.models import Notification
from alerts.telegram import bot as adapter
from alerts.telegram import linking


class SendError(Exception):
    """A send that did not go through (the outbox stores the message as the row's error)."""


#: A Telegram message holds at most 4,096 characters.
MAX_TEXT = 4096


def text_of(row: Notification) -> str:
    text = row.title if not row.body else f"{row.title}\n{row.body}"
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"


async def send_text(bot_token: str, chat_id: int, text: str, base_url: str | None = None) -> int:
    """Send ``text`` to ``chat_id``; the message id Telegram gave it."""
    api, files = adapter.api_urls(base_url)
    request = HTTPXRequest(connect_timeout=5.0, read_timeout=10.0, write_timeout=10.0)
    bot = Bot(bot_token, base_url=api, base_file_url=files, request=request)
    async with bot:
        message = await bot.send_message(chat_id, text, disable_web_page_preview=True)
    return message.message_id


def run(coro):
    """Run ``coro`` to completion from sync code, also when the calling thread already runs
    an event loop (then in a thread of its own)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    box: dict = {}

    def target():
        try:
            box["value"] = asyncio.run(coro)
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=target, name="telegram-send")
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box.get("value")


def send_telegram(row: Notification) -> None:
    try:
        bot_token = adapter.token()
    except Exception as exc:
        raise SendError(f"no Telegram bot is configured on this server: {exc}") from None
    chat_id = linking.chat_of(row.owner_id)
    if chat_id is None:
        raise SendError("no Telegram chat is linked to this user: make a linking code on the "
                        "Telegram page and send /start CODE to the bot")
    try:
        run(send_text(bot_token, chat_id, text_of(row)))
    except Forbidden as exc:
        raise SendError("Telegram refused: the bot was blocked or removed from the chat; "
                        f"open the bot and press Start ({adapter.redact(exc.message)})") from None
    except InvalidToken:
        raise SendError("Telegram refused the bot token: check TELEGRAM_BOT_TOKEN") from None
    except RetryAfter as exc:
        raise SendError(f"Telegram asks to wait {exc.retry_after} before sending more"
                        ) from None
    except BadRequest as exc:
        raise SendError(f"Telegram refused the message: {adapter.redact(exc.message)}") from None
    except TelegramError as exc:
        raise SendError(f"Telegram did not answer: {adapter.redact(str(exc))}") from None
