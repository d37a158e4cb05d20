#!/usr/bin/env python3
"""The image store's figures, as users meet them (issue: the image store):

  http    cached fetch over HTTP: a ~100 KB thumbnail served by nl-server's
          gateway from its result cache vs nginx serving the same bytes as a
          static file; wrk, keep-alive, 64 connections, interleaved rounds;
          requests/s, p99 and the ratio
  cold    cold thumbnails: a stored 24-megapixel JPEG to a 256-pixel WebP and
          JPEG over HTTP, each request a new result (the cache misses);
          median latency
  upload  a 100 MB file over ImageStore/Put vs the raw Process stream of as
          many bytes, both from a stock Python grpcio client; MB/s and ratio
  bulk    1,000 small files through `nl-client put DIR --jobs 16` while the
          server is restarted once in the middle; wall time and failures

    bench/setup_venv.sh                                    # once
    apt-get install nginx wrk                              # for `http`
    cargo build --release -p nlimage-server -p nlimage-client
    bench/.venv/bin/python bench/store_bench.py [--only http,cold,upload,bulk]

Servers and the load generator share this machine's cores: compare the
ratios within one run, not absolute figures across runs.
"""
import argparse
import io
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

import numpy as np
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=20):
    t0 = time.time()
    while time.time() - t0 < timeout:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    sys.exit(f"nothing listens on {port}")


class Server:
    """A release nl-server with a store in `store` and the HTTP gateway on."""

    def __init__(self, store, port=None, http=None, extra=()):
        self.port = port or free_port()
        self.http = http or free_port()
        self.proc = subprocess.Popen(
            [f"{BIN}/nl-server", "--port", str(self.port), "--store", store,
             "--http-addr", f"127.0.0.1:{self.http}", *extra],
            stderr=subprocess.DEVNULL)
        wait_port(self.port)
        wait_port(self.http)

    def stop(self, sig=signal.SIGTERM):
        self.proc.send_signal(sig)
        self.proc.wait(timeout=60)


def photo(w, h, seed=1):
    """A photo-like image: smooth gradients, shapes and mild noise, so JPEG
    sizes and decode times are those of photos, not of noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.stack([
        128 + 100 * np.sin(x / (w / 7) + seed),
        128 + 100 * np.cos(y / (h / 5)),
        128 + 90 * np.sin((x + y) / (w / 11)),
    ], axis=-1)
    img += rng.normal(0, 6, img.shape)
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))


def jpeg_bytes(img, quality=90):
    b = io.BytesIO()
    img.save(b, "JPEG", quality=quality)
    return b.getvalue()


def http_put(port, data, name="a.jpg"):
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/images?filename={name}",
                                 data=data, method="POST")
    with urllib.request.urlopen(req) as r:
        import json
        return json.load(r)


def http_get(url):
    with urllib.request.urlopen(url) as r:
        return r.read(), dict(r.headers)


def wrk(url, seconds, conns=64):
    out = subprocess.run(["wrk", "-t2", f"-c{conns}", f"-d{seconds}s", "--latency", url],
                         capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    m = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    p99 = float(m.group(1)) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[m.group(2)]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return rps, p99, int(errors.group(1)) if errors else 0


def nginx(root, port, tmp):
    conf = os.path.join(tmp, "nginx.conf")
    with open(conf, "w") as f:
        f.write(f"""worker_processes auto;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx.err;
daemon off;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  sendfile on; tcp_nopush on; tcp_nodelay on;
  keepalive_requests 100000;
  client_body_temp_path {tmp}/body; proxy_temp_path {tmp}/proxy;
  fastcgi_temp_path {tmp}/fcgi; uwsgi_temp_path {tmp}/uwsgi; scgi_temp_path {tmp}/scgi;
  types {{ image/jpeg jpg; }}
  server {{ listen 127.0.0.1:{port}; root {root}; }}
}}
""")
    p = subprocess.Popen(["nginx", "-c", conf], stderr=subprocess.DEVNULL)
    wait_port(port)
    return p


def bench_http(tmp, seconds, rounds):
    store = os.path.join(tmp, "store-http")
    s = Server(store)
    try:
        src = jpeg_bytes(photo(4032, 3024), 90)
        up = http_put(s.http, src)
        # The smallest thumbnail of at least 90 KB: "a 100 KB thumbnail".
        for side in (800, 1000, 1200, 1400, 1600, 2000):
            url = f"http://127.0.0.1:{s.http}/v1/images/{up['id']}.jpg?op=thumbnail:{side}&q=90"
            body, headers = http_get(url)  # computed once, cached from here on
            if len(body) >= 90_000:
                break
        _, headers = http_get(url)
        assert headers.get("x-nlimage-cache") == "hit", headers
        root = os.path.join(tmp, "www")
        os.makedirs(root, exist_ok=True)
        # nginx's workers run as an unprivileged user: let them read it.
        os.chmod(tmp, 0o755)
        os.chmod(root, 0o755)
        with open(os.path.join(root, "thumb.jpg"), "wb") as f:
            f.write(body)
        os.chmod(os.path.join(root, "thumb.jpg"), 0o644)
        nport = free_port()
        ng = nginx(root, nport, tmp)
        try:
            static = f"http://127.0.0.1:{nport}/thumb.jpg"
            assert http_get(static)[0] == body
            res = {"nl-server": [], "nginx": []}
            for _ in range(rounds):
                res["nl-server"].append(wrk(url, seconds))
                res["nginx"].append(wrk(static, seconds))
        finally:
            ng.terminate()
            ng.wait()
    finally:
        s.stop()
    print(f"\n### Cached fetch over HTTP: a {len(body) / 1000:.0f} KB JPEG thumbnail, "
          f"wrk -t2 -c64 -d{seconds}s, {rounds} interleaved rounds (median)\n")
    print("| server | requests/s (median) | each round | p99 latency ms | non-2xx |")
    print("|---|---|---|---|---|")
    med = {}
    for name, rs in res.items():
        rps = statistics.median(r[0] for r in rs)
        p99 = statistics.median(r[1] for r in rs)
        med[name] = rps
        each = " / ".join(f"{r[0] / 1000:.1f}k" for r in rs)
        print(f"| {name} | {rps:,.0f} | {each} | {p99:.2f} | {sum(r[2] for r in rs)} |")
    best = max(r[0] for r in res["nginx"])
    print(f"\nnl-server / nginx: {med['nl-server'] / med['nginx']:.2f}x of the median, "
          f"{med['nl-server'] / best:.2f}x of nginx's best round (target >= 0.50x of the best)")


def bench_cold(tmp, reps):
    store = os.path.join(tmp, "store-cold")
    s = Server(store)
    try:
        src = jpeg_bytes(photo(6000, 4000), 90)
        up = http_put(s.http, src, "24mp.jpg")
        print(f"\n### Cold thumbnails: a stored 6000x4000 JPEG ({len(src) / 1e6:.1f} MB) to 256 px, "
              f"over HTTP, every request a new result, {reps} requests each\n")
        print("| output | median ms | min ms | max ms |")
        print("|---|---|---|---|")
        for fmt, exact in (("webp", 1), ("jpg", 1), ("webp", 0), ("jpg", 0)):
            times = []
            for i in range(reps):
                # A different quality is a different result: never cached.
                url = (f"http://127.0.0.1:{s.http}/v1/images/{up['id']}.{fmt}"
                       f"?op=thumbnail:256&q={40 + i}&exact={exact}")
                t0 = time.perf_counter()
                body, headers = http_get(url)
                times.append((time.perf_counter() - t0) * 1e3)
                assert headers.get("x-nlimage-cache") == "miss"
            im = Image.open(io.BytesIO(body))
            assert max(im.size) == 256, im.size
            how = "exact=1" if exact else "default (shrink-on-load)"
            print(f"| {fmt} {im.size[0]}x{im.size[1]}, {how} | {statistics.median(times):.0f} | "
                  f"{min(times):.0f} | {max(times):.0f} |")
        # How far the shrunk result is from the exact one (lossless PNGs).
        base = f"http://127.0.0.1:{s.http}/v1/images/{up['id']}.png?op=thumbnail:256"
        exact = np.asarray(Image.open(io.BytesIO(http_get(base + "&exact=1")[0]))).astype(int)
        shrunk = np.asarray(Image.open(io.BytesIO(http_get(base)[0]))).astype(int)
        d = np.abs(exact - shrunk)
        print(f"\nshrink-on-load vs exact=1 (PNG): max |diff| {d.max()}, mean |diff| {d.mean():.2f}")
    finally:
        s.stop()


def stubs(tmp):
    from grpc_tools import protoc
    out = os.path.join(tmp, "py")
    os.makedirs(out, exist_ok=True)
    for f in ("nlimage/v1/nlimage.proto", "nlimage/v1/store.proto"):
        if protoc.main(["protoc", f"-I{ROOT}/proto", f"--python_out={out}",
                        f"--grpc_python_out={out}", f"{ROOT}/proto/{f}"]) != 0:
            sys.exit("protoc failed")
    sys.path.insert(0, out)
    from nlimage.v1 import nlimage_pb2, store_pb2, store_pb2_grpc, nlimage_pb2_grpc
    return nlimage_pb2, nlimage_pb2_grpc, store_pb2, store_pb2_grpc


def bench_upload(tmp, reps):
    import grpc
    pb, pb_grpc, spb, spb_grpc = stubs(tmp)
    store = os.path.join(tmp, "store-upload")
    s = Server(store)
    chunk = 1 << 20
    try:
        # A 100 MB file: an uncompressed BMP of noise (every upload different).
        side = 5800
        ch = grpc.insecure_channel(f"127.0.0.1:{s.port}")
        put = spb_grpc.ImageStoreStub(ch).Put
        proc = pb_grpc.ImageServiceStub(ch).Process
        rng = np.random.default_rng(7)

        def bmp(i):
            b = io.BytesIO()
            px = rng.integers(0, 256, (side, side, 3), dtype=np.uint8)
            px[0, 0, 0] = i
            Image.fromarray(px).save(b, "BMP")
            return b.getvalue()

        def put_call(data):
            def msgs():
                yield spb.PutRequest(header=spb.PutHeader(filename="big.bmp"))
                for o in range(0, len(data), chunk):
                    yield spb.PutRequest(chunk=data[o:o + chunk])
            t0 = time.perf_counter()
            put(msgs())
            return time.perf_counter() - t0

        def process_call(n):
            # Gray pixels of the same byte count, no operations: the raw stream.
            w = 10000
            h = n // w
            data = bytes(w * h)
            def msgs():
                yield pb.ProcessRequest(header=pb.ProcessHeader(image=pb.ImageHeader(
                    width=w, height=h, format=pb.PIXEL_FORMAT_GRAY8)))
                for o in range(0, len(data), chunk):
                    yield pb.ProcessRequest(chunk=data[o:o + chunk])
            t0 = time.perf_counter()
            for _ in proc(msgs()):
                pass
            return time.perf_counter() - t0, w * h

        puts, procs = [], []
        size = 0
        for i in range(reps):
            data = bmp(i)
            size = len(data)
            puts.append(put_call(data))
            t, n = process_call(size)
            procs.append((t, n))
        put_mbs = size / statistics.median(puts) / 1e6
        proc_mbs = statistics.median(n / t for t, n in procs) / 1e6
    finally:
        s.stop()
    print(f"\n### Upload: a {size / 1e6:.0f} MB file over Put vs the raw Process stream "
          f"(Python grpcio, 1 MiB chunks, {reps} interleaved runs, median)\n")
    print("| call | MB/s uploaded |")
    print("|---|---|")
    print(f"| ImageStore/Put (stored to disk, SHA-256) | {put_mbs:.0f} |")
    print(f"| ImageService/Process (pixels in and out, no operations) | {proc_mbs:.0f} |")
    print(f"\nPut / Process: {put_mbs / proc_mbs:.2f}x (target >= 0.80x)")


def bench_bulk(tmp, files, jobs):
    d = os.path.join(tmp, "bulk")
    os.makedirs(d, exist_ok=True)
    rng = np.random.default_rng(3)
    for i in range(files):
        Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)).save(
            os.path.join(d, f"f{i:05}.png"))
    store = os.path.join(tmp, "store-bulk")
    s = Server(store)
    port = s.port
    t0 = time.perf_counter()
    cli = subprocess.Popen([f"{BIN}/nl-client", "put", d, "--jobs", str(jobs), "--port", str(port)],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    images = os.path.join(store, "images")
    def stored():
        names = os.listdir(images) if os.path.isdir(images) else []
        return sum(n.endswith(".json") for n in names)
    while stored() < files // 3:
        time.sleep(0.005)
    before = stored()
    s.stop()  # a graceful restart, as a rolling deploy does
    restarted_at = time.perf_counter() - t0
    s = Server(store, port=port)
    out, err = cli.communicate(timeout=600)
    wall = time.perf_counter() - t0
    s.stop()
    summary = [l for l in err.splitlines() if "files stored" in l or "failed" in l]
    ids = len(out.splitlines())
    print(f"\n### Bulk: {files} small PNGs through `nl-client put DIR --jobs {jobs}`, "
          f"the server restarted after {restarted_at:.2f} s ({before} stored by then)\n")
    print(f"exit {cli.returncode}, {ids} ids printed, wall {wall:.1f} s; {' / '.join(summary)}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", default="http,cold,upload,bulk")
    ap.add_argument("--seconds", type=int, default=10, help="wrk duration per round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--reps", type=int, default=9)
    ap.add_argument("--files", type=int, default=1000)
    ap.add_argument("--jobs", type=int, default=16)
    args = ap.parse_args()
    only = set(args.only.split(","))
    with tempfile.TemporaryDirectory(prefix="nl-store-bench-") as tmp:
        if "http" in only:
            if not shutil.which("wrk") or not shutil.which("nginx"):
                sys.exit("http needs wrk and nginx (apt-get install wrk nginx)")
            bench_http(tmp, args.seconds, args.rounds)
        if "cold" in only:
            bench_cold(tmp, args.reps)
        if "upload" in only:
            bench_upload(tmp, max(3, args.reps // 3))
        if "bulk" in only:
            bench_bulk(tmp, args.files, args.jobs)


if __name__ == "__main__":
    main()
