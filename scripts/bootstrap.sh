#!/usr/bin/env bash
# Install everything the project needs on a Debian 12 machine, idempotently:
# Debian packages (Mosquitto, PostgreSQL, Java 17, Maven, build tools, Chromium and its driver
# for the browser tests), a Python venv in .venv with the
# project and its dev tools. Kafka's jars and the influxd binary are fetched/built on the
# first `cems infra up` and cached in ${CEMS_CACHE_DIR:-~/.cache/cems}.
set -euo pipefail
cd "$(dirname "$0")/.."
say() { printf '\033[1m[bootstrap]\033[0m %s\n' "$*"; }
die() { printf '\033[1;31m[bootstrap] error:\033[0m %s\n' "$*" >&2; exit 1; }

# --- Debian packages ---------------------------------------------------------------------
missing=()
[[ -x /usr/sbin/mosquitto ]] || missing+=(mosquitto)
command -v mosquitto_passwd >/dev/null || [[ -x /usr/bin/mosquitto_passwd ]] || missing+=(mosquitto)
compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null || missing+=(postgresql)
command -v chromium >/dev/null || missing+=(chromium)
command -v chromedriver >/dev/null || missing+=(chromium-driver)
# the browser tests read Chinese names on the pages and keep screenshots: a CJK font
[[ -f /usr/share/fonts/truetype/wqy/wqy-zenhei.ttc ]] || missing+=(fonts-wqy-zenhei)
command -v java >/dev/null || missing+=(openjdk-17-jre-headless)
command -v mvn >/dev/null || missing+=(maven)
command -v pkg-config >/dev/null || missing+=(pkg-config)
command -v gcc >/dev/null || missing+=(build-essential)
command -v git >/dev/null || missing+=(git)
python3 -c 'import venv, ensurepip' 2>/dev/null || missing+=(python3-venv)
if ((${#missing[@]})); then
  mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
  say "installing Debian packages: ${missing[*]}"
  SUDO=""; [[ $(id -u) -eq 0 ]] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
  # where systemd runs, Debian starts the cluster it just created on port 5432; `cems infra` runs its own
  if [[ " ${missing[*]} " == *" postgresql "* && -d /run/systemd/system ]]; then
    $SUDO systemctl disable --now postgresql || true
  fi
fi
# Debian starts a system-wide mosquitto where systemd runs; it would hold port 1883.
if command -v systemctl >/dev/null && systemctl is-active --quiet mosquitto 2>/dev/null; then
  say "note: the system mosquitto service is running and may hold port ${CEMS_MQTT_PORT:-1883};"
  say "      stop it (systemctl disable --now mosquitto) or set CEMS_MQTT_PORT"
fi
if command -v systemctl >/dev/null && systemctl is-active --quiet postgresql 2>/dev/null; then
  say "note: the system postgresql service is running and may hold port ${CEMS_POSTGRES_PORT:-5432};"
  say "      stop it (systemctl disable --now postgresql) or set CEMS_POSTGRES_PORT"
fi

# Go and Rust build influxd once (InfluxDB 2.7 from its Go module; libflux with cargo).
if [[ ! -x "${CEMS_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/cems}/influxdb/${CEMS_INFLUXDB_VERSION:-v2.7.12}/influxd" ]]; then
  command -v go >/dev/null || die "Go >= 1.21 is needed once to build influxd (https://go.dev/doc/install)"
  command -v cargo >/dev/null || die "Rust (cargo) is needed once to build libflux for influxd (rustup)"
fi

# --- Python -------------------------------------------------------------------------------
PY=${PYTHON:-python3}
"$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || die "Python >= 3.11 needed ($PY is $("$PY" -V))"
if [[ ! -x .venv/bin/python ]]; then
  say "creating .venv"
  "$PY" -m venv .venv
fi
stamp=.venv/.cems-installed
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [[ ! -f $stamp || $(cat "$stamp") != "$want" ]]; then
  say "installing the project and its dev tools into .venv"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e ".[dev]"
  echo "$want" > "$stamp"
fi
say "ready: .venv/bin/cems --help"
