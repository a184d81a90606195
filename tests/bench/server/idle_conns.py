#!/usr/bin/env python3
"""Holds N idle keep-alive connections to a server (part of run.sh; not a test).

Each connection makes one GET /health request and then stays open, idle.
Prints "ready N" on stdout once all are open and answered, then waits for
SIGTERM.

usage: idle_conns.py PORT [--count 10000]
"""
import argparse
import resource
import selectors
import signal
import socket
import sys


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("port", type=int)
    ap.add_argument("--count", type=int, default=10000)
    args = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    request = b"GET /health HTTP/1.1\r\nHost: bench\r\n\r\n"
    conns = []
    sel = selectors.DefaultSelector()
    pending = {}
    for _ in range(args.count):
        s = socket.create_connection(("127.0.0.1", args.port))
        s.sendall(request)
        s.setblocking(False)
        conns.append(s)
        pending[s.fileno()] = b""
        sel.register(s, selectors.EVENT_READ)
    while pending:
        for key, _ in sel.select(timeout=30):
            s = key.fileobj
            data = s.recv(4096)
            if not data:
                sys.exit("connection closed before its answer")
            got = pending[s.fileno()] + data
            if b"}" in got:
                del pending[s.fileno()]
                sel.unregister(s)
            else:
                pending[s.fileno()] = got
    print(f"ready {len(conns)}", flush=True)
    signal.pause()


if __name__ == "__main__":
    main()
