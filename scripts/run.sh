#!/usr/bin/env bash
# `make run`: migrate, collect static files, load demo data, start Redis when REDIS_URL is unset,
# then run every Procfile process under honcho. Ctrl-C (or SIGTERM) stops all of them.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
export TRADESITE_VAR_DIR="${TRADESITE_VAR_DIR:-$PWD/var}"
export TRADESITE_PORT="${TRADESITE_PORT:-8000}"
mkdir -p -m 700 "$TRADESITE_VAR_DIR"  # secrets, the database, demo logins: owner only
procfile="$TRADESITE_VAR_DIR/Procfile.run"
scripts/procfile.sh "$procfile"  # the Telegram bot only with TELEGRAM_BOT_TOKEN

if [ -z "${REDIS_URL:-}" ]; then
  port="${REDIS_PORT:-6390}"
  if ! $PY -c "import sys; from tradesite.devservices import port_free; sys.exit(not port_free($port))"; then
    taken=$port
    port=$($PY -c "from tradesite.devservices import free_port; print(free_port())")
    echo "warning: port $taken is taken by another program; this stack's Redis listens on $port." >&2
    echo "         In another shell, run manage.py commands with: export REDIS_URL=redis://127.0.0.1:$port/0" >&2
  fi
  export REDIS_URL="redis://127.0.0.1:$port/0"
  echo "redis: $PY -m tradesite.devservices redis-server --dir $TRADESITE_VAR_DIR/redis --port $port" >> "$procfile"
fi

$PY manage.py migrate --noinput -v0
$PY manage.py collectstatic --noinput -v0
$PY manage.py bootstrap_demo

url="http://127.0.0.1:$TRADESITE_PORT/"
echo
echo "tradesite is starting at $url  (admin: ${url}admin/, health: ${url}health)"
if [ -f "$TRADESITE_VAR_DIR/demo-credentials.txt" ]; then
  echo "logins (user password), kept in $TRADESITE_VAR_DIR/demo-credentials.txt:"
  sed 's/^/  /' "$TRADESITE_VAR_DIR/demo-credentials.txt"
fi
echo "The demo: 'Demo: trades every few minutes' (5x long/short on the simulator's BTCUSDT"
echo "perpetual) signals and fills within the first minutes; the history, the screener and an"
echo "example backtest are prepared in the background (the worker logs \"demo data: ...\")."
if [ -n "${TELEGRAM_BOT_TOKEN:-}" ]; then
  echo "Telegram bot: started (link a chat at ${url}alerts/telegram/link)"
else
  echo "Telegram bot: not started (set TELEGRAM_BOT_TOKEN to run it; README, Telegram)"
fi
echo "Redis: $REDIS_URL   Stop everything with Ctrl-C."
echo
exec .venv/bin/honcho -f "$procfile" -d . start
