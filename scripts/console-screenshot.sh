#!/usr/bin/env bash
# Makes docs/console.png: a paper daemon on docs/console-demo.yaml, and the console in headless
# Chromium once its chart holds a minute of points (tests/console/drive.py --shot). Needs chromium,
# chromium-driver and python3-selenium (scripts/install-test-deps.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --quiet
work=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
{ cat docs/console-demo.yaml; printf 'metrics:\n  listen: 127.0.0.1:%s\nlogging:\n  file: %s/mt5bot.log\n' "$port" "$work"; } > "$work/config.yaml"
(cd "$work" && exec "$OLDPWD/target/debug/mt5bot" run --config config.yaml) > "$work/stderr.txt" 2>&1 &
pid=$!
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.2; done
/usr/bin/python3 tests/console/drive.py "http://127.0.0.1:$port" --shot "$work"
cp "$work/console.png" docs/console.png
echo "wrote docs/console.png"
