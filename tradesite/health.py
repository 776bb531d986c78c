"""``GET /health``: is every part of the stack alive? 200 when all required parts are, else 503.

Reads only cheap things: ``SELECT 1``, Redis ``PING``, the heartbeats that beat, the workers
and the stream write to Redis (``markets.heartbeat``), and the state of this web process's chart
hub (in memory: a hub that lost Redis and has not rejoined its groups makes it 503). No login
needed, so a load balancer or uptime monitor can call it; such a caller gets only
``{"ok": true|false}`` and the status code. The checks themselves (database vendor, worker host
names and queues, venues, counters, the hub's state) go only to a staff user's session or a
request with a valid API token (``Authorization: Bearer <token>``, ``manage.py api_token``).
"""

from __future__ import annotations

import time

from django.conf import settings
from django.db import connection
from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from markets import heartbeat
from tradesite.celery import QUEUES

BEAT_STALE_SECONDS = 30
WORKER_STALE_SECONDS = 45
STREAM_STALE_SECONDS = 90
#: A subscribed hub whose watch missed this many checks is reported.
HUB_STALE_CHECKS = 3


def _timed(check):
    started = time.perf_counter()
    try:
        result = check()
    except Exception as exc:  # a health check reports failures, it does not raise them
        result = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    result["ms"] = round((time.perf_counter() - started) * 1000, 1)
    return result


def check_database() -> dict:
    """The database answers. A live account on SQLite is a warning, not a failure: it trades,
    but its amounts keep about 15 significant digits (``SQLITE_MONEY_WARNING``)."""
    from markets.models import SQLITE_MONEY_WARNING, Account, money_is_approximate

    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    result = {"ok": True, "vendor": connection.vendor}
    if money_is_approximate(connection) and Account.objects.filter(
        mode=Account.Mode.LIVE
    ).exists():
        result["warning"] = SQLITE_MONEY_WARNING
    return result


def check_redis() -> dict:
    return {"ok": bool(heartbeat.client().ping())}


def check_beat(now: float) -> dict:
    fields = heartbeat.read("beat").get("scheduler")
    if not fields:
        return {"ok": False, "error": "celery beat has not reported; is it running?"}
    age = heartbeat.age_seconds(fields, now)
    return {
        "ok": age is not None and age < BEAT_STALE_SECONDS,
        "last_tick_seconds_ago": None if age is None else round(age, 1),
    }


def check_workers(now: float) -> dict:
    workers = {}
    served: set[str] = set()
    for name, fields in heartbeat.read("worker").items():
        age = heartbeat.age_seconds(fields, now)
        alive = age is not None and age < WORKER_STALE_SECONDS
        queues = [q for q in fields.get("queues", "").split(",") if q]
        workers[name] = {"alive": alive, "queues": queues, "seconds_ago": round(age or 0, 1)}
        if alive:
            served.update(queues)
    missing = [q for q in QUEUES if q not in served]
    result = {"ok": not missing, "workers": workers}
    if missing:
        result["error"] = f"no live worker serves queue(s): {', '.join(missing)}"
    return result


def check_chart_hub() -> dict:
    """This web process's chart hub (``tradesite.consumers.Hub``): not ok while it is not
    subscribed (it lost Redis and has not rejoined its groups yet) or its membership watch has
    stopped running. Idle (no chart open) is fine. Each web process answers for its own hub."""
    from tradesite.consumers import Hub, hub_report

    hubs = hub_report()
    problems = []
    for found in hubs:
        if found["state"] == "recovering":
            problems.append(f"chart hub not subscribed for {found['recovering_seconds']} s "
                            f"({found.get('error', 'rejoining')})")
        elif found["state"] == "subscribed" and (found["last_check_seconds_ago"] or 0) > (
                HUB_STALE_CHECKS * Hub.CHECK_S):
            problems.append(f"chart hub has not checked its groups for "
                            f"{found['last_check_seconds_ago']} s")
    result = {"ok": not problems, "hubs": hubs,
              "state": hubs[0]["state"] if len(hubs) == 1 else [h["state"] for h in hubs]}
    if problems:
        result["error"] = "; ".join(problems)
    return result


def check_strategies() -> dict:
    """Which strategies loaded, and each user strategy module that did not, with its error.

    A broken module alone does not make the check fail (the other strategies trade as usual);
    an active config whose strategy is not loaded does: it cannot trade.
    """
    from strategies import registry
    from strategies.models import StrategyConfig

    loaded = registry.names()
    failed = [{"source": f.source, "error": f.error} for f in registry.failures()]
    missing = sorted(
        set(StrategyConfig.objects.filter(is_active=True).values_list("strategy", flat=True))
        - set(loaded)
    )
    result = {"ok": not missing, "loaded": len(loaded),
              "user": [name for name in loaded if registry.is_user(name)]}
    problems = []
    if missing:
        problems.append(f"active configs use strategies that are not loaded: {', '.join(missing)}")
    if failed:
        result["failed_modules"] = failed
        problems.append("strategy modules not loaded: " + "; ".join(
            f"{f['source']}: {f['error']}" for f in failed))
    if problems:
        result["error"] = "; ".join(problems)
    return result


def required_stream_venues() -> list[str]:
    """Slugs of active venues with at least one active symbol: each needs a live stream."""
    from markets.models import Exchange

    return list(
        Exchange.objects.filter(is_active=True, symbols__is_active=True)
        .distinct()
        .order_by("slug")
        .values_list("slug", flat=True)
    )


def check_stream(now: float) -> dict:
    """Every active venue with active symbols needs a fresh stream heartbeat whose state is
    not ``down`` (``streaming``, or ``polling`` over REST while its WebSocket reconnects)."""
    from markets.stream.shards import venue_beats

    venues = {}
    # One heartbeat per venue and shard (``<venue>@<shard>``), merged per venue.
    for venue, fields in venue_beats(heartbeat.read("stream")).items():
        age = heartbeat.age_seconds(fields, now)
        venues[venue] = {
            "ok": age is not None
            and age < STREAM_STALE_SECONDS
            and fields.get("state", "streaming") != "down",
            "last_message_seconds_ago": None if age is None else round(age, 1),
            **{k: v for k, v in fields.items() if k != "ts_ms"},
        }
    required = required_stream_venues()
    missing = [slug for slug in required if slug not in venues]
    problems = []
    if missing:
        problems.append(f"no stream heartbeat for active venue(s): {', '.join(missing)}; "
                        "is `manage.py stream` running?")
    bad = [slug for slug in required if slug in venues and not venues[slug]["ok"]]
    if bad:
        problems.append(f"stream stale or down for: {', '.join(bad)}")
    shards = stream_shards(now)
    if not venues and not required:
        ok = not getattr(settings, "HEALTH_REQUIRE_STREAM", False)
        return {"ok": ok, "venues": {}, "required": [], "status": "not running",
                "shards": shards}
    result = {"ok": not problems and all(v["ok"] for v in venues.values()), "venues": venues,
              "required": required, "shards": shards}
    if problems:
        result["error"] = "; ".join(problems)
    return result


def stream_shards(now: float) -> dict:
    """The live stream shards (``markets.stream.shards``): how many symbols each follows, the
    venues it takes and how long ago it beat."""
    from markets.stream.shards import read_shards

    shards = {}
    for shard_id, fields in read_shards(heartbeat.client(),
                                        f"{settings.REDIS_KEY_PREFIX}stream:shard:").items():
        age = heartbeat.age_seconds(fields, now)
        shards[shard_id] = {"symbols": int(fields.get("symbols") or 0),
                            "venues": fields.get("venues", "*"),
                            "seconds_ago": None if age is None else round(age, 1)}
    return shards


def system_checks(now: float) -> dict:
    """The checks the system-health alert rules read (``alerts.health``, registered in
    ``TradesiteConfig.ready``): workers, beat and streams, as ``/health`` reports them."""
    return {
        "beat": _timed(lambda: check_beat(now)),
        "workers": _timed(lambda: check_workers(now)),
        "stream": _timed(lambda: check_stream(now)),
    }


@never_cache
@require_GET
def health(request):
    now = time.time()
    checks = {
        "database": _timed(check_database),
        "redis": _timed(check_redis),
        "chart_hub": _timed(check_chart_hub),
        "strategies": _timed(check_strategies),
    }
    if checks["redis"]["ok"]:
        checks["beat"] = _timed(lambda: check_beat(now))
        checks["workers"] = _timed(lambda: check_workers(now))
        checks["stream"] = _timed(lambda: check_stream(now))
    else:
        for name in ("beat", "workers", "stream"):
            checks[name] = {"ok": False, "error": "unknown: Redis is unreachable"}
    ok = all(check["ok"] for check in checks.values())
    body = {"ok": ok, "checks": checks} if may_see_details(request) else {"ok": ok}
    return JsonResponse(body, status=200 if ok else 503)


def may_see_details(request) -> bool:
    """A staff session, or a valid API token of an active user."""
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated and user.is_staff:
        return True
    scheme, _, key = request.headers.get("Authorization", "").partition(" ")
    key = key.strip()
    if scheme.lower() != "bearer" or not key:
        return False
    from orders.models import ApiToken

    try:
        return ApiToken.objects.filter(
            key_hash=ApiToken.hash(key), owner__is_active=True
        ).exists()
    except Exception:  # the database is down: the checks above already say so
        return False
