"""The thin python-telegram-bot adapter: long polling, one handler for commands, one for the
/stop buttons. Every decision is in ``alerts.telegram.commands`` (run in a thread through
``sync_to_async``, with the ORM); this module only reads the update and sends the reply.

The API server is ``settings.TELEGRAM_API_BASE_URL`` (tests point it at
``alerts.tests.fake_telegram``); the token is ``settings.TELEGRAM_BOT_TOKEN`` and never leaves
the process: errors are logged with it replaced by ``<token>``.
"""

from __future__ import annotations

import asyncio
import logging

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import close_old_connections, connections
from telegram import BotCommand, InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.error import TelegramError
from telegram.ext import (
    Application,
    ApplicationBuilder,
    CallbackQueryHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

from alerts.telegram import commands

log = logging.getLogger(__name__)


def token() -> str:
    value = (getattr(settings, "TELEGRAM_BOT_TOKEN", "") or "").strip()
    if not value:
        raise ImproperlyConfigured(
            "TELEGRAM_BOT_TOKEN is not set: create a bot with @BotFather and put its token in "
            "the environment (see README, Telegram)"
        )
    return value


def api_urls(base: str | None = None) -> tuple[str, str]:
    """python-telegram-bot's ``base_url`` and ``base_file_url`` for an API server root
    (the token is appended to each by the library)."""
    base = (base or getattr(settings, "TELEGRAM_API_BASE_URL", "") or
            "https://api.telegram.org").rstrip("/")
    return f"{base}/bot", f"{base}/file/bot"


def redact(text: str, secret: str | None = None) -> str:
    """``text`` without the bot token (the library puts it in some error messages)."""
    secret = secret if secret is not None else getattr(settings, "TELEGRAM_BOT_TOKEN", "")
    return text.replace(secret, "<token>") if secret else text


def _run(fn, **kwargs):
    """Run a command function in the ORM thread, with fresh database connections."""
    close_old_connections()
    try:
        return fn(**kwargs)
    finally:
        close_old_connections()


def markup(reply: commands.Reply) -> InlineKeyboardMarkup | None:
    if not reply.buttons:
        return None
    return InlineKeyboardMarkup(
        [[InlineKeyboardButton(label, callback_data=data) for label, data in row]
         for row in reply.buttons]
    )


def parse_command(text: str, bot_username: str | None) -> tuple[str, list[str]] | None:
    """``("status", [])`` for "/status" or "/status@ThisBot"; None for a command addressed
    to another bot or for text that is no command."""
    words = (text or "").split()
    if not words or not words[0].startswith("/") or len(words[0]) < 2:
        return None
    name, _, addressee = words[0][1:].partition("@")
    if addressee and bot_username and addressee.lower() != bot_username.lower():
        return None
    return name, words[1:]


async def on_message(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    message, chat = update.effective_message, update.effective_chat
    if message is None or chat is None:
        return
    parsed = parse_command(message.text or "", context.bot.username)
    if parsed is None:
        parsed = ("help", [])  # plain text: the help (or, unlinked, the refusal)
    name, args = parsed
    user = update.effective_user
    reply = await sync_to_async(_run)(
        commands.handle_command, chat_id=chat.id, chat_type=chat.type, command=name,
        args=args, username=(user.username or "") if user else "",
    )
    await message.reply_text(reply.text, reply_markup=markup(reply))


async def on_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    query = update.callback_query
    if query is None:
        return
    await query.answer()
    message = query.message
    if message is None or message.chat is None:
        return
    reply = await sync_to_async(_run)(
        commands.handle_button, chat_id=message.chat.id, chat_type=message.chat.type,
        data=query.data or "",
    )
    await query.edit_message_text(reply.text, reply_markup=markup(reply))


async def on_error(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
    error = context.error
    log.error("telegram bot: %s: %s", type(error).__name__, redact(str(error)))


def build_application(*, bot_token: str | None = None, base_url: str | None = None,
                      ) -> Application:
    bot_token = bot_token or token()
    api, files = api_urls(base_url)
    application = (
        ApplicationBuilder().token(bot_token).base_url(api).base_file_url(files).build()
    )
    application.add_handler(CallbackQueryHandler(on_button))
    application.add_handler(MessageHandler(filters.ALL & ~filters.UpdateType.EDITED, on_message))
    application.add_error_handler(on_error)
    return application


async def serve(application: Application, stop: asyncio.Event, *,
                poll_timeout: float = 30, set_menu: bool = True) -> None:
    """Long-poll until ``stop`` is set (the ``telegram_bot`` command and the tests)."""
    async with application:  # getMe: a wrong token fails here, loudly
        if set_menu:
            try:
                await application.bot.set_my_commands(
                    [BotCommand(name, text) for name, text in commands.MENU]
                )
            except TelegramError as exc:  # a menu is a nicety: the commands work without it
                log.warning("telegram bot: could not set the command menu: %s",
                            redact(str(exc)))
        await application.updater.start_polling(
            timeout=poll_timeout, allowed_updates=["message", "callback_query"],
            error_callback=lambda exc: log.warning("telegram bot: polling: %s",
                                                   redact(str(exc))),
        )
        await application.start()
        log.info("telegram bot @%s: polling %s", application.bot.username, api_urls()[0])
        try:
            await stop.wait()
        finally:
            await application.updater.stop()
            await application.stop()
            # The commands' database connections live in the ORM thread: close them there.
            await sync_to_async(connections.close_all)()
