"""A second process for ``test_shared_budget``: market-data requests through the adapter factory,
as the collector or a backfill makes them, until the venue's shared budget says "wait".

``python -m orders.tests.budget_child '<json>'`` with ``slug``, ``rest_url``, ``symbol`` and
``limits`` (``EXCHANGE_RATE_LIMITS``); prints ``{"requests": n, "error": ...}`` and exits.
"""

import json
import os
import sys
import time


class BudgetSpent(Exception):
    """The shared limiter asked this process to wait."""


def main(raw: str) -> None:
    args = json.loads(raw)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tradesite.settings")
    import django

    django.setup()
    from types import SimpleNamespace

    from django.conf import settings

    from markets.adapters import adapter_for, venue_limiter

    settings.EXCHANGE_RATE_LIMITS = {args["slug"]: args["limits"]}
    venue = SimpleNamespace(slug=args["slug"], adapter="binance_spot",
                            rest_url=args["rest_url"], ws_url="ws://127.0.0.1:1")
    limiter = venue_limiter(venue)

    def refuse(wait_s: float) -> None:
        raise BudgetSpent(f"wait {wait_s:.2f}s")

    limiter._sleep = refuse  # stop at the first wait instead of sleeping through it
    adapter = adapter_for(venue, limiter=limiter)
    requests, error = 0, None
    now = int(time.time() * 1000) // 60_000 * 60_000
    try:
        while requests < 1000:
            adapter.fetch_candles(args["symbol"], "1m", now - 180_000, now - 120_000)
            requests += 1
    except BudgetSpent:
        pass
    except Exception as exc:  # a 429 here is what the test must never see
        error = f"{type(exc).__name__}: {exc}"
    finally:
        adapter.close()
    print(json.dumps({"requests": requests, "error": error}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
