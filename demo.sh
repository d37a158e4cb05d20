#!/usr/bin/env bash
# Sets up, builds, and runs the pair on docs/sample.png: starts nl-server on a
# free local port, sends the sample through nl-client three ways, writes the
# results beside it in docs/, and stops the server with SIGTERM.
set -euo pipefail
cd "$(dirname "$0")"

./setup.sh host
./build.sh host

PORT=${PORT:-50151}
./nl-server --port "$PORT" --debug &
SERVER=$!
trap 'kill "$SERVER" 2>/dev/null || true' EXIT
for _ in $(seq 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
  sleep 0.1
done

run() { echo "demo: nl-client $*"; ./nl-client --port "$PORT" "$@"; }
run --input docs/sample.png --output docs/sample.rotated.png --rotate NINETY_DEG
run --input docs/sample.png --output docs/sample.mean.png --mean
run --input docs/sample.png --output docs/sample.rotated-mean.png --rotate NINETY_DEG --mean

kill -TERM "$SERVER"
wait "$SERVER"
trap - EXIT
echo "demo: server stopped cleanly; outputs in docs/sample.{rotated,mean,rotated-mean}.png"
