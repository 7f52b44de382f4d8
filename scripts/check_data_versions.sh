#!/usr/bin/env bash
# The data-version check the operations chapter names: compares the datasets with
# data/manifest.yaml (exit 1 on a mismatch); pass --write to record the current files.
# All arguments go to `mt5bot check-data-versions` (see its --help).
set -euo pipefail
bin=${MT5BOT:-}
if [ -z "$bin" ]; then
  if command -v mt5bot >/dev/null 2>&1; then bin=mt5bot; else bin="$(dirname "$0")/../target/release/mt5bot"; fi
fi
exec "$bin" check-data-versions "$@"
