#!/usr/bin/env python3
"""Round trips of the classic contract as a stock client sees them: a Python
grpcio client with its default settings (only the 4 MiB receive limit
raised, which whole images need) calls, in one run and interleaved,

  floor     a grpcio server whose generic handler returns the request's bytes
            as the answer: no parsing, no computing, nothing cheaper exists
            for this client (the transport floor);
  nl-server the release build with default flags;
  numpy     a grpcio server in Python that computes with numpy (np.rot90 and
            a 3x3 mean by shifted sums), the baseline an existing user has.

    bench/setup_venv.sh                                 # once
    cargo build --release -p nlimage-server
    bench/.venv/bin/python bench/compare_clients.py [--reps 9] [--sizes 4096x3072x3,8192x8192x1]
    bench/.venv/bin/python bench/compare_clients.py --compression   # the compression table
    bench/.venv/bin/python bench/compare_clients.py --memory        # 16 x 144 MB under a 512 MiB budget
    bench/.venv/bin/python bench/compare_clients.py --before OLD/nl-server   # and another build, interleaved

Each server runs in its own process. For every repetition and every image
and RPC, each server gets one call in turn; the table shows the median round
trip over the repetitions and nl-server / floor. `--compression` instead
times MeanFilter on a photo and on noise against nl-server with
`--response-compression none`, `gzip` (the grpcio client accepts gzip by
default) and reports the bytes each encoding makes of the answer.
"""
import argparse
import contextlib
import gzip
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from concurrent import futures

import grpc
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SERVER = os.environ.get("NL_SERVER", os.path.join(ROOT, "target", "release", "nl-server"))
BEFORE = None
UNLIMITED = [("grpc.max_receive_message_length", -1), ("grpc.max_send_message_length", -1)]


def stubs():
    """Compiles proto/nlimage.proto with grpcio-tools and imports it."""
    from grpc_tools import protoc

    out = tempfile.mkdtemp(prefix="nlimage-pb-")
    rc = protoc.main(["protoc", f"-I{ROOT}/proto", f"--python_out={out}", f"{ROOT}/proto/nlimage.proto"])
    if rc != 0:
        sys.exit("protoc failed")
    sys.path.insert(0, out)
    import nlimage_pb2

    return nlimage_pb2


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---- the Python servers (run as `compare_clients.py --serve KIND --port P`)


class Floor(grpc.GenericRpcHandler):
    """Every unary method answers with the request's bytes, unparsed."""

    def service(self, details):
        return grpc.unary_unary_rpc_method_handler(lambda req, ctx: req)


def mean3x3(a):
    """floor(sum / count) over the 3x3 window inside the image (numpy)."""
    h, w = a.shape[:2]
    p = np.pad(a.astype(np.uint16), [(1, 1), (1, 1)] + [(0, 0)] * (a.ndim - 2))
    s = sum(p[dy : dy + h, dx : dx + w] for dy in range(3) for dx in range(3))
    ones = np.pad(np.ones((h, w), np.uint8), 1)
    c = sum(ones[dy : dy + h, dx : dx + w] for dy in range(3) for dx in range(3)).astype(np.uint16)
    if a.ndim == 3:
        c = c[:, :, None]
    return (s // c).astype(np.uint8)


def numpy_handlers(pb):
    def arr(img):
        shape = (img.height, img.width, 3) if img.color else (img.height, img.width)
        return np.frombuffer(img.data, np.uint8).reshape(shape)

    def out(a, color):
        return pb.NLImage(color=color, data=a.tobytes(), width=a.shape[1], height=a.shape[0])

    def rotate(req, ctx):
        return out(np.ascontiguousarray(np.rot90(arr(req.image), req.rotation)), req.image.color)

    def mean(req, ctx):
        return out(mean3x3(arr(req)), req.color)

    return grpc.method_handlers_generic_handler(
        "NLImageService",
        {
            "RotateImage": grpc.unary_unary_rpc_method_handler(
                rotate, pb.NLImageRotateRequest.FromString, pb.NLImage.SerializeToString
            ),
            "MeanFilter": grpc.unary_unary_rpc_method_handler(
                mean, pb.NLImage.FromString, pb.NLImage.SerializeToString
            ),
        },
    )


def serve(kind, port):
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4), options=UNLIMITED)
    server.add_generic_rpc_handlers((Floor() if kind == "floor" else numpy_handlers(stubs()),))
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    signal.signal(signal.SIGTERM, lambda *_: server.stop(0))
    server.wait_for_termination()


# ---- the client side


def start(cmd, port):
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(200):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.1):
                return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    sys.exit(f"server did not start: {' '.join(cmd)}")


@contextlib.contextmanager
def servers(names, nl_args=()):
    """Starts each named server in its own process; stops them on exit."""
    procs, ports = [], {}
    for name in names:
        port = free_port()
        if name == "nl-server":
            if not os.path.exists(SERVER):
                sys.exit(f"{SERVER} missing: cargo build --release -p nlimage-server")
            cmd = [SERVER, "--port", str(port), *nl_args]
        elif name == "before":
            cmd = [BEFORE, "--port", str(port), *nl_args]
        else:
            cmd = [sys.executable, os.path.abspath(__file__), "--serve", name, "--port", str(port)]
        procs.append(start(cmd, port))
        ports[name] = port
    try:
        yield procs, ports
    finally:
        for p in procs:
            p.terminate()
            p.wait()


def calls(pb, port):
    # Default channel settings; only the receive limit raised (4 MiB by default).
    ch = grpc.insecure_channel(f"127.0.0.1:{port}", options=UNLIMITED)
    rotate = ch.unary_unary(
        "/NLImageService/RotateImage",
        request_serializer=pb.NLImageRotateRequest.SerializeToString,
        response_deserializer=pb.NLImage.FromString,
    )
    mean = ch.unary_unary(
        "/NLImageService/MeanFilter",
        request_serializer=pb.NLImage.SerializeToString,
        response_deserializer=pb.NLImage.FromString,
    )
    return ch, rotate, mean


def parse_size(s):
    w, h, c = (int(x) for x in s.split("x"))
    return w, h, c


def median(xs):
    return sorted(xs)[len(xs) // 2]


def roundtrips(args, pb):
    names = ["floor", "nl-server", "numpy"] + (["before"] if BEFORE else [])
    with servers(names) as (procs, ports):
        stubs_by = {n: calls(pb, ports[n]) for n in names}
        rng = np.random.default_rng(1)
        cases = []
        for w, h, c in map(parse_size, args.sizes.split(",")):
            img = pb.NLImage(color=c == 3, data=rng.integers(0, 256, w * h * c, np.uint8).tobytes(), width=w, height=h)
            label = f"{w}x{h} {'RGB' if c == 3 else 'gray'}"
            cases.append((f"RotateImage 90, {label}", "rotate", pb.NLImageRotateRequest(rotation=1, image=img)))
            cases.append((f"MeanFilter, {label}", "mean", img))
        times = {(case, n): [] for case, _, _ in cases for n in names}
        for _ in range(args.warm):
            for case, rpc, req in cases:
                for n in names:
                    (stubs_by[n][1] if rpc == "rotate" else stubs_by[n][2])(req)
        for _ in range(args.reps):
            for case, rpc, req in cases:
                for n in names:
                    f = stubs_by[n][1] if rpc == "rotate" else stubs_by[n][2]
                    t = time.perf_counter()
                    f(req)
                    times[(case, n)].append((time.perf_counter() - t) * 1e3)
        print(f"\ngrpcio {grpc.__version__}, numpy {np.__version__}, {args.reps} repetitions, median round trip (ms)\n")
        extra = " before | before / floor | nl-server / before |" if BEFORE else ""
        print("| call | floor | nl-server | numpy server | nl-server / floor | numpy / nl-server |" + extra)
        print("|---|---|---|---|---|---|" + ("---|---|---|" if BEFORE else ""))
        for case, _, _ in cases:
            f, n, p = (median(times[(case, k)]) for k in names[:3])
            row = f"| {case} | {f:.0f} | {n:.0f} | {p:.0f} | **{n / f:.2f}x** | {p / n:.2f}x |"
            if BEFORE:
                b = median(times[(case, "before")])
                row += f" {b:.0f} | {b / f:.2f}x | **{n / b:.2f}x** |"
            print(row)


def compression(args, pb):
    """A real camera photo (scikit-image's astronaut, 512x512; tiling or
    upscaling it would make it compress better than photos do) and noise of
    the benchmark's 4096x3072."""
    from skimage import data

    w, h = 4096, 3072
    images = {
        "photo 512x512": (512, 512, data.astronaut().tobytes()),
        f"noise {w}x{h}": (w, h, np.random.default_rng(2).integers(0, 256, w * h * 3, np.uint8).tobytes()),
    }
    print(f"\nMeanFilter of RGB images from a default grpcio client (accepts gzip), median of {args.reps}\n")
    print("| image | --response-compression | round trip ms | answer bytes | of raw |")
    print("|---|---|---|---|---|")
    for mode in ["none", "gzip"]:
        with servers(["nl-server"], ["--response-compression", mode]) as (procs, ports):
            _, _, mean = calls(pb, ports["nl-server"])
            for name, (w, h, pixels) in images.items():
                req = pb.NLImage(color=True, data=pixels, width=w, height=h)
                resp = mean(req)
                ts = []
                for _ in range(args.reps):
                    t = time.perf_counter()
                    mean(req)
                    ts.append((time.perf_counter() - t) * 1e3)
                raw = len(resp.SerializeToString())
                wire = raw if mode == "none" else len(gzip.compress(resp.SerializeToString(), 6))
                print(f"| {name} | {mode} | {median(ts):.0f} | {wire:,} | {wire / raw:.0%} |")


def memory(args, pb):
    """N concurrent classic MeanFilter calls of one large image under a small
    budget: outcomes, and the server's peak RSS (VmHWM) against the budget."""
    w, h = 8000, 6000
    budget = args.budget_mib
    with servers(["nl-server"], ["--memory-budget-mib", str(budget)]) as (procs, ports):
        pid = procs[0].pid
        img = pb.NLImage(color=True, data=np.random.default_rng(3).integers(0, 256, w * h * 3, np.uint8).tobytes(), width=w, height=h)
        _, _, mean = calls(pb, ports["nl-server"])
        outcomes = {}
        t = time.perf_counter()

        def one(_):
            try:
                r = mean(img)
                return "OK" if len(r.data) == w * h * 3 else "WRONG SIZE"
            except grpc.RpcError as e:
                return e.code().name

        with futures.ThreadPoolExecutor(args.concurrency) as ex:
            for o in ex.map(one, range(args.concurrency)):
                outcomes[o] = outcomes.get(o, 0) + 1
        wall = time.perf_counter() - t
        with open(f"/proc/{pid}/status") as f:
            hwm = next(int(l.split()[1]) for l in f if l.startswith("VmHWM")) / 1024
        print(f"\n{args.concurrency} concurrent MeanFilter calls of {w}x{h} RGB ({w * h * 3 / 1e6:.0f} MB) from grpcio, "
              f"nl-server --memory-budget-mib {budget}\n")
        print("| outcomes | wall s | server peak RSS MiB | budget + 256 MiB |")
        print("|---|---|---|---|")
        print(f"| {', '.join(f'{k} {v}' for k, v in sorted(outcomes.items()))} | {wall:.1f} | {hwm:.0f} | {budget + 256} |")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--serve", choices=["floor", "numpy"], help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--reps", type=int, default=9)
    ap.add_argument("--warm", type=int, default=2)
    ap.add_argument("--sizes", default="4096x3072x3,8192x8192x1", help="WxHxC,... (C: 1 gray, 3 RGB)")
    ap.add_argument("--compression", action="store_true", help="the response-compression table instead")
    ap.add_argument("--memory", action="store_true", help="the concurrent-calls memory figure instead")
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--budget-mib", type=int, default=512)
    ap.add_argument("--before", help="another nl-server binary, timed interleaved with this tree's")
    args = ap.parse_args()
    global BEFORE
    BEFORE = args.before
    if args.serve:
        return serve(args.serve, args.port)
    pb = stubs()
    if args.compression:
        compression(args, pb)
    elif args.memory:
        memory(args, pb)
    else:
        roundtrips(args, pb)


if __name__ == "__main__":
    main()
