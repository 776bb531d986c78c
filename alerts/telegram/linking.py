"""Linking a Telegram chat to a user with a one-time code.

The web app makes a code for the logged-in user (:func:`new_code`); the user sends
``/start CODE`` (or ``/link CODE``) to the bot from a private chat; :func:`redeem` spends the
code (one conditional UPDATE: of two chats sending it only one wins) and links that chat. Only
the code's SHA-256 is stored. Every other chat is refused by :func:`user_for_chat`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import secrets
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from alerts.models import Channel
from alerts.telegram.models import TelegramLink, TelegramLinkCode

#: What a code looks like (``secrets.token_urlsafe(16)``: 22 characters of [A-Za-z0-9_-],
#: which a t.me/<bot>?start=<code> deep link carries unchanged).
CODE_RE = re.compile(r"^[A-Za-z0-9_-]{16,64}$")

REFUSAL = (
    "This chat is not linked to a tradesite account, so it cannot command the bot. "
    "Open tradesite → Alerts → Telegram, make a linking code and send /start CODE here."
)


@dataclasses.dataclass(frozen=True)
class Redeemed:
    ok: bool
    message: str
    user_id: int | None = None


def _hash(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()


def ttl_s() -> float:
    return float(getattr(settings, "TELEGRAM_LINK_CODE_TTL_S", 600))


def new_code(user, now=None) -> tuple[str, TelegramLinkCode]:
    """A fresh code for ``user`` (shown once; only its hash is kept). Older unused codes of
    the user are spent, so at most one is ever valid."""
    now = now or timezone.now()
    code = secrets.token_urlsafe(16)
    with transaction.atomic():
        TelegramLinkCode.objects.filter(user=user, used_at__isnull=True).update(used_at=now)
        row = TelegramLinkCode.objects.create(
            user=user, code_hash=_hash(code), expires_at=now + timedelta(seconds=ttl_s())
        )
    return code, row


def redeem(code: str, *, chat_id: int, chat_type: str, username: str = "",
           now=None) -> Redeemed:
    """Link the private chat ``chat_id`` to the owner of ``code``, if the code is valid,
    unexpired and unused. Refusals name the reason a trader can act on."""
    now = now or timezone.now()
    code = (code or "").strip()
    if chat_type != "private":
        return Redeemed(False, "Link the bot from a private chat with it, not from a group or "
                               "channel: anyone there could command your trading.")
    if not CODE_RE.match(code):
        return Redeemed(False, "Send /start followed by the linking code the tradesite page "
                               "shows (for example /start AbC123...).")
    owner = TelegramLink.objects.filter(chat_id=chat_id).values_list("user_id", flat=True).first()
    with transaction.atomic():
        row = TelegramLinkCode.objects.select_for_update().filter(code_hash=_hash(code)).first()
        if row is None:
            return Redeemed(False, "This linking code is not known: make a new one on the "
                                   "tradesite Telegram page.")
        if row.used_at is not None:
            return Redeemed(False, "This linking code was already used: make a new one on the "
                                   "tradesite Telegram page.")
        if row.expires_at <= now:
            return Redeemed(False, "This linking code has expired (codes last "
                                   f"{int(ttl_s() // 60)} minutes): make a new one.")
        if owner is not None and owner != row.user_id:
            return Redeemed(False, "This chat is already linked to another tradesite user: "
                                   "send /unlink first.")
        if not TelegramLinkCode.objects.filter(pk=row.pk, used_at__isnull=True).update(
            used_at=now
        ):
            return Redeemed(False, "This linking code was already used: make a new one.")
        try:
            with transaction.atomic():
                TelegramLink.objects.update_or_create(
                    user_id=row.user_id,
                    defaults={"chat_id": chat_id, "username": (username or "")[:64]},
                )
        except IntegrityError:  # the chat was linked to someone else meanwhile
            return Redeemed(False, "This chat is already linked to another tradesite user: "
                                   "send /unlink first.")
        created = _ensure_channel(row.user_id)
    text = "Linked: this chat now commands your tradesite trading. Send /help for the commands."
    if created:
        text += (" A Telegram alert channel was added: rules with no channel chosen are sent "
                 "here too.")
    return Redeemed(True, text, row.user_id)


def _ensure_channel(user_id: int) -> bool:
    """Give the user a Telegram alert channel if they have none; True when one was made."""
    if Channel.objects.filter(owner_id=user_id, kind=Channel.Kind.TELEGRAM).exists():
        return False
    Channel.objects.create(owner_id=user_id, name="Telegram", kind=Channel.Kind.TELEGRAM)
    return True


def user_for_chat(chat_id: int, chat_type: str = "private"):
    """The user linked to ``chat_id`` (a private chat), or None: the bot then refuses."""
    if chat_type != "private":
        return None
    link = TelegramLink.objects.select_related("user").filter(chat_id=chat_id).first()
    if link is None or not link.user.is_active:
        return None
    return link.user


def unlink_chat(chat_id: int) -> bool:
    return bool(TelegramLink.objects.filter(chat_id=chat_id).delete()[0])


def unlink_user(user) -> bool:
    return bool(TelegramLink.objects.filter(user=user).delete()[0])


def chat_of(user_id: int) -> int | None:
    return TelegramLink.objects.filter(user_id=user_id).values_list("chat_id", flat=True).first()
