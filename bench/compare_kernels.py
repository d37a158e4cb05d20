#!/usr/bin/env python3
"""Times OpenCV and nlimage's kernels on the same generated images, in one
run, and prints a Markdown table with the ratios (nlimage speed / OpenCV speed).

    bench/setup_venv.sh                      # once: OpenCV + numpy in bench/.venv
    bench/.venv/bin/python bench/compare_kernels.py [--reps 15] [--warm 5 --timed 5]
        [--kernels mean3x3,rotate90,rotate180,rotate270] [--sizes 4000x3000x3,8000x8000x1,...]

Images: by default a sweep of the sizes people have (phone, camera, scan,
odd sizes, gray, RGB and RGBA, and the power-of-two sizes of earlier
tables; see SWEEP), random pixels from a fixed seed,
written as raw files under bench/out/ that the Rust side
(`core/examples/kernel_timing.rs`, release build) reads. Both sides write
into preallocated outputs. The machine is noisy, so the two are interleaved:
each repetition runs OpenCV, then nlimage (through a pipe to the
long-running Rust process), each --warm + --timed times back to back; the
repetition's figure for a side is the median of its timed runs (steady
state: on this VM a core that has idled for a few ms takes several ms of
work to come back to full speed, which would otherwise penalise whichever
side uses the second core after a pause), and the table shows the medians
over the repetitions; 1 and 2 threads. `--warm 1 --timed 1` is the older,
harsher protocol (one warm-up run after a 30 ms pause).
The OpenCV blur uses its default border (reflect-101), which does the same
work as our shrinking window: only the semantics at the border differ.
"""
import argparse
import math
import os
import subprocess
import sys
import time

import cv2
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "bench", "out")
# The sizes people have: phone (4000x3000, 4032x3024), camera (6000x4000),
# scans and large images (8000x8000 gray, 12000x12000), odd sizes, RGBA, and
# the power-of-two sizes of earlier tables (where OpenCV's column walks alias
# in the caches and run 2.5-3x slower than at neighbouring sizes).
SWEEP = ("4000x3000x3,4032x3024x3,6000x4000x3,3001x2003x3,12000x12000x3,4096x3072x3,"
         "4000x3000x4,3001x2003x4,8000x8000x1,3001x2003x1,12000x12000x1,8192x8192x1")
NAMES = {1: "gray", 3: "RGB", 4: "RGBA"}
CV = {
    "mean3x3": lambda s, d: cv2.blur(s, (3, 3), dst=d),
    "rotate90": lambda s, d: cv2.rotate(s, cv2.ROTATE_90_COUNTERCLOCKWISE, dst=d),
    "rotate180": lambda s, d: cv2.rotate(s, cv2.ROTATE_180, dst=d),
    "rotate270": lambda s, d: cv2.rotate(s, cv2.ROTATE_90_CLOCKWISE, dst=d),
}
SHARPEN3 = np.array([[0, -1, 0], [-1, 5, -1], [0, -1, 0]], np.float32)
LUT = np.clip(np.arange(256) + 20, 0, 255).astype(np.uint8)
# The operations of the operations issue: OpenCV's equivalent, and our
# pipeline's spec (run on the whole image in one push, as the server's
# Process runs it on chunks). `sharpen2` is OpenCV's usual unsharp mask:
# GaussianBlur then addWeighted.
OPS = {
    "blur2": (lambda s, d: cv2.GaussianBlur(s, (0, 0), 2, dst=d), "op:blur=2"),
    "blur5": (lambda s, d: cv2.GaussianBlur(s, (0, 0), 5, dst=d), "op:blur=5"),
    "sharpen2": (lambda s, d: cv2.addWeighted(s, 2.0, cv2.GaussianBlur(s, (0, 0), 2), -1.0, 0, dst=d),
                 "op:sharpen=2"),
    "convolve3": (lambda s, d: cv2.filter2D(s, -1, SHARPEN3, dst=d, borderType=cv2.BORDER_REFLECT_101),
                  "op:convolve=0,-1,0,-1,5,-1,0,-1,0"),
    "gray": (lambda s, d: cv2.cvtColor(s, cv2.COLOR_RGB2GRAY, dst=d), "op:gray"),
    "brightness": (lambda s, d: cv2.LUT(s, LUT, dst=d), "op:brightness=20"),
    "fliph": (lambda s, d: cv2.flip(s, 1, dst=d), "op:flip=h"),
    "flipv": (lambda s, d: cv2.flip(s, 0, dst=d), "op:flip=v"),
}
for _name, (_f, _cmd) in OPS.items():
    CV[_name] = _f
COMMAND = {name: cmd for name, (_f, cmd) in OPS.items()}
# Resizes, whose sizes depend on the image: ours is always Lanczos3
# (antialiased); OpenCV's INTER_AREA (a box average, its fastest downscale)
# and INTER_LANCZOS4 (not antialiased). "thumb" fits 1024x1024: a
# non-integer factor at every size of the sweep.
RESIZES = {
    "quarter_vs_area": (lambda w, h: (w // 4, h // 4), cv2.INTER_AREA),
    "quarter_vs_lanczos4": (lambda w, h: (w // 4, h // 4), cv2.INTER_LANCZOS4),
    "thumb_vs_area": (lambda w, h: (1024, round(h * 1024 / w)) if w >= h else (round(w * 1024 / h), 1024),
                      cv2.INTER_AREA),
}
for _name, (_size, _interp) in RESIZES.items():
    CV[_name] = None


def time_ms(f):
    s = time.perf_counter()
    f()
    return (time.perf_counter() - s) * 1e3


def median(xs):
    return sorted(xs)[len(xs) // 2]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=15, help="paired repetitions (the median is reported)")
    ap.add_argument("--warm", type=int, default=5, help="untimed back-to-back runs per side and repetition")
    ap.add_argument("--warm-ms", type=float, default=100,
                    help="and at least this many milliseconds of warm-up per side (more runs for small images)")
    ap.add_argument("--timed", type=int, default=5, help="timed runs after the warm-up (their median counts)")
    ap.add_argument("--kernels", default="mean3x3,rotate90,rotate180,rotate270",
                    help="comma-separated subset of " + ", ".join(CV) + " (or 'all')")
    ap.add_argument("--sizes", default=SWEEP, help="comma-separated WxHxC (C: 1 gray, 3 RGB, 4 RGBA)")
    args = ap.parse_args()
    os.makedirs(OUT, exist_ok=True)
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "nlimage-core", "--example", "kernel_timing"],
                   cwd=ROOT, check=True)
    exe = os.path.join(ROOT, "target", "release", "examples", "kernel_timing")
    rng = np.random.default_rng(2026)
    rows = []
    names = list(CV) if args.kernels == "all" else args.kernels.split(",")
    kernels = {k: CV[k] for k in names}
    images = []
    for spec in args.sizes.split(","):
        w, h, c = (int(x) for x in spec.split("x"))
        images.append((f"{w}x{h} {NAMES[c]}", w, h, c))
    for label, w, h, c in images:
        shape = (h, w, c) if c > 1 else (h, w)
        src = rng.integers(0, 256, size=shape, dtype=np.uint8)
        raw = os.path.join(OUT, f"{w}x{h}x{c}.raw")
        src.tofile(raw)
        mpix = w * h / 1e6

        def run_ours(kernel, threads, runs):
            if kernel in RESIZES:
                ow, oh = RESIZES[kernel][0](w, h)
                cmd = f"op:resize={ow}x{oh}:exact"
            else:
                cmd = COMMAND.get(kernel, kernel)
            ours.stdin.write(f"{cmd} {threads} {runs}\n")
            ours.stdin.flush()
            return [float(t) for t in ours.stdout.readline().split()]

        def run_cv(f, runs):
            return [time_ms(lambda: f(src, dst)) for _ in range(runs)]

        runs = args.warm + args.timed

        for threads in (1, 2):
            cv2.setNumThreads(threads)
            # One process per thread count: its pool runs the kernels on the
            # thread that reads the commands, as OpenCV runs on its caller.
            ours = subprocess.Popen([exe, raw, str(w), str(h), str(c)], stdin=subprocess.PIPE,
                                    stdout=subprocess.PIPE, text=True, bufsize=1)
            copy = median([median(run_ours("memcpy", threads, runs)[args.warm:]) for _ in range(args.reps)])
            time.sleep(0.03)
            copy_gbs = 2 * src.nbytes / (copy / 1e3) / 1e9
            for kernel, f in kernels.items():
                if kernel == "gray" and c != 3:
                    continue  # OpenCV's RGBA2GRAY drops alpha; ours keeps RGBA
                rot = kernel in ("rotate90", "rotate270")
                dst = np.empty(((w, h, c) if rot else shape) if c > 1 else ((w, h) if rot else shape), np.uint8)
                if kernel == "gray":
                    dst = np.empty((h, w), np.uint8)
                if kernel in RESIZES:
                    size, interp = RESIZES[kernel]
                    ow, oh = size(w, h)
                    dst = np.empty((oh, ow, c) if c > 1 else (oh, ow), np.uint8)
                    f = (lambda size, interp: lambda s, d: cv2.resize(s, size, dst=d, interpolation=interp))(
                        (ow, oh), interp)
                # Each side's warm-up lasts at least --warm-ms, judged from
                # its own probe runs: this VM's second core needs tens of ms
                # of steady work to come up to speed (after 30 ms idle, a
                # pool worker's first task starts 2.5-3.9 ms late), so 8
                # runs of a sub-millisecond kernel measured a cold core: the
                # 2-thread gray of 4000x3000 RGB took 1.28 ms after 20 ms of
                # warm-up and 0.68 ms after 100 ms.
                cv_warm = max(args.warm, math.ceil(args.warm_ms / max(median(run_cv(f, 3)), 1e-3)))
                our_warm = max(args.warm, math.ceil(args.warm_ms / max(median(run_ours(kernel, threads, 3)), 1e-3)))
                cv_t, our_t = [], []
                for _ in range(args.reps):
                    # The pauses let each side's idle workers stop spinning
                    # (OpenCV's pool busy-waits after a parallel region), so
                    # neither steals the other's second core. Each side then
                    # runs back to back, and only the runs after the warm-up
                    # count: on this VM an idle core takes several
                    # milliseconds to come back to full speed.
                    time.sleep(0.03)
                    cv_t.append(median(run_cv(f, cv_warm + args.timed)[cv_warm:]))
                    time.sleep(0.03)
                    our_t.append(median(run_ours(kernel, threads, our_warm + args.timed)[our_warm:]))
                cv_ms, our_ms = median(cv_t), median(our_t)
                rows.append((kernel, label, threads, mpix / (cv_ms / 1e3), mpix / (our_ms / 1e3),
                             cv_ms, our_ms, copy_gbs, mpix / (copy / 1e3)))
            ours.stdin.close()
            ours.wait()
            print(f"  {label}, {threads} thread(s) done", file=sys.stderr)
    print(f"cv2 {cv2.__version__}, numpy {np.__version__}, {os.cpu_count()} CPUs, "
          f"medians of {args.reps} paired repetitions of {args.warm} warm-up runs (at least {args.warm_ms:g} ms) "
          f"+ {args.timed} timed runs\n")
    print("| kernel | image | threads | OpenCV Mpix/s | nlimage Mpix/s | ratio | OpenCV ms | nlimage ms | memcpy in+out GB/s | memcpy Mpix/s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for k, label, t, cvs, ns, cvm, nm, gbs, cps in rows:
        print(f"| {k} | {label} | {t} | {cvs:.0f} | {ns:.0f} | **{ns / cvs:.2f}x** | {cvm:.2f} | {nm:.2f} | {gbs:.1f} | {cps:.0f} |")
    # Over the sweep: the worst size counts, the median shows the rest.
    print("\n| kernel | threads | worst ratio (image) | median ratio | sizes |")
    print("|---|---|---|---|---|")
    for k in kernels:
        for t in (1, 2):
            rs = sorted((ns / cvs, label) for kk, label, tt, cvs, ns, *_ in rows if kk == k and tt == t)
            if rs:
                print(f"| {k} | {t} | **{rs[0][0]:.2f}x** ({rs[0][1]}) | {median([r for r, _ in rs]):.2f}x | {len(rs)} |")


if __name__ == "__main__":
    main()
