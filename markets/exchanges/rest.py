"""The one HTTP path every adapter uses: a ``requests.Session``, a timeout on every call, the
rate limiter before each request, header feedback after it, bounded waits on 429, and venue error
payloads mapped onto ``errors``.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import requests

from .errors import ExchangeError, RateLimited, TemporaryExchangeError
from .errors import RequestNotSent as RequestNotSent  # raised here; defined with the others
from .ratelimit import RateLimiter, parse_retry_after

log = logging.getLogger(__name__)

ErrorMapper = Callable[..., ExchangeError]


@dataclass
class Response:
    status: int
    headers: Any
    payload: Any
    elapsed_s: float


class ResponseLost(TemporaryExchangeError):
    """The request may have reached the venue but no answer came back (read timeout, reset)."""


class RestClient:
    """HTTP for one adapter.

    ``timeout``: ``(connect, read)`` seconds for every call. ``max_429_retries``: how many times
    a 429 is waited out (honouring ``Retry-After``) before ``RateLimited`` is raised; a 418 is
    never retried. ``observe``: callback ``(group, headers)`` for venue rate headers.
    """

    def __init__(self, venue: str, base_url: str, *, limiter: RateLimiter,
                 map_error: ErrorMapper, observe: Callable[[str, Any], None] | None = None,
                 timeout: tuple[float, float] = (3.05, 10.0), max_429_retries: int = 2,
                 session: requests.Session | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.venue = venue
        self.base_url = base_url.rstrip("/")
        self.limiter = limiter
        self.map_error = map_error
        self.observe = observe
        self.timeout = timeout
        self.max_429_retries = max_429_retries
        self.session = session or requests.Session()
        self._sleep = sleep

    def close(self) -> None:
        self.session.close()

    def request(self, method: str, path: str, *, group: str, weight: int = 1,
                params: Any = None, json_body: Any = None, data: str | None = None,
                headers: dict[str, str] | None = None, is_order: bool = False,
                sign: Callable[[], tuple[Any, dict[str, str], str | None]] | None = None,
                timeout: tuple[float, float] | None = None,
                also: tuple[tuple[str, int], ...] = ()) -> Response:
        """Send one request and return the decoded JSON; raise a mapped ``ExchangeError``.

        ``sign``: called before each attempt (fresh nonce/timestamp) and returns
        ``(params, extra_headers, data)`` to send instead of ``params``/``data``.
        ``also``: further ``(group, weight)`` budgets the request counts against.
        """
        url = self.base_url + path
        attempt = 0
        while True:
            if weight:
                self.limiter.acquire(group, weight)
            for other, other_weight in also:
                self.limiter.acquire(other, other_weight)
            send_params, send_headers, send_data = params, dict(headers or {}), data
            if sign is not None:
                send_params, extra, send_data = sign()
                send_headers.update(extra)
            if send_data is not None:
                send_headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
            started = time.monotonic()
            try:
                resp = self.session.request(
                    method, url, params=send_params, json=json_body, data=send_data,
                    headers=send_headers, timeout=timeout or self.timeout)
            except (requests.ConnectTimeout, requests.exceptions.InvalidURL) as exc:
                raise RequestNotSent(f"{self.venue}: {method} {path} not sent: {exc}",
                                     venue=self.venue) from exc
            except requests.ConnectionError as exc:
                # A refused/unresolved connection never sent the request; a reset mid-way may have.
                if _connect_failed(exc):
                    raise RequestNotSent(f"{self.venue}: {method} {path} not sent: {exc}",
                                         venue=self.venue) from exc
                raise ResponseLost(f"{self.venue}: {method} {path} lost: {exc}",
                                   venue=self.venue) from exc
            except requests.Timeout as exc:
                raise ResponseLost(f"{self.venue}: {method} {path} timed out: {exc}",
                                   venue=self.venue) from exc
            elapsed = time.monotonic() - started
            if self.observe is not None:
                self.observe(group, resp.headers)
            payload = _decode(resp)
            status = resp.status_code
            if status < 400 and not _is_error_body(payload):
                return Response(status, resp.headers, payload, elapsed)
            retry_after = parse_retry_after(resp.headers.get("Retry-After"),
                                            1.0 if status != 418 else 120.0)
            error = self.map_error(self.venue, status, payload, text=resp.text[:500],
                                   retry_after=retry_after, is_order=is_order)
            if isinstance(error, RateLimited):
                self.limiter.block(group, error.retry_after)
                if status == 429 and attempt < self.max_429_retries:
                    attempt += 1
                    log.warning("%s: 429 on %s %s, waiting %.2fs (Retry-After)", self.venue,
                                method, path, error.retry_after)
                    continue
            raise error


def _decode(resp: requests.Response) -> Any:
    if not resp.content:
        return None
    try:
        return resp.json()
    except (ValueError, json.JSONDecodeError):
        return None


def _is_error_body(payload: Any) -> bool:
    """Upbit/Bithumb may answer HTTP 200 with ``{"error": {...}}``."""
    return isinstance(payload, dict) and isinstance(payload.get("error"), dict)


def _connect_failed(exc: requests.ConnectionError) -> bool:
    text = repr(exc)
    return any(s in text for s in ("NewConnectionError", "Connection refused",
                                   "Failed to resolve", "NameResolutionError",
                                   "ConnectTimeoutError"))
