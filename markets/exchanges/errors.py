"""Exchange errors, named for what the caller should do, and the mapping from venue payloads.

=========================  ===============================================================
class                      caller's reaction
=========================  ===============================================================
``TemporaryExchangeError`` retry later with backoff (5xx, timeouts, "order not ready")
``RateLimited``            wait ``retry_after`` seconds, then retry (429, 418, -1003)
``ExchangeUnavailable``    venue down or in maintenance: back off for minutes
``OrderRejected``          do not retry this order as it is (bad price, tick, size, notional)
``InsufficientFunds``      do not retry; the account lacks balance or margin
``AuthenticationError``    halt the account and tell the user (bad key, IP, permission)
``OrderNotFound``          the venue has no such order (a lookup's answer, not a failure)
``OrderStatusUnknown``     a placement's outcome is unknown even after looking it up by
                           client order id: reconcile with ``fetch_order`` later; never resend
=========================  ===============================================================

Pure: standard library only.
"""

from __future__ import annotations

from typing import Any


class ExchangeError(Exception):
    """Base: carries the venue, the HTTP status, the venue's own code and message."""

    def __init__(
        self,
        message: str,
        *,
        venue: str = "",
        status: int | None = None,
        code: str | int | None = None,
        venue_message: str = "",
    ) -> None:
        super().__init__(message)
        self.venue = venue
        self.status = status
        self.code = code
        self.venue_message = venue_message or message


class TemporaryExchangeError(ExchangeError):
    """Retry with backoff: the request may succeed later unchanged."""


class RequestNotSent(TemporaryExchangeError):
    """The connection failed before the request left: nothing reached the venue (safe to
    retry with the same client order id)."""


class RateLimited(TemporaryExchangeError):
    """Over the venue's rate limit: wait ``retry_after`` seconds before the next request."""

    def __init__(self, message: str, *, retry_after: float = 1.0, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.retry_after = float(retry_after)


class ExchangeUnavailable(TemporaryExchangeError):
    """The venue is down or in maintenance: back off for minutes, not seconds."""


class OrderRejected(ExchangeError):
    """The venue (or our pre-check) refused the order; resending it unchanged will fail again."""


class InsufficientFunds(OrderRejected):
    """Not enough balance or margin for the order."""


class AuthenticationError(ExchangeError):
    """Bad or expired key, wrong IP, missing permission: halt the account and tell the user."""


class OrderNotFound(ExchangeError):
    """The venue does not know the order asked for."""


class OrderStatusUnknown(ExchangeError):
    """A placement timed out or 5xx'd and the lookup by client order id did not settle it.

    The order may or may not exist. Never resend blindly: call ``fetch_order`` later with
    ``client_order_id`` to reconcile.
    """

    def __init__(self, message: str, *, client_order_id: str, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.client_order_id = client_order_id


class StreamRestart(Exception):
    """Raised by a parser to reconnect now (server going away, stream terminated); ``items``
    are still yielded first (for example a notice telling the consumer to re-sync)."""

    def __init__(self, reason: str, items: tuple = ()) -> None:
        super().__init__(reason)
        self.items = tuple(items)


# --------------------------------------------------------------------------------------------
# Upbit / Bithumb: {"error": {"name": "...", "message": "..."}}, name may be a number.

_KR_AUTH = {
    "jwt_verification", "invalid_query_payload", "expired_access_key", "nonce_used",
    "no_authorization_i_p", "no_authorization_ip", "out_of_scope", "invalid_access_key",
    "expired_jwt", "notallowip", "blocked_member_id", "thirdparty_agreement_required",
}
_KR_FUNDS = {"insufficient_funds_ask", "insufficient_funds_bid", "insufficient_funds",
             "withdraw_insufficient_balance"}
_KR_TEMPORARY = {"order_not_ready"}
_KR_UNAVAILABLE = {"market_offline", "server_maintenance"}


def kr_error_fields(payload: Any) -> tuple[str | int | None, str] | None:
    """``(name, message)`` from an Upbit/Bithumb error body, or None when it is not one.

    Copes with a numeric ``name`` and with ``name``/``message`` swapped (seen in the wild).
    """
    if not isinstance(payload, dict) or not isinstance(payload.get("error"), dict):
        return None
    err = payload["error"]
    name, message = err.get("name"), str(err.get("message") or "")
    if isinstance(name, str) and " " in name and message and " " not in message:
        name, message = message, name
    return name, message


def map_kr_error(
    venue: str, status: int, payload: Any, *, text: str = "", retry_after: float | None = None,
    is_order: bool = False,
) -> ExchangeError:
    """The exception for an Upbit/Bithumb error response (any status, even 200 + error body)."""
    fields = kr_error_fields(payload)
    name, message = fields if fields else (None, (text or "").strip()[:300])
    key = str(name).lower() if name is not None else ""
    msg = f"{venue}: {name or status} {message}".strip()
    kw = {"venue": venue, "status": status, "code": name, "venue_message": message}
    if status == 429 or status == 418:
        wait = retry_after if retry_after is not None else (1.0 if status == 429 else 60.0)
        return RateLimited(msg, retry_after=wait, **kw)
    if key in _KR_FUNDS or key.startswith("insufficient_funds"):
        return InsufficientFunds(msg, **kw)
    if status == 401 or key in _KR_AUTH:
        return AuthenticationError(msg, **kw)
    if key == "order_not_found" or (status == 404 and is_order):
        return OrderNotFound(msg, **kw)
    if key in _KR_UNAVAILABLE or status == 503:
        return ExchangeUnavailable(msg, **kw)
    if key in _KR_TEMPORARY or status >= 500:
        return TemporaryExchangeError(msg, **kw)
    if (is_order and 400 <= status < 500) or status == 200:
        return OrderRejected(msg, **kw)
    return ExchangeError(msg, **kw)


# --------------------------------------------------------------------------------------------
# Binance: {"code": -1121, "msg": "Invalid symbol."}

_BN_AUTH = {-1022, -2014, -2015, -1002}
_BN_NOT_FOUND = {-2013, -2011}
_BN_TEMPORARY = {-1000, -1001, -1006, -1007, -1008, -1021}
_BN_FUNDS = {-2018, -2019}


def map_binance_error(
    venue: str, status: int, payload: Any, *, text: str = "", retry_after: float | None = None,
    is_order: bool = False,
) -> ExchangeError:
    """The exception for a Binance spot/futures error response."""
    code, message = None, (text or "").strip()[:300]
    if isinstance(payload, dict) and "code" in payload:
        code, message = payload.get("code"), str(payload.get("msg") or "")
    msg = f"{venue}: {code if code is not None else status} {message}".strip()
    kw = {"venue": venue, "status": status, "code": code, "venue_message": message}
    if status in (429, 418) or code == -1003:
        wait = retry_after if retry_after is not None else (1.0 if status != 418 else 120.0)
        return RateLimited(msg, retry_after=wait, **kw)
    if (code == -2010 and "insufficient" in message.lower()) or code in _BN_FUNDS:
        return InsufficientFunds(msg, **kw)
    if status == 401 or code in _BN_AUTH:
        return AuthenticationError(msg, **kw)
    if code in _BN_NOT_FOUND and not (code == -2011 and "restriction" in message.lower()):
        return OrderNotFound(msg, **kw)
    if status == 503:
        return ExchangeUnavailable(msg, **kw)
    if status >= 500 or code in _BN_TEMPORARY:
        return TemporaryExchangeError(msg, **kw)
    if is_order and 400 <= status < 500:
        return OrderRejected(msg, **kw)
    return ExchangeError(msg, **kw)
