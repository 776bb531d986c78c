"""What the benchmark modules share: a result row, timing, percentiles, the table print, and a
venue and symbol on a scratch database. Not a benchmark itself (``make bench`` runs only the
``bench_*`` modules)."""

from __future__ import annotations

import statistics
import time


def row(name: str, value, unit: str, baseline, baseline_value, *, digits: int | None = None,
        ratio_digits: int | None = None) -> dict:
    """One result row as ``make bench`` prints it: ``ratio`` is ``value / baseline_value``
    (None when either is missing or the baseline is 0). ``digits`` rounds the value and the
    baseline value, ``ratio_digits`` the ratio; None leaves them as measured."""

    def rounded(number, places):
        return number if places is None or number is None else round(number, places)

    ratio = value / baseline_value if baseline_value and value is not None else None
    return {
        "name": name,
        "value": rounded(value, digits),
        "unit": unit,
        "baseline": baseline,
        "baseline_value": rounded(baseline_value, digits),
        "ratio": rounded(ratio, ratio_digits),
    }


def best_of(repeats: int, fn) -> float:
    """Smallest wall time of ``repeats`` calls of ``fn`` (seconds)."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def median_ms(fn, repeats: int = 15) -> float:
    """Median wall time of ``repeats`` calls of ``fn`` (milliseconds)."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) * 1000.0)
    return statistics.median(times)


def percentile(values: list[float], pct: float) -> float:
    """The nearest-rank ``pct`` percentile of ``values``; NaN when there are none."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(pct / 100 * (len(ordered) - 1))))
    return ordered[k]


def print_table(rows: list[dict]) -> None:
    cols = ["name", "value", "unit", "baseline", "baseline_value", "ratio"]
    widths = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in cols}
    print("  ".join(c.ljust(widths[c]) for c in cols))
    for r in rows:
        print("  ".join(str(r[c]).ljust(widths[c]) for c in cols))


def scratch_venue(alias: str = "default", slug: str = "bench", name: str = "Bench"):
    """A venue whose URLs lead nowhere (nothing in a bench calls it), on database ``alias``."""
    from markets.models import Exchange

    return Exchange.objects.using(alias).create(
        slug=slug, name=name, adapter="upbit", rest_url="http://127.0.0.1:1",
        ws_url="ws://127.0.0.1:1",
    )


def scratch_symbol(alias: str = "default") -> int:
    """The id of a new KRW-BENCH symbol on a new :func:`scratch_venue`."""
    from markets.models import Symbol

    return Symbol.objects.using(alias).create(
        exchange=scratch_venue(alias), code="KRW-BENCH", base="BENCH", quote="KRW"
    ).id


def rate_row(name: str, value, unit: str, baseline, baseline_value) -> dict:
    """A :func:`row` of rates (higher is better), values to 0.1 and the ratio to 0.01."""
    return row(name, value, unit, baseline, baseline_value, digits=1, ratio_digits=2)
