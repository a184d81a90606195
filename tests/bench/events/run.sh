#!/usr/bin/env bash
# Event bus benchmarks, side by side in one run (not a test; prints figures):
#   1. in-memory bus, publish -> handler, beside a bare hand-off baseline, and
#      its latency with one event in flight;
#   2. Redis bus publish() against redis-benchmark XADD at the same concurrency,
#      both the plain `XADD key * f v` and the exact command the bus sends;
#   3. Redis publish_batch() against pipelined redis-benchmark XADD;
#   4. Redis publish -> handler latency.
# Usage: run.sh path/to/bench_events   (meson test --benchmark runs it)
# Environment: EVENTS (Redis events per run, default 200000), CONCURRENCY
# (default "1 8 32"), MEMORY_EVENTS (default 2000000).
set -euo pipefail
bench=${1:?usage: run.sh path/to/bench_events}
events=${EVENTS:-200000}
memory_events=${MEMORY_EVENTS:-2000000}
concurrency=${CONCURRENCY:-1 8 32}

command -v redis-server >/dev/null || { echo "redis-server is not installed" >&2; exit 2; }
command -v redis-benchmark >/dev/null || { echo "redis-benchmark is not installed" >&2; exit 2; }

dir=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --dir "$dir" --logfile "$dir/redis.log" &
redis_pid=$!
trap 'kill "$redis_pid" 2>/dev/null; wait "$redis_pid" 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 100); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.05; done
url="redis://127.0.0.1:$port/0"
flush() { redis-cli -p "$port" flushall >/dev/null; }

# redis-benchmark --csv prints a header and "test","rps",... for the one test.
rb_rps() {
  # The test name (the command) may hold unescaped quotes and commas: count
  # from the end of the line, where the 7 figures are.
  redis-benchmark -p "$port" --csv "$@" |
    python3 -c 'import sys; line = sys.stdin.read().splitlines()[1]; print(line.rsplit(",", 7)[1].strip("\""))'
}
ratio() { python3 -c "import sys; print(f'{float(sys.argv[1]) / float(sys.argv[2]):.2f}')" "$1" "$2"; }
field() { python3 -c "import json, sys; print(json.loads(sys.argv[1])[sys.argv[2]])" "$1" "$2"; }

echo "# machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# 1. in-memory bus, publish -> handler (target >= 2,000,000 events/s), beside a bare"
echo "#    mutex+deque+condvar hand-off of the same events (no payload copy), alternating;"
echo "#    then the same with a worker that looks for events every 1 us instead of 4 us"
for round in 1 2 3 4 5; do
  "$bench" memory-baseline "$memory_events"
  "$bench" memory "$memory_events" 1 1
done
"$bench" memory "$memory_events" 1 1 1000
"$bench" memory "$memory_events" 1 2
"$bench" memory "$memory_events" 2 1
echo "# 1b. in-memory publish -> handler latency, one event in flight: published as soon as the"
echo "#     last was handled (worker polling), and 50 us later (worker asleep); poll 4 us and 1 us"
for poll in 4000 1000; do
  "$bench" memory-latency 20000 0 "$poll"
  "$bench" memory-latency 5000 50 "$poll"
done

# The exact command the bus sends for one event of bench_events.
payload='{"n":1,"status":"done"}'
same_shape=(XADD bench:events:bench.event MAXLEN '~' 100000 '*' topic bench.event source bench time 1718000000000 payload "$payload")

echo "# 2. Redis publish vs redis-benchmark XADD at the same concurrency (target >= 0.9x)"
for c in $concurrency; do
  flush
  plain=$(rb_rps -c "$c" -n "$events" XADD rb:plain '*' f v)
  flush
  shaped=$(rb_rps -c "$c" -n "$events" "${same_shape[@]}")
  flush
  ours=$("$bench" redis-publish "$url" "$c" "$events")
  echo "$ours"
  ours_rps=$(field "$ours" events_per_s)
  echo "{\"bench\":\"redis publish vs redis-benchmark\",\"concurrency\":$c,\"redis_benchmark_plain_xadd\":$plain,\"redis_benchmark_same_command\":$shaped,\"bus_publish\":$ours_rps,\"ratio_vs_plain\":$(ratio "$ours_rps" "$plain"),\"ratio_vs_same_command\":$(ratio "$ours_rps" "$shaped")}"
done

echo "# 3. batched publish (target >= 200,000 events/s)"
for b in 10 100 1000; do
  flush
  pipelined=$(rb_rps -c 1 -P "$b" -n $((events * 5)) "${same_shape[@]}")
  flush
  ours=$("$bench" redis-batch "$url" "$b" $((events * 5)))
  echo "$ours"
  echo "{\"bench\":\"redis publish_batch vs redis-benchmark -P\",\"batch\":$b,\"redis_benchmark_pipelined\":$pipelined,\"bus_publish_batch\":$(field "$ours" events_per_s),\"ratio\":$(ratio "$(field "$ours" events_per_s)" "$pipelined")}"
done

echo "# 4. Redis publish -> handler latency, one event in flight"
flush
"$bench" redis-latency "$url" 10000
