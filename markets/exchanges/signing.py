"""Request signing: Upbit/Bithumb JWT (HS256/HS512) and Binance HMAC-SHA256. Stdlib only.

* Upbit/Bithumb: ``Authorization: Bearer <JWT>``; payload ``access_key``, ``nonce`` (uuid4) and,
  when the request has parameters, ``query_hash`` = SHA-512 hex of the *unencoded* query string
  ``k=v&k=v`` in the order sent (arrays as ``key[]=v``), ``query_hash_alg`` = ``SHA512``.
  Bithumb adds ``timestamp`` (ms).
* Binance REST: ``signature`` = hex HMAC-SHA256 of the exact query string (+ body), last param.
  Binance WebSocket API: the same HMAC over the params sorted by name.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

Params = Mapping[str, Any] | Iterable[tuple[str, Any]]


def _pairs(params: Params | None) -> list[tuple[str, Any]]:
    if not params:
        return []
    items = params.items() if isinstance(params, Mapping) else params
    out: list[tuple[str, Any]] = []
    for key, value in items:
        if value is None:
            continue
        if isinstance(value, list | tuple):
            name = key if key.endswith("[]") else key + "[]"
            out.extend((name, v) for v in value)
        else:
            out.append((key, value))
    return out


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def plain_query(params: Params | None) -> str:
    """The unencoded ``k=v&k=v`` string Upbit/Bithumb hash (lists become ``key[]=v`` pairs)."""
    return "&".join(f"{k}={_text(v)}" for k, v in _pairs(params))


def query_pairs(params: Params | None) -> list[tuple[str, str]]:
    """The same pairs as ``plain_query``, ready for ``requests``' ``params=`` (it encodes)."""
    return [(k, _text(v)) for k, v in _pairs(params)]


def query_hash(query: str) -> str:
    """SHA-512 hex digest of ``query`` (UTF-8)."""
    return hashlib.sha512(query.encode()).hexdigest()


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


_ALGS = {"HS256": hashlib.sha256, "HS512": hashlib.sha512}


def jwt_encode(payload: Mapping[str, Any], secret: str, alg: str = "HS256") -> str:
    """A compact JWS (``header.payload.signature``) signed with HMAC ``alg``."""
    digest = _ALGS[alg]
    header = _b64url(json.dumps({"alg": alg, "typ": "JWT"}, separators=(",", ":")).encode())
    body = _b64url(json.dumps(dict(payload), separators=(",", ":")).encode())
    signing_input = f"{header}.{body}".encode()
    sig = hmac.new(secret.encode(), signing_input, digest).digest()
    return f"{header}.{body}.{_b64url(sig)}"


def jwt_decode(token: str, secret: str) -> dict[str, Any]:
    """Verify an HS256/HS512 token and return its payload; ValueError when it does not verify."""
    try:
        header_b64, body_b64, sig_b64 = token.split(".")
        header = json.loads(_b64url_decode(header_b64))
        digest = _ALGS[header["alg"]]
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"malformed JWT: {exc}") from None
    expected = hmac.new(secret.encode(), f"{header_b64}.{body_b64}".encode(), digest).digest()
    if not hmac.compare_digest(expected, _b64url_decode(sig_b64)):
        raise ValueError("JWT signature does not verify")
    return json.loads(_b64url_decode(body_b64))


def upbit_jwt_payload(access_key: str, params: Params | None = None, *,
                      nonce: str | None = None) -> dict[str, Any]:
    """Upbit's claims: access_key, nonce and (with params) query_hash/query_hash_alg."""
    payload: dict[str, Any] = {"access_key": access_key, "nonce": nonce or str(uuid.uuid4())}
    query = plain_query(params)
    if query:
        payload["query_hash"] = query_hash(query)
        payload["query_hash_alg"] = "SHA512"
    return payload


def bithumb_jwt_payload(access_key: str, params: Params | None = None, *,
                        nonce: str | None = None, timestamp_ms: int | None = None
                        ) -> dict[str, Any]:
    """Bithumb's claims: Upbit's plus ``timestamp`` (ms), in the documented key order."""
    base = upbit_jwt_payload(access_key, params, nonce=nonce)
    payload = {"access_key": base["access_key"], "nonce": base["nonce"],
               "timestamp": int(timestamp_ms if timestamp_ms is not None else time.time() * 1000)}
    for key in ("query_hash", "query_hash_alg"):
        if key in base:
            payload[key] = base[key]
    return payload


def binance_signature(secret: str, total_params: str) -> str:
    """Hex HMAC-SHA256 of ``total_params`` (the query string concatenated with the body)."""
    return hmac.new(secret.encode(), total_params.encode(), hashlib.sha256).hexdigest()


def binance_ws_signature(secret: str, params: Mapping[str, Any]) -> str:
    """WebSocket API signature: params except ``signature`` sorted by name, ``k=v&...``."""
    payload = "&".join(f"{k}={_text(params[k])}" for k in sorted(params) if k != "signature")
    return binance_signature(secret, payload)
