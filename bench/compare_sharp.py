"""Thumbnails of the real-photograph corpus from nl-server and from a sharp
(libvips) server, on the same machine in one run, for issue 27's yardstick.

Both servers get every photo of target/photo-corpus (bench/photo_corpus.sh)
uploaded once; then rounds of one thumbnail request per photo, each round a
different size (256, 255, ...: nl-server's result cache never answers, and
sharp's operation cache cannot serve a whole request), CONCURRENCY requests
in flight, the two servers alternating round by round. Printed: requests
per second, p50/p95 latency and mean bytes per format, for nl-server's exact
path (full decode) and its `draft=1` path (DCT-scaled decode, as sharp
always does), and for sharp with its defaults.

  (cd bench/node && npm install sharp@0.34)       # once
  cargo build --release -p nlimage-server
  python3 bench/compare_sharp.py [--rounds 3] [--concurrency 4] [--formats webp,jpeg]
"""

import argparse
import concurrent.futures as cf
import http.client
import json
import os
import statistics
import subprocess
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def wait_port(port):
    for _ in range(200):
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            c.request("GET", "/")
            c.getresponse().read()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listens on {port}")


def upload(port, path, url):
    with open(path, "rb") as f:
        body = f.read()
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    c.request("POST", url, body=body)
    r = c.getresponse()
    data = r.read()
    assert r.status == 201, (r.status, data[:200])
    return json.loads(data)["id"]


def fetch(port, url):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    t = time.perf_counter()
    c.request("GET", url)
    r = c.getresponse()
    body = r.read()
    dt = time.perf_counter() - t
    assert r.status == 200, (url, r.status, body[:200])
    return dt, len(body)


def run_round(port, urls, concurrency):
    t = time.perf_counter()
    with cf.ThreadPoolExecutor(concurrency) as ex:
        res = list(ex.map(lambda u: fetch(port, u), urls))
    return time.perf_counter() - t, res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--formats", default="webp,jpeg")
    a = ap.parse_args()
    corpus = os.path.join(ROOT, "target", "photo-corpus")
    photos = sorted(os.path.join(corpus, f) for f in os.listdir(corpus) if f.endswith(".jpg"))
    nl_port, sharp_port = 18480, 18481
    data = tempfile.mkdtemp()
    nl = subprocess.Popen([os.path.join(ROOT, "target", "release", "nl-server"), "--port", "18479",
                           "--http-addr", f"127.0.0.1:{nl_port}", "--data-dir", data],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    env = dict(os.environ, NODE_PATH=os.path.join(ROOT, "bench", "node", "node_modules"))
    sh = subprocess.Popen(["node", os.path.join(ROOT, "bench", "sharp_server.js"), str(sharp_port)], env=env)
    try:
        wait_port(nl_port)
        wait_port(sharp_port)
        nl_ids = [upload(nl_port, p, "/v1/images") for p in photos]
        sh_ids = [upload(sharp_port, p, "/images") for p in photos]
        cpu = next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
        flags = next(l for l in open("/proc/cpuinfo") if l.startswith("flags")).split()
        isa = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "SSE"
        print(f"{cpu}, {os.cpu_count()} CPUs, {isa}; {len(photos)} photos; {a.rounds} rounds; "
              f"{a.concurrency} in flight\n")
        print("| format | server | req/s | p50 ms | p95 ms | mean bytes |")
        print("|---|---|---:|---:|---:|---:|")
        for fmt in a.formats.split(","):
            ext = "jpg" if fmt == "jpeg" else fmt
            sides = {
                "nl-server": (nl_port, lambda i, w: f"/v1/images/{nl_ids[i]}.{ext}?op=thumbnail:{w}"),
                "nl-server draft=1": (nl_port,
                                      lambda i, w: f"/v1/images/{nl_ids[i]}.{ext}?op=thumbnail:{w}&draft=1"),
                "sharp": (sharp_port, lambda i, w: f"/images/{sh_ids[i]}?w={w}&fmt={fmt}"),
            }
            results = {k: ([], []) for k in sides}
            for r in range(a.rounds + 1):
                for name, (port, url) in sides.items():
                    # Round 0 warms both up and is not counted; the draft
                    # side asks other sizes than the exact one.
                    w = 256 - 2 * r - (1 if "draft" in name else 0)
                    secs, res = run_round(port, [url(i, w) for i in range(len(photos))], a.concurrency)
                    if r:
                        results[name][0].append(len(res) / secs)
                        results[name][1].extend(res)
            for name, (rates, res) in results.items():
                lat = sorted(dt * 1e3 for dt, _ in res)
                print(f"| {fmt} | {name} | {statistics.median(rates):.1f} | {lat[len(lat) // 2]:.0f} | "
                      f"{lat[int(len(lat) * 0.95)]:.0f} | {statistics.mean(b for _, b in res):.0f} |")
    finally:
        nl.terminate()
        sh.terminate()


if __name__ == "__main__":
    main()
