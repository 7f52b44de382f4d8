#!/usr/bin/env bash
# Installs mt5bot as a systemd service and provisions its secrets. Safe to rerun: files whose
# content is unchanged are left alone, secrets are kept unless rotation is asked for.
set -euo pipefail

usage() {
  cat <<'HELP'
Usage: scripts/install_service.sh [--help]

Installs the mt5bot binary, a system user, the systemd units (mt5bot.service, and the nightly
mt5bot-diagnostics.service with its timer), the diagnostics script, a config, and the docs; then
runs the provisioning helpers. The cron alternative to the timer is installed as an example in
PREFIX/share/doc/mt5bot/mt5bot.cron (copy it to /etc/cron.d/mt5bot on hosts without systemd).
Every setting comes from the environment:

  DESTDIR                  Install under this root instead of / (packaging, tests). With it,
                           no user is created and systemctl is not called.
  PREFIX                   Binary prefix [default /usr/local]: the binary goes to PREFIX/bin
  CONFIG_DIR               Config folder [default /etc/mt5bot]; secrets go to CONFIG_DIR/secrets
  UNIT_DIR                 systemd unit folder [default /etc/systemd/system]
  MT5BOT_BINARY            The binary to install [default target/release/mt5bot, built with
                           cargo build --release --locked when missing]
  MT5BOT_USER              Service user and group [default mt5bot]

  MT5BOT_INSTANCE          Install one bot of a fleet under this name (A-Z a-z 0-9 _ - .):
                           the template unit mt5bot@.service runs it as mt5bot@NAME, with its
                           config, secrets, state and logs in CONFIG_DIR/NAME, /var/lib/mt5bot/
                           NAME and /var/log/mt5bot/NAME. Its new config gets identity.account
                           NAME and MT5BOT_METRICS_LISTEN (required: each bot needs a port of
                           its own), and its Prometheus target file is written (mt5bot config
                           target) to PROM_TARGETS_DIR/NAME.json [default CONFIG_DIR/targets],
                           the folder deploy/prometheus-fleet.yml reads. The nightly diagnostics
                           units stay those of the single-bot install.
  MT5BOT_METRICS_LISTEN    With MT5BOT_INSTANCE: the bot's metrics.listen, e.g. 127.0.0.1:9901
  PROM_TARGETS_DIR         With MT5BOT_INSTANCE: where its target file goes

  RUNTIME_SECRETS_SKIP=1   Do not run mt5bot runtime-secrets
  RUNTIME_SECRETS_ROTATE   Space-separated names to rotate, e.g. "API_KEY CHECKPOINT_AES_KEY"
                           (each passed as --rotate NAME)

  PROM_ENDPOINTS_PUSH_HOST, PROM_ENDPOINTS_PUSH_PORT, PROM_ENDPOINTS_QUERY_HOST,
  PROM_ENDPOINTS_QUERY_PORT, PROM_ENDPOINTS_SCHEME, PROM_ENDPOINTS_JOB, PROM_ENDPOINTS_INSTANCE
                           Read by mt5bot prometheus-endpoints, which always runs; it writes
                           PROM_PUSH_URL and PROM_QUERY_URL into CONFIG_DIR/secrets/runtime.env

  INFLUXDB_BOOTSTRAP_URL, INFLUXDB_BOOTSTRAP_ORG, INFLUXDB_BOOTSTRAP_BUCKET
                           When all three are set, mt5bot influx-bootstrap runs and writes
                           CONFIG_DIR/secrets/influx.env. Optional, passed through:
                           INFLUXDB_BOOTSTRAP_USERNAME, INFLUXDB_BOOTSTRAP_PASSWORD_FILE,
                           INFLUXDB_BOOTSTRAP_RETENTION, INFLUXDB_BOOTSTRAP_ADMIN_TOKEN,
                           INFLUXDB_BOOTSTRAP_TIMEOUT

systemctl daemon-reload and enable run only when systemd is running and DESTDIR is empty.
HELP
}

case "${1:-}" in
  -h|--help) usage; exit 0 ;;
  "") ;;
  *) echo "install_service.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
esac

repo=$(cd "$(dirname "$0")/.." && pwd)
DESTDIR=${DESTDIR:-}
PREFIX=${PREFIX:-/usr/local}
CONFIG_DIR=${CONFIG_DIR:-/etc/mt5bot}
UNIT_DIR=${UNIT_DIR:-/etc/systemd/system}
MT5BOT_USER=${MT5BOT_USER:-mt5bot}
binary=${MT5BOT_BINARY:-$repo/target/release/mt5bot}
INSTANCE=${MT5BOT_INSTANCE:-}
BASE_CONFIG_DIR=$CONFIG_DIR
if [ -n "$INSTANCE" ]; then
  if ! [[ "$INSTANCE" =~ ^[A-Za-z0-9_.-]{1,64}$ ]]; then
    echo "install_service.sh: MT5BOT_INSTANCE=$INSTANCE is not accepted; accepted: 1 to 64 of A-Z a-z 0-9 _ - ." >&2
    exit 2
  fi
  if [ -z "${MT5BOT_METRICS_LISTEN:-}" ]; then
    echo "install_service.sh: MT5BOT_INSTANCE needs MT5BOT_METRICS_LISTEN (each bot serves /metrics on a port of its own), e.g. 127.0.0.1:9901" >&2
    exit 2
  fi
  CONFIG_DIR=$BASE_CONFIG_DIR/$INSTANCE
fi

say() { echo "install_service: $*" >&2; }

# install_file SRC DEST MODE: copy only when the content or mode differs, so a rerun changes nothing.
install_file() {
  local src=$1 dest=$2 mode=$3
  if [ -f "$dest" ] && cmp -s "$src" "$dest" && [ "$(stat -c %a "$dest")" = "${mode#0}" ]; then
    return 0
  fi
  install -D -m "$mode" "$src" "$dest"
  say "installed $dest"
}

if [ ! -x "$binary" ]; then
  if [ -n "${MT5BOT_BINARY:-}" ]; then
    say "error: MT5BOT_BINARY=$binary is not an executable file"; exit 1
  fi
  say "building the release binary (cargo build --release --locked)"
  (cd "$repo" && cargo build --release --locked)
fi

# 1. The binary.
install_file "$binary" "$DESTDIR$PREFIX/bin/mt5bot" 0755
mt5bot="$DESTDIR$PREFIX/bin/mt5bot"

# The docs the unit's Documentation= and the alerts' runbook_url point at.
install_file "$repo/README.md" "$DESTDIR$PREFIX/share/doc/mt5bot/README.md" 0644
install_file "$repo/docs/runbook.md" "$DESTDIR$PREFIX/share/doc/mt5bot/runbook.md" 0644
# The MT5 bridge: its protocol and the Expert Advisor to compile in the terminal.
install_file "$repo/docs/mt5-bridge.md" "$DESTDIR$PREFIX/share/doc/mt5bot/mt5-bridge.md" 0644
install_file "$repo/deploy/mt5/Mt5Bridge.mq5" "$DESTDIR$PREFIX/share/doc/mt5bot/Mt5Bridge.mq5" 0644
# The nightly diagnostics script the timer and the cron line run.
install_file "$repo/scripts/diagnostics.sh" "$DESTDIR$PREFIX/lib/mt5bot/diagnostics.sh" 0755

# 2. The user.
if [ -z "$DESTDIR" ]; then
  if ! id -u "$MT5BOT_USER" >/dev/null 2>&1; then
    useradd --system --no-create-home --home-dir /var/lib/mt5bot --shell /usr/sbin/nologin "$MT5BOT_USER"
    say "created system user $MT5BOT_USER"
  fi
else
  say "DESTDIR is set: not creating the user $MT5BOT_USER"
fi

# 3. The unit, with this install's paths: mt5bot.service, or the template for an instance.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
unit=mt5bot.service
if [ -n "$INSTANCE" ]; then unit=mt5bot@.service; fi
sed -e "s#/usr/local/bin/mt5bot#$PREFIX/bin/mt5bot#g" -e "s#/usr/local/share/doc/mt5bot#$PREFIX/share/doc/mt5bot#g" \
    -e "s#/etc/mt5bot#$BASE_CONFIG_DIR#g" \
    -e "s#^User=mt5bot#User=$MT5BOT_USER#" -e "s#^Group=mt5bot#Group=$MT5BOT_USER#" \
    "$repo/deploy/$unit" > "$tmp/$unit"
install_file "$tmp/$unit" "$DESTDIR$UNIT_DIR/$unit" 0644
for f in mt5bot-diagnostics.service mt5bot-diagnostics.timer mt5bot.cron; do
  sed -e "s#/usr/local/bin/mt5bot#$PREFIX/bin/mt5bot#g" -e "s#/usr/local/lib/mt5bot#$PREFIX/lib/mt5bot#g" \
      -e "s#/usr/local/share/doc/mt5bot#$PREFIX/share/doc/mt5bot#g" -e "s#/etc/mt5bot#$BASE_CONFIG_DIR#g" \
      -e "s#^User=mt5bot#User=$MT5BOT_USER#" -e "s#^Group=mt5bot#Group=$MT5BOT_USER#" \
      "$repo/deploy/$f" > "$tmp/$f"
done
install_file "$tmp/mt5bot-diagnostics.service" "$DESTDIR$UNIT_DIR/mt5bot-diagnostics.service" 0644
install_file "$tmp/mt5bot-diagnostics.timer" "$DESTDIR$UNIT_DIR/mt5bot-diagnostics.timer" 0644
install_file "$tmp/mt5bot.cron" "$DESTDIR$PREFIX/share/doc/mt5bot/mt5bot.cron" 0644

# 4. The config: installed once, never overwritten (it is the operator's). An instance's names
# its account and its metrics port, and logs under its own folder.
config="$DESTDIR$CONFIG_DIR/config.yaml"
if [ ! -e "$config" ]; then
  if [ -n "$INSTANCE" ]; then
    # set_key SECTION KEY VALUE: the first "  KEY:" line of the top-level SECTION.
    awk -v log_file="/var/log/mt5bot/$INSTANCE/mt5bot.log" -v listen="$MT5BOT_METRICS_LISTEN" -v account="$INSTANCE" '
      /^[a-z_]+:/ { section = $1; sub(":", "", section) }
      section == "metrics" && /^  listen: / && !m++ { print "  listen: " listen; next }
      section == "logging" && /^  file: / && !l++ { print "  file: " log_file; next }
      section == "identity" && /^  account: / && !a++ { print "  account: " account; next }
      { print }' "$repo/config.example.yaml" > "$tmp/config.yaml"
  else
    sed -e "s#^  file: logs/mt5bot.log#  file: /var/log/mt5bot/mt5bot.log#" "$repo/config.example.yaml" > "$tmp/config.yaml"
  fi
  install -D -m 0644 "$tmp/config.yaml" "$config"
  say "installed $config (edit it, then: mt5bot config check --config $CONFIG_DIR/config.yaml)"
fi
"$mt5bot" config check --config "$config" >/dev/null
if [ -n "$INSTANCE" ]; then
  targets="$DESTDIR${PROM_TARGETS_DIR:-$BASE_CONFIG_DIR/targets}"
  install -d -m 0755 "$targets"
  "$mt5bot" config target --config "$config" > "$tmp/target.json"
  install_file "$tmp/target.json" "$targets/$INSTANCE.json" 0644
fi

# 5. Secrets.
secrets="$DESTDIR$CONFIG_DIR/secrets"
install -d -m 0700 "$secrets"
if [ "${RUNTIME_SECRETS_SKIP:-0}" = "1" ]; then
  say "RUNTIME_SECRETS_SKIP=1: not running runtime-secrets"
else
  rotate=()
  for name in ${RUNTIME_SECRETS_ROTATE:-}; do
    rotate+=(--rotate "$name")
  done
  "$mt5bot" runtime-secrets --env-file "$secrets/runtime.env" "${rotate[@]}"
fi
"$mt5bot" prometheus-endpoints --env-file "$secrets/runtime.env"
if [ -n "${INFLUXDB_BOOTSTRAP_URL:-}" ] && [ -n "${INFLUXDB_BOOTSTRAP_ORG:-}" ] && [ -n "${INFLUXDB_BOOTSTRAP_BUCKET:-}" ]; then
  "$mt5bot" influx-bootstrap --env-file "$secrets/influx.env"
else
  say "INFLUXDB_BOOTSTRAP_URL, _ORG and _BUCKET not all set: skipping influx-bootstrap"
fi

# 6. systemd.
service=mt5bot.service
if [ -n "$INSTANCE" ]; then service="mt5bot@$INSTANCE.service"; fi
if [ -z "$DESTDIR" ] && [ -d /run/systemd/system ]; then
  systemctl daemon-reload
  systemctl enable "$service"
  systemctl enable --now mt5bot-diagnostics.timer
  say "enabled $service and mt5bot-diagnostics.timer; start the daemon with: systemctl start $service"
else
  say "systemd is not running here (or DESTDIR is set): not calling systemctl." \
      "On the target: systemctl daemon-reload && systemctl enable --now $service mt5bot-diagnostics.timer" \
      "(without systemd: cp $PREFIX/share/doc/mt5bot/mt5bot.cron /etc/cron.d/mt5bot)"
fi
