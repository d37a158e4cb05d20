"""nl-server against a sharp (libvips) server on real photographs, on the
same machine in one run: issue 27's yardstick.

The standard workload (imgproxy's image-servers-benchmark shape): every
photo of target/photo-corpus (bench/photo_corpus.sh: 1-20 MP JPEGs from
Debian's wallpaper packages, baseline and progressive, with EXIF and ICC) is
uploaded to both servers once; then rounds of one request per photo, each
fitting it into BOX x BOX (BOX = 512, 511, ...: every request a size not
asked before, so no result cache answers), JPEG q80, WebP q75 and AVIF q65,
CONCURRENCY clients, the servers alternating round by round. Printed per
format: requests per second (median of the rounds), p50/p95 latency, the
server's CPU time per request (user + system, all its threads), mean bytes, and the mean SSIM (luma) of one round's answers against a full-decode
reference (Pillow: whole decode, EXIF orientation, ICC to sRGB, Lanczos to
the answer's size). Then the quality bar of shrink-on-load (PNG at 256:
per-photo mean and 99th-percentile |diff| against that reference, for
nl-server's default and exact paths and for sharp), one cold request (the
largest, the heaviest and the camera's baseline photo to a 256-pixel WebP,
against libjpeg-turbo's own decode at the scale used:
core/examples/jpeg_floor; timed by curl; jpegtran from libjpeg-turbo-progs
restores the camera photo's baseline scan), and both servers'
peak RSS.

  (cd bench/node && npm install)                    # sharp, pinned there
  cargo build --release -p nlimage-server -p nlimage-core --examples
  bench/.venv/bin/python bench/compare_sharp.py [--rounds 3] [--concurrency 2]
"""

import argparse
import concurrent.futures as cf
import http.client
import io
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time

import numpy as np
from PIL import Image, ImageCms, ImageOps
from skimage.metrics import structural_similarity

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SRGB = ImageCms.createProfile("sRGB")
# The workload's qualities, the same number on both sides.
QUALITY = {"jpeg": 80, "webp": 75, "avif": 65}


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
    return dt, body


def run_round(port, urls, concurrency):
    t = time.perf_counter()
    with cf.ThreadPoolExecutor(concurrency) as ex:
        res = list(ex.map(lambda u: fetch(port, u), urls))
    return time.perf_counter() - t, res


def reference(path, sizes):
    """Pillow's full decode of `path`, upright, in sRGB, resized with Lanczos
    to each (w, h) of `sizes`: {size: uint8 array}."""
    im = Image.open(path)
    im.draft(None, None)
    icc = im.info.get("icc_profile")
    im = ImageOps.exif_transpose(im).convert("RGB")
    if icc:
        src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        im = ImageCms.profileToProfile(im, src, SRGB, renderingIntent=ImageCms.Intent.PERCEPTUAL,
                                       outputMode="RGB")
    return {s: np.asarray(im.resize(s, Image.Resampling.LANCZOS)) for s in set(sizes)}


def rgb(body):
    im = Image.open(io.BytesIO(body))
    return np.asarray(im.convert("RGB"))


def luma(a):
    return a[..., 0] * 0.299 + a[..., 1] * 0.587 + a[..., 2] * 0.114


def ssim(a, ref):
    return structural_similarity(luma(a.astype(np.float64)), luma(ref.astype(np.float64)), data_range=255)


def cpu_seconds(pid):
    """User + system CPU time of process `pid` (all its threads) so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_peak_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def floor_ms(photo, target, reps=9, scale=None):
    """libjpeg-turbo's decode of `photo` at the scale shrink-on-load picks for a
    `target`-pixel thumbnail (1/8, 1/4 or 1/2 keeping twice the target), in
    ms (median of `reps`), and that scale ("M/8"; measured at that scale
    alone when given)."""
    exe = os.path.join(ROOT, "target", "release", "examples", "jpeg_floor")
    args = [exe, photo, str(reps)] + ([scale.split("/")[0]] if scale else [])
    lines = [json.loads(l) for l in subprocess.run(args, capture_output=True, text=True,
                                                    check=True).stdout.splitlines()]
    if scale:
        return lines[0]["ms"], scale
    full = next(l for l in lines if l["scale"] == "8/8")
    for m in (1, 2, 4):
        l = next(l for l in lines if l["scale"] == f"{m}/8")
        if max(l["width"], l["height"]) >= 2 * target:
            return l["ms"], l["scale"]
    return full["ms"], "8/8"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--concurrency", type=int, default=2)
    ap.add_argument("--box", type=int, default=512)
    ap.add_argument("--formats", default="jpeg,webp,avif")
    ap.add_argument("--cold", type=int, default=7, help="cold requests of the largest photo")
    ap.add_argument("--sections", default="throughput,quality,cold")
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
        isa = "AVX-512" if "avx512f" in flags else "AVX2+FMA" if "avx2" in flags else "SSE"
        sharp_v = subprocess.run(["node", "-e", "const s=require('sharp');console.log(s.versions.sharp, "
                                  "s.versions.vips)"], env=env, capture_output=True, text=True).stdout.split()
        print(f"{cpu}, {os.cpu_count()} CPUs, {isa}; {len(photos)} photos; {a.rounds} rounds; "
              f"{a.concurrency} clients; fit {a.box}x{a.box}; sharp {sharp_v[0]} (libvips {sharp_v[1]})\n")
        print("| format | server | req/s | ratio | p50 ms | p95 ms | CPU ms/req | mean bytes | bytes ratio | SSIM |")
        print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        sections = set(a.sections.split(","))
        for fmt in a.formats.split(",") if "throughput" in sections else []:
            ext = "jpg" if fmt == "jpeg" else fmt
            q = QUALITY[fmt]
            sides = {
                "nl-server": (nl_port, lambda i, w: f"/v1/images/{nl_ids[i]}.{ext}?op=thumbnail:{w}&q={q}"),
                "sharp": (sharp_port, lambda i, w: f"/images/{sh_ids[i]}?w={w}&fmt={fmt}&q={q}"),
            }
            results = {k: ([], [], []) for k in sides}
            cpu = {k: 0.0 for k in sides}
            pids = {"nl-server": nl.pid, "sharp": sh.pid}
            for r in range(a.rounds + 1):
                order = list(sides.items())
                if r % 2:
                    order.reverse()
                for name, (port, url) in order:
                    # Round 0 warms both up and is not counted.
                    w = a.box - r
                    c0 = cpu_seconds(pids[name])
                    secs, res = run_round(port, [url(i, w) for i in range(len(photos))], a.concurrency)
                    if r:
                        cpu[name] += cpu_seconds(pids[name]) - c0
                        results[name][0].append(len(res) / secs)
                        results[name][1].extend(res)
                    if r == 1:
                        results[name][2].extend(body for _, body in res)
            # SSIM of round 1's answers against the full-decode reference.
            scores = {k: [] for k in sides}
            for i, p in enumerate(photos):
                got = {k: rgb(results[k][2][i]) for k in sides}
                refs = reference(p, [(g.shape[1], g.shape[0]) for g in got.values()])
                for k, g in got.items():
                    scores[k].append(ssim(g, refs[(g.shape[1], g.shape[0])]))
            base = statistics.median(results["sharp"][0])
            base_bytes = statistics.mean(len(b) for _, b in results["sharp"][1])
            for name, (rates, res, _) in results.items():
                lat = sorted(dt * 1e3 for dt, _ in res)
                mb = statistics.mean(len(b) for _, b in res)
                rate = statistics.median(rates)
                print(f"| {fmt} q{q} | {name} | {rate:.1f} | {rate / base:.2f}x | {lat[len(lat) // 2]:.0f} | "
                      f"{lat[int(len(lat) * 0.95)]:.0f} | {cpu[name] * 1e3 / len(res):.1f} | "
                      f"{mb:.0f} | {mb / base_bytes:.3f} | "
                      f"{statistics.mean(scores[name]):.4f} |", flush=True)

        if "quality" in sections:
            quality(photos, nl_port, nl_ids, sharp_port, sh_ids)
        if "cold" in sections:
            cold(photos, nl_port, nl_ids, sharp_port, sh_ids, a.cold)
        print(f"\nPeak RSS: nl-server {rss_peak_mib(nl.pid):.0f} MiB, sharp (node) {rss_peak_mib(sh.pid):.0f} MiB")
    finally:
        nl.terminate()
        sh.terminate()


def quality(photos, nl_port, nl_ids, sharp_port, sh_ids):
    """Shrink-on-load's quality bar: PNG thumbnails at 256 against the
    full-decode Lanczos reference, per photo."""
    print("\nPNG thumbnails at 256 against Pillow's full decode + Lanczos, |diff| per photo:\n")
    print("| path | median of means | worst mean | worst p99 |")
    print("|---|---:|---:|---:|")
    paths = {
        "nl-server (default: shrink-on-load)": (nl_port, lambda i: f"/v1/images/{nl_ids[i]}.png?op=thumbnail:256"),
        "nl-server exact=1": (nl_port, lambda i: f"/v1/images/{nl_ids[i]}.png?op=thumbnail:256&exact=1"),
        "sharp": (sharp_port, lambda i: f"/images/{sh_ids[i]}?w=256&fmt=png"),
    }
    dist = {k: [] for k in paths}
    for i, p in enumerate(photos):
        got = {k: rgb(fetch(port, url(i))[1]) for k, (port, url) in paths.items()}
        refs = reference(p, [(g.shape[1], g.shape[0]) for g in got.values()])
        for k, g in got.items():
            d = np.abs(g.astype(int) - refs[(g.shape[1], g.shape[0])].astype(int))
            dist[k].append((d.mean(), np.percentile(d, 99)))
    for k, v in dist.items():
        print(f"| {k} | {statistics.median(m for m, _ in v):.3f} | {max(m for m, _ in v):.3f} | "
              f"{max(p for _, p in v):.0f} |")


def cold_files(photos, nl_ids, sh_ids, nl_port, sharp_port):
    """The photos of the cold request: (label, path, nl id, sharp id). The
    corpus's largest baseline photo (24 MP, but 0.49 MB: so little entropy
    data that the fixed costs after the decode weigh most), its heaviest
    baseline photo (the most bytes), and its one camera photo (EXIF names a
    camera: a Sony RX100 IV, 18 MP, 16 MB) restored to the baseline scan a
    camera writes, losslessly by jpegtran (libjpeg-turbo-progs; skipped
    without it)."""
    def baseline(i):
        return not Image.open(photos[i]).info.get("progressive")

    def pixels(i):
        w, h = Image.open(photos[i]).size
        return w * h

    base = [i for i in range(len(photos)) if baseline(i)]
    largest = max(base, key=pixels)
    heaviest = max(base, key=lambda i: os.path.getsize(photos[i]))
    out = [("largest baseline", photos[largest], nl_ids[largest], sh_ids[largest])]
    if heaviest != largest:
        out.append(("heaviest baseline", photos[heaviest], nl_ids[heaviest], sh_ids[heaviest]))
    cameras = [i for i in range(len(photos)) if Image.open(photos[i]).getexif().get(271)]
    if cameras and shutil.which("jpegtran"):
        cam = max(cameras, key=pixels)
        path = os.path.join(tempfile.mkdtemp(), "camera-baseline.jpg")
        with open(path, "wb") as f:
            subprocess.run(["jpegtran", "-copy", "all", "-optimize", photos[cam]], stdout=f, check=True)
        out.append(("camera, baseline", path, upload(nl_port, path, "/v1/images"),
                    upload(sharp_port, path, "/images")))
    return out


def cold(photos, nl_port, nl_ids, sharp_port, sh_ids, reps):
    """One cold request, `reps` times (each a new size), of each photo
    `cold_files` picks, to a 256-pixel WebP, timed by curl (a stock client
    with little of its own time in the figure; Python's http.client adds
    ~1.5 ms), against libjpeg-turbo's own decode of that photo at the scale
    shrink-on-load uses."""
    print(f"\nOne cold request to a 256-pixel WebP, curl, median of {reps}:\n")
    print("| photo | floor: libjpeg-turbo decode | nl-server | / floor | sharp | / floor |")
    print("|---|---:|---:|---:|---:|---:|")
    for label, path, nl_id, sh_id in cold_files(photos, nl_ids, sh_ids, nl_port, sharp_port):
        im = Image.open(path)
        w, h = im.size
        _, scale = floor_ms(path, 256, reps=1)
        make = " ".join(str(im.getexif().get(t, "")) for t in (271, 272)).strip()
        # The floor is timed round by round between the requests, so that
        # both see the machine in the same state (it swings by a third from
        # minute to minute on a shared 2-core host).
        times = {"nl-server": [], "sharp": [], "floor": []}
        for r in range(reps + 1):
            if r:
                times["floor"].append(floor_ms(path, 256, reps=3, scale=scale)[0])
            for name, port, url in (("nl-server", nl_port, f"/v1/images/{nl_id}.webp?op=thumbnail:{256 - r}"),
                                    ("sharp", sharp_port, f"/images/{sh_id}?w={256 - r}&fmt=webp")):
                out = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code} %{time_total}",
                                      f"http://127.0.0.1:{port}{url}"], capture_output=True, text=True,
                                     check=True).stdout.split()
                assert out[0] == "200", (url, out)
                if r:
                    times[name].append(float(out[1]) * 1e3)
        nl_ms, sh_ms, floor = (statistics.median(times[k]) for k in ("nl-server", "sharp", "floor"))
        print(f"| {label}: {w}x{h}, {w * h / 1e6:.1f} MP, {os.path.getsize(path) / 1e6:.2f} MB"
              f"{', ' + make if make else ''} | {floor:.1f} ms at {scale} | {nl_ms:.1f} ms | "
              f"{nl_ms / floor:.2f}x | {sh_ms:.1f} ms | {sh_ms / floor:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
