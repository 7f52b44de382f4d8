#!/usr/bin/env bash
# Nightly diagnostics: what mt5bot-diagnostics.timer and the cron line in deploy/mt5bot.cron run.
# Loads the env files (for PROM_PUSH_URL and PROM_QUERY_URL), runs `mt5bot diagnostics`, keeps the
# newest DIAGNOSTICS_KEEP reports, and exits with its status: 0 clean, 1 mismatch, 2 could not run.
# Reports are written atomically by mt5bot, so a run killed mid-way leaves no partial report; temp
# files such a run may leave are removed here after an hour.
#
# Environment (defaults suit a checkout; the systemd unit sets the installed paths):
#   MT5BOT                  the binary                  [mt5bot on PATH, else target/release/mt5bot]
#   MT5BOT_CONFIG           config file                 [none: the embedded default]
#   MT5BOT_SECRETS_DIR      folder of the env files     [deploy/secrets]
#   MT5BOT_DIAGNOSTICS_DIR  report folder               [logs/diagnostics]
#   MT5BOT_DATA_MANIFEST    data manifest               [data/manifest.yaml]
#   DIAGNOSTICS_KEEP        reports kept                [30]
set -uo pipefail

case "${1:-}" in
  -h|--help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  "") ;;
  *) echo "diagnostics.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
esac

bin=${MT5BOT:-}
if [ -z "$bin" ]; then
  if command -v mt5bot >/dev/null 2>&1; then bin=mt5bot; else bin="$(dirname "$0")/../target/release/mt5bot"; fi
fi
secrets=${MT5BOT_SECRETS_DIR:-deploy/secrets}
out=${MT5BOT_DIAGNOSTICS_DIR:-logs/diagnostics}
manifest=${MT5BOT_DATA_MANIFEST:-data/manifest.yaml}
keep=${DIAGNOSTICS_KEEP:-30}
case "$keep" in ''|*[!0-9]*) echo "diagnostics.sh: DIAGNOSTICS_KEEP=$keep is not a number" >&2; exit 2 ;; esac

for f in "$secrets/runtime.env" "$secrets/influx.env"; do
  if [ -r "$f" ]; then
    set -a
    # shellcheck disable=SC1090
    . "$f"
    set +a
  fi
done

args=(diagnostics --out "$out" --manifest "$manifest" --secrets-dir "$secrets")
if [ -n "${MT5BOT_CONFIG:-}" ]; then args+=(--config "$MT5BOT_CONFIG"); fi
"$bin" "${args[@]}"
rc=$?

# Keep the newest $keep reports (names sort by time), each with its .txt.
if [ -d "$out" ]; then
  mapfile -t reports < <(find "$out" -maxdepth 1 -name '*.json' ! -name '.*' -printf '%f\n' | sort)
  excess=$(( ${#reports[@]} - keep ))
  for (( i = 0; i < excess; i++ )); do
    stem=${reports[$i]%.json}
    rm -f -- "$out/$stem.json" "$out/$stem.txt"
  done
  find "$out" -maxdepth 1 -name '.*.tmp-*' -mmin +60 -delete 2>/dev/null || true
fi
exit $rc
