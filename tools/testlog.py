#!/usr/bin/env python3
"""Helpers for tools/test.sh: count test cases from Meson's test log, and list
the build targets a Meson test suite needs.

  testlog.py count BUILDDIR/meson-logs/testlog.json [--label LABEL] [--json OUT]
      Counts test CASES. A doctest executable prints
        [doctest] test cases: X | Y passed | Z failed | W skipped
      and contributes Y passed and Z failed. Any other Meson test counts as one
      case by its result. A test whose result is a failure (FAIL, TIMEOUT,
      ERROR, UNEXPECTEDPASS) but whose doctest lines report no failed case --
      a crash, a sanitizer report at exit, a timeout -- counts one more failed
      case, so a failure is never hidden. SKIP counts neither way.

  testlog.py runnable BUILDDIR [SUITE]
      After a failed build: prints "RUN <test>" for each test (of SUITE, if
      given) whose program and declared dependencies exist, and "MISSING
      <test>" for the others, which cannot run.

  testlog.py targets BUILDDIR SUITE
      Prints, one per line, the ninja targets (paths relative to BUILDDIR) of
      the tests in SUITE and everything those tests declare in `depends`, plus
      every executable and shared module outside tests/ (the server, the
      built-in extensions, the examples), which tests commonly start or load.
"""

import argparse
import json
import os
import re
import subprocess
import sys

DOCTEST_SUMMARY = re.compile(
    r"^\[doctest\] test cases:\s*(\d+)\s*\|\s*(\d+) passed\s*\|\s*(\d+) failed\s*\|\s*(\d+) skipped", re.M)
FAILED_RESULTS = {"FAIL", "TIMEOUT", "ERROR", "UNEXPECTEDPASS", "INTERRUPT"}
PASSED_RESULTS = {"OK", "EXPECTEDFAIL"}


def count(path, label):
    passed = failed = skipped_tests = meson_tests = 0
    failures = []
    skipped = []
    try:
        lines = open(path, encoding="utf-8", errors="replace").read().splitlines()
    except FileNotFoundError:
        lines = []
    for line in lines:
        if not line.strip():
            continue
        entry = json.loads(line)
        meson_tests += 1
        name = entry.get("name", "?")
        result = entry.get("result", "ERROR")
        output = (entry.get("stdout") or "") + "\n" + (entry.get("stderr") or "")
        summaries = DOCTEST_SUMMARY.findall(output)
        if result == "SKIP":
            skipped_tests += 1
            skipped.append(name)
            continue
        if summaries:
            p = sum(int(s[1]) for s in summaries)
            f = sum(int(s[2]) for s in summaries)
            if result in FAILED_RESULTS and f == 0:
                f = 1  # crashed, timed out or failed after its cases passed
            passed += p
            failed += f
            if f:
                failures.append(f"{name} ({result}, {f} failed case{'s' if f != 1 else ''})")
        elif result in PASSED_RESULTS:
            passed += 1
        else:
            failed += 1
            failures.append(f"{name} ({result})")
    return {
        "label": label,
        "passed": passed,
        "failed": failed,
        "meson_tests": meson_tests,
        "skipped_tests": skipped_tests,
        "failures": failures,
        "skipped": skipped,
    }


def introspect(builddir, what):
    out = subprocess.run(["meson", "introspect", builddir, what], check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def targets(builddir, suite):
    tests = introspect(builddir, "--tests")
    all_targets = introspect(builddir, "--targets")
    by_id = {t["id"]: t for t in all_targets}
    wanted = set()
    for test in tests:
        suites = [s.split(":", 1)[-1] for s in test.get("suite", [])]
        if suite not in suites:
            continue
        wanted.update(test.get("depends", []))
        # The test's own program, when Meson built it.
        for t in all_targets:
            if test["cmd"] and test["cmd"][0] in t.get("filename", []):
                wanted.add(t["id"])
    if not wanted:
        return []
    with open(os.path.join(builddir, "meson-info", "meson-info.json"), encoding="utf-8") as f:
        tests_dir = os.path.join(json.load(f)["directories"]["source"], "tests") + os.sep
    for t in all_targets:
        if t["type"] in ("executable", "shared module", "shared library") and \
                not t.get("defined_in", "").startswith(tests_dir):
            wanted.add(t["id"])
    files = []
    for target_id in sorted(wanted):
        t = by_id.get(target_id)
        if t is None:
            continue
        files += [os.path.relpath(f, builddir) for f in t.get("filename", [])]
    return sorted(set(files))


def runnable(builddir, suite):
    by_id = {t["id"]: t for t in introspect(builddir, "--targets")}
    for test in introspect(builddir, "--tests"):
        suites = [s.split(":", 1)[-1] for s in test.get("suite", [])]
        if suite and suite not in suites:
            continue
        needed = [test["cmd"][0]] if test.get("cmd") else []
        for target_id in test.get("depends", []):
            needed += by_id.get(target_id, {}).get("filename", [])
        ok = all(os.path.exists(f) for f in needed)
        print(("RUN " if ok else "MISSING ") + test["name"])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    c = sub.add_parser("count")
    c.add_argument("testlog")
    c.add_argument("--label", default="tests")
    c.add_argument("--json", help="also write the counts to this file")
    r = sub.add_parser("runnable")
    r.add_argument("builddir")
    r.add_argument("suite", nargs="?", default="")
    t = sub.add_parser("targets")
    t.add_argument("builddir")
    t.add_argument("suite")
    args = parser.parse_args()

    if args.command == "count":
        r = count(args.testlog, args.label)
        print(f"== {r['label']}: {r['passed']} passed, {r['failed']} failed "
              f"(cases from {r['meson_tests']} meson tests, {r['skipped_tests']} skipped)")
        for f in r["failures"]:
            print(f"   failed: {f}")
        for s in r["skipped"]:
            print(f"   skipped: {s}")
        if args.json:
            with open(args.json, "w", encoding="utf-8") as out:
                json.dump(r, out)
        return 0
    if args.command == "runnable":
        runnable(args.builddir, args.suite)
        return 0
    for f in targets(args.builddir, args.suite):
        print(f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
