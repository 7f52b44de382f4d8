#!/usr/bin/env bash
# End-to-end benchmarks against the Python stack mt5bot replaces and against the machine's floor.
# Installs what they need (wrk from Debian; prometheus_client and influxdb-client from PyPI into a
# venv under target/), builds the release binary, and writes the report.
#
# Usage: scripts/bench-e2e.sh [--quick] [--only SECTION]
#   full:    writes BENCHMARKS.md (minutes)
#   --quick: a few seconds per benchmark, writes target/bench-e2e/BENCHMARKS.quick.md (CI runs this)
#   --only:  only the sections whose name contains SECTION (e.g. "ingestion"); a partial full run
#            goes to target/bench-e2e/BENCHMARKS.only.md, never over BENCHMARKS.md
set -euo pipefail
cd "$(dirname "$0")/.."

quick=""
only=()
out="BENCHMARKS.md"
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick="--quick"; out="target/bench-e2e/BENCHMARKS.quick.md" ;;
    --only) [ $# -ge 2 ] || { echo "--only needs a section name" >&2; exit 2; }
            only=(--only "$2"); shift
            [ -z "$quick" ] && out="target/bench-e2e/BENCHMARKS.only.md" ;;
    *) echo "usage: scripts/bench-e2e.sh [--quick] [--only SECTION]" >&2; exit 2 ;;
  esac
  shift
done
if [ ${#only[@]} -gt 0 ] && [ -n "$quick" ]; then out="target/bench-e2e/BENCHMARKS.quick.md"; fi

if ! command -v wrk >/dev/null 2>&1; then
  echo "installing wrk (Debian package)"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends wrk >/dev/null
fi
scripts/install-test-deps.sh >/dev/null

venv=target/bench-venv
if [ ! -x "$venv/bin/python" ]; then
  echo "creating $venv with the Python peers (benches/peers/requirements.txt)"
  python3 -m venv "$venv"
fi
"$venv/bin/pip" install -q --disable-pip-version-check -r benches/peers/requirements.txt

echo "building the release binary"
cargo build --release --locked -q

mkdir -p "$(dirname "$out")"
"$venv/bin/python" benches/peers/run.py $quick "${only[@]}" --out "$out"
