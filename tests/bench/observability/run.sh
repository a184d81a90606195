#!/usr/bin/env bash
# observability / events_demo benchmarks (not a test; figures go in the report).
#  1. GET /ext/observability/metrics under wrk -t2 -cCONNECTIONS, with every
#     built-in and the listener example loaded, beside GET /health (a bare
#     handler of the same server) in the same run. The original served 383
#     req/s on this endpoint; the target is >= 20x (7,660 req/s).
#  2. POST /ext/events_demo/publish/{name} under wrk, against the bus's own
#     publish rate in process (bench_publish: same bus type, the same
#     events_demo.* subscriber, 1, 2 and CONNECTIONS publishing threads).
#  3. With --redis-url support in the server and redis-server installed, 2. again
#     on the Redis Streams bus.
#
# usage: tests/bench/observability/run.sh [BUILD_DIR]     (default: build)
# env:   DURATION (10s), CONNECTIONS (32), EVENTS (400000, in-process loop)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=$(cd "${1:-$here/../../../build}" && pwd)
server=$build/reference-server/ordinaut-server
listener=$build/examples/listener
bench=$build/tests/bench/observability/bench_publish
duration=${DURATION:-10s}
connections=${CONNECTIONS:-32}
events=${EVENTS:-400000}
for f in "$server" "$listener/listener.so" "$bench"; do
  [[ -e $f ]] || { echo "missing $f: build first (ninja -C $build)" >&2; exit 1; }
done
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)" >&2; exit 1; }

tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$tmp"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
start_server() {  # start_server NAME [args...]; sets $port
  local name=$1; shift
  port=$(free_port)
  ORDINAUT_EXT_PATHS= "$server" --port "$port" --no-request-log --ext-path "$listener" "$@" \
    >/dev/null 2>"$tmp/$name.log" &
  pids+=($!)
  for _ in $(seq 1 500); do curl -sf -o /dev/null "http://127.0.0.1:$port/health" && return 0; sleep 0.01; done
  echo "server $name did not come up" >&2; cat "$tmp/$name.log" >&2; exit 1
}
rps() { awk '/^Requests\/sec/ {printf "%.0f", $2}' "$1"; }
p99_us() { awk '/^ +99%/ { v=$2; u=v; sub(/[0-9.]+/, "", u); sub(/[a-z]+$/, "", v);
                           f = (u=="us") ? 1 : (u=="ms") ? 1000 : 1000000; printf "%.0f", v*f }' "$1"; }
requests() { awk '/requests in/ {print $1}' "$1"; }
non2xx() { awk '/Non-2xx/ {print $NF}' "$1"; }
wrk_run() {  # wrk_run NAME URL [wrk args...]
  local name=$1 url=$2; shift 2
  wrk -t2 -c"$connections" -d2s "$@" "$url" >/dev/null  # warm-up
  wrk -t2 -c"$connections" -d"$duration" --latency "$@" "$url" >"$tmp/$name.wrk"
  local bad; bad=$(non2xx "$tmp/$name.wrk")
  [[ -z $bad ]] || { echo "$name: $bad non-2xx responses" >&2; cat "$tmp/$name.wrk" >&2; exit 1; }
}
metric() { curl -sf "http://127.0.0.1:$1/ext/observability/metrics" | awk -v s="$2" '$1 == s {print $2}'; }

echo "== metrics endpoint: wrk -t2 -c$connections -d$duration, $(nproc) cores"
start_server metrics
for path in /ext/webui/ /ext/mcp_http/ /ext/listener/received /ext/events_demo/recent /ext/nope; do
  curl -s -o /dev/null "http://127.0.0.1:$port$path"
done
curl -s -o /dev/null -XPOST -d '{"n":1}' "http://127.0.0.1:$port/ext/events_demo/publish/warm"
size=$(curl -s "http://127.0.0.1:$port/ext/observability/metrics" | wc -c)
lines=$(curl -s "http://127.0.0.1:$port/ext/observability/metrics" | grep -vc '^#')
wrk_run health "http://127.0.0.1:$port/health"
wrk_run metrics "http://127.0.0.1:$port/ext/observability/metrics"
printf "  %-34s %8s req/s   p99 %7s us\n" "GET /health (bare handler)" "$(rps "$tmp/health.wrk")" "$(p99_us "$tmp/health.wrk")"
printf "  %-34s %8s req/s   p99 %7s us   body %s bytes, %s samples\n" "GET /ext/observability/metrics" \
  "$(rps "$tmp/metrics.wrk")" "$(p99_us "$tmp/metrics.wrk")" "$size" "$lines"
printf "  metrics: %.1fx the original's 383 req/s (target >= 20x)\n" "$(echo "$(rps "$tmp/metrics.wrk") / 383" | bc -l)"

publish_bench() {  # publish_bench LABEL BUS_ARGS...   (server already started; $port set)
  local label=$1; shift
  # events_demo is lazy: load it before reading its counter.
  curl -s -o /dev/null -XPOST -d '{"n":0}' "http://127.0.0.1:$port/ext/events_demo/publish/bench"
  local before; before=$(metric "$port" ext_events_demo_published_total)
  wrk_run "publish-$label" "http://127.0.0.1:$port/ext/events_demo/publish/bench" -s "$here/publish.lua"
  local after; after=$(metric "$port" ext_events_demo_published_total)
  local http; http=$(rps "$tmp/publish-$label.wrk")
  printf "  %-34s %8s req/s   p99 %7s us   (%s events published by the server)\n" \
    "POST /ext/events_demo/publish ($label)" "$http" "$(p99_us "$tmp/publish-$label.wrk")" \
    "$(echo "$after - $before" | bc)"
  for t in 1 2 "$connections"; do
    local line; line=$("$bench" "$@" "$t" "$events")
    local rate; rate=$(echo "$line" | python3 -c 'import json,sys; print(json.load(sys.stdin)["publish_per_s"])')
    printf "  %-34s %8s publish/s   HTTP publish = %.3fx of it\n" "in-process $label publish, $t thread(s)" \
      "$rate" "$(echo "$http / $rate" | bc -l)"
  done
}

echo "== publish: wrk -t2 -c$connections -d$duration POST vs in-process bus publish ($events events)"
publish_bench memory memory

if "$server" --help | grep -q -- --redis-url && command -v redis-server >/dev/null; then
  rport=$(free_port)
  redis-server --port "$rport" --bind 127.0.0.1 --save "" --appendonly no >"$tmp/redis.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 1 200); do redis-cli -p "$rport" ping >/dev/null 2>&1 && break; sleep 0.01; done
  start_server redis --redis-url "redis://127.0.0.1:$rport/0"
  echo "== publish on the Redis Streams bus"
  publish_bench redis redis "redis://127.0.0.1:$rport/0"
else
  echo "== Redis variant skipped: ordinaut-server has no --redis-url option (or redis-server is missing)"
fi
