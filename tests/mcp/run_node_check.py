#!/usr/bin/env python3
"""Runs an official-MCP-package check against a real ordinaut-server.

usage: run_node_check.py sdk-client | sdk-client-auth | sdk-content | sdk-scheduler
                         | conformance [extra conformance args] | inspector | readme

Starts ordinaut-server (ORDINAUT_SERVER) on a free loopback port with the
test-only extensions (MCP_TEST_EXT_PATH) and ORDINAUT_MCP_SHORT_NAMES set so
that the conformance tools carry the names the suite calls, then runs
  sdk-client:  sdk-client-check.mjs (connect, ping, list, call echo) and
               sdk_client_full.mjs (logging, progress, sampling, elicitation,
               errors, pagination, list_changed, DELETE) with the official SDK
               at .../ext/mcp_http/, then sdk-client-check.mjs again at
               .../ext/mcp_http/mcp;
  sdk-client-auth: the server with --auth (a static token with the MCP
               scopes): sdk-client-check.mjs with MCP_BEARER_TOKEN passes,
               and without it fails on the 401;
  sdk-content: sdk_client_content.mjs: the official SDK client lists and reads
               resources, completes a template variable, lists prompts and
               gets observability's diagnose prompt on a default server
               (built-ins and the host's resources), then gets a prompt and
               subscribes on a server with the fixture;
  sdk-scheduler: sdk_client_scheduler.mjs: the official SDK client creates
               a cron task with the scheduler's tools on a default server with
               its own data folder and sees scheduled and run_now runs succeed;
               the server is stopped (SIGTERM) and started again on the same
               folder, and the client finds the task and its history and sees
               it run again;
  conformance: npx conformance server --url .../ext/mcp_http/ with the
               expected-failures baseline (conformance-baseline.yml).
  inspector:   a default server (built-in extensions only): the official
               inspector CLI's `--method tools/list` lists the built-ins' tools,
               at .../ext/mcp_http/ with --transport http and at
               .../ext/mcp_http/mcp with the transport it detects.
  readme:      a default server: runs every ```sh block of
               lib/extensions/mcp_http/README.md, in order, with bash -eu
               (port 8080 replaced), and checks what they print.
Exits 77 (meson: skipped) only when node_modules is absent, and says so.
"""
import hashlib
import json
import os
import select
import subprocess
import sys
import tempfile
import time

NODE_DIR = os.environ.get("MCP_NODE_DIR", os.path.dirname(os.path.abspath(__file__)))
SERVER = os.environ.get("ORDINAUT_SERVER", "")
EXT_PATH = os.environ.get("MCP_TEST_EXT_PATH", "")


def start_server(extra_env=None, extra_args=(), test_extensions=True):
    env = dict(os.environ)
    env["ORDINAUT_MCP_SHORT_NAMES"] = "mcp_conformance"
    env.update(extra_env or {})
    log = tempfile.NamedTemporaryFile(prefix="mcp-node-check-", suffix=".log", delete=False)
    ext_args = ["--ext-path", EXT_PATH] if test_extensions else []
    cmd = [SERVER, "--port", "0", *ext_args, "--no-request-log", "--shutdown-timeout", "2", *extra_args]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, env=env)
    deadline = time.time() + 20
    out = b""
    while time.time() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 0.2)
        if ready:
            chunk = os.read(proc.stdout.fileno(), 4096)
            if not chunk:
                break
            out += chunk
            marker = b"listening on http://"
            at = out.find(marker)
            if at >= 0 and b"\n" in out[at:]:
                line = out[at + len(marker):out.index(b"\n", at)].decode()
                return proc, int(line.rsplit(":", 1)[1]), log.name
    proc.kill()
    sys.exit(f"ordinaut-server did not start: {out!r}\n{open(log.name).read()}")


def stop_server(proc):
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def print_server_log(log):
    print(f"--- server log ({log}) ---")
    with open(log, errors="replace") as f:
        print(f.read()[-20000:])


def run(cmd, timeout):
    print("$", " ".join(cmd), flush=True)
    try:
        return subprocess.run(cmd, cwd=NODE_DIR, timeout=timeout).returncode
    except subprocess.TimeoutExpired:
        print(f"FAIL: {cmd[1]} did not finish within {timeout} s", flush=True)
        return 1


BUILTIN_TOOLS = ["ext.events_demo.publish", "ext.events_demo.recent", "ext.observability.snapshot"]


def run_inspector(url, port, transport="http"):
    """inspector-cli tools/list on a default server lists the built-ins' tools.
    transport None: the inspector picks it from the URL (Streamable HTTP for
    a URL ending in /mcp)."""
    cli_dir = os.path.join(NODE_DIR, "node_modules", "@modelcontextprotocol", "inspector-cli", "build")
    if not os.path.isfile(os.path.join(cli_dir, "cli.js")):
        print("FAIL: @modelcontextprotocol/inspector-cli is not installed (npm ci in tests/mcp)", flush=True)
        return 1
    # events_demo is lazy: its tools are listed from its extension.json
    # ("contributes") without loading it, which is checked below.
    import urllib.request
    cmd = ["node", "cli.js", "--cli", url, *(["--transport", transport] if transport else []), "--method",
           "tools/list"]
    print("$ (cd " + cli_dir + ") " + " ".join(cmd), flush=True)
    out = subprocess.run(cmd, cwd=cli_dir, timeout=60, capture_output=True, text=True)
    print(out.stdout[-4000:] + out.stderr[-4000:], flush=True)
    if out.returncode != 0:
        print(f"FAIL: inspector-cli exited {out.returncode}", flush=True)
        return 1
    try:
        listed = {t["name"]: t for t in json.loads(out.stdout)["tools"]}
    except (ValueError, KeyError, TypeError) as e:
        print(f"FAIL: inspector-cli printed no tools list: {e}", flush=True)
        return 1
    rc = 0
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/ext/status", timeout=30) as r:
        state = json.loads(r.read())["extensions"]["events_demo"]["state"]
    if state != "discovered":
        print(f"FAIL: listing tools loaded the lazy events_demo (state {state})", flush=True)
        rc = 1
    if not listed.get("ext.events_demo.recent", {}).get("annotations", {}).get("readOnlyHint"):
        print("FAIL: ext.events_demo.recent has no readOnlyHint annotation", flush=True)
        rc = 1
    for name in BUILTIN_TOOLS:
        tool = listed.get(name)
        if tool is None:
            print(f"FAIL: {name} is not listed (listed: {sorted(listed)})", flush=True)
            rc = 1
        elif not tool.get("description") or tool.get("inputSchema", {}).get("type") != "object" \
                or "outputSchema" not in tool:
            print(f"FAIL: {name} lacks a description, an object input schema or an output schema: {tool}", flush=True)
            rc = 1
    if rc == 0:
        print(f"OK: inspector-cli lists {', '.join(BUILTIN_TOOLS)} ({len(listed)} tools in all)", flush=True)
    return rc


# What the README's examples must print, in order of appearance.
README_EXPECT = [
    '"structuredContent":{"id":"',                      # publish
    '"topic":"events_demo.orders"',
    '"payload":{"sku":"A-1","qty":2}',                   # recent
    '"next_before":null',
    '"name":"ext.events_demo.publish"',                  # tools/list
    '"name":"ext.observability.snapshot"',
    '"extensions":[{"id":"events_demo","state":"active"',  # snapshot
    '"tool":"ext.events_demo.publish","result":{"id":"',  # REST
    '"uri":"ordinaut://host/status"',                    # resources/list
    '"values":["events_demo"]',                          # completion
    '"uri":"ordinaut://host/extensions/events_demo","mimeType":"application/json"',  # read
]


def run_readme(port):
    readme = os.path.join(os.environ.get("ORDINAUT_SOURCE_ROOT", os.path.join(NODE_DIR, "..", "..")),
                          "lib", "extensions", "mcp_http", "README.md")
    text = open(readme).read()
    blocks = []
    at = 0
    while True:
        start = text.find("```sh\n", at)
        if start < 0:
            break
        end = text.find("```", start + 6)
        blocks.append(text[start + 6:end])
        at = end + 3
    if len(blocks) < 4:
        print(f"FAIL: expected the README's curl examples (```sh blocks), found {len(blocks)}", flush=True)
        return 1
    script = "\n".join(blocks).replace("127.0.0.1:8080", f"127.0.0.1:{port}")
    print(f"$ bash -eu <<'EOF'\n{script}EOF", flush=True)
    out = subprocess.run(["bash", "-eu", "-o", "pipefail"], input=script, timeout=60, capture_output=True, text=True)
    print(out.stdout[-6000:] + out.stderr[-2000:], flush=True)
    if out.returncode != 0:
        print(f"FAIL: the README's examples exited {out.returncode}", flush=True)
        return 1
    pos = 0
    for expected in README_EXPECT:
        found = out.stdout.find(expected, pos)
        if found < 0:
            print(f"FAIL: the examples' output lacks {expected!r} (after offset {pos})", flush=True)
            return 1
        pos = found
    print(f"OK: {len(blocks)} README example blocks ran and printed what they document", flush=True)
    return 0


def run_sdk_content(extra_args):
    """sdk_client_content.mjs against a default server (built-ins and the host's
    resources), then against one with the test fixture, getting a prompt."""
    for test_extensions, args in ((False, ["ext.observability.diagnose", '{"extension":"mcp_http"}']),
                                  (True, ["test_prompt_with_arguments", '{"arg1":"a","arg2":"b"}'])):
        proc, port, log = start_server(extra_args=extra_args, test_extensions=test_extensions)
        try:
            rc = run(["node", "sdk_client_content.mjs", f"http://127.0.0.1:{port}/ext/mcp_http/", *args], 60)
        finally:
            stop_server(proc)
        if rc != 0:
            print_server_log(log)
            return rc
    return 0


def run_sdk_scheduler(extra_args):
    data = tempfile.mkdtemp(prefix="mcp-scheduler-")
    args = (*extra_args, "--data-dir", data)
    proc, port, log = start_server(extra_args=args, test_extensions=False)
    try:
        cmd = ["node", "sdk_client_scheduler.mjs", f"http://127.0.0.1:{port}/ext/mcp_http/", "create"]
        print("$", " ".join(cmd), flush=True)
        out = subprocess.run(cmd, cwd=NODE_DIR, timeout=240, capture_output=True, text=True)
        print(out.stdout + out.stderr, flush=True)
    finally:
        stop_server(proc)
    task = [line[8:] for line in out.stdout.splitlines() if line.startswith("TASK_ID=")]
    if out.returncode != 0 or not task:
        print_server_log(log)
        return 1
    restarted_ms = int(time.time() * 1000)
    proc, port, log = start_server(extra_args=args, test_extensions=False)
    try:
        rc = run(["node", "sdk_client_scheduler.mjs", f"http://127.0.0.1:{port}/ext/mcp_http/", "after", task[0],
                  str(restarted_ms)], 240)
    finally:
        stop_server(proc)
    if rc != 0:
        print_server_log(log)
    return rc


def main():
    mode = sys.argv[1] if len(sys.argv) > 1 else ""
    if mode not in ("sdk-client", "sdk-client-auth", "sdk-content", "sdk-scheduler", "conformance", "inspector",
                    "readme"):
        sys.exit(__doc__)
    if mode != "readme" and not os.path.isdir(os.path.join(NODE_DIR, "node_modules", "@modelcontextprotocol")):
        print(f"SKIP: {NODE_DIR}/node_modules is absent; run tests/mcp/install.sh (npm ci) to install the "
              "official MCP SDK and conformance suite", flush=True)
        return 77
    if not SERVER or not EXT_PATH:
        sys.exit("ORDINAUT_SERVER and MCP_TEST_EXT_PATH must be set (run through meson test)")
    # Threads: each open SSE stream holds one server thread; the suite opens
    # about 30 sessions, each with its standalone GET stream.
    extra_args = ["--threads", "64"]
    token = "mcp-test-token-" + os.urandom(8).hex()
    if mode == "sdk-client-auth":
        auth_dir = tempfile.mkdtemp(prefix="mcp-auth-")
        auth_file = os.path.join(auth_dir, "auth.json")
        with open(auth_file, "w") as f:
            json.dump({"tokens": [{"name": "agent", "sha256": hashlib.sha256(token.encode()).hexdigest(),
                                   "scopes": ["ext:mcp_http:routes", "ext:mcp_http:mcp", "tool:*"]}]}, f)
        extra_args += ["--auth", auth_file]
    if mode == "sdk-content":
        return run_sdk_content(tuple(extra_args))
    if mode == "sdk-scheduler":
        return run_sdk_scheduler(tuple(extra_args))
    proc, port, log = start_server(extra_args=tuple(extra_args), test_extensions=mode not in ("inspector", "readme"))
    url = f"http://127.0.0.1:{port}/ext/mcp_http/"
    rc = 1
    try:
        if mode == "inspector":
            rc = run_inspector(url, port)
            if rc == 0:  # the conventional endpoint, transport detected from its name
                rc = run_inspector(url + "mcp", port, transport=None)
        elif mode == "readme":
            rc = run_readme(port)
        elif mode == "sdk-client-auth":
            rc = run(["env", f"MCP_BEARER_TOKEN={token}", "node", "sdk-client-check.mjs", url, "echo",
                      '{"text":"hello"}'], 60)
            if rc == 0:
                print("$ node sdk-client-check.mjs (no token: must fail with 401)", flush=True)
                out = subprocess.run(["node", "sdk-client-check.mjs", url], cwd=NODE_DIR, timeout=60,
                                     capture_output=True, text=True)
                print(out.stdout + out.stderr, flush=True)
                if out.returncode == 0 or "unauthorized" not in out.stdout + out.stderr:
                    print("FAIL: the SDK client without a token was not refused with 401", flush=True)
                    rc = 1
        elif mode == "sdk-client":
            rc = run(["node", "sdk-client-check.mjs", url, "echo", '{"text":"hello"}'], 60)
            if rc == 0:
                rc = run(["node", "sdk_client_full.mjs", url], 90)
            if rc == 0:  # the same server at the conventional /ext/mcp_http/mcp
                rc = run(["node", "sdk-client-check.mjs", url + "mcp", "echo", '{"text":"hello"}'], 60)
        else:
            out_dir = tempfile.mkdtemp(prefix="mcp-conformance-")
            rc = run(["node", "node_modules/@modelcontextprotocol/conformance/dist/index.js", "server", "--url", url,
                      "--expected-failures", "conformance-baseline.yml", "-o", out_dir, *sys.argv[2:]], 540)
    finally:
        stop_server(proc)
    if rc != 0:
        print_server_log(log)
    return rc


if __name__ == "__main__":
    sys.exit(main())
