"""The decode floor under a thumbnail workload: for every photo of
target/photo-corpus, the time libjpeg-turbo alone takes to decode it at the
DCT scale shrink-on-load picks for a thumbnail fitting BOX x BOX (1/8, 1/4 or
1/2, keeping at least twice the thumbnail; whole when none does), from
core/examples/jpeg_floor, summed over the corpus. A server that decodes
through libjpeg-turbo spends at least this much CPU per round of
bench/compare_sharp.py; the split between baseline and progressive files
shows where it goes.

  cargo build --release -p nlimage-core --examples
  bench/.venv/bin/python bench/decode_floor.py [--box 512] [--reps 3]
"""

import argparse
import json
import os
import subprocess

from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--box", type=int, default=512)
    ap.add_argument("--reps", type=int, default=3)
    a = ap.parse_args()
    corpus = os.path.join(ROOT, "target", "photo-corpus")
    exe = os.path.join(ROOT, "target", "release", "examples", "jpeg_floor")
    total = {"baseline": [0.0, 0.0, 0], "progressive": [0.0, 0.0, 0]}
    for f in sorted(os.listdir(corpus)):
        if not f.endswith(".jpg"):
            continue
        path = os.path.join(corpus, f)
        kind = "progressive" if Image.open(path).info.get("progressive") else "baseline"
        out = subprocess.run([exe, path, str(a.reps)], capture_output=True, text=True, check=True).stdout
        by = {l["scale"]: l for l in map(json.loads, out.splitlines())}
        w, h = by["8/8"]["width"], by["8/8"]["height"]
        s = min(a.box / w, a.box / h, 1.0)
        tw, th = round(w * s), round(h * s)
        chosen = "8/8"
        if 2 * tw <= w and 2 * th <= h:
            chosen = next((f"{m}/8" for m in (1, 2, 4)
                           if by[f"{m}/8"]["width"] >= 2 * tw and by[f"{m}/8"]["height"] >= 2 * th), "8/8")
        t = total[kind]
        t[0] += by[chosen]["ms"]
        t[1] += by["8/8"]["ms"]
        t[2] += 1
    print(f"fit {a.box}x{a.box}: libjpeg-turbo decode time summed over the corpus (ms)\n")
    print("| files | count | at the scale used | whole |\n|---|---:|---:|---:|")
    for k, (used, whole, n) in total.items():
        print(f"| {k} | {n} | {used:.0f} | {whole:.0f} |")
    used = sum(t[0] for t in total.values())
    whole = sum(t[1] for t in total.values())
    print(f"| all | {sum(t[2] for t in total.values())} | {used:.0f} | {whole:.0f} |")


if __name__ == "__main__":
    main()
