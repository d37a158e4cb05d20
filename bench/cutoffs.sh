#!/usr/bin/env bash
# Cut-off HTTP renders against one or more nl-server builds, as a user would
# meet them: `--workers 1 --memory-budget-mib 200`, a 3000x2000 BMP and a
# 64x48 one uploaded, then 30 expensive renders (blur:60, ~0.7 s each) that
# curl abandons after 0.3 s, then a cheap render. Prints, per build, the
# cheap render idle and after the cut-offs, one expensive render, what
# /healthz says is in use, and the process's peak RSS.
#   bench/cutoffs.sh target/release/nl-server [OLD/nl-server ...]
set -euo pipefail
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 - "$work" <<'PY'
import random, struct, sys
for name, (w, h) in {"big.bmp": (3000, 2000), "small.bmp": (64, 48)}.items():
    random.seed(w)
    row = (w * 3 + 3) // 4 * 4
    data = random.randbytes(row * h)
    head = b"BM" + struct.pack("<IHHI", 54 + len(data), 0, 0, 54)
    head += struct.pack("<IiiHHIIiiII", 40, w, h, 1, 24, 0, len(data), 2835, 2835, 0, 0)
    open(f"{sys.argv[1]}/{name}", "wb").write(head + data)
PY
secs() { { /usr/bin/time -f %e curl -s -o /dev/null "$1"; } 2>&1; }
echo "| build | cheap idle s | one blur:60 s | MiB in use after 30 cut-offs | cheap after the cut-offs s | peak RSS MiB |"
echo "|---|---|---|---|---|---|"
for bin in "$@"; do
  store=$(mktemp -d -p "$work")
  port=$((52000 + RANDOM % 1000))
  "$bin" --port "$port" --http-addr "127.0.0.1:$((port + 1))" --store "$store" --database none \
    --workers 1 --memory-budget-mib 200 >/dev/null 2>&1 &
  pid=$!
  sleep 1
  base="http://127.0.0.1:$((port + 1))/v1/images"
  id() { curl -s -XPOST --data-binary "@$work/$1" "$base" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])'; }
  big=$(id big.bmp)
  small=$(id small.bmp)
  idle=$(secs "$base/$small.png?op=gray")
  one=$(secs "$base/$big.jpg?op=blur:60")
  for i in $(seq 1 30); do
    curl -s -o /dev/null --max-time 0.3 "$base/$big.jpg?op=blur:60.$i" || true
  done
  in_use=$(curl -s "http://127.0.0.1:$((port + 1))/healthz" | python3 -c 'import json,sys; print(json.load(sys.stdin)["memory_in_use_bytes"] >> 20)')
  cheap=$(secs "$base/$small.png?op=brightness:1")
  peak=$(awk '/VmHWM/ {print int($2 / 1024)}' "/proc/$pid/status")
  echo "| $bin | $idle | $one | $in_use | $cheap | $peak |"
  kill "$pid"
  wait "$pid" 2>/dev/null || true
done
