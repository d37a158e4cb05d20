#!/usr/bin/env python3
"""JPEG encoding at quality 90, 4096x3072 RGB: libjpeg-turbo (through OpenCV's
cv2.imencode, 4:2:0, its defaults) against nlimage's encoder and the `image`
crate's, on the same photo (scikit-image's bundled 'astronaut', upscaled
bicubically). Prints time and size ratios against libjpeg-turbo.

    bench/setup_venv.sh && bench/.venv/bin/pip install scikit-image   # once
    bench/.venv/bin/python bench/compare_jpeg.py
"""
import json
import os
import subprocess
import time

import cv2
import numpy as np
from skimage import data

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
W, H, REPS = 4096, 3072, 9


def main():
    os.makedirs(os.path.join(ROOT, "bench", "out"), exist_ok=True)
    img = cv2.resize(data.astronaut(), (W, H), interpolation=cv2.INTER_CUBIC)  # RGB
    raw = os.path.join(ROOT, "bench", "out", "photo-4096x3072x3.raw")
    np.ascontiguousarray(img).tofile(raw)
    bgr = cv2.cvtColor(img, cv2.COLOR_RGB2BGR)
    cv2.setNumThreads(1)
    params = [cv2.IMWRITE_JPEG_QUALITY, 90]
    size = len(cv2.imencode(".jpg", bgr, params)[1])
    times = []
    for _ in range(REPS):
        s = time.perf_counter()
        cv2.imencode(".jpg", bgr, params)
        times.append((time.perf_counter() - s) * 1e3)
    turbo_ms = sorted(times)[REPS // 2]
    rows = [("libjpeg-turbo (cv2.imencode)", turbo_ms, size)]
    # nlimage's encoder (libjpeg-turbo, 4:2:0, optimized Huffman tables) and
    # the image crate's, as the example times them.
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "nlimage-core", "--example", "jpeg_timing"],
                   cwd=ROOT, check=True)
    out = subprocess.run([os.path.join(ROOT, "target", "release", "examples", "jpeg_timing"), raw, str(W),
                          str(H), str(REPS)], check=True, capture_output=True, text=True).stdout
    for j in map(json.loads, out.splitlines()):
        rows.append((j["encoder"], j["ms"], j["bytes"]))
    print(f"{W}x{H} RGB photo, quality 90, medians of {REPS}, 1 thread, cv2 {cv2.__version__}\n")
    print("| encoder | ms | bytes | time vs libjpeg-turbo | size vs libjpeg-turbo |")
    print("|---|---|---|---|---|")
    for name, ms, b in rows:
        print(f"| {name} | {ms:.1f} | {b} | {ms / turbo_ms:.2f}x | {b / size:.2f}x |")


if __name__ == "__main__":
    main()
