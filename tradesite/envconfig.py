"""Reading configuration from the environment, failing at start with a message that names the
variable. Used by settings; no Django model imports.

django-environ parses URLs; this module adds the checks it does not do (a garbage
``DATABASE_URL`` otherwise surfaces later as an obscure KeyError or a connection error) and the
secrets that are generated once into ``var/`` when they are not set.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path
from urllib.parse import urlsplit

import environ
from django.core.exceptions import ImproperlyConfigured

DATABASE_SCHEMES = {
    "sqlite": "django.db.backends.sqlite3",
    "postgres": "django.db.backends.postgresql",
    "postgresql": "django.db.backends.postgresql",
    "pgsql": "django.db.backends.postgresql",
}
REDIS_SCHEMES = {"redis", "rediss", "unix"}


def database_config(url: str, *, base_dir: Path) -> dict:
    """Django DATABASES entry for ``url``; ImproperlyConfigured names DATABASE_URL when bad.

    SQLite runs in WAL mode with IMMEDIATE transactions and a busy timeout, so the web, stream
    and worker processes can write at the same time without "database is locked" errors.
    """
    hint = (
        "expected sqlite:///var/db.sqlite3 (relative or absolute path) or "
        "postgresql://user:password@host:5432/dbname"
    )
    try:
        scheme = urlsplit(url).scheme
    except ValueError as exc:
        raise ImproperlyConfigured(f"DATABASE_URL is not a valid URL ({exc}); {hint}") from None
    if scheme not in DATABASE_SCHEMES:
        raise ImproperlyConfigured(
            f"DATABASE_URL={url!r} is not a supported database URL (scheme {scheme!r}); {hint}"
        )
    try:
        config = environ.Env.db_url_config(url)
    except Exception as exc:  # django-environ raises several types for malformed URLs
        raise ImproperlyConfigured(
            f"DATABASE_URL={url!r} could not be parsed ({exc}); {hint}"
        ) from None
    if config["ENGINE"] == "django.db.backends.sqlite3":
        name = config.get("NAME") or ""
        if not name or name == ":memory:":
            raise ImproperlyConfigured(f"DATABASE_URL={url!r} names no SQLite file; {hint}")
        path = Path(name)
        if not path.is_absolute():
            path = base_dir / path
        private_dir(path.parent)
        private_file(path)
        config["NAME"] = str(path)
        config["OPTIONS"] = {
            "transaction_mode": "IMMEDIATE",
            "timeout": 30,
            "init_command": (
                "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=30000;"
            ),
        }
        # A file (not :memory:) so test servers in subprocesses share it, and one per process
        # so two test runs in one checkout never write into each other's database.
        config["TEST"] = {"NAME": str(path.with_name(f"test_{os.getpid()}_{path.name}"))}
    else:
        if not config.get("NAME"):
            raise ImproperlyConfigured(f"DATABASE_URL={url!r} names no database; {hint}")
        config.setdefault("CONN_MAX_AGE", 60)
        config["CONN_HEALTH_CHECKS"] = True
    return config


def redis_url(url: str) -> str:
    """Validate ``REDIS_URL``; return it unchanged."""
    hint = "expected redis://host:6379/0, rediss://... or unix:///path/to/redis.sock"
    try:
        parts = urlsplit(url)
        port = parts.port  # raises ValueError on a non-numeric port
    except ValueError as exc:
        raise ImproperlyConfigured(
            f"REDIS_URL={url!r} is not a valid URL ({exc}); {hint}"
        ) from None
    if parts.scheme not in REDIS_SCHEMES:
        raise ImproperlyConfigured(
            f"REDIS_URL={url!r} is not a Redis URL (scheme {parts.scheme!r}); {hint}"
        )
    if parts.scheme in {"redis", "rediss"} and not parts.hostname:
        raise ImproperlyConfigured(f"REDIS_URL={url!r} names no host; {hint}")
    if parts.scheme == "unix" and not parts.path:
        raise ImproperlyConfigured(f"REDIS_URL={url!r} names no socket path; {hint}")
    path = parts.path.strip("/")
    if parts.scheme != "unix" and path and not path.isdigit():
        raise ImproperlyConfigured(
            f"REDIS_URL={url!r}: the database after the last '/' must be a number; {hint}"
        )
    del port
    return url


def number(name: str, default: float, *, maximum: float | None = None,
           minimum: float = 0) -> float:
    """A number of at least ``minimum`` (0 unless said) from the environment variable ``name``
    (``default`` when unset). A value that is not a number, below ``minimum`` or above
    ``maximum`` stops the process at start."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a number") from None
    if not value >= minimum or value == float("inf"):
        raise ImproperlyConfigured(f"{name}={raw!r} must be a number of at least {minimum:g}")
    if maximum is not None and value > maximum:
        raise ImproperlyConfigured(f"{name}={raw!r} is above its maximum {maximum:g}")
    return value


def integer(name: str, default: int, *, minimum: int = 1, maximum: int | None = None) -> int:
    """A whole number from the environment variable ``name`` (``default`` when unset). A value
    that is not a whole number, below ``minimum`` or above ``maximum`` stops the process at
    start, naming the variable."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw[:40]!r} is not a whole number") from None
    if value < minimum:
        raise ImproperlyConfigured(f"{name}={raw!r} must be at least {minimum}")
    if maximum is not None and value > maximum:
        raise ImproperlyConfigured(f"{name}={raw!r} is above its maximum {maximum:,}")
    return value


def persistent_secret(name: str, path: Path, make) -> str:
    """The environment's ``name`` if set, else a value generated once and kept at ``path``.

    The file is created with mode 0600 inside var/ (never committed), so restarts keep sessions
    and encrypted fields readable.
    """
    value = os.environ.get(name)
    if value:
        return value
    if path.exists():
        value = path.read_text().strip()
        if value:
            return value
    private_dir(path.parent)
    value = make()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(value + "\n")
    return value


def private_dir(path: Path) -> None:
    """Create ``path`` (and missing parents) if missing; the folder itself owner-only (0700)."""
    if not path.is_dir():
        path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):  # another process made it meanwhile
            path.mkdir(mode=0o700)


def private_file(path: Path) -> None:
    """Make the SQLite database ``path`` owner-only (0600) before SQLite opens it: it holds
    password hashes, sessions and encrypted API keys. SQLite gives its ``-wal`` and ``-shm``
    files the database file's mode, so creating it here (an empty file is an empty database)
    covers them; a database, WAL or SHM file left readable by others is narrowed to 0600."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        pass
    except OSError:  # e.g. a read-only folder: SQLite reports it when it connects
        return
    for name in (path, Path(f"{path}-wal"), Path(f"{path}-shm"), Path(f"{path}-journal")):
        try:
            info = name.stat()
            if info.st_mode & 0o077 and info.st_uid == os.getuid():
                name.chmod(0o600)
        except FileNotFoundError:
            continue


def make_secret_key() -> str:
    return secrets.token_urlsafe(50)


def make_fernet_key() -> str:
    from cryptography.fernet import Fernet

    return Fernet.generate_key().decode()


def fernet_keys(value: str) -> list[str]:
    """``FIELD_ENCRYPTION_KEY`` may list comma-separated keys (newest first) for rotation."""
    from cryptography.fernet import Fernet

    keys = [part.strip() for part in value.split(",") if part.strip()]
    if not keys:
        raise ImproperlyConfigured("FIELD_ENCRYPTION_KEY is empty")
    for key in keys:
        try:
            Fernet(key)
        except Exception:
            raise ImproperlyConfigured(
                "FIELD_ENCRYPTION_KEY must be one or more comma-separated Fernet keys "
                "(32 url-safe base64-encoded bytes each); make one with: python -c "
                '"from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"'
            ) from None
    return keys
