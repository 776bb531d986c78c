"""The test database as a ``DATABASE_URL``, for processes a test starts (a command, the web
server) that must write where the test reads: SQLite's file or PostgreSQL's test database."""

from django.db import connection


def database_url() -> str:
    s = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{s['NAME']}"
    host = s.get("HOST") or (s.get("OPTIONS") or {}).get("host") or ""
    auth = f"{s.get('USER') or ''}:{s.get('PASSWORD') or ''}"
    if host.startswith("/"):
        return f"postgresql://{auth}@/{s['NAME']}?host={host}"
    return f"postgresql://{auth}@{host}:{s.get('PORT') or 5432}/{s['NAME']}"
