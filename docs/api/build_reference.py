#!/usr/bin/env python3
"""Builds the API reference (HTML) from include/ordinaut/*.hpp with Doxygen.

usage: build_reference.py SOURCE_ROOT OUTPUT_DIR VERSION

Runs `doxygen -` with docs/api/Doxyfile plus the paths, writes the HTML to
OUTPUT_DIR/html and fails (exit 1) on any warning, printing each: an
undocumented public symbol, a broken doc command. Exits 77 (meson: skipped)
only when doxygen is not installed.
"""
import os
import shutil
import subprocess
import sys

# Warnings of these headers are printed but do not fail the build, until the
# change that is rewriting them lands (then this list goes back to empty).
TOLERATED = ()


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    source_root, output_dir, version = sys.argv[1:]
    doxygen = shutil.which("doxygen")
    if doxygen is None:
        print("SKIP: doxygen is not installed (Debian: apt-get install doxygen)", flush=True)
        return 77
    os.makedirs(output_dir, exist_ok=True)
    log = os.path.join(output_dir, "warnings.txt")
    with open(os.path.join(source_root, "docs", "api", "Doxyfile"), encoding="utf-8") as f:
        config = f.read()
    config += "\n".join([
        "",
        f'INPUT = "{os.path.join(source_root, "include", "ordinaut")}" '
        f'"{os.path.join(source_root, "docs", "api", "mainpage.dox")}"',
        f'STRIP_FROM_PATH = "{os.path.join(source_root, "include")}"',
        f'OUTPUT_DIRECTORY = "{output_dir}"',
        f'PROJECT_NUMBER = "{version}"',
        f'WARN_LOGFILE = "{log}"',
        "",
    ])
    run = subprocess.run([doxygen, "-"], input=config, text=True, cwd=source_root, timeout=600)
    with open(log, encoding="utf-8", errors="replace") as f:
        warnings = [line.rstrip() for line in f if line.strip()]
    failing = [w for w in warnings if not any(os.path.join(source_root, t) in w for t in TOLERATED)]
    for w in warnings:
        print(("tolerated until its rewrite lands: " if w not in failing else "") + w)
    if run.returncode != 0:
        print(f"FAIL: doxygen exited {run.returncode}")
        return 1
    if failing:
        print(f"FAIL: {len(failing)} doxygen warnings (document every public symbol of include/ordinaut)")
        return 1
    index = os.path.join(output_dir, "html", "index.html")
    if not os.path.isfile(index):
        print(f"FAIL: doxygen wrote no {index}")
        return 1
    print(f"OK: API reference in {index} ({len(warnings) - len(failing)} tolerated warnings)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
