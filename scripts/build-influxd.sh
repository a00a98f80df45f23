#!/usr/bin/env bash
# Build InfluxDB OSS 2.7 `influxd` from its Go module, once, and cache the binary.
#
# influxd links libflux (Rust); influxdata's pkg-config wrapper builds it with cargo
# from crates.io when the Go build asks `pkg-config --cflags flux`.
#
# Output: $CEMS_CACHE_DIR/influxdb/<version>/influxd  (default ~/.cache/cems)
# Re-running is a no-op when the binary exists.
set -euo pipefail

INFLUXDB_VERSION="${INFLUXDB_VERSION:-v2.7.12}"
PKG_CONFIG_WRAPPER_VERSION="${PKG_CONFIG_WRAPPER_VERSION:-v0.2.14}"
CACHE_DIR="${CEMS_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/cems}"
OUT_DIR="$CACHE_DIR/influxdb/$INFLUXDB_VERSION"
OUT="$OUT_DIR/influxd"

if [[ -x "$OUT" ]]; then
  echo "influxd $INFLUXDB_VERSION already built: $OUT"
  exit 0
fi

command -v go >/dev/null || { echo "build-influxd: 'go' not found on PATH" >&2; exit 1; }
command -v cargo >/dev/null || { echo "build-influxd: 'cargo' not found on PATH (libflux needs Rust)" >&2; exit 1; }

mkdir -p "$OUT_DIR"
WORK="$CACHE_DIR/influxdb/src-$INFLUXDB_VERSION"
start=$(date +%s)

echo "build-influxd: fetching github.com/influxdata/influxdb/v2@$INFLUXDB_VERSION"
MOD_DIR=$(cd "$CACHE_DIR" && GOFLAGS=-mod=mod go mod download -json "github.com/influxdata/influxdb/v2@$INFLUXDB_VERSION" \
  | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
[[ -d "$MOD_DIR" ]] || { echo "build-influxd: module download failed" >&2; exit 1; }

# The module has a replace directive, so `go install module@version` refuses it: build a copy.
rm -rf "$WORK"
cp -r "$MOD_DIR" "$WORK"
chmod -R u+w "$WORK"

echo "build-influxd: installing influxdata pkg-config wrapper $PKG_CONFIG_WRAPPER_VERSION"
WRAP_BIN="$CACHE_DIR/influxdb/bin"
mkdir -p "$WRAP_BIN"
GOBIN="$WRAP_BIN" go install "github.com/influxdata/pkg-config@$PKG_CONFIG_WRAPPER_VERSION"

echo "build-influxd: building influxd (libflux via cargo, then Go; takes several minutes on 2 cores)"
cd "$WORK"
# libflux denies warnings (feature "strict"); newer Rust warns about more, so cap lints.
# RUSTFLAGS does not reach host artifacts when cargo gets --target (flux-core is built
# for the host by flux's build script), so cap them through a rustc wrapper instead.
cat > "$WRAP_BIN/rustc-cap-lints" <<'WRAP'
#!/bin/sh
exec "$@" --cap-lints=warn
WRAP
chmod +x "$WRAP_BIN/rustc-cap-lints"
export RUSTC_WRAPPER="$WRAP_BIN/rustc-cap-lints"
# libflux pins an old toolchain in rust-toolchain.toml; use the installed one.
export RUSTUP_TOOLCHAIN="${RUSTUP_TOOLCHAIN:-stable}"
PKG_CONFIG="$WRAP_BIN/pkg-config" CGO_ENABLED=1 \
  go build -o "$OUT.tmp" -ldflags "-X main.version=${INFLUXDB_VERSION#v} -X main.commit=module" ./cmd/influxd
mv "$OUT.tmp" "$OUT"
rm -rf "$WORK"
echo "build-influxd: built $OUT in $(( $(date +%s) - start ))s"
