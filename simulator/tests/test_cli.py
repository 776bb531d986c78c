"""``python -m simulator``: flags, the URL line it prints, and a clean stop."""

from __future__ import annotations

import json
import os
import pathlib
import signal
import subprocess
import sys

import requests

ROOT = pathlib.Path(__file__).resolve().parents[2]


def run(*args: str, **kwargs) -> subprocess.Popen:
    env = os.environ | {"PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "simulator", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


def test_help_lists_the_port_flags():
    proc = run("--help")
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0
    for flag in (
        "--upbit-port",
        "--binance-port",
        "--futures-port",
        "--host",
        "--seed",
        "--replay",
        "--rate-limit-budget",
        "--ws-drop-every",
        "--order-delay",
    ):
        assert flag in out


def test_it_prints_its_urls_serves_and_stops_on_sigterm():
    proc = run("--venues", "upbit,binance", "--history-days", "0.05", "--seed", "3")
    try:
        line = proc.stdout.readline()
        urls = json.loads(line)["simexchange"]
        assert set(urls) == {"upbit", "binance"}
        assert urls["upbit"]["rest"].startswith("http://127.0.0.1:")
        response = requests.get(urls["binance"]["rest"] + "/api/v3/time", timeout=5)
        assert response.status_code == 200
        response = requests.get(
            urls["upbit"]["rest"] + "/v1/ticker", params={"markets": "KRW-BTC"}, timeout=5
        )
        assert response.json()[0]["market"] == "KRW-BTC"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=20)
    assert proc.returncode == 0


def test_a_bad_replay_flag_is_a_usage_error():
    proc = run("--replay", "BTCUSDT")
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 2 and "SYMBOL=CSV" in err


def test_the_tick_is_a_flag_and_a_zero_tick_is_a_usage_error():
    import argparse

    from simulator.cli import add_arguments, config_from

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert config_from(parser.parse_args(["--tick-s", "0.025"])).tick_s == 0.025
    assert config_from(parser.parse_args([])).tick_s == 0.1
    proc = run("--tick-s", "0")
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 2 and "--tick-s must be between" in err
