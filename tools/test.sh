#!/usr/bin/env bash
# Builds Ordinaut and runs the whole test suite four ways:
#   normal      every Meson test                       build dir PREFIX
#   asan        every Meson test, ASan + UBSan         build dir PREFIX-asan
#   tsan        Meson suite 'concurrency', TSan        build dir PREFIX-tsan
#   fuzz        each libFuzzer target of tests/fuzz/ for ORDINAUT_FUZZ_SECONDS
#               (default 30), ASan + UBSan, clang++-14 (tools/fuzz.sh)
#                                                      build dir PREFIX-fuzz
# then prints one closing line "N passed, N failed", where N counts test cases
# over all runs (doctest cases, plus one per non-doctest Meson test, plus one
# per fuzz target; see docs/testing.md). Exits non-zero if anything failed.
#
# Installs missing Debian packages (tools/deps.sh) and runs `npm ci` where
# node_modules is missing, so it works on a fresh Debian 12 machine.
#
# usage: tools/test.sh [--prefix DIR] [--only normal,asan,tsan] [--jobs N]
#                      [--no-install] [-- extra meson test arguments]
set -uo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=tools/deps.sh
source "$root/tools/deps.sh"

prefix="$root/build-test"
only="normal,asan,tsan,fuzz"
jobs="$(nproc 2>/dev/null || echo 2)"
install=1
extra=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --prefix) prefix="$(realpath -m "$2")"; shift 2 ;;
    --prefix=*) prefix="$(realpath -m "${1#*=}")"; shift ;;
    --only) only="$2"; shift 2 ;;
    --only=*) only="${1#*=}"; shift ;;
    --jobs|-j) jobs="$2"; shift 2 ;;
    --jobs=*) jobs="${1#*=}"; shift ;;
    --no-install) install=0; shift ;;
    --) shift; extra=("$@"); break ;;
    -h|--help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "tools/test.sh: unknown option $1 (try --help)" >&2; exit 2 ;;
  esac
done

# The concurrent suites run under ThreadSanitizer; tests opt in with
# `suite : ['concurrency', ...]` in their meson.build.
readonly TSAN_SUITE=concurrency

script_started=$SECONDS
total_passed=0
total_failed=0
summaries=()

record() {  # record LABEL PASSED FAILED
  summaries+=("$1: $2 passed, $3 failed")
  total_passed=$((total_passed + $2))
  total_failed=$((total_failed + $3))
}

finish() {
  echo
  echo "== summary"
  local s
  for s in "${summaries[@]}"; do echo "   $s"; done
  echo "   wall time: $((SECONDS - script_started)) s"
  echo "$total_passed passed, $total_failed failed"
  [[ $total_failed -eq 0 ]]
  exit $?
}

if [[ $install -eq 1 ]]; then
  if ! ordinaut_install_packages all; then
    echo "tools/test.sh: could not install the Debian packages listed in tools/deps.sh" >&2
    record "setup (Debian packages)" 0 1
    finish
  fi
  if ! ordinaut_npm_ci --if-needed "$root"; then
    echo "tools/test.sh: npm ci failed" >&2
    record "setup (npm ci)" 0 1
    finish
  fi
fi

# GCC 12's ThreadSanitizer aborts with "unexpected memory mapping" on kernels
# that randomise mmap with more bits than it knows. When a probe shows that,
# run the tests without address randomisation (setarch -R), if allowed.
tsan_wrapper() {  # tsan_wrapper ARRAY_NAME: appends --wrapper to it when needed
  local -n out="$1"
  local probe
  probe="$(mktemp -d)"
  printf '#include <thread>\nint main() { std::thread t([] {}); t.join(); }\n' >"$probe/p.cpp"
  if g++ -fsanitize=thread -o "$probe/p" "$probe/p.cpp" 2>/dev/null && ! "$probe/p" >/dev/null 2>&1; then
    if setarch "$(uname -m)" -R "$probe/p" >/dev/null 2>&1; then
      echo "== tsan: this kernel's mmap randomisation breaks TSan; running tests under setarch -R"
      out+=(--wrapper "setarch $(uname -m) -R")
    else
      echo "== tsan: WARNING: TSan cannot run on this kernel and setarch -R is not permitted"
    fi
  fi
  rm -rf "$probe"
}

# run_variant NAME BUILDDIR SUITE(or "") TIMEOUT_MULTIPLIER MESON_SETUP_ARGS...
run_variant() {
  local name="$1" dir="$2" suite="$3" multiplier="$4"
  shift 4
  local started=$SECONDS
  echo
  echo "== $name: configure $dir $*"
  if [[ ! -f "$dir/build.ninja" ]]; then
    if ! meson setup "$dir" "$root" "$@"; then
      record "$name (configure failed)" 0 1
      return
    fi
  fi
  local build_targets=()
  if [[ -n "$suite" ]]; then
    mapfile -t build_targets < <(python3 "$root/tools/testlog.py" targets "$dir" "$suite")
    if [[ ${#build_targets[@]} -eq 0 ]]; then
      echo "== $name: no test is in suite '$suite'; nothing to run"
      record "$name (suite $suite is empty)" 0 0
      return
    fi
  fi
  echo "== $name: build"
  # -k 0: build everything that can be built, so that one broken file does not
  # hide the results of every other test; the failure still counts.
  local selected=() missing=() kind test_name
  if ! ninja -C "$dir" -j "$jobs" -k 0 "${build_targets[@]}"; then
    record "$name (build failed)" 0 1
    # Meson refuses to run anything when one program is missing: run the
    # tests that were built by name, and count the others as failed.
    while read -r kind test_name; do
      if [[ "$kind" == RUN ]]; then selected+=("$test_name"); else missing+=("$test_name"); fi
    done < <(python3 "$root/tools/testlog.py" runnable "$dir" "$suite")
    echo "== $name: BUILD FAILED; ${#missing[@]} tests were not built: ${missing[*]}"
    if [[ ${#selected[@]} -eq 0 ]]; then
      record "$name (tests not built)" 0 "${#missing[@]}"
      return
    fi
  fi
  echo "== $name: test"
  local args=(-C "$dir" --no-rebuild --print-errorlogs --timeout-multiplier "$multiplier")
  [[ -n "$suite" ]] && args+=(--suite "$suite")
  [[ "$name" == tsan ]] && tsan_wrapper args
  rm -f "$dir/meson-logs/testlog.json"
  meson test "${args[@]}" "${extra[@]}" "${selected[@]}"
  local counts
  counts="$(python3 "$root/tools/testlog.py" count "$dir/meson-logs/testlog.json" --label "$name" \
            --json "$dir/meson-logs/case-counts.json")"
  echo "$counts"
  cp -f "$dir/meson-logs/testlog.json" "$dir/meson-logs/testlog-$name.json" 2>/dev/null
  local p f
  read -r p f < <(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["passed"], d["failed"])' \
                  "$dir/meson-logs/case-counts.json")
  if [[ ! -s "$dir/meson-logs/testlog.json" ]]; then
    echo "== $name: meson test produced no results"
    f=$((f + 1))
  fi
  f=$((f + ${#missing[@]}))  # tests whose programs did not build
  record "$name ($((SECONDS - started)) s)" "$p" "$f"
}

# Sanitizer reports must fail the test. Meson sets similar defaults when these
# are unset; ours add leak checking and keep UBSan's stack traces.
export ASAN_OPTIONS="${ASAN_OPTIONS:-halt_on_error=1:abort_on_error=1:detect_leaks=1:print_summary=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-halt_on_error=1:abort_on_error=1:print_stacktrace=1:print_summary=1}"
export TSAN_OPTIONS="${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1}"
if [[ -f "$root/tools/lsan.supp" && -z "${LSAN_OPTIONS:-}" ]]; then
  export LSAN_OPTIONS="suppressions=$root/tools/lsan.supp:print_suppressions=0"
fi
if [[ -f "$root/tools/tsan.supp" ]]; then
  export TSAN_OPTIONS="$TSAN_OPTIONS:suppressions=$root/tools/tsan.supp"
fi

# run_fuzz BUILDDIR: every fuzz target once, for a bounded time; one case each.
run_fuzz() {
  local dir="$1" started=$SECONDS seconds="${ORDINAUT_FUZZ_SECONDS:-30}"
  echo
  echo "== fuzz: tools/fuzz.sh --seconds $seconds --build-dir $dir"
  local out last p f
  out="$(mktemp)"
  "$root/tools/fuzz.sh" --seconds "$seconds" --jobs "$jobs" --build-dir "$dir" 2>&1 | tee "$out"
  last="$(tail -1 "$out")"
  rm -f "$out"
  if [[ "$last" =~ ^([0-9]+)\ passed,\ ([0-9]+)\ failed$ ]]; then
    p="${BASH_REMATCH[1]}"
    f="${BASH_REMATCH[2]}"
  else
    p=0
    f=1
  fi
  record "fuzz ($((SECONDS - started)) s)" "$p" "$f"
}

IFS=',' read -r -a variants <<<"$only"
for v in "${variants[@]}"; do
  case "$v" in
    normal) run_variant normal "$prefix" "" 1 ;;
    # Sanitizer builds at -O0 (buildtype=debug): GCC 12 compiles instrumented
    # code about 7x faster than at -O2, which matters more on 2 cores than
    # the tests' run time, mostly spent waiting on sockets and processes.
    asan) run_variant asan+ubsan "$prefix-asan" "" 3 --buildtype=debug -Db_sanitize=address,undefined \
            -Db_lundef=false ;;
    tsan) run_variant tsan "$prefix-tsan" "$TSAN_SUITE" 5 --buildtype=debug -Db_sanitize=thread -Db_lundef=false ;;
    fuzz) run_fuzz "$prefix-fuzz" ;;
    *) echo "tools/test.sh: unknown variant '$v' (normal, asan, tsan, fuzz)" >&2; record "$v (unknown variant)" 0 1 ;;
  esac
done
finish
