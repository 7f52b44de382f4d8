#!/usr/bin/env bash
# Installs what the tests need on a Debian machine, idempotently: the Debian packages of the real
# peers and tools the tests start: Prometheus and promtool, Alertmanager and amtool, Pushgateway,
# VictoriaMetrics and InfluxDB 1.x (line-protocol ingestion), rsyslog with its TLS driver and
# openssl for the test certificates (log forwarding),
# systemd-analyze and crontab (unit and schedule checks), systemd itself with unshare, nsenter, ip
# and curl (tests/systemd.rs boots it in namespaces), and the QuickFIX executor example (the FIX 4.4
# acceptor the FIX venue is tested against; Debian ships it prebuilt in libquickfix-doc), and
# Chromium with chromedriver, Selenium and Pillow (tests/console.rs drives the console in a headless
# browser and checks its screenshots). Packages must not start their own
# daemons, so /usr/sbin/policy-rc.d refuses service starts during the install.
#
# Usage: scripts/install-test-deps.sh        (as root, or with sudo available)
set -euo pipefail

# program -> Debian package that ships it
declare -A NEED=(
  [prometheus]=prometheus
  [promtool]=prometheus
  [prometheus-alertmanager]=prometheus-alertmanager
  [amtool]=prometheus-alertmanager
  [prometheus-pushgateway]=prometheus-pushgateway
  [victoria-metrics]=victoria-metrics
  [influxd]=influxdb
  [systemd-analyze]=systemd
  [crontab]=cron
  [rsyslogd]=rsyslog
  [openssl]=openssl
  [logrotate]=logrotate
  [unshare]=util-linux
  [nsenter]=util-linux
  [ip]=iproute2
  [curl]=curl
  [chromium]=chromium
  [chromedriver]=chromium-driver
  [g++]=g++
)

# packages that ship no program on PATH (the executor example, the library it links and its headers
# for the QuickFIX initiator the FIX bench runs beside mt5bot and the stop-holding broker of
# tests/fix44_stops.rs; rsyslog's TLS driver)
NEED_PACKAGES=(libquickfix-doc libquickfix17 libquickfix-dev rsyslog-gnutls systemd python3-selenium python3-pil)
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

missing=()
for prog in "${!NEED[@]}"; do
  if ! command -v "$prog" >/dev/null 2>&1; then
    missing+=("${NEED[$prog]}")
  fi
done
for pkg in "${NEED_PACKAGES[@]}"; do
  installed "$pkg" || missing+=("$pkg")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "test dependencies: all present"
  exit 0
fi
# Unique package names.
mapfile -t packages < <(printf '%s\n' "${missing[@]}" | sort -u)

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    SUDO="sudo"
  else
    echo "error: installing ${packages[*]} needs root; run as root or install sudo" >&2
    exit 1
  fi
fi

if [ ! -x /usr/sbin/policy-rc.d ]; then
  echo "creating /usr/sbin/policy-rc.d so packages do not start their daemons"
  printf '#!/bin/sh\n# installed by mt5bot scripts/install-test-deps.sh: no service starts on install\nexit 101\n' \
    | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
  $SUDO chmod 755 /usr/sbin/policy-rc.d
fi

echo "installing Debian packages: ${packages[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
for prog in "${!NEED[@]}"; do
  command -v "$prog" >/dev/null 2>&1 || { echo "error: $prog still missing after install" >&2; exit 1; }
done
for pkg in "${NEED_PACKAGES[@]}"; do
  installed "$pkg" || { echo "error: package $pkg still missing after install" >&2; exit 1; }
done
echo "test dependencies: installed"
