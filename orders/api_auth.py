"""Who is calling the JSON API: an API token (``Authorization: Bearer <token>``) or the browser's
session, in one django-ninja auth class.

A session caller's unsafe methods need Django's CSRF token, as every form does. A refused token
is reported to Django's ``user_login_failed`` signal, so django-axes counts it against the
client's address like a failed password (and logs it); while axes holds the address locked
out, every token call from it is answered 429 before the token is even looked at.
"""

from __future__ import annotations

import logging
import math

from django.contrib.auth.signals import user_login_failed
from django.utils import timezone
from ninja.errors import HttpError
from ninja.security import HttpBearer
from ninja.utils import check_csrf

from orders.models import ApiToken

log = logging.getLogger(__name__)

#: What axes records as the "username" of a refused token (never the token itself).
TOKEN_USERNAME = "<api token>"
#: Longer than any token ``ApiToken.issue`` makes; a longer header is refused unhashed.
MAX_TOKEN_LENGTH = 200
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


def _credentials() -> dict:
    return {"username": TOKEN_USERNAME}


def _locked_out(request) -> HttpError | None:
    """The 429 to answer while axes holds this client locked out, else None."""
    try:
        from axes.handlers.proxy import AxesProxyHandler
        from axes.helpers import get_cool_off
    except ImportError:  # axes not installed: no throttling
        return None
    if not AxesProxyHandler.is_locked(request, _credentials()):
        return None
    cool_off = get_cool_off(request)
    if cool_off is None:
        return HttpError(429, "too many failed attempts; ask an administrator to unlock access")
    minutes = max(1, math.ceil(cool_off.total_seconds() / 60))
    return HttpError(429, f"too many failed attempts; try again in {minutes} minutes")


def _refuse_token(request) -> HttpError:
    """Count and log a refused token; the 401 (or 429 once that failure locks the client)."""
    address = request.META.get("REMOTE_ADDR", "?")
    log.warning("JSON API: refused an API token from %s (%s %s)", address, request.method,
                request.path)
    user_login_failed.send(sender=__name__, credentials=_credentials(), request=request)
    # axes marks the request when this failure locks the client; the lockout is answered here
    # (as JSON), not by axes' middleware replacing the response.
    if getattr(request, "axes_locked_out", False):
        request.axes_locked_out = False
    return HttpError(401, "this API token is not valid (revoked or mistyped)")


class TokenOrSession(HttpBearer):
    """``Authorization: Bearer <token>`` (also ``Token <token>``), else the session."""

    #: The docs page (Swagger UI) sends the CSRF token with its requests when this is set.
    csrf = True

    def __call__(self, request):
        header = request.headers.get("Authorization", "")
        if header:
            locked = _locked_out(request)
            if locked is not None:
                raise locked
            scheme, _, key = header.partition(" ")
            key = key.strip()
            if scheme.lower() not in ("bearer", "token") or not key:
                raise HttpError(401, "use the header 'Authorization: Bearer <your API token>'")
            return self.authenticate(request, key)
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            if request.method not in SAFE_METHODS and check_csrf(request) is not None:
                raise HttpError(403, "CSRF check failed: reload the page and try again")
            return user
        raise HttpError(401, "log in, or send an API token: 'Authorization: Bearer <token>'")

    def authenticate(self, request, token: str):
        token_row = None
        if len(token) <= MAX_TOKEN_LENGTH:
            token_row = (
                ApiToken.objects.select_related("owner")
                .filter(key_hash=ApiToken.hash(token))
                .first()
            )
        if token_row is None or not token_row.owner.is_active:
            raise _refuse_token(request)
        ApiToken.objects.filter(pk=token_row.pk).update(last_used_at=timezone.now())
        return token_row.owner
