"""Set up a scratch stack, run the drills in order, print one line each, exit non-zero if any
failed. Every process the run starts is stopped (its whole process group) on the way out,
including on SIGTERM or Ctrl-C."""

from __future__ import annotations

import argparse
import os
import signal
import time
import traceback

from tradesite.drills.stack import Stack


def _terminate(signum, frame):
    raise SystemExit(128 + signum)


def prepare(stack: Stack) -> None:
    """Redis, a migrated scratch database with the demo data; only the ``sim`` venue is active
    (one simulator protocol runs) and periodic tasks are off (nothing fills candles behind
    a drill's back), beat still writes its heartbeat."""
    os.environ.update(stack.environ())
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tradesite.settings")
    stack.start_redis()
    stack.run("migrate", "--noinput", "-v0")
    stack.run("bootstrap_demo")
    import django

    django.setup()
    from django_celery_beat.models import PeriodicTask

    from markets.models import Exchange

    Exchange.objects.exclude(slug="sim").update(is_active=False)
    PeriodicTask.objects.update(enabled=False)


def drills() -> dict:
    """The drills in the order they run (by value); the names are the ones ``--only`` takes."""
    from tradesite.drills import drills, kills, order_drills

    return {
        "stream-kill": drills.stream_kill,
        "redis-kill": drills.redis_kill,
        "web-kill": kills.web_kill,
        "all-kill": kills.all_kill,
        "rate-limit": drills.rate_limit,
        "rest-errors": order_drills.rest_errors,
        "order-delays": order_drills.order_delays,
        "worker-kill": drills.worker_kill,
        "ws-drops": drills.ws_drops,
    }


def main(argv: list[str] | None = None) -> int:
    from tradesite.drills.drills import Options

    table = drills()

    parser = argparse.ArgumentParser(prog="python -m tradesite.drills",
                                     description="Fault drills on a scratch stack.")
    parser.add_argument("--only", action="append", choices=sorted(table), default=[],
                        help="run only this drill (repeatable; default: all, in order)")
    parser.add_argument("--outage", type=float, default=20.0,
                        help="seconds the killed stream stays down (default 20)")
    parser.add_argument("--redis-outage", type=float, default=5.0,
                        help="seconds the killed Redis stays down (default 5)")
    parser.add_argument("--budget", type=int, default=3,
                        help="simulator requests per window in rate-limit (default 3)")
    parser.add_argument("--error-ratio", type=float, default=0.3,
                        help="share of REST requests answered 5xx in rest-errors (default 0.3)")
    parser.add_argument("--order-delay", type=float, default=12.0,
                        help="seconds order answers are held in order-delays (default 12; "
                             "the client's read timeout is 10)")
    parser.add_argument("--orders", type=int, default=20,
                        help="live orders each order drill places (default 20)")
    parser.add_argument("--keep", action="store_true",
                        help="keep the scratch folder (logs, database) and print its path")
    args = parser.parse_args(argv)
    options = Options(outage_s=args.outage, redis_outage_s=args.redis_outage,
                      budget=args.budget, error_ratio=args.error_ratio,
                      order_delay_s=args.order_delay, orders=args.orders)
    names = [n for n in table if not args.only or n in args.only]

    signal.signal(signal.SIGTERM, _terminate)
    stack = Stack(keep=args.keep)
    failed = 0
    try:
        prepare(stack)
        for name in names:
            started = time.monotonic()
            try:
                figures = table[name](stack, options)
                verdict = "PASS"
            except Exception as exc:  # a failure is its report line
                failed += 1
                verdict = "FAIL"
                figures = str(exc) if isinstance(exc, AssertionError) else \
                    "".join(traceback.format_exception(exc))
            finally:
                stack.stop_all()
            print(f"drill {name}: {figures.strip()}; took {time.monotonic() - started:.0f} s: "
                  f"{verdict}", flush=True)
    finally:
        stack.close()
        if args.keep:
            print(f"scratch folder kept: {stack.tmp}", flush=True)
    return 1 if failed else 0
