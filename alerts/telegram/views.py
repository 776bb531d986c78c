"""The page where a user links their Telegram chat: ``/alerts/telegram/link``.

A POST makes a one-time code and shows it once (the response is not cached and the code is
not stored, only its hash); another POST unlinks the chat. The bot token is never shown."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from alerts.telegram import linking
from alerts.telegram.models import TelegramLink


def _context(request, **extra) -> dict:
    username = (getattr(settings, "TELEGRAM_BOT_USERNAME", "") or "").lstrip("@")
    return {
        "link": TelegramLink.objects.filter(user=request.user).first(),
        "bot_configured": bool(getattr(settings, "TELEGRAM_BOT_TOKEN", "")),
        "bot_username": username,
        "ttl_minutes": int(linking.ttl_s() // 60),
        **extra,
    }


@never_cache
@login_required
def link(request):
    if request.method == "POST":
        code, row = linking.new_code(request.user)
        username = _context(request)["bot_username"]
        return render(request, "alerts/telegram_link.html", _context(
            request, code=code, expires_at=row.expires_at,
            deep_link=f"https://t.me/{username}?start={code}" if username else "",
        ))
    return render(request, "alerts/telegram_link.html", _context(request))


@login_required
@require_POST
def unlink(request):
    if linking.unlink_user(request.user):
        messages.success(request, "Telegram chat unlinked: it can no longer command your "
                                  "trading.")
    return redirect("alerts-telegram-link")
