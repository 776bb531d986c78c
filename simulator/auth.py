"""Request authentication as the venues do it: Upbit/Bithumb JWT and Binance HMAC-SHA256.

Pure standard library. Each check raises :class:`AuthError` carrying the venue's error name or
code, so the protocol modules can render the venue's own error payload.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from urllib.parse import unquote

_JWT_ALGS = {"HS256": hashlib.sha256, "HS512": hashlib.sha512}


class AuthError(Exception):
    """A rejected credential; ``name`` is the venue's error name (Upbit) or code (Binance)."""

    def __init__(self, name: str | int, message: str, status: int = 401) -> None:
        super().__init__(message)
        self.name, self.message, self.status = name, message, status


def _b64url_decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwt_encode(payload: dict, secret: str, alg: str = "HS512") -> str:
    """Sign a JWT (used by tests and by callers that need a token; no PyJWT here)."""
    header = _b64url(json.dumps({"alg": alg, "typ": "JWT"}, separators=(",", ":")).encode())
    body = _b64url(json.dumps(payload, separators=(",", ":")).encode())
    signing = f"{header}.{body}".encode()
    sig = hmac.new(secret.encode(), signing, _JWT_ALGS[alg]).digest()
    return f"{header}.{body}.{_b64url(sig)}"


def query_hash(query: str) -> str:
    """Hex SHA-512 of the unencoded ``k=v&k=v`` string, as Upbit and Bithumb require."""
    return hashlib.sha512(query.encode()).hexdigest()


def upbit_token(
    access_key: str,
    secret: str,
    query: str = "",
    alg: str = "HS512",
    timestamp_ms: int | None = None,
) -> str:
    """A bearer token for ``query`` (the unencoded query or body string); Bithumb adds timestamp."""
    payload: dict = {"access_key": access_key, "nonce": str(uuid.uuid4())}
    if query:
        payload |= {"query_hash": query_hash(query), "query_hash_alg": "SHA512"}
    if timestamp_ms is not None:
        payload["timestamp"] = timestamp_ms
    return jwt_encode(payload, secret, alg)


class JwtVerifier:
    """Verifies ``Authorization: Bearer <JWT>`` for Upbit-protocol requests.

    ``secrets`` maps access key to secret key. Nonces are single-use per access key. A
    ``timestamp`` claim (Bithumb) must be within ``timestamp_window_ms`` of the clock.
    """

    def __init__(
        self,
        secrets: dict[str, str],
        *,
        clock_ms=None,
        timestamp_window_ms: int = 60_000,
        require_timestamp: bool = False,
    ) -> None:
        self.secrets = secrets
        self.clock_ms = clock_ms or (lambda: int(time.time() * 1000))
        self.window = timestamp_window_ms
        self.require_timestamp = require_timestamp
        self._nonces: dict[str, set[str]] = {}

    def verify(self, authorization: str | None, query: str) -> str:
        """Return the access key, or raise AuthError. ``query`` is the unencoded query string."""
        if not authorization or not authorization.startswith("Bearer "):
            raise AuthError(
                "jwt_verification", "Authorization header with a Bearer JWT is required."
            )
        token = authorization[len("Bearer ") :].strip()
        try:
            head_b64, body_b64, sig_b64 = token.split(".")
            header = json.loads(_b64url_decode(head_b64))
            payload = json.loads(_b64url_decode(body_b64))
            sig = _b64url_decode(sig_b64)
        except (ValueError, json.JSONDecodeError) as exc:
            raise AuthError("jwt_verification", f"Malformed JWT: {exc}") from None
        digest = _JWT_ALGS.get(header.get("alg"))
        if digest is None:
            raise AuthError("jwt_verification", "JWT alg must be HS256 or HS512.")
        access_key = payload.get("access_key")
        secret = self.secrets.get(access_key) if isinstance(access_key, str) else None
        if secret is None:
            raise AuthError("invalid_access_key", "잘못된 엑세스 키입니다.")
        expected = hmac.new(secret.encode(), f"{head_b64}.{body_b64}".encode(), digest).digest()
        if not hmac.compare_digest(expected, sig):
            raise AuthError("jwt_verification", "잘못된 API 키입니다.")
        if query:
            if payload.get("query_hash") != query_hash(query):
                raise AuthError("invalid_query_payload", "Jwt의 query를 검증하는데 실패하였습니다.")
        elif "query_hash" in payload and payload["query_hash"] != query_hash(""):
            raise AuthError("invalid_query_payload", "Jwt의 query를 검증하는데 실패하였습니다.")
        self._check_timestamp(payload)
        nonce = payload.get("nonce")
        if not isinstance(nonce, str) or not nonce:
            raise AuthError("jwt_verification", "JWT nonce is required.")
        used = self._nonces.setdefault(access_key, set())
        if nonce in used:
            raise AuthError("nonce_used", "이미 요청한 nonce값이 다시 사용되었습니다.")
        used.add(nonce)
        return access_key

    def _check_timestamp(self, payload: dict) -> None:
        stamp = payload.get("timestamp")
        if stamp is None:
            if self.require_timestamp:
                raise AuthError("jwt_verification", "JWT timestamp claim (ms) is required.")
            return
        if not isinstance(stamp, int) or abs(self.clock_ms() - stamp) > self.window:
            raise AuthError("jwt_verification", "JWT timestamp is outside the allowed window.")


def upbit_query_string(pairs: list[tuple[str, str]]) -> str:
    """The unencoded ``k=v&k=v`` string, in the order sent (what query_hash covers)."""
    return "&".join(f"{k}={v}" for k, v in pairs)


def binance_sign(secret: str, payload: str) -> str:
    return hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()


class HmacVerifier:
    """Verifies Binance ``X-MBX-APIKEY`` + ``signature`` (HMAC-SHA256 hex) + recvWindow."""

    def __init__(self, secrets: dict[str, str], *, clock_ms=None) -> None:
        self.secrets = secrets
        self.clock_ms = clock_ms or (lambda: int(time.time() * 1000))

    def api_key(self, api_key: str | None) -> str:
        if not api_key:
            raise AuthError(-2014, "API-key format invalid.", 401)
        if api_key not in self.secrets:
            raise AuthError(-2015, "Invalid API-key, IP, or permissions for action.", 401)
        return api_key

    def verify(self, api_key: str | None, query: str, body: str) -> tuple[str, dict[str, str]]:
        """Check a signed REST request; returns (api key, params). ``query``/``body`` are raw."""
        key = self.api_key(api_key)
        query_wo, sig_q = _split_signature(query)
        body_wo, sig_b = _split_signature(body)
        signature = sig_q or sig_b
        if not signature:
            raise AuthError(
                -1102,
                "Mandatory parameter 'signature' was not sent, was empty/null, or malformed.",
                400,
            )
        payload = query_wo + body_wo
        expected = binance_sign(self.secrets[key], payload)
        if not hmac.compare_digest(expected, signature.lower()):
            raise AuthError(-1022, "Signature for this request is not valid.", 400)
        params = dict(_pairs(query_wo)) | dict(_pairs(body_wo))
        self.check_time(params)
        return key, params

    def verify_sorted(self, params: dict) -> str:
        """WebSocket API signature: all params but ``signature`` sorted by name, HMAC hex."""
        key = self.api_key(params.get("apiKey"))
        signature = str(params.get("signature", ""))
        payload = "&".join(f"{k}={params[k]}" for k in sorted(params) if k != "signature")
        if not hmac.compare_digest(binance_sign(self.secrets[key], payload), signature.lower()):
            raise AuthError(-1022, "Signature for this request is not valid.", 400)
        self.check_time({k: str(v) for k, v in params.items()})
        return key

    def check_time(self, params: dict[str, str]) -> None:
        raw = params.get("timestamp")
        if raw is None:
            raise AuthError(
                -1102,
                "Mandatory parameter 'timestamp' was not sent, was empty/null, or malformed.",
                400,
            )
        try:
            stamp = int(raw)
            window = float(params.get("recvWindow", "5000"))
        except ValueError:
            raise AuthError(
                -1100, "Illegal characters found in parameter 'timestamp'.", 400
            ) from None
        if window > 60000 or window <= 0:
            raise AuthError(-1131, "recvWindow must be less than 60000", 400)
        now = self.clock_ms()
        if not (stamp < now + 1000 and now - stamp <= window):
            raise AuthError(-1021, "Timestamp for this request is outside of the recvWindow.", 400)


def _pairs(raw: str) -> list[tuple[str, str]]:
    return [
        (unquote(k.replace("+", " ")), unquote(v.replace("+", " ")))
        for k, _, v in (p.partition("=") for p in raw.split("&") if p)
    ]


def _split_signature(raw: str) -> tuple[str, str]:
    """Remove a trailing ``signature=`` param; returns (signed part, signature)."""
    if not raw:
        return "", ""
    parts = raw.split("&")
    if parts[-1].startswith("signature="):
        return "&".join(parts[:-1]), parts[-1][len("signature=") :]
    if any(p.startswith("signature=") for p in parts):
        raise AuthError(-1022, "Signature for this request is not valid.", 400)
    return raw, ""
