"""Wire contracts between processes: channel group names and message shapes.

The stream, the trader and the pages all import this module, so they agree. Channels routes a
message ``{"type": "a.b"}`` to the consumer method ``a_b``. Group names allow only letters,
digits, ``-``, ``_`` and ``.`` (under 100 characters): symbol codes are slash-free.

Market data (any logged-in user):
    group ``bars.<venue>.<symbol>.<timeframe>``, message ``bar.update``:
    ``{type, venue, symbol, timeframe, bar: {t: open time ms, o, h, l, c, v}, closed: bool}``.
    A forming-bar update may be superseded by a newer one; closed bars are never dropped.
    group ``markets``, message ``tickers.update``: ``{type, venue, tickers: [[symbol, price,
    ts], ...]}``, the symbols of one venue whose price changed, at most once a second per
    symbol, for the markets overview: one message per venue and clock tick, not one per
    symbol (a stream following 500 symbols would send 500 a second). ``ticker.update``
    ``{type, venue, symbol, price, ts}`` is the one-symbol form, handled the same way.
Private (one user):
    group ``user.<user id>``, messages ``signal.created``, ``order.updated``, ``fill.created``,
    ``position.updated``, ``account.updated``: ``{type, id, symbol: "<venue>:<code>", ...public
    fields}``. Never dropped. ``equity.updated`` (an equity snapshot was taken, per account):
    ``{type, account, ts: ms UTC, equity: decimal text}``, not tied to a symbol.
    ``alert.created`` (``alerts.delivery``): ``{type, id, title, body, kind, created_at,
    level}``, not tied to a symbol.
One login session:
    group ``session.<hash of the session key>`` (the key itself never goes to Redis), message
    ``session.ended`` ``{type}`` when that session logs out: its sockets close (code 4401).

Pure: standard library only.
"""

from __future__ import annotations

import hashlib
import re

BAR_UPDATE = "bar.update"
TICKER_UPDATE = "ticker.update"
TICKERS_UPDATE = "tickers.update"
SIGNAL_CREATED = "signal.created"
ORDER_UPDATED = "order.updated"
FILL_CREATED = "fill.created"
POSITION_UPDATED = "position.updated"
ACCOUNT_UPDATED = "account.updated"
ALERT_CREATED = "alert.created"
EQUITY_UPDATED = "equity.updated"
PRIVATE_TYPES = (
    SIGNAL_CREATED, ORDER_UPDATED, FILL_CREATED, POSITION_UPDATED, ACCOUNT_UPDATED, ALERT_CREATED,
    EQUITY_UPDATED,
)
SESSION_ENDED = "session.ended"
#: To a user's group when the user changed (password, active flag): each socket re-checks its
#: own login session and closes if it no longer holds (``tradesite.sessions``).
SESSION_CHECK = "session.check"

MARKETS_GROUP = "markets"
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,99}$")
_PART = re.compile(r"^[A-Za-z0-9_-]+$")


def _check(name: str) -> str:
    if not _NAME.match(name):
        raise ValueError(
            f"invalid channel group name {name!r}: use letters, digits, '-', '_' and '.' only "
            "(symbol codes must be slash-free, e.g. KRW-BTC or BTCUSDT)"
        )
    return name


def bars_group(venue: str, symbol: str, timeframe: str) -> str:
    """Group of one venue's symbol and timeframe, e.g. ``bars.sim.KRW-BTC.1m``."""
    for part in (venue, symbol, timeframe):
        if not _PART.match(part or ""):
            raise ValueError(
                f"invalid channel group part {part!r}: use letters, digits, '-' and '_' only "
                "(symbol codes must be slash-free, e.g. KRW-BTC or BTCUSDT)"
            )
    return _check(f"bars.{venue}.{symbol}.{timeframe}")


def user_group(user_id: int) -> str:
    return _check(f"user.{int(user_id)}")


def session_group(session_key: str) -> str:
    """Group of the sockets opened by one login session (a hash: the key is a credential)."""
    digest = hashlib.sha256(f"tradesite-session:{session_key}".encode()).hexdigest()[:40]
    return _check(f"session.{digest}")


def bar_message(venue: str, symbol: str, timeframe: str, bar: dict, closed: bool) -> dict:
    """``bar`` is ``{t, o, h, l, c, v}`` with ``t`` the open time in ms UTC."""
    return {
        "type": BAR_UPDATE,
        "venue": venue,
        "symbol": symbol,
        "timeframe": timeframe,
        "bar": bar,
        "closed": bool(closed),
    }


def ticker_message(venue: str, symbol: str, price: float, ts_ms: int) -> dict:
    return {"type": TICKER_UPDATE, "venue": venue, "symbol": symbol, "price": price, "ts": ts_ms}


def tickers_message(venue: str, tickers: list[tuple[str, float, int]]) -> dict:
    """Several symbols' tickers of one venue: ``[(symbol, price, ts_ms), ...]``."""
    return {"type": TICKERS_UPDATE, "venue": venue,
            "tickers": [[symbol, price, ts_ms] for symbol, price, ts_ms in tickers]}


def private_message(kind: str, payload: dict) -> dict:
    if kind not in PRIVATE_TYPES:
        raise ValueError(f"unknown private message type {kind!r}; use one of {PRIVATE_TYPES}")
    return {"type": kind, **payload}
