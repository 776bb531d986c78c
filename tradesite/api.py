"""The JSON API: one django-ninja ``NinjaAPI`` at ``/api/`` (top layer: it mounts the orders
router and serves the candles, which need ``strategies`` indicators).

- ``/api/openapi.json``: the OpenAPI description; ``/api/docs``: the interactive page (Swagger
  UI from django-ninja's own static files, no CDN, no inline script).
- Every request body is bounded (``MAX_BODY`` bytes, ``MAX_DEPTH`` levels of nesting) before
  ``json.loads`` sees it; JSON numbers become ``Decimal`` (exact money; ``NaN`` and
  ``Infinity`` are not JSON and are refused).
- Every failure is ``{"error": "<message naming the field>"}`` (validation failures add
  ``"detail": [{"field", "message"}]``), never a 5xx for a malformed request.
"""

from __future__ import annotations

import functools
import json
import re
from decimal import Decimal
from typing import Literal

from django.core.exceptions import RequestDataTooBig
from django.http import Http404, HttpRequest, HttpResponse
from ninja import NinjaAPI, Query, Router
from ninja.errors import AuthenticationError, HttpError, ValidationError
from ninja.parser import Parser
from pydantic import BaseModel as Schema
from pydantic import Field, model_validator

from alerts.api import router as alerts_router
from markets import api as market_api
from markets.timeframes import TIMEFRAMES
from orders.api import router as orders_router
from orders.api_auth import TokenOrSession
from orders.api_performance import router as performance_router
from tradesite import views

MAX_BODY = 64 * 1024
MAX_DEPTH = 20
_STRINGS = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKETS = re.compile(rb"[\[\]{}]")


def json_depth(body: bytes) -> int:
    """The deepest nesting of ``[``/``{`` in ``body`` (strings skipped), without parsing it."""
    depth = deepest = 0
    for match in _BRACKETS.finditer(_STRINGS.sub(b'""', body)):
        if match.group() in (b"[", b"{"):
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


def _no_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


class BoundedJsonParser(Parser):
    """JSON bodies, checked for size and nesting before parsing; numbers as Decimal."""

    def parse_body(self, request: HttpRequest):
        body = request.body
        if len(body) > MAX_BODY:
            raise HttpError(400, f"the request body is over {MAX_BODY // 1024} KB")
        if json_depth(body) > MAX_DEPTH:
            raise HttpError(400, f"the request body nests deeper than {MAX_DEPTH} levels")
        try:
            return json.loads(body, parse_float=Decimal, parse_constant=_no_constant)
        except (ValueError, RecursionError) as exc:
            raise HttpError(400, f"the request body is not valid JSON ({exc})") from None


ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {"type": "string", "description": "what went wrong, naming the field"},
        "detail": {
            "type": "array",
            "description": "validation failures, one per field",
            "items": {"type": "object", "properties": {"field": {"type": "string"},
                                                       "message": {"type": "string"}}},
        },
    },
}
ERRORS = {
    "400": "malformed request (the error names the field)",
    "401": "no session and no valid API token",
    "403": "CSRF check failed (session callers' unsafe methods)",
    "404": "no such object among yours",
    "409": "conflicts with the object's state",
    "429": "too many refused tokens from this address",
}


class TradesiteAPI(NinjaAPI):
    def get_openapi_schema(self, *args, **kwargs):
        """ninja's description plus the ``{"error": ...}`` answers every operation may give."""
        schema = super().get_openapi_schema(*args, **kwargs)
        schema.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR_SCHEMA
        ref = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
        for operations in schema["paths"].values():
            for operation in operations.values():
                for code, text in ERRORS.items():
                    operation["responses"].setdefault(code, {"description": text, **ref})
        return schema


api = TradesiteAPI(
    title="tradesite JSON API",
    version="1",
    description=(
        "Every call sees and changes only the caller's own objects (superusers too). "
        "Send `Authorization: Bearer <token>` (`manage.py api_token`) or use the browser "
        'session. Errors are `{"error": "..."}` with 400/401/403/404/405/409/422/429.'
    ),
    urls_namespace="api",
    auth=TokenOrSession(),
    parser=BoundedJsonParser(),
)


def _error(request, message: str, status: int, detail: list | None = None) -> HttpResponse:
    payload: dict = {"error": message}
    if detail is not None:
        payload["detail"] = detail
    return api.create_response(request, payload, status=status)


@api.exception_handler(HttpError)
def _http_error(request, exc: HttpError):
    # ninja wraps a parser failure in "Cannot parse request body": keep the parser's reason.
    cause = exc.__cause__
    if isinstance(cause, HttpError):
        exc = cause
    if isinstance(exc, AuthenticationError):
        return _error(request, "log in, or send an API token: 'Authorization: Bearer <token>'",
                      401)
    return _error(request, exc.message, exc.status_code)


@api.exception_handler(RequestDataTooBig)
def _too_big(request, exc):
    return _error(request, f"the request body is over {MAX_BODY // 1024} KB", 400)


@api.exception_handler(Http404)
def _not_found(request, exc):
    return _error(request, str(exc) or "not found", 404)


SOURCES = ("body", "query", "path", "header", "cookie", "form")


def _field(loc: tuple) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] in SOURCES:
        source = parts.pop(0)
        if source in ("body", "query") and parts and parts[0] in ("payload", "q"):
            parts.pop(0)
    return ".".join(parts)


def _message(error: dict, field: str) -> str:
    text = error["msg"]
    if text.startswith("Value error, "):
        text = text[len("Value error, "):]
        return text if not field or text.startswith(field) else f"{field} {text}"
    if not field:
        if error["type"] in ("missing", "model_type", "model_attributes_type", "dict_type"):
            return "send a JSON object in the request body"
        return text
    if error["type"] == "missing":
        return f"{field} is required"
    if text.startswith("Input should be"):
        return f"{field} must be{text[len('Input should be'):]}"
    return f"{field}: {text}"


@api.exception_handler(ValidationError)
def _validation_error(request, exc: ValidationError):
    detail = []
    for error in exc.errors:
        field = _field(tuple(error.get("loc", ())))
        detail.append({"field": field, "message": _message(error, field)})
    return _error(request, "; ".join(d["message"] for d in detail), 400, detail)


# ------------------------------------------------------------------------ candles

candles_router = Router(tags=["market data"])


class CandleParams(Schema):
    """Checked by ``markets.api.parse_candle_query`` (its messages name the parameter)."""

    venue: str = Field(max_length=64, description="venue slug, e.g. sim")
    symbol: str = Field(max_length=64, description="symbol code, e.g. KRW-BTC")
    timeframe: Literal[TIMEFRAMES]  # type: ignore[valid-type]
    limit: int = Field(market_api.DEFAULT_LIMIT, ge=1, le=market_api.MAX_LIMIT)
    before: int | None = Field(None, ge=market_api.MIN_TIME_MS, le=market_api.MAX_TIME_MS,
                               description="ms since the epoch: candles opening before it")
    after: int | None = Field(None, ge=market_api.MIN_TIME_MS, le=market_api.MAX_TIME_MS,
                              description="ms since the epoch: candles opening at or after it")
    indicators: str | None = Field(None, description="all, or a comma list of "
                                   + ", ".join(views.INDICATORS))

    @model_validator(mode="before")
    @classmethod
    def check_query(cls, data):
        if not isinstance(data, dict):
            return data
        try:
            query = market_api.parse_candle_query(data)
            names = views.indicator_names(data.get("indicators"))
        except market_api.BadCandleQuery as exc:
            raise ValueError(str(exc)) from None
        return {"venue": query.venue, "symbol": query.symbol, "timeframe": query.timeframe,
                "limit": query.limit, "before": query.before_ms, "after": query.after_ms,
                "indicators": ",".join(names)}


@candles_router.get("/candles", url_name="candles", summary="Candles (and indicators) as columns")
def candles(request, q: Query[CandleParams]):
    """``{venue, symbol, timeframe, candles: {t, o, h, l, c, v}[, indicators]}``, oldest first,
    at most 5,000 candles; ``before``/``after`` are ms since the epoch; ``indicators`` is
    ``all`` or a comma list of ``bb, sma7, sma20, sma60, sma120, macd, rsi``."""
    query = market_api.CandleQuery(q.venue, q.symbol, q.timeframe, q.limit, q.before, q.after)
    try:
        symbol = market_api.find_symbol(query.venue, query.symbol)
    except market_api.UnknownSymbol as exc:
        raise HttpError(404, str(exc)) from None
    names = [n for n in (q.indicators or "").split(",") if n]
    payload = views.candles_payload(symbol, query, names)
    return HttpResponse(market_api.encode(payload), content_type="application/json")


def _json_405(view):
    """ninja answers a wrong method with an empty 405; say which methods work, as JSON."""

    @functools.wraps(view)
    def wrapper(request, *args, **kwargs):
        response = view(request, *args, **kwargs)
        if response.status_code != 405:
            return response
        allowed = response.get("Allow", "")
        methods = " or ".join(m.strip() for m in allowed.split(",") if m.strip())
        out = HttpResponse(json.dumps({"error": f"use {methods} here"}), status=405,
                           content_type="application/json")
        out["Allow"] = allowed
        return out

    return wrapper


def urls():
    """``api.urls`` with JSON 405 answers (for ``path("api/", ...)``)."""
    patterns, app_name, namespace = api.urls
    for pattern in patterns:
        if getattr(pattern, "callback", None) is not None and hasattr(pattern, "pattern"):
            pattern.callback = _json_405(pattern.callback)
    return patterns, app_name, namespace


def not_found(request: HttpRequest, rest: str = "") -> HttpResponse:
    """Any other path under ``/api/``: a JSON 404 that points at the description."""
    return HttpResponse(
        json.dumps({"error": "no such API endpoint; see /api/docs or /api/openapi.json"}),
        status=404, content_type="application/json",
    )


api.add_router("/", orders_router)
api.add_router("/", performance_router)
api.add_router("/", candles_router)
api.add_router("/", alerts_router)
