#!/usr/bin/env python3
"""Asynchronous jobs' figures (issue: jobs and replicas), from a stock Python
grpcio client with default settings:

  throughput  one replica, embedded SQLite queue, local store: N jobs making
              256-pixel JPEG thumbnails of stored 1-megapixel JPEGs (every
              job a distinct result: 20 sources x distinct JPEG qualities, so
              the result cache never answers); jobs/s from the first
              submission to the last job's end; exact and default (shrink-on-load) decoding
  overhead    queue overhead per job on an idle server: a job submitted alone
              on an idle replica, started_unix_ms - created_unix_ms; p50 and
              p99 over R jobs; embedded SQLite and PostgreSQL
  scaling     1, 2 and 3 replicas, --workers 1 each, sharing PostgreSQL and an
              S3-compatible store (moto; --scaling-store dir: a directory):
              wall time of one batch of heavier jobs (2-megapixel JPEG ->
              blur, sharpen, 512-pixel JPEG); speedup over 1 replica

    bench/setup_venv.sh                        # once (grpcio, Pillow, numpy)
    .ci/run (or pip install 'moto[server]')    # moto for `scaling`
    apt-get install postgresql                 # for `overhead` and `scaling`
    cargo build --release -p nlimage-server
    bench/.venv/bin/python bench/jobs_bench.py [--only throughput,overhead,scaling]

Servers, databases, moto and this client share this machine's cores: compare
ratios within one run, not absolute figures across runs.
"""
import argparse
import glob
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import grpc

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from store_bench import BIN, ROOT, free_port, jpeg_bytes, photo, wait_port  # noqa: E402


def stubs(tmp):
    from grpc_tools import protoc
    out = os.path.join(tmp, "py")
    os.makedirs(out, exist_ok=True)
    for f in ("nlimage/v1/nlimage.proto", "nlimage/v1/store.proto", "nlimage/v1/jobs.proto"):
        if protoc.main(["protoc", f"-I{ROOT}/proto", f"--python_out={out}",
                        f"--grpc_python_out={out}", f"{ROOT}/proto/{f}"]) != 0:
            sys.exit("protoc failed")
    sys.path.insert(0, out)
    from nlimage.v1 import jobs_pb2, jobs_pb2_grpc, nlimage_pb2, store_pb2, store_pb2_grpc
    return jobs_pb2, jobs_pb2_grpc, nlimage_pb2, store_pb2, store_pb2_grpc


class Replica:
    def __init__(self, args, env=None):
        self.port = free_port()
        self.proc = subprocess.Popen([f"{BIN}/nl-server", "--port", str(self.port), *args],
                                     env={**os.environ, **(env or {})},
                                     stderr=subprocess.DEVNULL)
        wait_port(self.port, 60)
        self.channel = grpc.insecure_channel(f"127.0.0.1:{self.port}")

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=60)


class Postgres:
    """A PostgreSQL server in a temporary directory (as the postgres user
    when run as root: PostgreSQL refuses root)."""

    def __init__(self, tmp):
        bins = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
        if not bins:
            sys.exit("no PostgreSQL: apt-get install postgresql")
        self.bin = bins[-1]
        self.dir = tempfile.mkdtemp(prefix="nl-pg", dir=tmp)
        self.root = os.geteuid() == 0
        if self.root:
            shutil.chown(self.dir, "postgres", "postgres")
        self.port = free_port()
        data = os.path.join(self.dir, "data")
        self.run("initdb", "-D", data, "-U", "postgres", "--auth=trust", "--no-sync")
        self.run("pg_ctl", "-D", data, "-l", os.path.join(self.dir, "log"), "-w", "-o",
                 f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.dir} "
                 "-c max_connections=200", "start")
        self.url = f"postgres://postgres@127.0.0.1:{self.port}/postgres"

    def run(self, tool, *args):
        cmd = [os.path.join(self.bin, tool), *args]
        if self.root:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stop(self):
        self.run("pg_ctl", "-D", os.path.join(self.dir, "data"), "-m", "fast", "stop")


class Moto:
    def __init__(self, bucket):
        py = next((p for p in (os.environ.get("NL_MOTO_PYTHON"),
                               os.path.join(ROOT, ".ci/.venv/bin/python"),
                               os.path.join(ROOT, "bench/.venv/bin/python"))
                   if p and os.path.exists(p) and subprocess.run([p, "-c", "import moto.server"],
                                           stderr=subprocess.DEVNULL).returncode == 0), None)
        if py is None:
            sys.exit("no Python with moto: run .ci/run once or pip install 'moto[server]'")
        self.port = free_port()
        self.proc = subprocess.Popen([py, "-m", "moto.server", "-H", "127.0.0.1", "-p",
                                      str(self.port)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        wait_port(self.port, 30)
        import urllib.request
        urllib.request.urlopen(urllib.request.Request(
            f"http://127.0.0.1:{self.port}/{bucket}", method="PUT")).read()
        self.env = {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{self.port}", "AWS_ALLOW_HTTP": "true",
                    "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
                    "AWS_DEFAULT_REGION": "us-east-1"}

    def stop(self):
        self.proc.terminate()
        self.proc.wait()


def put(pb, channel, data):
    _, _, _, store_pb2, store_pb2_grpc = pb
    stub = store_pb2_grpc.ImageStoreStub(channel)

    def msgs():
        yield store_pb2.PutRequest(header=store_pb2.PutHeader(length=len(data)))
        for i in range(0, len(data), 1 << 20):
            yield store_pb2.PutRequest(chunk=data[i:i + (1 << 20)])
    return stub.Put(msgs()).id


def spec(pb, source, ops, fmt, quality=None, exact=False):
    jobs_pb2, _, nlimage_pb2, store_pb2, _ = pb
    return jobs_pb2.JobSpec(
        source_id=source, format=fmt, exact=exact,
        operations=[nlimage_pb2.Operation(spec=s) for s in ops],
        encode=store_pb2.EncodeOptions(jpeg_quality=quality) if quality else None)


def run_batch(pb, channels, specs, poll=0.05):
    """Submits every spec (round-robin over `channels`), waits for all to end;
    returns (seconds from the first submission to the last end, jobs)."""
    jobs_pb2, jobs_pb2_grpc, _, _, _ = pb
    stubs_ = [jobs_pb2_grpc.JobsStub(c) for c in channels]
    t0 = time.time()
    futures = [stubs_[i % len(stubs_)].Submit.future(jobs_pb2.SubmitRequest(spec=s))
               for i, s in enumerate(specs)]
    ids = [f.result().id for f in futures]
    # Jobs are claimed oldest first: follow the last one (one Watch stream,
    # so that polling does not load the server), then collect every job.
    for j in stubs_[(len(ids) - 1) % len(stubs_)].Watch(jobs_pb2.WatchJobRequest(id=ids[-1])):
        if j.done:
            break
    jobs = {}
    pending = list(ids)
    while pending:
        futs = [(i, stubs_[0].Get.future(jobs_pb2.GetJobRequest(id=i))) for i in pending]
        pending = []
        for i, f in futs:
            j = f.result()
            if j.done:
                jobs[i] = j
            else:
                pending.append(i)
        if pending:
            time.sleep(poll)
    bad = [j for j in jobs.values() if j.state != jobs_pb2.JOB_STATE_SUCCEEDED]
    if bad:
        sys.exit(f"{len(bad)} jobs did not succeed, e.g. {bad[0]}")
    first = min(j.created_unix_ms for j in jobs.values())
    last = max(j.finished_unix_ms for j in jobs.values())
    return max(last - first, 1) / 1000, jobs, time.time() - t0


def sources(pb, channel, n, w, h):
    return [put(pb, channel, jpeg_bytes(photo(w, h, seed=s), 90)) for s in range(n)]


def bench_throughput(pb, tmp, n):
    data = tempfile.mkdtemp(dir=tmp)
    r = Replica(["--data-dir", data])
    try:
        srcs = sources(pb, r.channel, 20, 1155, 866)  # 1.0 megapixel
        print(f"\nthroughput: {n} jobs, 256-px JPEG thumbnails of stored 1-MP JPEGs, one replica "
              f"(--workers 2, embedded SQLite queue, local store)")
        print("| decoding | jobs | seconds | jobs/s |\n|---|---|---|---|")
        for exact in (True, False):
            # 20 sources x distinct qualities: every job a new result (the
            # exact flag is part of the result's key, so no pass hits the other's).
            specs = [spec(pb, srcs[i % 20], ["thumbnail=256"], "jpg",
                          quality=min(100, 40 + i // 20), exact=exact) for i in range(n)]
            secs, _, _ = run_batch(pb, [r.channel], specs)
            print(f"| {'exact' if exact else 'default (shrink-on-load)'} | {n} | {secs:.2f} | "
                  f"{n / secs:.0f} |")
    finally:
        r.stop()


def overhead(pb, channel, source, reps):
    jobs_pb2, jobs_pb2_grpc, _, _, _ = pb
    stub = jobs_pb2_grpc.JobsStub(channel)
    waits = []
    for i in range(reps):
        j = stub.Submit(jobs_pb2.SubmitRequest(spec=spec(pb, source, [f"brightness={i % 200}"],
                                                        "png")))
        while True:
            j = stub.Get(jobs_pb2.GetJobRequest(id=j.id))
            if j.done:
                break
            time.sleep(0.005)
        waits.append(j.started_unix_ms - j.created_unix_ms)
    waits.sort()
    return statistics.median(waits), waits[int(0.99 * (len(waits) - 1))]


def bench_overhead(pb, tmp, reps):
    print(f"\noverhead: submit -> start on an idle replica, {reps} jobs one at a time (ms)")
    print("| queue | p50 | p99 |\n|---|---|---|")
    data = tempfile.mkdtemp(dir=tmp)
    r = Replica(["--data-dir", data])
    try:
        src = put(pb, r.channel, jpeg_bytes(photo(64, 48), 90))
        p50, p99 = overhead(pb, r.channel, src, reps)
        print(f"| embedded SQLite | {p50:.0f} | {p99:.0f} |")
    finally:
        r.stop()
    pg = Postgres(tmp)
    data = tempfile.mkdtemp(dir=tmp)
    r = Replica(["--data-dir", data, "--database", pg.url])
    try:
        src = put(pb, r.channel, jpeg_bytes(photo(64, 48), 90))
        p50, p99 = overhead(pb, r.channel, src, reps)
        print(f"| PostgreSQL (same replica) | {p50:.0f} | {p99:.0f} |")
    finally:
        r.stop()
        pg.stop()


SCALING_OPS = ["blur=4", "sharpen=1", "thumbnail=512"]


def bench_scaling(pb, tmp, n, store):
    pg = Postgres(tmp)
    moto = Moto("nl-bench") if store == "s3" else None
    shared = "S3 (moto)" if moto else "a directory"
    print(f"\nscaling: {n} jobs (2-MP JPEG -> {', '.join(SCALING_OPS)} -> JPEG), replicas with "
          f"--workers 1 sharing PostgreSQL and {shared}")
    print("| replicas | seconds | jobs/s | speedup |\n|---|---|---|---|")
    base = None
    try:
        for count in (1, 2, 3):
            where = f"s3://nl-bench/run{count}" if moto else os.path.join(tmp, f"store{count}")
            reps = [Replica(["--database", pg.url, "--store", where, "--workers", "1"],
                            moto.env if moto else {})
                    for _ in range(count)]
            try:
                srcs = sources(pb, reps[0].channel, 10, 1732, 1155)  # 2.0 megapixels
                specs = [spec(pb, srcs[i % 10], SCALING_OPS, "jpg", quality=50 + i // 10)
                         for i in range(n)]
                secs, _, _ = run_batch(pb, [x.channel for x in reps], specs)
                base = base or secs
                print(f"| {count} | {secs:.1f} | {n / secs:.1f} | {base / secs:.2f}x |")
            finally:
                for x in reps:
                    x.stop()
            # The next run starts from an empty queue.
            subprocess.run([f"{pg.bin}/psql", "-h", "127.0.0.1", "-p", str(pg.port), "-U",
                            "postgres", "-c", "DELETE FROM job_labels; DELETE FROM jobs;"],
                           check=True, stdout=subprocess.DEVNULL)
    finally:
        if moto:
            moto.stop()
        pg.stop()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", default="throughput,overhead,scaling")
    ap.add_argument("--jobs", type=int, default=1000, help="jobs in the throughput batch")
    ap.add_argument("--reps", type=int, default=200, help="jobs for the overhead figure")
    ap.add_argument("--scaling-jobs", type=int, default=200)
    ap.add_argument("--scaling-store", choices=("s3", "dir"), default="s3",
                    help="what the replicas share as the store: moto's S3 or a directory")
    args = ap.parse_args()
    if not os.path.exists(f"{BIN}/nl-server"):
        sys.exit("build first: cargo build --release -p nlimage-server")
    with tempfile.TemporaryDirectory() as tmp:
        os.chmod(tmp, 0o755)
        pb = stubs(tmp)
        only = args.only.split(",")
        if "throughput" in only:
            bench_throughput(pb, tmp, args.jobs)
        if "overhead" in only:
            bench_overhead(pb, tmp, args.reps)
        if "scaling" in only:
            bench_scaling(pb, tmp, args.scaling_jobs, args.scaling_store)


if __name__ == "__main__":
    main()
