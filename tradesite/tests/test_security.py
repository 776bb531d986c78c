"""Production hardening that is not a feature of one page: runtime files readable only by their
owner, the Content-Security-Policy, and ``check --deploy`` with production settings."""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from tradesite import envconfig, security

ROOT = Path(__file__).resolve().parents[2]

FILE_MODES = """
import json, os
os.umask(0o022)  # the usual umask: files would be world-readable without our care
import django
django.setup()
from django.core.management import call_command
call_command("migrate", verbosity=0)
call_command("bootstrap_demo", verbosity=0)
from django.db import connection
with connection.cursor() as cursor:  # a write: the WAL and its index (SHM) exist meanwhile
    cursor.execute("UPDATE auth_user SET first_name = 'x' WHERE username = 'demo'")
var = os.environ["TRADESITE_VAR_DIR"]
print(json.dumps({name: oct(os.stat(os.path.join(var, name)).st_mode & 0o777)
                  for name in sorted(os.listdir(var)) + ["."]}))
"""


def django_env(var_dir: Path, **extra) -> dict:
    env = {k: v for k, v in os.environ.items()
           if k not in ("DATABASE_URL", "SECRET_KEY", "FIELD_ENCRYPTION_KEY",
                        "DJANGO_ALLOW_ASYNC_UNSAFE")}
    env.update(TRADESITE_VAR_DIR=str(var_dir), DJANGO_SETTINGS_MODULE="tradesite.settings")
    env.update(extra)
    return env


@pytest.mark.slow
def test_runtime_files_are_created_owner_only(tmp_path):
    """The reproduction: db.sqlite3 (password hashes, sessions, encrypted keys), its -wal and
    -shm, and var/ itself were created world-readable (0644/0755)."""
    var = tmp_path / "var"
    result = subprocess.run(
        [sys.executable, "-c", FILE_MODES], cwd=ROOT, env=django_env(var),
        capture_output=True, text=True, timeout=240,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    modes = json.loads(result.stdout.strip().splitlines()[-1])
    expected = dict.fromkeys((
        "db.sqlite3", "db.sqlite3-wal", "db.sqlite3-shm", "secret_key",
        "field_encryption_key", "demo-credentials.txt",
    ), "0o600")
    assert {name: modes.get(name) for name in expected} == expected, modes
    assert modes["."] == "0o700"


def test_a_database_left_readable_by_others_is_narrowed(tmp_path):
    for suffix in ("", "-wal", "-shm"):
        path = tmp_path / f"db.sqlite3{suffix}"
        path.write_bytes(b"")
        path.chmod(0o644)
    envconfig.database_config("sqlite:///db.sqlite3", base_dir=tmp_path)
    for suffix in ("", "-wal", "-shm"):
        assert oct((tmp_path / f"db.sqlite3{suffix}").stat().st_mode & 0o777) == "0o600"


def test_the_allowed_chart_style_hash_matches_the_vendored_lightweight_charts():
    """CSP allows exactly one inline style, lightweight-charts' attribution logo, by hash: a
    new version with another style fails here rather than in a browser."""
    dist = ROOT / "node_modules/lightweight-charts/dist/lightweight-charts.standalone.production.js"
    if not dist.exists():
        pytest.skip("node_modules not installed (npm ci)")
    styles = re.findall(r'createElement\("style"\),this\.\w+\.innerText="([^"]*)"',
                        dist.read_text())
    assert styles == [security.LIGHTWEIGHT_CHARTS_STYLE]


TEMPLATE_DIRS = [ROOT / "templates", ROOT / "orders/templates", ROOT / "strategies/templates",
                 ROOT / "markets/templates", ROOT / "tradesite/templates"]
INLINE = [
    (re.compile(r"<script(?![^>]*\bsrc=)(?![^>]*application/json)[^>]*>", re.I), "inline script"),
    (re.compile(r"<style", re.I), "<style> element"),
    (re.compile(r"\sstyle=", re.I), "style attribute"),
    (re.compile(r"\son[a-z]+=", re.I), "event handler attribute"),
    (re.compile(r"javascript:", re.I), "javascript: URL"),
]


def test_no_template_has_inline_script_or_style():
    """The policy allows neither; a template that needs one fails here (and in the browser)."""
    found = []
    for folder in TEMPLATE_DIRS:
        for path in folder.rglob("*.html") if folder.is_dir() else []:
            text = path.read_text()
            found += [f"{path.relative_to(ROOT)}: {what}" for pattern, what in INLINE
                      if pattern.search(text)]
    assert found == []


@pytest.mark.django_db
def test_pages_are_served_with_the_policy(client, make_trader):
    client.force_login(make_trader("dave"))
    for url in ("/", "/markets/", "/admin/", "/admin/login/"):
        policy = client.get(url)["Content-Security-Policy"]
        assert "script-src 'self'" in policy and "unsafe-inline" not in policy, url
        assert "frame-ancestors 'none'" in policy and "object-src 'none'" in policy


@pytest.mark.slow
def test_check_deploy_with_production_settings_has_no_warning(tmp_path):
    env = django_env(
        tmp_path / "var",
        DEBUG="0",
        SECURE_COOKIES="1",
        SECRET_KEY=secrets.token_urlsafe(50),
        ALLOWED_HOSTS="trade.example.com",
        CSRF_TRUSTED_ORIGINS="https://trade.example.com",
    )
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout, result.stdout + result.stderr


@pytest.mark.django_db
def test_https_settings_follow_secure_cookies(tmp_path):
    from django.conf import settings

    if settings.SECURE_COOKIES:
        pytest.skip("the test run itself uses SECURE_COOKIES=1")
    assert not settings.SECURE_SSL_REDIRECT and settings.SECURE_HSTS_SECONDS == 0
    probe = ("import django; django.setup(); from django.conf import settings as s; "
             "print(s.SECURE_SSL_REDIRECT, s.SECURE_HSTS_SECONDS, s.SESSION_COOKIE_SECURE, "
             "s.CSRF_COOKIE_SECURE, s.SECURE_HSTS_INCLUDE_SUBDOMAINS)")
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=60,
        env=django_env(tmp_path, SECURE_COOKIES="1", HSTS_SECONDS="600"),
    )
    assert result.stdout.split() == ["True", "600", "True", "True", "True"], result.stderr


@pytest.mark.parametrize("variable, value, message", [
    ("LOGIN_FAILURE_LIMIT", "0", "must be at least 1"),
    ("LOGIN_FAILURE_LIMIT", "1001", "is above its maximum 1,000"),
    ("LOGIN_FAILURE_LIMIT", "five", "is not a whole number"),
    ("LOGIN_COOLOFF_MINUTES", "0", "at least 1"),
])
def test_a_bad_throttling_setting_stops_the_process_naming_it(tmp_path, variable, value,
                                                              message):
    from tradesite.tests.test_settings import start_django

    result = start_django(tmp_path, **{variable: value})
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert "ImproperlyConfigured" in last and variable in last and message in last


def test_hsts_seconds_is_checked_when_served_over_https(tmp_path):
    from tradesite.tests.test_settings import start_django

    result = start_django(tmp_path, SECURE_COOKIES="1", HSTS_SECONDS="-5")
    assert result.returncode != 0 and "HSTS_SECONDS" in result.stderr.splitlines()[-1]
