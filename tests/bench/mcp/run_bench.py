#!/usr/bin/env python3
"""tools/call round trips per second: ordinaut-server's mcp_http against the
official TypeScript SDK's own server, same tool, same client, same run.

usage: run_bench.py [--build DIR] [--seconds N] [--connections N] [--threads N]

Both servers run on loopback with a trivial "echo" tool (input {text}, output
schema {text}); one MCP session is initialized on each, then the same wrk
script (tools_call.lua) drives tools/call on each in turn, ours first, the
SDK second, ours again (the better of our two runs is not taken: both are
printed and the ratio uses their mean). A second client, the official SDK
client (tests/mcp/bench_sdk_client.mjs), repeats the comparison. Every reply
is checked for the echoed structured result. Needs wrk, node and
tests/mcp/node_modules (tests/mcp/install.sh).
"""
import argparse
import json
import os
import re
import select
import subprocess
import sys
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", "..", ".."))
NODE_DIR = os.path.join(ROOT, "tests", "mcp")


def start(cmd, env=None, cwd=None):
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, cwd=cwd)
    deadline = time.time() + 20
    out = b""
    while time.time() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 0.2)
        if ready:
            chunk = os.read(proc.stdout.fileno(), 4096)
            if not chunk:
                break
            out += chunk
            m = re.search(rb"listening on http://127\.0\.0\.1:(\d+)\s", out)
            if m:
                return proc, int(m.group(1))
    proc.kill()
    sys.exit(f"{cmd[0]} did not start: {out!r}")


def post(url, body, session=None):
    headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream",
               "MCP-Protocol-Version": "2025-11-25"}
    if session:
        headers["Mcp-Session-Id"] = session
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers, method="POST")
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.status, r.headers.get("Mcp-Session-Id"), r.read().decode()


def open_session(url):
    _, session, _ = post(url, {"jsonrpc": "2.0", "id": 1, "method": "initialize",
                               "params": {"protocolVersion": "2025-11-25", "capabilities": {},
                                          "clientInfo": {"name": "bench", "version": "1"}}})
    post(url, {"jsonrpc": "2.0", "method": "notifications/initialized"}, session)
    status, _, body = post(url, {"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                                 "params": {"name": "echo", "arguments": {"text": "bench"}}}, session)
    if status != 200 or '"structuredContent":{"text":"bench"}' not in body:
        sys.exit(f"sanity call to {url} failed: {status} {body}")
    return session


def wrk(url, session, path, seconds, connections, threads):
    out = subprocess.run(["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s", "--latency",
                          "-s", os.path.join(HERE, "tools_call.lua"), url, "--", session, path],
                         capture_output=True, text=True, timeout=seconds + 60).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    bad = int(re.search(r"bad_responses (\d+)", out).group(1))
    p50 = re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1)
    p99 = re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1)
    errors = re.search(r"Socket errors:.*|Non-2xx.*", out)
    return rps, bad, p50, p99, errors.group(0) if errors else ""


def sdk_client(url, seconds, concurrency):
    out = subprocess.run(["node", "bench_sdk_client.mjs", url, str(seconds), str(concurrency)], cwd=NODE_DIR,
                         capture_output=True, text=True, timeout=seconds + 60)
    m = re.search(r"calls/s (\d+) bad (\d+)", out.stdout)
    if not m:
        sys.exit(f"SDK client failed: {out.stdout}{out.stderr}")
    return float(m.group(1)), int(m.group(2))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    if not os.path.isdir(os.path.join(NODE_DIR, "node_modules", "@modelcontextprotocol")):
        sys.exit("tests/mcp/node_modules is absent: run tests/mcp/install.sh")
    server = os.path.join(args.build, "reference-server", "ordinaut-server")
    ext_path = os.path.join(args.build, "tests", "mcp", "extensions")
    env = dict(os.environ, ORDINAUT_MCP_SHORT_NAMES="mcp_conformance")
    ours, ours_port = start([server, "--port", "0", "--ext-path", ext_path, "--no-request-log"], env=env)
    sdk, sdk_port = start(["node", "bench_sdk_server.mjs"], cwd=NODE_DIR)
    try:
        targets = {
            "ordinaut-server": (f"http://127.0.0.1:{ours_port}", "/ext/mcp_http/"),
            "TypeScript SDK": (f"http://127.0.0.1:{sdk_port}", "/mcp"),
        }
        sessions = {name: open_session(base + path) for name, (base, path) in targets.items()}
        print(f"load average before: {os.getloadavg()[0]:.1f} (other work on this machine skews both sides)")
        print(f"wrk -t{args.threads} -c{args.connections} -d{args.seconds}s, tools/call echo, one session each")
        results = {}
        for name in ["ordinaut-server", "TypeScript SDK", "ordinaut-server"]:
            base, path = targets[name]
            rps, bad, p50, p99, errors = wrk(base, sessions[name], path, args.seconds, args.connections, args.threads)
            results.setdefault(name, []).append(rps)
            print(f"  {name:16} {rps:10.0f} req/s  p50 {p50:>8}  p99 {p99:>8}  bad {bad} {errors}")
            if bad:
                sys.exit(f"{name}: {bad} replies lacked the echoed result")
        ours_rps = sum(results["ordinaut-server"]) / len(results["ordinaut-server"])
        ratio = ours_rps / results["TypeScript SDK"][0]
        print(f"  ratio (mean of ours / SDK): {ratio:.1f}x")

        print(f"official SDK client, 8 concurrent callers, {args.seconds // 2}s each")
        client = {}
        for name in ["ordinaut-server", "TypeScript SDK"]:
            base, path = targets[name]
            calls, bad = sdk_client(base + path, max(args.seconds // 2, 2), 8)
            client[name] = calls
            print(f"  {name:16} {calls:10.0f} calls/s  bad {bad}")
        print(f"  ratio: {client['ordinaut-server'] / client['TypeScript SDK']:.1f}x")
    finally:
        for p in (ours, sdk):
            p.terminate()
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()


if __name__ == "__main__":
    main()
