#!/usr/bin/env python3
"""Times one kernel on several of nlimage's code paths (or any settings given
as environment variables), interleaved in one run, and prints a Markdown
table. This is how a code path is chosen: on this noisy machine, variants
timed minutes apart (or in separate runs) can swap places, so every variant
runs in its own long-lived `kernel_timing` process and the rounds alternate
between them.

    bench/.venv/bin/python bench/compare_paths.py rotate180 --variants avx512 ssse3
    bench/.venv/bin/python bench/compare_paths.py mean3x3 --threads 2 --variants avx512 avx2 portable

A variant is a code path name (NLIMAGE_CPU: portable, ssse3, avx2, avx512) or
NAME:VAR=VALUE[,VAR=VALUE...] for other environment settings. Each round
sends every variant `--runs` back-to-back runs; a round's figure is the
median of all but the first two (warm-up); the table shows quartiles over
the rounds. Needs only Python 3 (the images are those compare_kernels.py
writes under bench/out/, or any raw file given with --raw).
"""
import argparse
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IMAGES = {"rgb": ("4096x3072x3.raw", 4096, 3072, 3), "gray": ("8192x8192x1.raw", 8192, 8192, 1)}


def variant_env(spec):
    name, sep, settings = spec.partition(":")
    env = dict(os.environ)
    if not sep:
        env["NLIMAGE_CPU"] = name
    for kv in filter(None, settings.split(",")):
        key, _, value = kv.partition("=")
        env[key] = value
    return name, env


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("kernel", choices=["memcpy", "mean3x3", "rotate90", "rotate180", "rotate270"])
    ap.add_argument("--variants", nargs="+", required=True)
    ap.add_argument("--image", choices=sorted(IMAGES), default="rgb")
    ap.add_argument("--raw", help="raw image file (with --size WxHxC) instead of --image")
    ap.add_argument("--size", help="WxHxC of --raw")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=25)
    ap.add_argument("--runs", type=int, default=8)
    args = ap.parse_args()
    if args.raw:
        w, h, c = args.size.split("x")
        raw = args.raw
    else:
        name, w, h, c = IMAGES[args.image]
        raw = os.path.join(ROOT, "bench", "out", name)
        if not os.path.exists(raw):
            sys.exit(f"{raw} is missing: run bench/compare_kernels.py once to write it")
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "nlimage-core", "--example", "kernel_timing"],
                   cwd=ROOT, check=True)
    exe = os.path.join(ROOT, "target", "release", "examples", "kernel_timing")
    procs = []
    for spec in args.variants:
        name, env = variant_env(spec)
        p = subprocess.Popen([exe, raw, str(w), str(h), str(c)], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True, bufsize=1, env=env)
        procs.append((name, p, []))
    for _ in range(args.rounds):
        for name, p, figures in procs:
            p.stdin.write(f"{args.kernel} {args.threads} {args.runs}\n")
            p.stdin.flush()
            times = sorted(float(t) for t in p.stdout.readline().split()[2:])
            figures.append(times[len(times) // 2])
    print(f"{args.kernel}, {w}x{h}x{c}, {args.threads} thread(s), {args.rounds} interleaved rounds "
          f"of {args.runs} runs\n")
    print("| variant | p25 ms | median ms | p75 ms |")
    print("|---|---|---|---|")
    for name, p, figures in procs:
        figures.sort()
        n = len(figures)
        print(f"| {name} | {figures[n // 4]:.3f} | {figures[n // 2]:.3f} | {figures[3 * n // 4]:.3f} |")
        p.stdin.close()
        p.wait()


if __name__ == "__main__":
    main()
