# Debian 12 packages Ordinaut needs, in one place. Sourced (not run) by
# tools/serve.sh, tools/test.sh and .ci/run; the README's commands use it too.
#
#   ORDINAUT_BUILD_PACKAGES  build the library, the server and the tests
#   ORDINAUT_TEST_PACKAGES   run the whole test suite (real Redis, wrk, nginx-light, promtool,
#                            Node for the MCP SDK client, headless Chromium)
#
# doctest has no pkg-config file: Meson finds it through CMake, hence cmake.
# libssl-dev: OpenSSL verifies JWT signatures and hashes bearer tokens (lib/auth);
# the openssl CLI makes the keys and tokens the auth tests use.
# clang-14 and libclang-rt-14-dev: GCC has no libFuzzer; tools/fuzz.sh builds
# the fuzz targets of tests/fuzz/ with clang++-14 -fsanitize=fuzzer (the
# runtime is in libclang-rt-14-dev), and tools/test.sh runs each for a while.
# The scheduler extension (lib/extensions/scheduler): libsqlite3-dev for its
# embedded store, libpq-dev for the PostgreSQL store several servers share,
# libical-dev to expand RRULEs (RFC 5545), libcctz-dev and tzdata to map local
# times to instants in IANA time zones across DST (GCC 12 has no zoned_time).
# postgresql-15: the scheduler's tests start a real server on a loopback port.
# doxygen: the API reference (meson compile docs-api) and its test docs_api,
# which fails on any undocumented public symbol of include/ordinaut.
# shellcheck shell=bash

ORDINAUT_BUILD_PACKAGES=(
  meson ninja-build pkg-config cmake g++ python3
  libcpp-httplib-dev rapidjson-dev libhiredis-dev libfmt-dev doctest-dev libssl-dev
  libsqlite3-dev libpq-dev libical-dev libcctz-dev tzdata
)
ORDINAUT_TEST_PACKAGES=(
  redis-server redis-tools wrk prometheus curl ca-certificates nodejs npm chromium openssl nginx-light
  clang-14 libclang-rt-14-dev postgresql-15 doxygen
)

# Prints the packages of the given lists (build, test or all) that are not
# installed, one per line.
ordinaut_missing_packages() {
  local pkgs=() p
  for list in "$@"; do
    case "$list" in
      build) pkgs+=("${ORDINAUT_BUILD_PACKAGES[@]}") ;;
      test) pkgs+=("${ORDINAUT_TEST_PACKAGES[@]}") ;;
      all) pkgs+=("${ORDINAUT_BUILD_PACKAGES[@]}" "${ORDINAUT_TEST_PACKAGES[@]}") ;;
      *) echo "ordinaut_missing_packages: unknown list '$list'" >&2; return 2 ;;
    esac
  done
  for p in "${pkgs[@]}"; do
    # NodeSource's nodejs bundles npm and conflicts with Debian's npm package:
    # a working npm is what we need, whichever package provides it.
    if [[ "$p" == npm ]] && command -v npm >/dev/null 2>&1; then continue; fi
    if [[ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" != "install ok installed" ]]; then
      echo "$p"
    fi
  done
}

# Runs a command as root: directly when we are root, through sudo otherwise.
ordinaut_as_root() {
  if [[ "$(id -u)" -eq 0 ]]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo "$@"
  else
    echo "error: '$*' needs root and sudo is not installed" >&2
    return 1
  fi
}

# Installs the missing packages of the given lists. With --update, always runs
# apt-get update first (CI); otherwise only when something is missing.
ordinaut_install_packages() {
  local update=0
  if [[ "${1:-}" == --update ]]; then update=1; shift; fi
  local missing
  mapfile -t missing < <(ordinaut_missing_packages "$@")
  if [[ ${#missing[@]} -eq 0 && $update -eq 0 ]]; then return 0; fi
  if [[ ${#missing[@]} -gt 0 ]]; then
    echo "== installing Debian packages: ${missing[*]}" >&2
  fi
  export DEBIAN_FRONTEND=noninteractive
  ordinaut_as_root apt-get update -q || return 1
  if [[ ${#missing[@]} -gt 0 ]]; then
    ordinaut_as_root apt-get install -y -q --no-install-recommends "${missing[@]}" || return 1
  fi
}

# Runs `npm ci` in every folder of the repository (first argument) holding a
# tracked package-lock.json. With --if-needed, only where node_modules is
# missing or older than the lock file.
ordinaut_npm_ci() {
  local if_needed=0
  if [[ "${1:-}" == --if-needed ]]; then if_needed=1; shift; fi
  local root="$1" lock dir
  local locks=()
  if git -C "$root" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    mapfile -t locks < <(git -C "$root" ls-files -- '*package-lock.json' | grep -v node_modules/)
  else
    mapfile -t locks < <(cd "$root" && find . -name package-lock.json -not -path '*/node_modules/*' \
      -not -path './build*' -not -path './subprojects/*' | sed 's|^\./||')
  fi
  for lock in "${locks[@]}"; do
    dir="$root/$(dirname "$lock")"
    if [[ $if_needed -eq 1 && -f "$dir/node_modules/.package-lock.json" &&
          "$dir/node_modules/.package-lock.json" -nt "$dir/package-lock.json" ]]; then
      continue
    fi
    echo "== npm ci in ${dir#"$root"/}" >&2
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error) || return 1
  done
}
