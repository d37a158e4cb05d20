#!/usr/bin/env bash
# What syncing every store write costs uploads: nl-server with
# --store-fsync true against false on the same disk, rounds interleaved.
# Small files (100 distinct 64 KB BMPs, one HTTP upload after another) and
# large ones (4 distinct 24 MB BMPs).
#   bench/fsync_cost.sh [target/release/nl-server] [rounds]
set -euo pipefail
bin=${1:-target/release/nl-server}
rounds=${2:-3}
work=$(mktemp -d -p "${TMPDIR:-/var/tmp}")
trap 'rm -rf "$work"' EXIT
python3 - "$work" <<'PY'
import os, struct, sys
def bmp(path, w, h, seed):
    row = (w * 3 + 3) // 4 * 4
    data = os.urandom(row * h)
    head = b"BM" + struct.pack("<IHHI", 54 + len(data), 0, 0, 54)
    head += struct.pack("<IiiHHIIiiII", 40, w, h, 1, 24, 0, len(data), 2835, 2835, 0, 0)
    open(path, "wb").write(head + data)
os.makedirs(f"{sys.argv[1]}/small"); os.makedirs(f"{sys.argv[1]}/large")
for i in range(100):
    bmp(f"{sys.argv[1]}/small/{i}.bmp", 150, 145, i)
for i in range(4):
    bmp(f"{sys.argv[1]}/large/{i}.bmp", 2828, 2828, 1000 + i)
PY
run() { # fsync -> "small_per_s large_MB_per_s"
  local store port pid t0 t1 t2
  store=$(mktemp -d -p "$work")
  port=$((53000 + RANDOM % 1000))
  "$bin" --port "$port" --http-addr "127.0.0.1:$((port + 1))" --store "$store" --database none \
    --store-fsync "$1" >/dev/null 2>&1 &
  pid=$!
  sleep 1
  t0=$(date +%s.%N)
  for f in "$work"/small/*.bmp; do
    curl -sf -o /dev/null -XPOST --data-binary "@$f" "http://127.0.0.1:$((port + 1))/v1/images"
  done
  t1=$(date +%s.%N)
  for f in "$work"/large/*.bmp; do
    curl -sf -o /dev/null -XPOST --data-binary "@$f" "http://127.0.0.1:$((port + 1))/v1/images"
  done
  t2=$(date +%s.%N)
  kill "$pid"; wait "$pid" 2>/dev/null || true
  python3 -c "print(f'{100/($t1-$t0):.0f} {4*24.0/($t2-$t1):.0f}')"
}
echo "| round | small uploads/s, fsync | small uploads/s, no fsync | ratio | large MB/s, fsync | large MB/s, no fsync | ratio |"
echo "|---|---|---|---|---|---|---|"
for r in $(seq 1 "$rounds"); do
  read -r s1 l1 <<<"$(run true)"
  read -r s0 l0 <<<"$(run false)"
  python3 -c "print(f'| $r | $s1 | $s0 | {$s1/$s0:.2f}x | $l1 | $l0 | {$l1/$l0:.2f}x |')"
done
