#!/usr/bin/env bash
# Builds the libFuzzer targets of tests/fuzz/ with clang++-14 and runs each for
# a bounded time under AddressSanitizer + UndefinedBehaviorSanitizer.
#
#   tools/fuzz.sh                       build, run every target 60 s
#   tools/fuzz.sh --seconds 600         the 10-minute run of the issue
#   tools/fuzz.sh --only manifest,router --jobs 2
#   tools/fuzz.sh --no-run              build only
#
# GCC has no libFuzzer, so the library sources a target needs are compiled
# here directly with clang (into BUILD/libordinaut-fuzz.a), not by Meson.
# The seed corpora in tests/fuzz/corpus/<target>/ are read, never written:
# new inputs go to BUILD/corpus/<target>/, crashes to BUILD/artifacts/.
# Ends with one line "N passed, N failed" (one test per target).
set -uo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="$root/build-fuzz"
seconds=60
jobs="$(nproc 2>/dev/null || echo 2)"
only=""
run=1
while [[ $# -gt 0 ]]; do
  case "$1" in
    --build-dir) build="$(realpath -m "$2")"; shift 2 ;;
    --seconds) seconds="$2"; shift 2 ;;
    --jobs|-j) jobs="$2"; shift 2 ;;
    --only) only="$2"; shift 2 ;;
    --no-run) run=0; shift ;;
    -h|--help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "tools/fuzz.sh: unknown option $1 (try --help)" >&2; exit 2 ;;
  esac
done

readonly ALL_TARGETS=(manifest router json_schema mcp_envelope event_payload static_path elf_note request_head)
# Library sources the targets call into (a static archive: each target links
# only what it uses).
readonly LIB_SOURCES=(
  lib/core/json.cpp lib/core/json_build.cpp lib/core/strings.cpp lib/core/capability.cpp lib/core/logging.cpp lib/core/version.cpp
  lib/http/http.cpp lib/http/static_files.cpp
  lib/host/manifest.cpp lib/host/abi_note.cpp
  lib/tools/tools.cpp lib/tools/resources.cpp lib/tools/prompts.cpp
  lib/events/events.cpp
  lib/extensions/mcp_http/protocol.cpp
  reference-server/request_reader.cpp
)

CXX="${CXX_FUZZ:-clang++-14}"
if ! command -v "$CXX" >/dev/null 2>&1; then
  echo "tools/fuzz.sh: $CXX not found: install clang-14 and libclang-rt-14-dev (tools/deps.sh)" >&2
  echo "0 passed, 1 failed"
  exit 1
fi
# pointer-overflow stays recoverable only so that tests/fuzz/ubsan.supp can
# silence RapidJSON 1.1.0's own case; halt_on_error=1 still stops on any other.
CXXFLAGS=(-std=c++20 -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
          -fsanitize-recover=pointer-overflow
          -I"$root/include" -I"$root/lib" -I"$root/lib/extensions/mcp_http" -I"$root/reference-server" -I"$root/tests/fuzz"
          -Wall -Wextra -Wno-unused-parameter -Wno-ambiguous-reversed-operator)
LIBS=(-lfmt -lpthread -ldl)

mkdir -p "$build/obj" "$build/corpus" "$build/artifacts" "$build/logs"
passed=0
failed=0
summary=()

# ---- build ------------------------------------------------------------------------
build_library() {
  python3 "$root/tools/embed.py" "$root/lib/host/manifest.schema.json" "$build/manifest_schema.cpp" \
    ordinaut::detail::kManifestSchema || return 1
  # Other flags than last time: everything is stale.
  if [[ "$(cat "$build/flags" 2>/dev/null)" != "$CXX ${CXXFLAGS[*]}" ]]; then
    rm -f "$build"/obj/*.o "$build/libordinaut-fuzz.a" "$build"/fuzz_*
    echo "$CXX ${CXXFLAGS[*]}" >"$build/flags"
  fi
  local newest_header
  newest_header="$(find "$root/include" "$root/lib" "$root/reference-server" -name '*.hpp' -newer "$build/libordinaut-fuzz.a" 2>/dev/null | head -1)"
  local sources=("${LIB_SOURCES[@]/#/$root/}" "$build/manifest_schema.cpp") stale=()
  local src obj
  for src in "${sources[@]}"; do
    obj="$build/obj/$(basename "${src%.cpp}").o"
    if [[ ! -f "$obj" || "$src" -nt "$obj" || -n "$newest_header" ]]; then stale+=("$src"); fi
  done
  if [[ ${#stale[@]} -gt 0 ]]; then
    echo "== fuzz: compiling ${#stale[@]} library sources with $CXX"
    printf '%s\n' "${stale[@]}" | xargs -P "$jobs" -I{} sh -c \
      'o="$1/obj/$(basename "${2%.cpp}").o"; shift 2; exec "$@" -fsanitize=fuzzer-no-link -c "$0" -o "$o"' \
      {} "$build" "$(basename {})" "$CXX" "${CXXFLAGS[@]}" || return 1
    rm -f "$build/libordinaut-fuzz.a"
  fi
  [[ -f "$build/libordinaut-fuzz.a" ]] || ar rcs "$build/libordinaut-fuzz.a" "$build"/obj/*.o
}

build_target() {  # build_target NAME
  local src="$root/tests/fuzz/fuzz_$1.cpp" exe="$build/fuzz_$1"
  if [[ -f "$exe" && "$exe" -nt "$src" && "$exe" -nt "$build/libordinaut-fuzz.a" &&
        "$exe" -nt "$root/tests/fuzz/fuzz_support.hpp" ]]; then
    return 0
  fi
  echo "== fuzz: linking fuzz_$1"
  "$CXX" "${CXXFLAGS[@]}" -fsanitize=fuzzer "$src" "$build/libordinaut-fuzz.a" "${LIBS[@]}" -o "$exe"
}

targets=("${ALL_TARGETS[@]}")
if [[ -n "$only" ]]; then IFS=',' read -r -a targets <<<"$only"; fi

if ! build_library; then
  echo "tools/fuzz.sh: building the library sources failed"
  echo "0 passed, ${#targets[@]} failed"
  exit 1
fi

# ---- run --------------------------------------------------------------------------
export ASAN_OPTIONS="${ASAN_OPTIONS:-halt_on_error=1:abort_on_error=1:detect_leaks=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-halt_on_error=1:abort_on_error=1:print_stacktrace=1}:suppressions=$root/tests/fuzz/ubsan.supp"

run_target() {  # run_target NAME: runs it, prints its summary line, returns its status
  local name="$1" exe="$build/fuzz_$1" log="$build/logs/$1.log"
  mkdir -p "$build/corpus/$name"
  "$exe" "$build/corpus/$name" "$root/tests/fuzz/corpus/$name" \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 \
    -artifact_prefix="$build/artifacts/$name-" >"$log" 2>&1
  local status=$?
  local execs
  execs="$(grep -o 'stat::number_of_executed_units: [0-9]*' "$log" | tail -1 | awk '{print $2}')"
  echo "fuzz_$name: exit $status, ${execs:-?} executions in ${seconds} s, log $log"
  return $status
}

for t in "${targets[@]}"; do
  if ! build_target "$t"; then
    summary+=("fuzz_$t: BUILD FAILED")
    failed=$((failed + 1))
  fi
done
if [[ $run -eq 1 ]]; then
  for t in "${targets[@]}"; do
    [[ -x "$build/fuzz_$t" ]] || continue
    if line="$(run_target "$t")"; then
      passed=$((passed + 1))
    else
      failed=$((failed + 1))
      line="$line  FAILED: $(ls -t "$build/artifacts/$t-"* 2>/dev/null | head -1)"
      # The finding itself, so that a CI log alone is enough to reproduce it.
      grep -m1 -E 'runtime error|ERROR: (AddressSanitizer|libFuzzer)' "$build/logs/$t.log" >&2
      grep -m1 '^SUMMARY:' "$build/logs/$t.log" >&2
      grep -m1 '^Base64:' "$build/logs/$t.log" >&2
    fi
    summary+=("$line")
    echo "$line"
  done
fi
echo
echo "== fuzz summary"
for s in "${summary[@]}"; do echo "   $s"; done
echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
