#!/usr/bin/env python3
"""Runs every grpcurl example in README.md against a real nl-server and
checks that each prints what the README says it prints.

    python3 docs/check_grpcurl.py --server target/debug/nl-server --grpcurl PATH

An example is a line starting with `grpcurl` in a ```sh block (with `\\`
continuations), followed by a `# ...` line: the JSON objects it prints, in
order, or for `list` the service names. The examples' 127.0.0.1:50051 is
replaced by the address of a server started on a free port.
"""
import argparse
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def examples(readme):
    lines = open(readme).read().split("\n")
    out, i = [], 0
    while i < len(lines):
        if lines[i].startswith("grpcurl "):
            cmd = lines[i]
            while cmd.endswith("\\"):
                i += 1
                cmd = cmd[:-1] + " " + lines[i].strip()
            expect = lines[i + 1]
            if not expect.startswith("# "):
                sys.exit(f"README example without its output line: {cmd}")
            out.append((cmd, expect[2:]))
        i += 1
    return out


# Fields that differ from run to run are not compared.
VARYING = {"createdUnix"}


def stable(obj):
    if isinstance(obj, dict):
        return {k: stable(v) for k, v in obj.items() if k not in VARYING}
    if isinstance(obj, list):
        return [stable(v) for v in obj]
    return obj


def objects(text):
    dec, pos, out = json.JSONDecoder(), 0, []
    text = text.strip()
    while pos < len(text):
        obj, end = dec.raw_decode(text, pos)
        out.append(stable(obj))
        pos = end
        while pos < len(text) and text[pos].isspace():
            pos += 1
    return out


def start(server):
    # The store goes in a fresh directory, not the user's data directory.
    env = dict(os.environ, XDG_DATA_HOME=tempfile.mkdtemp(prefix="nl-grpcurl-"))
    proc = subprocess.Popen([server, "--port", "0"], stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.time() + 20
    for line in proc.stderr:
        m = re.search(r"listening on (127\.0\.0\.1:\d+)", line)
        if m:
            return proc, m.group(1)
        if time.time() > deadline:
            break
    proc.kill()
    sys.exit("nl-server did not start")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--server", required=True)
    ap.add_argument("--grpcurl", default="grpcurl")
    args = ap.parse_args()
    cases = examples(os.path.join(ROOT, "README.md"))
    if not cases:
        sys.exit("no grpcurl examples found in README.md")
    proc, addr = start(args.server)
    failed = 0
    try:
        for cmd, expect in cases:
            argv = [args.grpcurl] + shlex.split(cmd.replace("127.0.0.1:50051", addr))[1:]
            r = subprocess.run(argv, capture_output=True, text=True, timeout=30)
            if " list" in cmd:
                ok = r.returncode == 0 and set(expect.split()) <= set(r.stdout.split())
            else:
                ok = r.returncode == 0 and objects(r.stdout) == objects(expect)
            print(f"{'ok  ' if ok else 'FAIL'} {cmd}")
            if not ok:
                failed += 1
                print(f"     want: {expect}\n     got (exit {r.returncode}): {r.stdout.strip()} {r.stderr.strip()}")
    finally:
        proc.terminate()
        proc.wait()
    print(f"{len(cases) - failed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
