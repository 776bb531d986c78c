"""Bad configuration fails at start, with a message that names the variable."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from tradesite import envconfig

ROOT = Path(__file__).resolve().parents[2]


def start_django(tmp_path, **env):
    environment = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    environment.update(TRADESITE_VAR_DIR=str(tmp_path), DJANGO_SETTINGS_MODULE="tradesite.settings")
    environment.update(env)
    return subprocess.run(
        [sys.executable, "-c", "import django; django.setup(); print('started')"],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    "variable, value",
    [
        ("DATABASE_URL", "not a url"),
        ("DATABASE_URL", "mysqlx://x/y"),
        ("DATABASE_URL", "postgres://user@host:99999999/db"),
        ("REDIS_URL", "localhost:6379"),
        ("REDIS_URL", "redis://:6379/0"),
        ("REDIS_URL", "redis://localhost:port/0"),
        ("REDIS_URL", "redis://localhost:6379/zero"),
        ("FIELD_ENCRYPTION_KEY", "short"),
    ],
)
def test_malformed_url_fails_at_start_naming_the_variable(tmp_path, variable, value):
    result = start_django(tmp_path, **{variable: value})
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert variable in result.stderr.splitlines()[-1]


@pytest.mark.parametrize("value, message", [
    ("0.5%", "is not a number"), ("-1", "at least 0"), ("nan", "at least 0"),
    ("0.2", "above its maximum"),
])
def test_a_bad_trading_cost_fails_at_start_naming_the_variable(monkeypatch, value, message):
    monkeypatch.setenv("TRADING_FEE_RATE", value)
    with pytest.raises(ImproperlyConfigured, match=f"TRADING_FEE_RATE=.*{message}"):
        envconfig.number("TRADING_FEE_RATE", 0.0005, maximum=0.1)


def test_trading_costs_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("TRADING_SLIPPAGE_BPS", " 12.5 ")
    assert envconfig.number("TRADING_SLIPPAGE_BPS", 5.0) == 12.5
    monkeypatch.delenv("TRADING_SLIPPAGE_BPS")
    assert envconfig.number("TRADING_SLIPPAGE_BPS", 5.0) == 5.0


def test_defaults_start_and_generate_secrets_once(tmp_path):
    first = start_django(tmp_path)
    assert first.returncode == 0, first.stderr
    secret = (tmp_path / "secret_key").read_text()
    key = (tmp_path / "field_encryption_key").read_text()
    assert oct((tmp_path / "secret_key").stat().st_mode & 0o777) == "0o600"
    assert start_django(tmp_path).returncode == 0
    assert (tmp_path / "secret_key").read_text() == secret
    assert (tmp_path / "field_encryption_key").read_text() == key


def test_sqlite_runs_in_wal_with_immediate_transactions(tmp_path):
    config = envconfig.database_config("sqlite:///var/x.sqlite3", base_dir=tmp_path)
    assert config["NAME"] == str(tmp_path / "var" / "x.sqlite3")
    assert config["OPTIONS"]["transaction_mode"] == "IMMEDIATE"
    assert "journal_mode=WAL" in config["OPTIONS"]["init_command"]
    assert "busy_timeout" in config["OPTIONS"]["init_command"]


def test_postgres_url_from_pgserver_is_accepted(tmp_path):
    config = envconfig.database_config(
        "postgresql://postgres:@/postgres?host=/tmp/pg-data", base_dir=tmp_path
    )
    assert config["ENGINE"] == "django.db.backends.postgresql"
    assert config["OPTIONS"]["host"] == "/tmp/pg-data" and config["NAME"] == "postgres"


def test_redis_url_accepts_the_usual_forms():
    for url in (
        "redis://127.0.0.1:6379/0",
        "rediss://user:pw@host:6380/2",
        "unix:///var/run/redis.sock",
        "redis://localhost",
    ):
        assert envconfig.redis_url(url) == url


def test_sqlite_url_without_file_is_rejected(tmp_path):
    with pytest.raises(ImproperlyConfigured, match="DATABASE_URL"):
        envconfig.database_config("sqlite://", base_dir=tmp_path)
