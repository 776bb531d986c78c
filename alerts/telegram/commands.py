"""The bot's commands as plain functions: (chat, command, arguments) → :class:`Reply`.

Nothing here knows Telegram: ``alerts.telegram.bot`` turns an update into a call of
:func:`handle_command` / :func:`handle_button` and sends the reply. Every command except
``/start CODE`` / ``/link CODE`` needs the chat to be linked (``linking.user_for_chat``);
any other chat gets :data:`linking.REFUSAL` and nothing else.

``/stop`` asks first: it answers with buttons, and only a press of one (within
:data:`CONFIRM_S`) runs the kill switch, for the linked user's trading only
(``orders.killswitch.stop_trading(user=..., configs=ALL)``).
"""

from __future__ import annotations

import dataclasses
import logging
import time

from alerts.telegram import linking, reports
from markets.models import Account
from orders import killswitch

log = logging.getLogger(__name__)

#: A /stop button older than this is refused (an old message pressed by mistake).
CONFIRM_S = 300


@dataclasses.dataclass(frozen=True)
class Reply:
    text: str
    #: Rows of (label, callback data) buttons under the message.
    buttons: tuple[tuple[tuple[str, str], ...], ...] = ()


HELP = """tradesite bot commands:
/status: open positions with unrealized PnL
/balance: each account's equity, cash and holdings
/profit: realized profit today, over 7 and 30 days
/daily [N]: realized profit per day, last N days (default 7)
/configs: your strategy configs, on or off
/stop: the kill switch (asks to confirm; optionally closes positions)
/resume: lift the kill switch's halt on your accounts
/unlink: unlink this chat from your tradesite account
/help: this list"""

#: The command menu the bot registers with Telegram (name, short description).
MENU = (
    ("status", "open positions with PnL"),
    ("balance", "equity and holdings per account"),
    ("profit", "realized profit today, 7 and 30 days"),
    ("daily", "realized profit per day"),
    ("configs", "strategy configs, on or off"),
    ("stop", "kill switch (asks to confirm)"),
    ("resume", "lift the halt on your accounts"),
    ("help", "the commands"),
)


def handle_command(*, chat_id: int, chat_type: str, command: str, args: list[str],
                   username: str = "") -> Reply:
    command = command.lower()
    if command in ("start", "link") and args:
        return Reply(linking.redeem(args[0], chat_id=chat_id, chat_type=chat_type,
                                    username=username).message)
    user = linking.user_for_chat(chat_id, chat_type)
    if user is None:
        return Reply(linking.REFUSAL)
    if command in ("start", "help", "link"):
        return Reply(HELP)
    if command == "unlink":
        linking.unlink_chat(chat_id)
        return Reply("Unlinked: this chat no longer commands your trading or receives alerts. "
                     "Make a new code on the tradesite page to link again.")
    simple = {
        "status": reports.status, "balance": reports.balance, "profit": reports.profit,
        "configs": reports.configs,
    }
    if command in simple:
        return Reply(simple[command](user))
    if command == "daily":
        return daily(user, args)
    if command == "stop":
        return stop_prompt(user)
    if command == "resume":
        return resume(user)
    return Reply(f"Unknown command /{command}.\n\n{HELP}")


def daily(user, args: list[str]) -> Reply:
    days = reports.DAILY_DAYS
    if args:
        try:
            days = int(args[0])
        except ValueError:
            return Reply(f"/daily takes a number of days (1 to {reports.DAILY_MAX_DAYS}), "
                         f"e.g. /daily 14; got {args[0][:20]!r}.")
        if not 1 <= days <= reports.DAILY_MAX_DAYS:
            return Reply(f"/daily shows 1 to {reports.DAILY_MAX_DAYS} days; got {days}.")
    return Reply(reports.daily(user, days))


def stop_prompt(user, now: float | None = None) -> Reply:
    stamp = int(now if now is not None else time.time())
    active = user.strategy_configs.filter(is_active=True).count()
    return Reply(
        f"Stop ALL your trading? {active} active config(s) will be switched off, your "
        "accounts halted and open orders cancelled. Other users are not affected.",
        (
            (("Stop trading", f"stop:keep:{stamp}"),),
            (("Stop and close all positions", f"stop:close:{stamp}"),),
            (("Cancel", f"stop:cancel:{stamp}"),),
        ),
    )


def handle_button(*, chat_id: int, chat_type: str, data: str,
                  now: float | None = None) -> Reply:
    """A pressed button (callback data). Only the linked chat's presses do anything."""
    user = linking.user_for_chat(chat_id, chat_type)
    if user is None:
        return Reply(linking.REFUSAL)
    parts = (data or "").split(":")
    if len(parts) != 3 or parts[0] != "stop" or parts[1] not in ("keep", "close", "cancel"):
        return Reply("This button is not known any more; send the command again.")
    _, choice, stamp = parts
    if choice == "cancel":
        return Reply("Cancelled: nothing was stopped.")
    now = now if now is not None else time.time()
    try:
        age = now - int(stamp)
    except ValueError:
        age = CONFIRM_S + 1
    if not 0 <= age <= CONFIRM_S:
        return Reply(f"This confirmation is older than {CONFIRM_S // 60} minutes: nothing was "
                     "stopped. Send /stop again.")
    return stop(user, close_positions=choice == "close")


def stop(user, *, close_positions: bool) -> Reply:
    """The kill switch for ``user``'s trading only."""
    try:
        result = killswitch.stop_trading(
            user=user, configs=killswitch.ALL, reason="kill switch (Telegram)",
            close_positions=close_positions,
        )
    except Exception as exc:  # the trader must hear that it did not work
        log.exception("telegram /stop failed for user %s", user.pk)
        return Reply(f"The kill switch FAILED: {exc}. Use the dashboard's kill switch now.")
    return Reply(f"Kill switch: {result.summary()}.")


def resume(user) -> Reply:
    halted = list(Account.objects.own(user).filter(halted=True).order_by("label"))
    if not halted:
        return Reply("None of your accounts is halted; nothing to resume.")
    for account in halted:
        killswitch.resume_account(account)
    names = ", ".join(a.label for a in halted)
    return Reply(
        f"Resumed {len(halted)} account(s): {names}. Configs stay off until you switch them "
        "on (dashboard); /configs lists them."
    )
