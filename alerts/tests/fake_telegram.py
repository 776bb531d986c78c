"""A local fake of the Telegram Bot API, for tests: the bot library's base URL points here.

It serves, on 127.0.0.1 in a thread of its own (so a bot in another thread or process, or a
Celery worker, reaches it over real HTTP), the methods python-telegram-bot calls: ``getMe``,
``getUpdates`` (long polling with ``offset`` and ``timeout``), ``sendMessage``,
``editMessageText``, ``answerCallbackQuery``, ``deleteWebhook``, ``setMyCommands``, ``close``.
Any other method answers 404 and is recorded in ``unknown``. A request with another token
answers 401.

Tests play the user: :meth:`FakeTelegram.say` puts a message from a chat in the update queue,
:meth:`FakeTelegram.press` a button press; :attr:`sent` holds every ``sendMessage``,
:meth:`wait_for_message` waits (no fixed sleep) until one to a chat arrives.

Reuse: under ``alerts/tests`` the fixtures ``fake_telegram`` and ``telegram_settings`` come
from its conftest. Elsewhere (e.g. as one more receiver of an end-to-end alert test)::

    from alerts.tests.fake_telegram import fake_telegram, telegram_settings  # noqa: F401

    TelegramLink.objects.create(user=user, chat_id=42)   # the user's linked chat
    Channel.objects.create(owner=user, name="tg", kind=Channel.Kind.TELEGRAM)
    # a worker in another process needs the same two settings in its environment:
    env |= {"TELEGRAM_BOT_TOKEN": fake.token, "TELEGRAM_API_BASE_URL": fake.base_url}
    ...
    assert [m.text for m in fake.messages_to(42)] == ["Price alert\n..."]  # exactly once
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import threading
import time
from dataclasses import dataclass, field

import pytest
from aiohttp import web

TOKEN = "123456789:TEST-fake-token_for-tests-only"
BOT_ID = 123456789


@dataclass
class Sent:
    chat_id: int
    text: str
    message_id: int
    reply_markup: dict | None = None
    params: dict = field(default_factory=dict)
    at_ms: int = field(default_factory=lambda: int(time.time() * 1000))  # when it arrived

    @property
    def buttons(self) -> list[tuple[str, str]]:
        rows = (self.reply_markup or {}).get("inline_keyboard") or []
        return [(b.get("text", ""), b.get("callback_data", "")) for row in rows for b in row]


class FakeTelegram:
    def __init__(self, token: str = TOKEN, username: str = "tradesite_test_bot") -> None:
        self.token = token
        self.bot = {"id": BOT_ID, "is_bot": True, "first_name": "tradesite test",
                    "username": username}
        self.sent: list[Sent] = []
        self.edits: list[Sent] = []
        self.answered: list[str] = []
        self.calls: list[tuple[str, dict]] = []
        self.unknown: list[str] = []
        #: Chats that blocked the bot: sendMessage to them answers 403.
        self.blocked: set[int] = set()
        self._updates: list[dict] = []
        self._ids = itertools.count(1)
        self._message_ids = itertools.count(1000)
        self._chats: dict[int, dict] = {}
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._changed: asyncio.Condition | None = None
        self._ready = threading.Event()
        self._stopping: asyncio.Event | None = None
        self.port = 0
        self._thread = threading.Thread(target=self._serve, name="fake-telegram", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the fake Telegram server did not start within 10 s")

    # ------------------------------------------------------------------ server

    @property
    def base_url(self) -> str:
        """The API root to configure (``TELEGRAM_API_BASE_URL``)."""
        return f"http://127.0.0.1:{self.port}"

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._main())

    async def _main(self) -> None:
        self._changed = asyncio.Condition()
        self._stopping = asyncio.Event()
        app = web.Application()
        app.router.add_route("*", "/bot{token}/{method}", self._handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]
        self._ready.set()
        await self._stopping.wait()
        async with self._changed:
            self._changed.notify_all()
        await runner.cleanup()

    def close(self) -> None:
        if self._stopping is not None:
            self._loop.call_soon_threadsafe(self._stopping.set)
        self._thread.join(10)

    async def _params(self, request: web.Request) -> dict:
        params: dict = dict(request.query)
        if request.content_type == "application/json":
            params.update(await request.json())
        elif request.can_read_body:
            params.update({k: v for k, v in (await request.post()).items()
                           if isinstance(v, str)})
        for key, value in list(params.items()):
            if isinstance(value, str) and value[:1] in "[{":
                with contextlib.suppress(ValueError):
                    params[key] = json.loads(value)
        return params

    async def _handle(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return web.json_response(
                {"ok": False, "error_code": 401, "description": "Unauthorized"}, status=401)
        method = request.match_info["method"]
        params = await self._params(request)
        with self._lock:
            self.calls.append((method, params))
        handler = getattr(self, f"_m_{method.lower()}", None)
        if handler is None:
            with self._lock:
                self.unknown.append(method)
            return web.json_response(
                {"ok": False, "error_code": 404, "description": "Not Found"}, status=404)
        result = await handler(params)
        if isinstance(result, web.Response):
            return result
        return web.json_response({"ok": True, "result": result})

    # ----------------------------------------------------------------- methods

    async def _m_getme(self, params):
        return self.bot

    async def _m_deletewebhook(self, params):
        return True

    async def _m_setmycommands(self, params):
        return True

    async def _m_close(self, params):
        return True

    async def _m_getupdates(self, params):
        offset = int(params.get("offset") or 0)
        timeout = float(params.get("timeout") or 0)
        limit = int(params.get("limit") or 100)
        deadline = self._loop.time() + min(timeout, 50)
        async with self._changed:
            while True:
                with self._lock:
                    if offset:  # confirmed: Telegram forgets updates below the offset
                        self._updates = [u for u in self._updates if u["update_id"] >= offset]
                    ready = list(self._updates[:limit])
                remaining = deadline - self._loop.time()
                if ready or remaining <= 0 or self._stopping.is_set():
                    return ready
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), remaining)

    def _message(self, chat_id: int, text: str, markup=None, **extra) -> dict:
        chat = self._chats.get(chat_id) or {"id": chat_id, "type": "private"}
        message = {"message_id": next(self._message_ids), "date": int(time.time()),
                   "chat": chat, "from": self.bot, "text": text, **extra}
        if markup:
            message["reply_markup"] = markup
        return message

    async def _m_sendmessage(self, params):
        chat_id = int(params["chat_id"])
        text = str(params.get("text", ""))
        if chat_id in self.blocked:
            return web.json_response({"ok": False, "error_code": 403,
                                      "description": "Forbidden: bot was blocked by the user"},
                                     status=403)
        if not text:
            return web.json_response({"ok": False, "error_code": 400,
                                      "description": "Bad Request: message text is empty"},
                                     status=400)
        message = self._message(chat_id, text, params.get("reply_markup"))
        with self._lock:
            self.sent.append(Sent(chat_id, text, message["message_id"],
                                  params.get("reply_markup"), params))
        return message

    async def _m_editmessagetext(self, params):
        chat_id = int(params["chat_id"])
        message = self._message(chat_id, str(params.get("text", "")),
                                params.get("reply_markup"))
        message["message_id"] = int(params["message_id"])
        with self._lock:
            self.edits.append(Sent(chat_id, message["text"], message["message_id"],
                                   params.get("reply_markup"), params))
        return message

    async def _m_answercallbackquery(self, params):
        with self._lock:
            self.answered.append(str(params.get("callback_query_id")))
        return True

    # ------------------------------------------------------------ the test's side

    def _push(self, update: dict) -> int:
        with self._lock:
            self._updates.append(update)

        async def notify():
            async with self._changed:
                self._changed.notify_all()

        asyncio.run_coroutine_threadsafe(notify(), self._loop).result(5)
        return update["update_id"]

    def _user(self, chat_id: int, username: str) -> dict:
        return {"id": abs(chat_id), "is_bot": False, "first_name": username or "user",
                "username": username}

    def say(self, chat_id: int, text: str, *, chat_type: str = "private",
            username: str = "trader") -> int:
        """A message from ``chat_id`` to the bot; its update id."""
        chat = {"id": chat_id, "type": chat_type}
        if chat_type == "private":
            chat |= {"first_name": username, "username": username}
        else:
            chat["title"] = "a group"
        self._chats[chat_id] = chat
        message = {"message_id": next(self._message_ids), "date": int(time.time()),
                   "chat": chat, "from": self._user(chat_id, username), "text": text}
        if text.startswith("/"):
            message["entities"] = [{"type": "bot_command", "offset": 0,
                                    "length": len(text.split()[0])}]
        return self._push({"update_id": next(self._ids), "message": message})

    def press(self, sent: Sent, label: str, *, username: str = "trader") -> int:
        """A press of the button labelled ``label`` under the bot's message ``sent``."""
        data = dict(sent.buttons).get(label)
        if data is None:
            raise AssertionError(f"no button {label!r} under the message; it has {sent.buttons}")
        return self.press_data(sent.chat_id, sent.message_id, data, text=sent.text,
                               username=username)

    def press_data(self, chat_id: int, message_id: int, data: str, *, text: str = "",
                   username: str = "trader") -> int:
        chat = self._chats.get(chat_id) or {"id": chat_id, "type": "private"}
        update_id = next(self._ids)
        return self._push({"update_id": update_id, "callback_query": {
            "id": f"cb{update_id}", "from": self._user(chat_id, username),
            "chat_instance": f"ci{chat_id}", "data": data,
            "message": {"message_id": message_id, "date": int(time.time()), "chat": chat,
                        "from": self.bot, "text": text or "?"},
        }})

    def messages_to(self, chat_id: int) -> list[Sent]:
        with self._lock:
            return [m for m in self.sent if m.chat_id == chat_id]

    def wait_for(self, predicate, timeout: float = 15.0, what: str = "the condition"):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                value = predicate()
            if value:
                return value
            time.sleep(0.02)
        raise AssertionError(f"fake Telegram: {what} did not happen within {timeout} s; "
                             f"sent so far: {[(m.chat_id, m.text[:80]) for m in self.sent]}")

    def wait_for_message(self, chat_id: int, after: int = 0, timeout: float = 15.0) -> Sent:
        """The first message to ``chat_id`` beyond the ``after`` it had already received."""
        return self.wait_for(
            lambda: [m for m in self.sent if m.chat_id == chat_id][after:after + 1],
            timeout, f"a message to chat {chat_id}",
        )[0]

    def wait_for_edit(self, chat_id: int, after: int = 0, timeout: float = 15.0) -> Sent:
        return self.wait_for(
            lambda: [m for m in self.edits if m.chat_id == chat_id][after:after + 1],
            timeout, f"an edited message in chat {chat_id}",
        )[0]


@pytest.fixture
def fake_telegram():
    server = FakeTelegram()
    yield server
    server.close()


@pytest.fixture
def telegram_settings(settings, fake_telegram):
    """Settings pointing the bot and the Telegram channel at the fake server."""
    settings.TELEGRAM_BOT_TOKEN = fake_telegram.token
    settings.TELEGRAM_API_BASE_URL = fake_telegram.base_url
    settings.TELEGRAM_BOT_USERNAME = fake_telegram.bot["username"]
    return settings
