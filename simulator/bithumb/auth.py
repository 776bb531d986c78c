"""Bithumb's JWT check: Upbit's scheme (``Authorization: Bearer``, HS256, ``query_hash`` =
SHA-512 hex of the unencoded ``k=v&k=v`` string in the order sent) plus a required
``timestamp`` claim in ms, answered with Bithumb's own documented names and messages
(apidocs.bithumb.com "API 주요 에러 코드", 401 Unauthorized):

* ``jwt_verification`` "Jwt 토큰 검증에 실패했습니다." -- a bad signature, a malformed token,
  no token, no ``timestamp`` claim, no nonce;
* ``expired_jwt`` "Jwt가 만료되었습니다." -- a ``timestamp`` more than 60 s from the clock
  (the window is UNCONFIRMED in the docs; 60 s is the simulator's choice);
* ``invalid_query_payload`` "Jwt의 query를 검증하는데 실패하였습니다." -- the parameters do not
  match ``query_hash``;
* ``invalid_access_key`` "잘못된 액세스 키" -- an access key the venue does not know (not in the
  error table; seen in captured answers, shared/exchanges/samples/bithumb_errors.json).

Each comes with HTTP 401.
"""

from __future__ import annotations

from simulator.auth import AuthError, JwtVerifier

MESSAGES = {
    "jwt_verification": "Jwt 토큰 검증에 실패했습니다.",
    "expired_jwt": "Jwt가 만료되었습니다.",
    "invalid_query_payload": "Jwt의 query를 검증하는데 실패하였습니다.",
    "invalid_access_key": "잘못된 액세스 키",
}


class BithumbJwtVerifier(JwtVerifier):
    """:class:`JwtVerifier` with the ``timestamp`` claim required and Bithumb's answers."""

    def __init__(self, secrets: dict[str, str], *, clock_ms=None) -> None:
        super().__init__(secrets, clock_ms=clock_ms, require_timestamp=True)

    def verify(self, authorization: str | None, query: str) -> str:
        try:
            return super().verify(authorization, query)
        except AuthError as exc:
            message = MESSAGES.get(str(exc.name))
            if message is None:
                raise
            raise AuthError(exc.name, message, exc.status) from exc

    def _check_timestamp(self, payload: dict) -> None:
        stamp = payload.get("timestamp")
        if stamp is None or isinstance(stamp, bool) or not isinstance(stamp, int):
            raise AuthError("jwt_verification", "the timestamp claim (ms) is required")
        if abs(self.clock_ms() - stamp) > self.window:
            raise AuthError("expired_jwt", "the timestamp claim is outside the window")
