#!/usr/bin/env python3
"""Checks that docs/configuration.md documents every flag and environment
variable `ordinaut-server --help` prints.

usage: check_server_flags.py SERVER_BINARY CONFIGURATION_MD

A flag counts as documented when it starts a row of a table (its first cell,
e.g. "| `--port N` |" or "| `--help`, `--version` |"); an environment variable
when it appears anywhere on the page. Exits 1 naming each one missing.
"""
import re
import subprocess
import sys


def help_flags_and_variables(server):
    out = subprocess.run([server, "--help"], capture_output=True, text=True, timeout=60)
    if out.returncode != 0:
        sys.exit(f"FAIL: {server} --help exited {out.returncode}: {out.stderr}")
    text = out.stdout
    # Option lines are indented and start with the flag: "  --port N   port ...".
    flags = re.findall(r"^\s{2,}(--[a-z][a-z0-9-]*)", text, re.M)
    env_at = text.find("environment:")
    variables = re.findall(r"\b[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+\b", text[env_at:]) if env_at >= 0 else []
    return list(dict.fromkeys(flags)), list(dict.fromkeys(variables))


def documented_flags(markdown):
    flags = set()
    for line in markdown.splitlines():
        if line.startswith("|"):
            first_cell = line.split("|")[1]
            flags.update(re.findall(r"`(--[a-z][a-z0-9-]*)", first_cell))
    return flags


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    server, doc_path = sys.argv[1], sys.argv[2]
    flags, variables = help_flags_and_variables(server)
    if len(flags) < 10:
        print(f"FAIL: found only {len(flags)} flags in --help ({flags}); has its layout changed?")
        return 1
    markdown = open(doc_path, encoding="utf-8").read()
    in_table = documented_flags(markdown)
    missing = [f for f in flags if f not in in_table]
    missing_vars = [v for v in variables if v not in markdown]
    for f in missing:
        print(f"FAIL: {f} (in ordinaut-server --help) has no row in the flag table of {doc_path}")
    for v in missing_vars:
        print(f"FAIL: environment variable {v} (in ordinaut-server --help) is not mentioned in {doc_path}")
    if missing or missing_vars:
        return 1
    print(f"OK: {len(flags)} flags and {len(variables)} environment variables of --help are documented")
    return 0


if __name__ == "__main__":
    sys.exit(main())
