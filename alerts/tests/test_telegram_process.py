"""The bot as `make run` starts it: ``manage.py telegram_bot`` in a process of its own, polling
the fake Bot API server, on a database of its own; and the Procfile `make run` uses carries it
only when TELEGRAM_BOT_TOKEN is set."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from alerts.telegram import linking

ROOT = Path(__file__).resolve().parents[2]
STRANGER, ALICE_CHAT = 9901, 9902
pytestmark = pytest.mark.slow


def environment(tmp_path, **extra) -> dict:
    env = {k: v for k, v in os.environ.items()
           if k not in ("DATABASE_URL", "TELEGRAM_BOT_TOKEN", "TELEGRAM_API_BASE_URL")}
    env.update(TRADESITE_VAR_DIR=str(tmp_path), DJANGO_SETTINGS_MODULE="tradesite.settings",
               **extra)
    return env


def manage(env, *args, timeout=180) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("token, started", [("", False), ("1:abc", True)])
def test_make_run_starts_the_bot_only_with_a_token(tmp_path, token, started):
    out = tmp_path / "Procfile.run"
    env = {k: v for k, v in os.environ.items() if k != "TELEGRAM_BOT_TOKEN"}
    if token:
        env["TELEGRAM_BOT_TOKEN"] = token
    subprocess.run(["scripts/procfile.sh", str(out)], cwd=ROOT, env=env, check=True)
    names = [line.split(":", 1)[0] for line in out.read_text().splitlines() if line.strip()]
    assert ("telegram" in names) is started
    assert {"web", "worker", "trader", "beat", "stream"} <= set(names)


def test_the_command_will_not_start_without_a_token(tmp_path):
    result = manage(environment(tmp_path), "telegram_bot", timeout=60)
    assert result.returncode != 0
    assert "TELEGRAM_BOT_TOKEN is not set" in result.stderr


def test_a_wrong_token_stops_the_command_with_a_message_that_hides_it(tmp_path,
                                                                     fake_telegram):
    wrong = "555:WRONG-secret-token"
    result = manage(environment(tmp_path, TELEGRAM_BOT_TOKEN=wrong,
                                TELEGRAM_API_BASE_URL=fake_telegram.base_url),
                    "telegram_bot", timeout=60)
    assert result.returncode != 0
    assert "the Telegram bot stopped" in result.stderr and "<token>" in result.stderr
    assert "WRONG-secret" not in result.stderr + result.stdout


def test_the_bot_process_links_answers_refuses_and_stops_on_sigterm(tmp_path, fake_telegram):
    fake = fake_telegram
    env = environment(tmp_path, TELEGRAM_BOT_TOKEN=fake.token,
                      TELEGRAM_API_BASE_URL=fake.base_url)
    migrated = manage(env, "migrate", "--noinput", "-v0")
    assert migrated.returncode == 0, migrated.stderr[-2000:]
    made = manage(env, "shell", "-c", (
        "from django.contrib.auth import get_user_model; from alerts.telegram import linking; "
        "u = get_user_model().objects.create_user('alice'); print(linking.new_code(u)[0])"),
        timeout=60)
    assert made.returncode == 0, made.stderr[-2000:]
    code = made.stdout.strip().splitlines()[-1]

    log = open(tmp_path / "bot.log", "w+")  # noqa: SIM115 - closed below
    bot = subprocess.Popen([sys.executable, "manage.py", "telegram_bot", "--poll-timeout", "1"],
                           cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        fake.say(STRANGER, "/status")
        assert fake.wait_for_message(STRANGER, timeout=60).text == linking.REFUSAL
        fake.say(ALICE_CHAT, f"/start {code}")
        assert fake.wait_for_message(ALICE_CHAT).text.startswith("Linked")
        fake.say(ALICE_CHAT, "/configs")
        assert fake.wait_for_message(ALICE_CHAT, after=1).text == (
            "You have no strategy configs yet.")
    finally:
        bot.send_signal(signal.SIGTERM)
        try:
            returncode = bot.wait(30)
        except subprocess.TimeoutExpired:
            bot.kill()
            raise
        log.seek(0)
        output = log.read()
        log.close()
    assert returncode == 0, output[-3000:]
    assert fake.token not in output  # httpx's request lines (with the token) are not logged
    assert fake.token.split(":")[1] not in output
