#!/usr/bin/env python3
"""End-to-end quarter turn through nl-client and nl-server, as a user runs
it: `nl-client --input in.bmp --output out.bmp --rotate 90` against a local
nl-server, for two builds side by side (e.g. before and after a kernel
change), interleaved in one run so the machine's noise hits both alike.

    bench/.venv/bin/python bench/rotate_e2e.py --before OLD/target/release \\
        [--after target/release] [--size 6000x4000] [--reps 7]

Each build's nl-server runs on its own free port; per repetition each build
runs `--rotate 0` (the same trip without the rotation: decode, stream up,
stream back, encode) and `--rotate 90`, and the table gives the medians and
their difference (the time the rotation adds). BMP keeps the codecs cheap,
so the pixels' trip and the rotation dominate. The outputs of both builds
are compared byte for byte.
"""
import argparse
import filecmp
import os
import socket
import subprocess
import sys
import tempfile
import time

import numpy as np
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(port, proc):
    for _ in range(200):
        if proc.poll() is not None:
            sys.exit(f"nl-server exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), 0.1).close()
            return
        except OSError:
            time.sleep(0.05)
    sys.exit("nl-server did not start listening")


def median(xs):
    return sorted(xs)[len(xs) // 2]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--before", required=True, help="directory with the first build's nl-server and nl-client")
    ap.add_argument("--after", default=os.path.join(ROOT, "target", "release"), help="the second build's directory")
    ap.add_argument("--size", default="6000x4000", help="WxH of the RGB test image")
    ap.add_argument("--reps", type=int, default=7)
    args = ap.parse_args()
    w, h = (int(x) for x in args.size.split("x"))
    builds = {"before": args.before, "after": args.after}
    with tempfile.TemporaryDirectory() as tmp:
        # A smooth photo-like gradient with noise, so the image is not trivial.
        y, x = np.mgrid[0:h, 0:w]
        rng = np.random.default_rng(2026)
        img = np.stack([(x * 255 // max(w - 1, 1)), (y * 255 // max(h - 1, 1)), (x + y) % 256], axis=-1)
        img = (img + rng.integers(0, 16, size=img.shape)).clip(0, 255).astype(np.uint8)
        src = os.path.join(tmp, "in.bmp")
        Image.fromarray(img, "RGB").save(src)
        servers, ports = {}, {}
        try:
            for name, d in builds.items():
                ports[name] = free_port()
                servers[name] = subprocess.Popen([os.path.join(d, "nl-server"), "--port", str(ports[name])],
                                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                wait_for(ports[name], servers[name])
            times = {(n, r): [] for n in builds for r in (0, 90)}
            for _ in range(args.reps):
                for name, d in builds.items():
                    for rot in (0, 90):
                        out = os.path.join(tmp, f"{name}-{rot}.bmp")
                        cmd = [os.path.join(d, "nl-client"), "--input", src, "--output", out,
                               "--rotate", str(rot), "--port", str(ports[name])]
                        t = time.perf_counter()
                        subprocess.run(cmd, check=True)
                        times[(name, rot)].append(time.perf_counter() - t)
                        time.sleep(0.05)
            same = filecmp.cmp(os.path.join(tmp, "before-90.bmp"), os.path.join(tmp, "after-90.bmp"), shallow=False)
        finally:
            for p in servers.values():
                p.terminate()
                p.wait()
    print(f"{w}x{h} RGB, BMP in and out, medians of {args.reps} interleaved runs; "
          f"outputs of the two builds identical: {same}\n")
    print("| build | --rotate 0 s | --rotate 90 s | the rotation adds s |")
    print("|---|---|---|---|")
    for name in builds:
        r0, r90 = median(times[(name, 0)]), median(times[(name, 90)])
        print(f"| {name} | {r0:.3f} | {r90:.3f} | {r90 - r0:.3f} |")
    if not same:
        sys.exit("the two builds' rotated outputs differ")


if __name__ == "__main__":
    main()
