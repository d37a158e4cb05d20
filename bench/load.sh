#!/usr/bin/env bash
# The two load scenarios of the production issue, against a release
# nl-server with a fixed memory budget, with nl-load as the client:
#   1. 64 concurrent streams, each a 4096x3072 RGB image through the mean filter;
#   2. 16 concurrent streams, each a 12000x12000 RGB image rotated 90 degrees
#      (which must be held whole).
# Prints, per scenario, nl-load's report (throughput, latency percentiles,
# outcomes by status) and the server's peak RSS against its budget.
#   bench/load.sh            (BUDGET_MIB=... to change the budget)
set -euo pipefail
cd "$(dirname "$0")/.."

BUDGET_MIB=${BUDGET_MIB:-2048}
PORT=${PORT:-50771}
OUT=bench/out
R=target/release
mkdir -p "$OUT"
[ -x /usr/bin/time ] || { echo "load: needs /usr/bin/time (apt-get install time)" >&2; exit 1; }
echo "load: building (release)" >&2
cargo build --release -q -p nlimage-server -p nlimage-client

rss_mib() { awk -F': ' '/Maximum resident set size/ {printf "%.0f", $2/1024}' "$1"; }

run() { # label, nl-server flags (one string), nl-load flags...
  local label=$1 sflags=$2; shift 2
  # shellcheck disable=SC2086
  /usr/bin/time -v -o "$OUT/load-server.time" "$R/nl-server" --port "$PORT" \
    --memory-budget-mib "$BUDGET_MIB" $sflags 2>"$OUT/load-server.log" &
  local timepid=$!
  for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.1; done
  echo "### $label"
  echo
  echo "nl-server --memory-budget-mib $BUDGET_MIB $sflags"
  echo "nl-load $*"
  echo
  echo '```'
  "$R/nl-load" --port "$PORT" "$@"
  pkill -TERM -P "$timepid" nl-server || true
  wait "$timepid" || true
  echo "server peak RSS: $(rss_mib "$OUT/load-server.time") MiB (memory budget $BUDGET_MIB MiB)"
  echo '```'
  echo
}

echo "Load scenarios, $(nproc) CPUs, $(date -u +%Y-%m-%d)"
echo
run "64 streams x 4096x3072 RGB, mean filter" "" \
  --concurrency 64 --requests 256 --duration 120 --width 4096 --height 3072 --op mean
run "16 streams x 12000x12000 RGB, rotate 90 (held whole)" "--queue-timeout 300" \
  --concurrency 16 --requests 16 --duration 300 --width 12000 --height 12000 --op rotate=90
