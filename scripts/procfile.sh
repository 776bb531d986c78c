#!/usr/bin/env bash
# Write the Procfile `make run` starts to $1: the Procfile, without the Telegram bot's process
# when TELEGRAM_BOT_TOKEN is not set (the bot cannot start without it, and honcho would stop
# every process when one exits).
set -euo pipefail
cd "$(dirname "$0")/.."
out="$1"
if [ -n "${TELEGRAM_BOT_TOKEN:-}" ]; then
  cp Procfile "$out"
else
  grep -v '^telegram:' Procfile > "$out"
fi
