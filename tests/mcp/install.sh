#!/bin/sh
# Installs the npm packages the MCP tests use (official SDK, conformance suite)
# exactly as pinned in package-lock.json.
set -eu
cd "$(dirname "$0")"
if ! command -v npm >/dev/null 2>&1; then
  echo "install.sh: npm is missing (Debian: apt-get install nodejs npm)" >&2
  exit 1
fi
npm ci --no-audit --no-fund
