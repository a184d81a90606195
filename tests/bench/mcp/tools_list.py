#!/usr/bin/env python3
"""MCP tools/list with 1,000 declared tools from 100 lazy extensions: time per
call and bytes, beside a baseline server with the same 100 lazy extensions
declaring nothing (only the built-ins' tools are listed). Also start-up time
and RSS of both, and a check that listing loaded no extension. Not a test.

usage: tools_list.py SERVER_BINARY MODULE.so [--extensions 100] [--tools 10] [--calls 200]
"""
import argparse
import http.client
import json
import os
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


def make_extensions(root, module, count, tools):
    for i in range(count):
        ext_id = f"lazy_{i:03d}"
        d = os.path.join(root, ext_id)
        os.makedirs(d)
        manifest = {"id": ext_id, "name": f"Lazy {i}", "version": "1.0.0",
                    "description": "benchmark extension", "module": "bench.so",
                    "eager": False, "grants": ["TOOLS"]}
        if tools:
            manifest["contributes"] = {"tools": [
                {"name": f"tool_{t:02d}",
                 "description": f"Benchmark tool {t} of {ext_id}: looks a value up by key and returns it",
                 "inputSchema": {"type": "object", "required": ["key"],
                                 "properties": {"key": {"type": "string", "maxLength": 64},
                                                "limit": {"type": "integer", "minimum": 1}}},
                 "annotations": {"readOnlyHint": True}}
                for t in range(tools)]}
        with open(os.path.join(d, "extension.json"), "w") as f:
            json.dump(manifest, f)
        os.symlink(module, os.path.join(d, "bench.so"))


class Mcp:
    def __init__(self, port):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        self.session = None
        self.next_id = 1

    def post(self, body):
        headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream",
                   "MCP-Protocol-Version": "2025-11-25"}
        if self.session:
            headers["Mcp-Session-Id"] = self.session
        self.conn.request("POST", "/ext/mcp_http/", json.dumps(body), headers)
        res = self.conn.getresponse()
        data = res.read()
        if res.getheader("Mcp-Session-Id"):
            self.session = res.getheader("Mcp-Session-Id")
        return res.status, res.getheader("Content-Type", ""), data

    def request(self, method, params=None):
        body = {"jsonrpc": "2.0", "id": self.next_id, "method": method, "params": params or {}}
        self.next_id += 1
        status, ctype, data = self.post(body)
        if status != 200:
            sys.exit(f"{method}: HTTP {status}: {data[:200]!r}")
        if ctype.startswith("text/event-stream"):
            for line in data.decode().splitlines():
                if line.startswith("data:") and line[5:].strip():
                    msg = json.loads(line[5:])
                    if "result" in msg or "error" in msg:
                        return msg, len(data)
            sys.exit(f"{method}: no result in the stream")
        return json.loads(data), len(data)


def run(server, root, calls):
    port = free_port()
    t0 = time.perf_counter()
    proc = subprocess.Popen([server, "--port", str(port), "--ext-path", root, "--no-request-log"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = t0 + 20
        while True:
            try:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                c.request("GET", "/health")
                if c.getresponse().status == 200:
                    break
            except OSError:
                pass
            if time.perf_counter() > deadline:
                sys.exit("server did not answer /health within 20 s")
            time.sleep(0.001)
        startup_ms = (time.perf_counter() - t0) * 1000
        rss_start = vm_rss_kib(proc.pid)
        mcp = Mcp(port)
        mcp.request("initialize", {"protocolVersion": "2025-11-25", "capabilities": {},
                                   "clientInfo": {"name": "bench", "version": "1"}})
        mcp.post({"jsonrpc": "2.0", "method": "notifications/initialized"})
        times, size, count = [], 0, 0
        for _ in range(calls):
            t = time.perf_counter()
            tools, cursor, nbytes = [], None, 0
            while True:
                msg, n = mcp.request("tools/list", {"cursor": cursor} if cursor else {})
                nbytes += n
                tools += msg["result"]["tools"]
                cursor = msg["result"].get("nextCursor")
                if not cursor:
                    break
            times.append((time.perf_counter() - t) * 1000)
            size, count = nbytes, len(tools)
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        c.request("GET", "/ext/status")
        status = json.loads(c.getresponse().read())
        lazy_loaded = sum(1 for k, v in status["extensions"].items()
                          if k.startswith("lazy_") and v["state"] != "discovered")
        return {"startup_ms": startup_ms, "rss_mib": rss_start / 1024, "rss_after_mib": vm_rss_kib(proc.pid) / 1024,
                "tools": count, "bytes": size, "median_ms": statistics.median(times),
                "p90_ms": sorted(times)[int(len(times) * 0.9) - 1], "lazy_loaded": lazy_loaded}
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("server")
    ap.add_argument("module")
    ap.add_argument("--extensions", type=int, default=100)
    ap.add_argument("--tools", type=int, default=10)
    ap.add_argument("--calls", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as declared, tempfile.TemporaryDirectory() as bare:
        make_extensions(declared, os.path.abspath(args.module), args.extensions, args.tools)
        make_extensions(bare, os.path.abspath(args.module), args.extensions, 0)
        print(f"{args.extensions} lazy extensions; declared: {args.tools} tools each; "
              f"{args.calls} tools/list calls per round, {args.rounds} alternating rounds")
        for r in range(args.rounds):
            for name, root in (("declared", declared), ("baseline", bare)):
                res = run(args.server, root, args.calls)
                print(f"round {r + 1} {name:8}  tools {res['tools']:5}  bytes {res['bytes']:8}  "
                      f"median {res['median_ms']:.2f} ms  p90 {res['p90_ms']:.2f} ms  "
                      f"startup {res['startup_ms']:.1f} ms  rss {res['rss_mib']:.1f} MiB "
                      f"(after lists {res['rss_after_mib']:.1f})  lazy loaded {res['lazy_loaded']}")


if __name__ == "__main__":
    main()
