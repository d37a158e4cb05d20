#!/usr/bin/env bash
# Builds nlimage's release binaries one of four ways.
#   ./build.sh [host]       cargo build --release; links ./nl-server and ./nl-client
#   ./build.sh nix-flake    nix build; binaries in ./result/bin/
#   ./build.sh nix-legacy   nix-build (default.nix, no flakes); binaries in ./result/bin/
#   ./build.sh docker       images nl-server and nl-client (podman when docker is absent)
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
  command -v cmake >/dev/null 2>&1 || die "cmake not found (libjpeg-turbo is built from source): run ./setup.sh host first"
  say "cargo build --release (nl-server, nl-client)"
  cargo build --release --locked -p nlimage-server -p nlimage-client
  ln -sf target/release/nl-server nl-server
  ln -sf target/release/nl-client nl-client
  say "binaries: ./nl-server ./nl-client"
}

build_nix() {
  command -v nix >/dev/null 2>&1 || die "nix not found: run ./setup.sh nix-flake first"
  say "nix build .#default (builds from Cargo.lock and runs the tests)"
  nix --extra-experimental-features 'nix-command flakes' build .#default
  say "binaries: ./result/bin/nl-server ./result/bin/nl-client"
}

build_nix_legacy() {
  command -v nix-build >/dev/null 2>&1 || die "nix-build not found: run ./setup.sh nix-legacy first"
  say "nix-build -A default (default.nix: the flake's package from flake.lock's nixpkgs)"
  nix-build -A default
  say "binaries: ./result/bin/nl-server ./result/bin/nl-client"
}

build_docker() {
  local engine
  if command -v docker >/dev/null 2>&1; then
    engine=docker
    docker info >/dev/null 2>&1 || die "no Docker engine answers: start it (systemctl start docker)"
  elif command -v podman >/dev/null 2>&1; then
    engine=podman
  else
    die "neither docker nor podman found: run ./setup.sh docker first"
  fi
  say "$engine build --target server -t nl-server"
  "$engine" build --target server -t nl-server .
  say "$engine build --target client -t nl-client"
  "$engine" build --target client -t nl-client .
  say "images: nl-server nl-client ($engine compose up -d starts two replicas behind a proxy)"
}

case "$MODE" in
  host) build_host ;;
  nix-flake) build_nix ;;
  nix-legacy) build_nix_legacy ;;
  docker) build_docker ;;
  *) die "unknown mode '$MODE': use host, nix-flake, nix-legacy or docker" ;;
esac
