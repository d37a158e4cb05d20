#!/usr/bin/env bash
# Larger than RAM, measured: a 12000x12000 RGB PNG (432 MB of pixels) goes
# through nl-client -> nl-server -> back to a PNG, and the peak RSS of both
# processes is read from /usr/bin/time -v. Then the raw pixel stream (no
# codec) is timed against a bare tonic echo of the same messages.
#   bench/big_image.sh            (W=... H=... to change the size; ONLY=ops
#                                  runs the operations scenario alone)
set -euo pipefail
cd "$(dirname "$0")/.."

W=${W:-12000}
H=${H:-12000}
PORT=${PORT:-50761}
OUT=bench/out
R=target/release
mkdir -p "$OUT"
[ -x /usr/bin/time ] || { echo "big_image: needs /usr/bin/time (apt-get install time)" >&2; exit 1; }

echo "big_image: building (release)" >&2
# Two builds: naming an example builds only that target of the package.
cargo build --release -q -p nlimage-server -p nlimage-client
cargo build --release -q -p nlimage-client --example stream_bench -p nlimage-core --example make_big_png
IMG="$OUT/big-${W}x${H}.png"
if [ ! -f "$IMG" ]; then
  echo "big_image: generating $IMG" >&2
  "$R/examples/make_big_png" "$IMG" "$W" "$H"
fi
PIXEL_MB=$(( W * H * 3 / 1000000 ))

rss_mib() { awk -F': ' '/Maximum resident set size/ {printf "%.0f", $2/1024}' "$1"; }

start_server() {
  /usr/bin/time -v -o "$OUT/server.time" "$R/nl-server" --port "$PORT" "$@" 2>"$OUT/server.log" &
  TIMEPID=$!
  for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && return; sleep 0.1; done
  echo "big_image: server did not start; its log:" >&2; cat "$OUT/server.log" >&2; exit 1
}

stop_server() {
  pkill -TERM -P "$TIMEPID" nl-server || true
  wait "$TIMEPID" || true
}

scenario() { # label, server flags (one string), client flags...
  local label=$1 sflags=$2; shift 2
  # shellcheck disable=SC2086
  start_server $sflags
  local t0 t1
  t0=$(date +%s.%N)
  /usr/bin/time -v -o "$OUT/client.time" "$R/nl-client" --port "$PORT" \
    --input "$IMG" --output "$OUT/big.out.png" "$@"
  t1=$(date +%s.%N)
  stop_server
  printf '| %s | %s | %.1f | %s | %s |\n' "$label" "${sflags:-(defaults)}" "$(echo "$t1 - $t0" | bc)" \
    "$(rss_mib "$OUT/server.time")" "$(rss_mib "$OUT/client.time")"
}

echo
echo "${W}x${H} RGB, ${PIXEL_MB} MB of pixels; $(nproc) CPUs; $(date -u +%Y-%m-%d)"
echo
echo "| nl-client flags | nl-server flags | wall s (PNG in, PNG out) | server peak RSS MiB | client peak RSS MiB |"
echo "|---|---|---|---|---|"
if [ "${ONLY:-}" != ops ]; then
  scenario "--mean" "" --mean
  scenario "--rotate NINETY_DEG" "" --rotate NINETY_DEG
  scenario "--rotate NINETY_DEG" "--spill-above-mib 64" --rotate NINETY_DEG
fi
# The operations issue's streaming case: a resampler window, a blur window,
# a pixel-wise stage; the server holds rows, never the image.
scenario "--op resize=1000x1000 --op blur=2 --op gray" "" --op resize=1000x1000 --op blur=2 --op gray
rm -f "$OUT/big.out.png"
[ "${ONLY:-}" = ops ] && exit 0

echo
echo "Raw pixel stream on 127.0.0.1 (no codec), ${PIXEL_MB} MB up and back, best of 5:"
echo
rm -f "$OUT/echo.runs" "$OUT/mean.runs"
EPORT=$((PORT + 1))
"$R/examples/stream_bench" serve-echo "$EPORT" &
ECHOPID=$!
sleep 0.5
start_server
# Alternate the two, five times each, and keep each one's best run.
for _ in 1 2 3 4 5; do
  "$R/examples/stream_bench" run "127.0.0.1:$EPORT" "$W" "$H" >>"$OUT/echo.runs"
  "$R/examples/stream_bench" run "127.0.0.1:$PORT" "$W" "$H" mean >>"$OUT/mean.runs"
done
stop_server
kill "$ECHOPID"
best_of() { awk -F'"MB_per_s":' '{print $2+0}' "$1" | sort -n | tail -n1; }
ECHO=$(best_of "$OUT/echo.runs")
MEAN=$(best_of "$OUT/mean.runs")
rm -f "$OUT/echo.runs" "$OUT/mean.runs"
echo "| stream | MB/s of pixels |"
echo "|---|---|"
echo "| bare tonic echo server, same messages and windows (transport ceiling) | $ECHO |"
echo "| nl-server Process --mean | $MEAN |"
printf '| ratio | **%.0f%%** |\n' "$(echo "100 * $MEAN / $ECHO" | bc -l)"
