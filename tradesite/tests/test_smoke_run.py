"""`make run`'s script on embedded defaults: the stack starts, is healthy, and Ctrl-C stops all
of it, Redis included. Bounded: the test gives up after 120 s."""

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import requests

from tradesite.devservices import free_port

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def session_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def test_run_script_starts_healthy_stack_and_ctrl_c_stops_everything(tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL")}
    env.update(
        TRADESITE_VAR_DIR=str(tmp_path / "var"),
        TRADESITE_STATIC_ROOT=str(tmp_path / "static"),
        WHITENOISE_USE_FINDERS="0",
        TRADESITE_PORT=str(port),
        REDIS_PORT=str(free_port()),
        WORKER_CONCURRENCY="1",
        SIM_UPBIT_PORT=str(free_port()),
        SIM_BINANCE_PORT=str(free_port()),
        SIM_FUTURES_PORT=str(free_port()),
        SIM_BITHUMB_PORT=str(free_port()),
    )
    log = open(tmp_path / "run.log", "w+")  # noqa: SIM115 - outlives the block; closed by GC
    proc = subprocess.Popen(
        ["scripts/run.sh"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        body = None
        while time.monotonic() < deadline:
            assert proc.poll() is None, (tmp_path / "run.log").read_text()[-3000:]
            try:
                response = requests.get(base + "/health", timeout=2)
                body = response.json()
                if response.status_code == 200:
                    break
            except (requests.ConnectionError, requests.Timeout, ValueError):
                pass  # not up yet, or still starting on a busy machine: the deadline bounds it
            time.sleep(1)
        else:
            pytest.fail(
                f"/health never answered 200: {body}\n" + (tmp_path / "run.log").read_text()[-3000:]
            )
        assert body == {"ok": True}  # anonymous callers learn nothing more
        token = subprocess.run(
            [".venv/bin/python", "manage.py", "api_token", "--user", "admin", "--name", "smoke"],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
        )
        assert token.returncode == 0, token.stderr
        key = token.stdout.strip().splitlines()[-1]
        body = requests.get(base + "/health", headers={"Authorization": f"Bearer {key}"},
                            timeout=5).json()
        assert body["checks"]["workers"]["ok"] and body["checks"]["beat"]["ok"]
        assert body["checks"]["stream"]["ok"] and "sim" in body["checks"]["stream"]["venues"]
        # The sim venue's 1m candles land in the database (stream catch-up and live bars).
        landed = 0
        for _ in range(6):
            export = subprocess.run(
                [".venv/bin/python", "manage.py", "export_candles", "--venue", "sim",
                 "--symbol", "KRW-BTC", "--timeframe", "1m"],
                cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
            )
            assert export.returncode == 0, export.stderr
            landed = len(export.stdout.splitlines()) - 1
            if landed > 10:
                break
            time.sleep(5)
        assert landed > 10, (tmp_path / "run.log").read_text()[-3000:]
        login = requests.get(base + "/admin/login/", timeout=5)
        assert login.status_code == 200 and 'name="username"' in login.text
        assert (tmp_path / "var" / "demo-credentials.txt").exists()
        output = (tmp_path / "run.log").read_text()
        assert f"tradesite is starting at {base}/" in output and "demo " in output
    finally:
        os.kill(proc.pid, signal.SIGINT)  # what Ctrl-C sends to the foreground process
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            pytest.fail("run.sh did not stop within 60 s of Ctrl-C")
        deadline = time.monotonic() + 30
        while session_alive(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.5)
        leftover = session_alive(proc.pid)
        if leftover:
            os.killpg(proc.pid, signal.SIGKILL)
        assert not leftover, "processes were left behind after Ctrl-C"
