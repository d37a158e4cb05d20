#!/usr/bin/env bash
# Builds nlimage's release binaries.
#   ./build.sh [host]    cargo build --release; links ./nl-server and ./nl-client
set -euo pipefail
cd "$(dirname "$0")"

MODE=${1:-host}
say() { printf 'build: %s\n' "$*"; }
die() { printf 'build: %s\n' "$*" >&2; exit 1; }

build_host() {
  if ! command -v cargo >/dev/null 2>&1 && [ -x "$HOME/.cargo/bin/cargo" ]; then
    export PATH="$HOME/.cargo/bin:$PATH"
  fi
  command -v cargo >/dev/null 2>&1 || die "cargo not found: run ./setup.sh host first"
  local features=()
  if command -v cmake >/dev/null 2>&1; then
    features=(--features nlimage-client/turbojpeg)
  else
    say "cmake not found: JPEG output uses the pure-Rust encoder (./setup.sh host installs cmake)"
  fi
  say "cargo build --release (nl-server, nl-client) ${features[*]}"
  cargo build --release --locked -p nlimage-server -p nlimage-client "${features[@]}"
  ln -sf target/release/nl-server nl-server
  ln -sf target/release/nl-client nl-client
  say "binaries: ./nl-server ./nl-client"
}

case "$MODE" in
  host) build_host ;;
  *) die "unknown mode '$MODE': use host" ;;
esac
