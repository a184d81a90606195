#!/usr/bin/env python3
"""Start-up time to GET /health 200 and resident memory of ordinaut-server with
the built-ins plus N lazy external extensions (part of run.sh; not a test).

usage: startup.py SERVER_BINARY SRVTEST_DIR [--count 100] [--runs 10]
"""
import argparse
import http.client
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def vm_rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


def get(port, path):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.request("GET", path)
    res = conn.getresponse()
    body = res.read()
    conn.close()
    return res.status, body


def make_extensions(root, module, count):
    # N manifest folders pointing at one module; they are lazy, so start-up
    # discovers and validates them without loading any.
    for i in range(count):
        d = os.path.join(root, f"lazy_{i:03d}")
        os.makedirs(d)
        with open(os.path.join(d, "extension.json"), "w") as f:
            json.dump({"id": f"lazy_{i:03d}", "name": f"Lazy {i}", "version": "1.0.0",
                       "description": "benchmark extension", "module": "srvtest.so",
                       "eager": False, "grants": ["ROUTES"]}, f)
        # A hard link: the host refuses a module that resolves outside its folder.
        try:
            os.link(module, os.path.join(d, "srvtest.so"))
        except OSError:
            shutil.copyfile(module, os.path.join(d, "srvtest.so"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("server")
    ap.add_argument("srvtest_dir")
    ap.add_argument("--count", type=int, default=100)
    ap.add_argument("--runs", type=int, default=10)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as root:
        # The lazy ones share srvtest's module but not its id: they are never
        # loaded here (loading one would be refused for the id mismatch).
        make_extensions(root, os.path.join(args.srvtest_dir, "srvtest.so"), args.count)
        times, rss_start, rss_loaded, first_ms, second_ms = [], [], [], [], []
        total = loaded = None
        for _ in range(args.runs):
            port = free_port()
            t0 = time.perf_counter()
            proc = subprocess.Popen([args.server, "--port", str(port), "--ext-path", root,
                                     "--ext-path", args.srvtest_dir, "--no-request-log"],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                deadline = t0 + 10
                while True:
                    try:
                        status, _ = get(port, "/health")
                        if status == 200:
                            break
                    except OSError:
                        pass
                    if time.perf_counter() > deadline:
                        sys.exit("server did not answer /health within 10 s")
                    time.sleep(0.0005)
                times.append((time.perf_counter() - t0) * 1000)
                rss_start.append(vm_rss_kib(proc.pid))
                status, body = get(port, "/ext/status")
                doc = json.loads(body)
                total, loaded = doc["total_extensions"], doc["loaded_extensions"]
                # The first request to lazy srvtest loads it and is served
                # directly; the second one, beside it, is the same request
                # without the load.
                t1 = time.perf_counter()
                status, _ = get(port, "/ext/srvtest/hello")
                first_ms.append((time.perf_counter() - t1) * 1000)
                if status != 200:
                    sys.exit(f"first request to the lazy extension answered {status}")
                t2 = time.perf_counter()
                get(port, "/ext/srvtest/hello")
                second_ms.append((time.perf_counter() - t2) * 1000)
                for path in ("/ext/openapi.json", "/ext/status"):
                    get(port, path)
                rss_loaded.append(vm_rss_kib(proc.pid))
            finally:
                proc.terminate()
                proc.wait(timeout=10)
        print(f"extensions discovered: {total} (loaded at start: {loaded}); runs: {args.runs}")
        print(f"startup_ms   median {statistics.median(times):.1f}  min {min(times):.1f}  max {max(times):.1f}")
        print(f"lazy first request median {statistics.median(first_ms):.2f} ms (loads srvtest), "
              f"second request {statistics.median(second_ms):.2f} ms: the load adds "
              f"{statistics.median(first_ms) - statistics.median(second_ms):.2f} ms (target <= 5 ms)")
        print(f"rss_start    median {statistics.median(rss_start) / 1024:.1f} MiB")
        print(f"rss_loaded   median {statistics.median(rss_loaded) / 1024:.1f} MiB  (after /ext/status, srvtest loaded, openapi)")


if __name__ == "__main__":
    main()
