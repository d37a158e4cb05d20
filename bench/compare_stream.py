#!/usr/bin/env python3
"""The raw pixel stream (Process, no codec) through two nl-server builds and
the transport ceiling, interleaved in one run: an A/B of a server change.

    cargo build --release -p nlimage-server -p nlimage-client --bins
    cargo build --release -p nlimage-client --example stream_bench
    python3 bench/compare_stream.py --before DIR_WITH_OLD_NL_SERVER [--reps 7]

For every repetition and every size, the same client (`stream_bench run`,
RGB pixels in 1 MiB chunks, up and back) streams through, in turn: a bare
tonic echo of the same messages with the same HTTP/2 windows (the ceiling),
the `--before` nl-server and this tree's nl-server, both with `--mean`
applied (default flags, `--workers` = cores). The table gives the median
and best MB/s of pixels per server, and after/before. Then this tree's
server runs once more with `--debug` and the log's `hops=` of each size is
reported: the crossings between the async side and the compute pool for
one image.
"""
import argparse
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REL = os.path.join(ROOT, "target", "release")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, what):
    t0 = time.time()
    while time.time() - t0 < 20:
        if proc.poll() is not None:
            sys.exit(f"{what} exited")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    sys.exit(f"{what} did not start")


def start(cmd, port, what, env=None, log=None):
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log or subprocess.DEVNULL, env=env)
    wait_port(port, p, what)
    return p


def run(addr, w, h):
    out = subprocess.run(
        [os.path.join(REL, "examples", "stream_bench"), "run", addr, str(w), str(h), "mean"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return json.loads(out)["MB_per_s"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--before", required=True, help="directory holding the old nl-server")
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--sizes", default="2000x1500,6000x4000,12000x12000")
    a = ap.parse_args()
    sizes = [tuple(int(v) for v in s.split("x")) for s in a.sizes.split(",")]
    ports = {k: free_port() for k in ("echo", "before", "after")}
    procs = {
        "echo": start([os.path.join(REL, "examples", "stream_bench"), "serve-echo", str(ports["echo"])], ports["echo"], "echo"),
        "before": start([os.path.join(a.before, "nl-server"), "--port", str(ports["before"]), "--store", "none"], ports["before"], "before"),
        "after": start([os.path.join(REL, "nl-server"), "--port", str(ports["after"]), "--store", "none"], ports["after"], "after"),
    }
    rates = {(k, s): [] for k in procs for s in sizes}
    try:
        for rep in range(a.reps):
            for s in sizes:
                for k in procs:
                    rates[(k, s)].append(run(f"127.0.0.1:{ports[k]}", *s))
            print(f"rep {rep + 1}/{a.reps} done", file=sys.stderr)
    finally:
        for p in procs.values():
            p.terminate()
            p.wait()
    # Hops, from this tree's log.
    hops = {}
    with tempfile.NamedTemporaryFile("w+") as log:
        port = free_port()
        p = start([os.path.join(REL, "nl-server"), "--port", str(port), "--store", "none", "--debug"], port, "after --debug", log=log)
        try:
            for s in sizes:
                run(f"127.0.0.1:{port}", *s)
                time.sleep(0.2)
                log.seek(0)
                found = re.findall(r"hops=(\d+)", log.read())
                hops[s] = int(found[-1]) if found else None
        finally:
            p.terminate()
            p.wait()
    cpu = subprocess.run(["sh", "-c", "grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"], capture_output=True, text=True).stdout.strip()
    flags = subprocess.run(["sh", "-c", "grep -o 'avx512[a-z_]*\\|avx2' /proc/cpuinfo | sort -u | tr '\\n' ' '"], capture_output=True, text=True).stdout.strip()
    print(f"\n{cpu} ({flags}), {os.cpu_count()} CPUs; {a.reps} interleaved repetitions; MB/s of pixels, each byte up and back\n")
    print("| image | echo (ceiling) median / best | before median / best | after median / best | after / before (median) | after / echo | hops per image (after) | chunks |")
    print("|---|---|---|---|---|---|---|---|")
    for s in sizes:
        med = {k: statistics.median(rates[(k, s)]) for k in procs}
        best = {k: max(rates[(k, s)]) for k in procs}
        chunks = -(-s[0] * s[1] * 3 // (1 << 20))
        print(
            f"| {s[0]}x{s[1]} RGB | {med['echo']:.0f} / {best['echo']:.0f} | {med['before']:.0f} / {best['before']:.0f} "
            f"| {med['after']:.0f} / {best['after']:.0f} | **{med['after'] / med['before']:.2f}x** | {med['after'] / med['echo']:.0%} "
            f"| {hops[s]} | {chunks} |"
        )


if __name__ == "__main__":
    main()
