"""A user's accounts at a venue (keys sealed at rest, the kill switch) and their balances.
Balances are Decimal (money).
"""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q

from markets.fields import EncryptedTextField, Sealed, plain
from markets.models.venues import MONEY, Exchange


class AccountQuerySet(models.QuerySet):
    def owned_by(self, user):
        """What ``user`` may manage in the admin: a superuser every account."""
        return self if user.is_superuser else self.filter(owner=user)

    def own(self, user):
        """``user``'s own accounts, a superuser's too: what the trading pages and API show."""
        return self.filter(owner=user)


class Account(models.Model):
    """A user's access to a venue. Paper accounts trade against stored balances; live accounts
    need keys, ``mode=live`` and the TRADING_LIVE setting. ``halted`` is the kill switch."""

    class Mode(models.TextChoices):
        PAPER = "paper", "Paper"
        LIVE = "live", "Live"

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="accounts"
    )
    exchange = models.ForeignKey(Exchange, on_delete=models.PROTECT, related_name="accounts")
    label = models.CharField(max_length=64)
    mode = models.CharField(max_length=8, choices=Mode.choices, default=Mode.PAPER)
    quote_asset = models.CharField(
        max_length=16, blank=True, default="",
        help_text="Currency equity is measured in, and the quote of every symbol this account "
        "trades: one of the venue's quote assets (KRW, USDT). Blank: the venue's main quote.",
    )
    api_key = EncryptedTextField(blank=True, default="")
    api_secret = EncryptedTextField(blank=True, default="")
    halted = models.BooleanField(
        default=False, help_text="Kill switch: no new orders until a person resumes the account."
    )
    halted_reason = models.CharField(max_length=255, blank=True, default="")
    halted_at = models.DateTimeField(null=True, blank=True)
    venue_confirmed_at = models.DateTimeField(
        null=True, blank=True, editable=False,
        help_text="Live accounts: when the venue last told us this account's balances (user-data "
        "stream or reconciliation's fetch). Empty: never.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = AccountQuerySet.as_manager()

    class Meta:
        ordering = ["owner_id", "label"]
        constraints = [
            models.UniqueConstraint(fields=["owner", "label"], name="account_unique_label"),
        ]

    def __str__(self) -> str:
        return f"{self.label} ({self.exchange.slug}, {self.mode})"

    def save(self, *args, **kwargs):
        if not self.quote_asset and self.exchange_id:
            self.quote_asset = self.exchange.main_quote()
        super().save(*args, **kwargs)

    #: ``credentials_state`` values.
    CREDENTIALS_NONE, CREDENTIALS_STORED, CREDENTIALS_UNREADABLE = "none", "stored", "unreadable"

    @property
    def credentials_state(self) -> str:
        """``"none"`` (no key and secret), ``"stored"`` (both, readable) or ``"unreadable"``
        (stored, but FIELD_ENCRYPTION_KEY cannot decrypt them: they must be entered again)."""
        values = [v for v in (self.api_key, self.api_secret) if v]
        if any(isinstance(v, Sealed) and not v.readable for v in values):
            return self.CREDENTIALS_UNREADABLE
        return self.CREDENTIALS_STORED if len(values) == 2 else self.CREDENTIALS_NONE

    @property
    def has_keys(self) -> bool:
        """A key and secret are stored and readable (a live adapter can be built)."""
        return self.credentials_state == self.CREDENTIALS_STORED

    def credentials(self) -> tuple[str, str]:
        """``(api_key, api_secret)`` in plain text, for building this account's live adapter
        only. Raises :class:`~markets.fields.CredentialsUnreadable`."""
        return plain(self.api_key), plain(self.api_secret)

    def clean(self) -> None:
        # Unreadable keys are stored keys: the account can still be saved (halted, switched to
        # paper); it cannot trade live until they are entered again.
        if self.mode == self.Mode.LIVE and self.credentials_state == self.CREDENTIALS_NONE:
            raise ValidationError("A live account needs an API key and secret.")
        if (
            self.owner_id
            and self.label
            and Account.objects.filter(owner_id=self.owner_id, label=self.label)
            .exclude(pk=self.pk)
            .exists()
        ):
            raise ValidationError({"label": "You already have an account with this label."})
        self._clean_quote_asset()

    def _clean_quote_asset(self) -> None:
        if not self.exchange_id:
            return
        self.quote_asset = (self.quote_asset or "").strip().upper() or self.exchange.main_quote()
        quotes = self.exchange.quote_assets()
        if quotes and self.quote_asset not in quotes:
            raise ValidationError({"quote_asset": (
                f"{self.exchange} trades symbols quoted in {', '.join(quotes)}; an account "
                f"measuring equity in {self.quote_asset} could trade none of them."
            )})
        if self.pk:
            clash = (
                self.strategy_configs.exclude(symbol__quote=self.quote_asset)
                .select_related("symbol").first()
            )
            if clash is not None:
                raise ValidationError({"quote_asset": (
                    f"Config {clash.name} trades {clash.symbol}, quoted in {clash.symbol.quote}; "
                    f"this account cannot measure equity in {self.quote_asset} while it does."
                )})


class Balance(models.Model):
    """An asset balance of an account: the book for paper accounts, the last fetched state for
    live ones. Written only by ``orders.services``."""

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="balances")
    asset = models.CharField(max_length=16)
    free = models.DecimalField(**MONEY, default=Decimal("0"))
    locked = models.DecimalField(**MONEY, default=Decimal("0"))
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["account_id", "asset"]
        constraints = [
            models.UniqueConstraint(fields=["account", "asset"], name="balance_unique_asset"),
            models.CheckConstraint(
                condition=Q(free__gte=0) & Q(locked__gte=0), name="balance_non_negative"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.asset} {self.free}"

    @property
    def total(self) -> Decimal:
        return self.free + self.locked
