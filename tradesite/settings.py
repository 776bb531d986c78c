"""tradesite settings. Everything comes from the environment (see README "Configuration").

Bad values fail here, at start, with a message that names the variable.
"""

from __future__ import annotations

import sys
from datetime import timedelta
from pathlib import Path

import environ
from redis.exceptions import ConnectionError as RedisConnectionError

from tradesite import envconfig, security

BASE_DIR = Path(__file__).resolve().parent.parent
env = environ.Env()

#: Runtime state that is never committed: the SQLite database, generated secrets, Redis data.
VAR_DIR = Path(env.str("TRADESITE_VAR_DIR", default=str(BASE_DIR / "var"))).resolve()

SECRET_KEY = envconfig.persistent_secret(
    "SECRET_KEY", VAR_DIR / "secret_key", envconfig.make_secret_key
)
FIELD_ENCRYPTION_KEYS = envconfig.fernet_keys(
    envconfig.persistent_secret(
        "FIELD_ENCRYPTION_KEY", VAR_DIR / "field_encryption_key", envconfig.make_fernet_key
    )
)
DEBUG = env.bool("DEBUG", default=False)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
#: Served over HTTPS (behind a TLS proxy): secure cookies, HSTS, and plain-HTTP requests
#: redirected to HTTPS (``/health`` excepted, for local health checks).
SECURE_COOKIES = env.bool("SECURE_COOKIES", default=False)
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = SECURE_COOKIES
SECURE_SSL_REDIRECT = SECURE_COOKIES
SECURE_REDIRECT_EXEMPT = [r"^health$"]
SECURE_HSTS_SECONDS = (
    envconfig.integer("HSTS_SECONDS", 31_536_000, minimum=0, maximum=63_072_000)
    if SECURE_COOKIES
    else 0
)
SECURE_HSTS_INCLUDE_SUBDOMAINS = SECURE_HSTS_PRELOAD = SECURE_HSTS_SECONDS > 0
X_FRAME_OPTIONS = "DENY"

#: Content-Security-Policy (django-csp): scripts and styles only from our static files. The one
#: inline style allowed (by hash) is the attribution logo's that lightweight-charts adds
#: (tradesite.security; a test checks the hash against the vendored file).
CONTENT_SECURITY_POLICY = security.content_security_policy()

#: Live orders need this, an account in live mode and its keys. Paper trading is the default.
TRADING_LIVE = env.bool("TRADING_LIVE", default=False)
#: Paper costs and execution (README "Trading"); a bad value stops the process at start.
TRADING_FEE_RATE = envconfig.number("TRADING_FEE_RATE", 0.0005, maximum=0.1)
TRADING_MAKER_FEE_RATE = envconfig.number("TRADING_MAKER_FEE_RATE", 0.0002, maximum=0.1)
TRADING_SLIPPAGE_BPS = envconfig.number("TRADING_SLIPPAGE_BPS", 5.0, maximum=1000)
TRADING_LIMIT_AGGRESSIVENESS_PCT = envconfig.number(
    "TRADING_LIMIT_AGGRESSIVENESS_PCT", 0.15, maximum=10
)
TRADING_MAX_SIGNAL_AGE_S = envconfig.number("TRADING_MAX_SIGNAL_AGE_S", 120.0)
TRADING_PAPER_RECOVERY_GRACE_S = envconfig.number("TRADING_PAPER_RECOVERY_GRACE_S", 60.0)

#: Folders of the traders' own strategies (comma-separated), loaded beside the built-in ones
#: and the installed packages' ``tradesite.strategies`` entry points (docs/strategies.md).
TRADESITE_STRATEGY_PATHS = env.list("TRADESITE_STRATEGY_PATHS", default=[])

#: Bounds on the work a user can start (README "Limits"); a bad value stops the process at start.
OPTIMIZER_MAX_TRIALS = envconfig.integer("OPTIMIZER_MAX_TRIALS", 1000, maximum=1_000_000)
OPTIMIZER_MAX_FOLDS = envconfig.integer("OPTIMIZER_MAX_FOLDS", 10, maximum=1000)
OPTIMIZER_MAX_DAYS = envconfig.integer("OPTIMIZER_MAX_DAYS", 730, maximum=36_500)
OPTIMIZER_MAX_RUNS_PER_USER = envconfig.integer("OPTIMIZER_MAX_RUNS_PER_USER", 2, maximum=1000)
BACKTEST_MAX_DAYS = envconfig.integer("BACKTEST_MAX_DAYS", 1096, maximum=36_500)
BACKTEST_MAX_RUNS_PER_USER = envconfig.integer("BACKTEST_MAX_RUNS_PER_USER", 3, maximum=1000)

#: daphne's app only turns ``manage.py runserver`` into its ASGI server (WebSockets included);
#: importing it installs Twisted's reactor, 27 MB in every process that sets Django up. So it is
#: installed for ``runserver`` alone: the web process is uvicorn (``python -m tradesite.web``),
#: and workers, commands and backtests never need it.
RUNSERVER = sys.argv[1:2] == ["runserver"]
INSTALLED_APPS = [
    *(["daphne"] if RUNSERVER else []),
    "tradesite.admin_site.AdminConfig",  # django.contrib.admin, hostile input handled
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "django_celery_beat",
    "axes",
    "csp",
    # django-ninja: the JSON API's Swagger UI from its own static files (no CDN).
    "ninja",
    "markets",
    "strategies",
    "orders",
    "alerts",
    "tradesite",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last: turns axes' lockout flag into the 429 answer (see "Login throttling" below).
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "tradesite.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "tradesite.shell.shell",
            ],
        },
    },
]
ASGI_APPLICATION = "tradesite.asgi.application"
WSGI_APPLICATION = None

DATABASES = {
    "default": envconfig.database_config(
        env.str("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}"), base_dir=BASE_DIR
    )
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "admin:login"

# --- Login throttling (django-axes): every failed login counts, wherever it comes from ---------
# Axes' backend refuses a locked-out username+address before the password is even checked, and
# its signal handler counts every ``user_login_failed`` (the admin login, and any other caller of
# ``django.contrib.auth.authenticate``). The address is the client's as the web server sees it:
# uvicorn puts a trusted proxy's X-Forwarded-For there (TRUSTED_PROXY_IPS, tradesite.web).
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
#: Failed logins of one username from one address before that pair is locked out.
AXES_FAILURE_LIMIT = envconfig.integer("LOGIN_FAILURE_LIMIT", 5, minimum=1, maximum=1000)
#: How long a lockout lasts; failures older than this no longer count.
LOGIN_COOLOFF_MINUTES = envconfig.number(
    "LOGIN_COOLOFF_MINUTES", 15.0, minimum=1, maximum=7 * 24 * 60
)
AXES_COOLOFF_TIME = timedelta(minutes=LOGIN_COOLOFF_MINUTES)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_COOLOFF_MESSAGE = (
    "Too many failed logins for this username from your address: try again in "
    f"{LOGIN_COOLOFF_MINUTES:g} minutes."
)
#: Log lines name the username and the client address (the password is never logged).
AXES_SENSITIVE_PARAMETERS: list[str] = []

LANGUAGE_CODE = "en-us"
#: Display and "trading day" time zone. Storage is always UTC.
TIME_ZONE = env.str("TIME_ZONE", default="Asia/Seoul")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(env.str("TRADESITE_STATIC_ROOT", default=str(BASE_DIR / "staticfiles")))
STATICFILES_DIRS = [BASE_DIR / "static"]
_CHART_DIST = BASE_DIR / "node_modules" / "lightweight-charts" / "dist"
if _CHART_DIST.is_dir():
    STATICFILES_DIRS.append(("vendor/lightweight-charts", _CHART_DIST))
# Serve from the finders (the source folders) in development and tests, and whenever static files
# have not been collected; `make test` sets WHITENOISE_USE_FINDERS=1 so a stale collection
# never hides a changed file.
WHITENOISE_USE_FINDERS = env.bool(
    "WHITENOISE_USE_FINDERS", default=DEBUG or not STATIC_ROOT.is_dir()
)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

# --- Redis: Celery broker, channel layer and the app's own keys (prefix "tradesite:") ---------
REDIS_URL = envconfig.redis_url(env.str("REDIS_URL", default="redis://127.0.0.1:6379/0"))
REDIS_KEY_PREFIX = "tradesite:"

CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {
            # redis-py 8 defaults to a 5 s socket timeout, which ends idle consumers; see
            # STACK-NOTES. None = wait for as long as the socket is open. After a Redis
            # restart every pooled connection is dead: a command that finds its connection
            # closed is sent once more on a new one (it never reached the new server), instead
            # of failing the socket that sent it.
            "hosts": [{"address": REDIS_URL, "socket_timeout": None,
                       "retry_on_error": [RedisConnectionError]}],
            "prefix": "tradesite-asgi",
            "capacity": 1000,
            "expiry": 60,
        },
    }
}


def _celery_url(url: str) -> str:
    if url.startswith("unix://"):
        return "redis+socket://" + url[len("unix://") :]
    return url


CELERY_BROKER_URL = _celery_url(REDIS_URL)
CELERY_BROKER_TRANSPORT_OPTIONS = {"global_keyprefix": "tradesite-celery:"}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_DEFAULT_QUEUE = "trader"
CELERY_TASK_ROUTES = {
    "markets.tasks.*": {"queue": "collector"},
    "orders.tasks.*": {"queue": "trader"},
    "alerts.tasks.*": {"queue": "collector"},
    "strategies.tasks.*": {"queue": "optimizer"},
    "tradesite.tasks.*": {"queue": "trader"},
}
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# --- Task redelivery after a worker dies (issue 21; tradesite/celery.py LeaseRenewal) ----------
# Acks late: a task is acknowledged when it ends, so one whose worker was killed stays in
# Redis' unacked set and is put back on its queue once VISIBILITY_TIMEOUT_S has passed since
# its lease was last renewed (every worker sweeps every 5 s, and at start). Running and waiting
# tasks renew their lease every third of it, so a long optimizer run is never sent twice. A
# pool child killed under a task rejects (requeues) it at once (optimizer tasks opt out).
CELERY_VISIBILITY_TIMEOUT_S = envconfig.number("CELERY_VISIBILITY_TIMEOUT_S", 30.0, maximum=3600)
CELERY_BROKER_TRANSPORT_OPTIONS |= {
    "visibility_timeout": CELERY_VISIBILITY_TIMEOUT_S,
    "unacked_restore_interval": 5,
    "unacked_restore_throttle": 1,
    "unacked_mutex_expire": 30,
}
CELERY_TASK_REJECT_ON_WORKER_LOST = True
# --- Alerts (alerts/delivery.py) ----------------------------------------------------------------
# A notification being sent is leased for ALERTS_LEASE_S: a worker that dies mid-send leaves it
# to be claimed again after that. Keep it longer than a send may take (apprise: 4 s + 4 s).
ALERTS_LEASE_S = envconfig.number("ALERTS_LEASE_S", 30.0, maximum=3600)
# --- Telegram (alerts/telegram/) ---------------------------------------------------------------
# The bot's token from @BotFather: read from the environment only, never stored or shown.
# Without it the bot process does not start and Telegram channels fail with a clear message.
TELEGRAM_BOT_TOKEN = env.str("TELEGRAM_BOT_TOKEN", default="")
# The Bot API server (tests and drills point it at a local fake server).
TELEGRAM_API_BASE_URL = env.str("TELEGRAM_API_BASE_URL", default="https://api.telegram.org")
# The bot's @username, for the t.me link on the linking page (optional).
TELEGRAM_BOT_USERNAME = env.str("TELEGRAM_BOT_USERNAME", default="")
# A linking code is good for this many seconds, once.
TELEGRAM_LINK_CODE_TTL_S = envconfig.number("TELEGRAM_LINK_CODE_TTL_S", 600.0, maximum=86400)
# Webhooks may reach only public hosts unless this is true (alerts/targets.py: SSRF).
ALERTS_ALLOW_PRIVATE_WEBHOOKS = env.bool("ALERTS_ALLOW_PRIVATE_WEBHOOKS", default=False)
# E-mail channels: Django's mail. The SMTP password comes only from the environment: it is
# never stored in the database nor shown on a page.
EMAIL_BACKEND = env.str("EMAIL_BACKEND", default="django.core.mail.backends.smtp.EmailBackend")
EMAIL_HOST = env.str("EMAIL_HOST", default="localhost")
EMAIL_PORT = env.int("EMAIL_PORT", default=25)
EMAIL_HOST_USER = env.str("EMAIL_HOST_USER", default="")
EMAIL_HOST_PASSWORD = env.str("EMAIL_HOST_PASSWORD", default="")
EMAIL_USE_TLS = env.bool("EMAIL_USE_TLS", default=False)
EMAIL_USE_SSL = env.bool("EMAIL_USE_SSL", default=False)
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", default=10)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="tradesite@localhost")
# --- end of task redelivery ------------------------------------------------------------------
CELERY_TIMEZONE = TIME_ZONE
CELERY_BEAT_SCHEDULER = "tradesite.beat:HeartbeatScheduler"
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
DJANGO_CELERY_BEAT_TZ_AWARE = True

#: Task names the stream sends by name (markets never imports orders; tradesite wires them).
TRADESITE_TASKS = {
    "evaluate": "orders.tasks.evaluate",
    "exit_guard": "orders.tasks.exit_guard",
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {
        "django.channels.server": {"level": "WARNING"},
        "daphne": {"level": "WARNING"},
        # The web server (tradesite.web): no line per WebSocket opened or closed.
        "uvicorn.error": {"level": "WARNING"},
        # httpx logs every request's URL at INFO: a Telegram URL holds the bot token.
        "httpx": {"level": "WARNING"},
    },
}

# --- The local exchange simulator (the offline demo's market and the tests' exchange) ---------
SIMULATOR_HOST = env.str("SIM_HOST", default="127.0.0.1")
SIMULATOR_UPBIT_PORT = env.int("SIM_UPBIT_PORT", default=8801)
SIMULATOR_BINANCE_PORT = env.int("SIM_BINANCE_PORT", default=8802)
SIMULATOR_FUTURES_PORT = env.int("SIM_FUTURES_PORT", default=8803)
SIMULATOR_BITHUMB_PORT = env.int("SIM_BITHUMB_PORT", default=8804)

# --- The live stream (manage.py stream) and its shards (markets.stream.shards) ----------------
# Several stream processes split the followed symbols through Redis. This process's shard id
# (default: host name and pid), the venues it takes (comma-separated slugs; empty: every venue),
# and how long a shard that stopped beating counts as alive (its symbols move after that).
STREAM_SHARD_ID = env.str("STREAM_SHARD_ID", default="")
STREAM_SHARD_VENUES = env.str("STREAM_SHARD_VENUES", default="")
STREAM_SHARD_TTL_S = env.float("STREAM_SHARD_TTL_S", default=15.0)
# A shard of this machine whose process is gone and that missed its beats this long is dead
# before its TTL (a restart takes over at once); 0: only the TTL.
STREAM_SHARD_STALE_S = env.float("STREAM_SHARD_STALE_S", default=5.0)
# For a simulator on its accelerated clock only: "at=<sim ms>,wall=<wall ms>,speed=<x>" (the
# stream's clock then runs with the simulator's). Empty: the wall clock.
STREAM_CLOCK = env.str("STREAM_CLOCK", default="")

# Venue budgets below what the venue's capabilities declare, per exchange slug and rate-limit
# group: {"binance": {"weight": (1200, 60.0)}} (capacity, window seconds); see markets.adapters.
EXCHANGE_RATE_LIMITS: dict = {}
