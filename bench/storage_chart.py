"""A chart's first paint at market scale, for ``bench storage`` (issue 20): the server time of
what the chart page needs before it can draw, with many symbols stored. Not a benchmark module
of its own (``make bench`` runs only ``bench_*``): :mod:`bench.bench_storage` calls it.

The chart's first paint needs one HTTP request: ``GET /chart/<venue>/<symbol>/?tf=..`` (the page
embeds the newest 1,000 candles, the 24 h reference from the hourly candles, the symbol picker
of every active symbol, the user's markers; ``tradesite.views.chart``), then a WebSocket. A
timeframe switch asks ``GET /api/candles?...&limit=1000`` (``static/js/chart-page.js``). Both are
timed here through Django's test client (the whole server side: middleware, session, view,
template, JSON; no network, no browser), each for 1m and for 1h, once per symbol over
``SAMPLE`` random symbols (p50, p99), after a short warm-up.

The candle reads are index range scans on the unique (symbol, timeframe, open_time) index: the
newest 1,000 rows of one symbol and timeframe; the bench times the same requests after the
first and after the second day is stored. :mod:`bench.storage_year` times them at 500 symbols
× a whole year each (it found the page's last-price query sorting a symbol's whole history).
"""

from __future__ import annotations

import random
import time

from bench.common import percentile, row

SAMPLE = 50
REQUESTS = ("page 1m", "page 1h", "api 1m", "api 1h")


def hourly(rows: list[tuple]) -> list[tuple]:
    """1h candles of whole hours of the 1m ``rows`` ``(open ms, o, h, l, c, v)``, as the
    stream's aggregator stores them beside the 1m ones."""
    out = []
    for start in range(0, len(rows) - 59, 60):
        hour = rows[start:start + 60]
        out.append((hour[0][0], hour[0][1], max(r[2] for r in hour), min(r[3] for r in hour),
                    hour[-1][4], sum(r[5] for r in hour)))
    return out


def client():
    """A test client logged in as a trader (the chart is behind a login)."""
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.test import Client

    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]
    user = get_user_model().objects.create_user("bench-chart")
    browser = Client()
    browser.force_login(user)
    return browser


def _paths(venue: str, code: str) -> dict[str, str]:
    from django.urls import reverse

    page = reverse("chart", args=[venue, code])
    api = reverse("api:candles")
    return {
        "page 1m": f"{page}?tf=1m",
        "page 1h": f"{page}?tf=1h",
        "api 1m": f"{api}?venue={venue}&symbol={code}&timeframe=1m&limit=1000",
        "api 1h": f"{api}?venue={venue}&symbol={code}&timeframe=1h&limit=1000",
    }


def measure(browser, venue: str, codes: list[str], *, seed: int = 5) -> dict[str, list[float]]:
    """Milliseconds of each request of :data:`REQUESTS`, once for each of ``SAMPLE`` symbols
    drawn from ``codes`` (with replacement when there are fewer), after 3 untimed rounds."""
    rng = random.Random(seed)
    picked = [rng.choice(codes) for _ in range(SAMPLE + 3)]
    times: dict[str, list[float]] = {name: [] for name in REQUESTS}
    for i, code in enumerate(picked):
        for name, path in _paths(venue, code).items():
            started = time.perf_counter()
            response = browser.get(path)
            elapsed = (time.perf_counter() - started) * 1000
            if response.status_code != 200:
                raise AssertionError(f"{path} answered {response.status_code}")
            if i >= 3:
                times[name].append(elapsed)
    return times


def rows(db: str, symbols: int, one: dict, day: dict, two: dict) -> list[dict]:
    """Rows: each request at ``symbols`` × 2 days beside 1 symbol stored (p50, p99), and the
    1m requests at 2 days beside 1 day (the index is deeper; the rows read are the same)."""
    out = []
    for name in REQUESTS:
        what = ("chart page (first paint)" if name.startswith("page") else
                "/api/candles limit 1000") + f", {name[-2:]}"
        for pct in (50, 99):
            out.append(row(f"{db} {what}, {symbols} symbols x 2 days: p{pct} ({SAMPLE} symbols)",
                           percentile(two[name], pct), "ms", "1 symbol stored (fresh table)",
                           percentile(one[name], pct), digits=2, ratio_digits=2))
    for name in ("page 1m", "api 1m"):
        what = "chart page" if name.startswith("page") else "/api/candles"
        out.append(row(f"{db} {what} 1m, {symbols} symbols x 2 days: p50", percentile(
            two[name], 50), "ms", f"{symbols} symbols x 1 day", percentile(day[name], 50),
            digits=2, ratio_digits=2))
    return out


CHROMIUM = "/usr/bin/chromium"
PAINT_SAMPLE = 10
PASSWORD = "bench-paint-password-1"
#: Resolves at the chart's first frame after its candles are set: two animation frames after
#: ``window.tradesiteChart`` holds bars (lightweight-charts draws in the next frame); the value
#: is ms since the navigation started (``performance.now()`` of the new document).
PAINTED = """() => new Promise((done) => {
  const wait = () => (window.tradesiteChart?.bars().length
    ? requestAnimationFrame(() => requestAnimationFrame(() => done(performance.now())))
    : setTimeout(wait, 5));
  wait();
})"""


def browser_first_paint(venue: str, codes: list[str], *, seed: int = 6) -> list[float] | str:
    """Milliseconds from navigation start to the chart painted in Chromium (headless,
    Playwright) for ``PAINT_SAMPLE`` random symbols after one untimed page, the real web server
    (``tradesite.web``) in a process of its own on this database; or why it cannot run."""
    import os
    import subprocess
    import sys
    import urllib.request
    from pathlib import Path

    if not os.path.exists(CHROMIUM):
        return f"{CHROMIUM} is not installed"
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return "playwright is not installed"
    from django.contrib.auth import get_user_model
    from django.db import connection

    from tradesite.devservices import free_port

    if not get_user_model().objects.filter(username="bench-paint").exists():
        get_user_model().objects.create_user("bench-paint", password=PASSWORD, is_staff=True)
    connection.close()  # the server process reads the database from here on
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [sys.executable, "-m", "tradesite.web", "--host", "127.0.0.1", "--port", str(port)],
        cwd=Path(__file__).resolve().parents[1], env=os.environ | {"LOG_LEVEL": "WARNING"},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(url + "/admin/login/", timeout=1).read()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    return "the web server did not start"
                time.sleep(0.1)
        rng = random.Random(seed)
        picked = [rng.choice(codes) for _ in range(PAINT_SAMPLE + 1)]
        times = []
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=CHROMIUM, headless=True,
                args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.goto(url + "/")  # the login form, then back
            page.wait_for_selector("input[name=username]")
            page.fill("input[name=username]", "bench-paint")
            page.fill("input[name=password]", PASSWORD)
            with page.expect_navigation():
                page.click("input[type=submit]")
            if "/login/" in page.url:
                return f"could not log in: {page.inner_text('body')[:200]!r}"
            for i, code in enumerate(picked):
                page.goto(f"{url}/chart/{venue}/{code}/?tf=1m", wait_until="commit")
                painted = page.evaluate(PAINTED)
                if i:  # the first page fetches the static files into the browser's cache
                    times.append(painted)
            browser.close()
        return times
    finally:
        server.terminate()
        server.wait(15)


def paint_rows(db: str, symbols: int, one, two) -> list[dict]:
    """Rows of :func:`browser_first_paint` at ``symbols`` beside 1 symbol stored, or one row
    saying why it did not run."""
    if isinstance(two, str) or isinstance(one, str):
        why = two if isinstance(two, str) else one
        return [row(f"{db} browser first paint: not measured ({why})", None, "ms", None, None)]
    return [row(f"{db} browser first paint (Chromium), chart 1m, {symbols} symbols x 2 days: "
                f"p{pct} ({len(two)} symbols)", percentile(two, pct), "ms",
                "1 symbol stored (fresh table)", percentile(one, pct), digits=1, ratio_digits=2)
            for pct in (50, 99)]
