"""A user's linked Telegram chat and the one-time codes that link it.

Imported by ``alerts.models`` so Django registers them in the ``alerts`` app."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class TelegramLink(models.Model):
    """The one private chat allowed to command the bot for ``user`` (and that receives the
    user's Telegram notifications). A chat links to one user; a user to one chat."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="telegram_link"
    )
    chat_id = models.BigIntegerField(unique=True)
    username = models.CharField(max_length=64, blank=True, default="",
                                help_text="The Telegram @username at linking time.")
    linked_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        app_label = "alerts"

    def __str__(self) -> str:
        return f"{self.user} ↔ Telegram {self.username or 'chat'}"


class TelegramLinkCode(models.Model):
    """A one-time linking code: only its SHA-256 is stored; it expires after
    ``settings.TELEGRAM_LINK_CODE_TTL_S`` and is spent by its first use."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="telegram_link_codes"
    )
    code_hash = models.CharField(max_length=64, unique=True)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        app_label = "alerts"
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"link code of {self.user} (expires {self.expires_at:%Y-%m-%d %H:%M})"
