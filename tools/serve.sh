#!/usr/bin/env bash
# Runs the reference server with its embedded defaults: the built-in extensions,
# the in-memory event bus (no Redis), http://127.0.0.1:8080.
#
# Installs the Debian build packages that are missing (tools/deps.sh), builds
# into build/ (or $ORDINAUT_BUILD_DIR) and execs ordinaut-server with every
# argument passed through, e.g.
#   tools/serve.sh --port 9000 --ext-path examples/hello
#   tools/serve.sh --help
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=tools/deps.sh
source "$root/tools/deps.sh"
build="${ORDINAUT_BUILD_DIR:-$root/build}"

ordinaut_install_packages build >&2
if [[ ! -f "$build/build.ninja" ]]; then
  # The server needs no test dependencies; tests build in their own folders.
  meson setup "$build" "$root" -Dtests=false >&2
fi
ninja -C "$build" >&2
exec "$build/reference-server/ordinaut-server" "$@"
