#!/usr/bin/env bash
# Sets up, builds, and runs the pair on docs/sample.png: starts nl-server on a
# free local port (the kernel picks it: --port 0; PORT=N picks your own),
# sends the sample through nl-client three ways, writes the results beside it
# in docs/, and stops the server with SIGTERM.
set -euo pipefail
cd "$(dirname "$0")"

./setup.sh host
./build.sh host

LOG=$(mktemp)
./nl-server --port "${PORT:-0}" --debug 2>"$LOG" &
SERVER=$!
trap 'kill "$SERVER" 2>/dev/null || true; cat "$LOG" >&2; rm -f "$LOG"' EXIT
# The server logs the address it listens on; the port is the part after ':'.
PORT=
for _ in $(seq 100); do
  PORT=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$LOG" | head -n 1)
  [ -n "$PORT" ] && break
  sleep 0.1
done
[ -n "$PORT" ] || { echo "demo: nl-server did not start" >&2; exit 1; }

run() { echo "demo: nl-client $*"; ./nl-client --port "$PORT" "$@"; }
run --input docs/sample.png --output docs/sample.rotated.png --rotate NINETY_DEG
run --input docs/sample.png --output docs/sample.mean.png --mean
run --input docs/sample.png --output docs/sample.rotated-mean.png --rotate NINETY_DEG --mean

kill -TERM "$SERVER"
wait "$SERVER"
trap - EXIT
cat "$LOG" >&2
rm -f "$LOG"
echo "demo: server stopped cleanly; outputs in docs/sample.{rotated,mean,rotated-mean}.png"
