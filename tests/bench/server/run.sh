#!/usr/bin/env bash
# Server benchmarks (not a test; figures go in the report):
#  1. wrk -t2 -c32 on srvtest's trivial GET /ext/srvtest/hello through
#     ordinaut-server, side by side in the same run (alternating, ROUNDS
#     rounds) with nginx-light (one worker process, `return 200 "hello"`) and
#     a bare cpp-httplib server answering the same route, tuned the same way;
#     ordinaut-server runs once with --no-request-log and once logging every
#     request to a file.
#  2. ordinaut-server holding 10,000 idle keep-alive connections
#     (idle_conns.py): its RSS, and wrk on /health meanwhile (req/s, p99),
#     beside /health without them.
#  3. start-up to /health 200 with the built-ins + 100 lazy extensions, and
#     resident memory (startup.py).
#
# usage: tests/bench/server/run.sh [BUILD_DIR]     (default: build)
# env:   DURATION (10s), THREADS (16), CONNECTIONS (32), ROUNDS (2), IDLE (10000)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=$(cd "${1:-$here/../../../build}" && pwd)
server=$build/reference-server/ordinaut-server
srvtest=$build/tests/server/extensions/srvtest
duration=${DURATION:-10s}
threads=${THREADS:-16}
connections=${CONNECTIONS:-32}
rounds=${ROUNDS:-2}
idle_count=${IDLE:-10000}
for f in "$server" "$srvtest/srvtest.so"; do
  [[ -e $f ]] || { echo "missing $f: build first (ninja -C $build)" >&2; exit 1; }
done
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)" >&2; exit 1; }
nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)
[[ -x $nginx_bin ]] || { echo "nginx is not installed (apt-get install nginx-light)" >&2; exit 1; }
ulimit -n "$(ulimit -Hn)"  # 10,000 idle connections

tmp=$(mktemp -d)
pid=
holder=
cleanup() {
  [[ -n $holder ]] && kill "$holder" 2>/dev/null
  [[ -n $pid ]] && kill "$pid" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT

c++ -std=c++20 -O2 -g "$here/bare_server.cpp" $(pkg-config --cflags --libs cpp-httplib) -pthread -o "$tmp/bare_server"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_ready() {
  for _ in $(seq 1 500); do
    curl -sf -o /dev/null "http://127.0.0.1:$1/ext/srvtest/hello" && return 0
    sleep 0.01
  done
  echo "server on port $1 did not come up" >&2; exit 1
}
rss_mib() { awk '/VmRSS/ {printf "%.1f", $2/1024}' "/proc/$1/status"; }
# wrk's 99% latency in microseconds.
p99_us() { awk '/^ +99%/ { v=$2; u=v; sub(/[0-9.]+/, "", u); sub(/[a-z]+$/, "", v);
                           f = (u=="us") ? 1 : (u=="ms") ? 1000 : 1000000; printf "%.0f", v*f }' "$1"; }
rps() { awk '/^Requests\/sec/ {printf "%.0f", $2}' "$1"; }
requests() { awk '/requests in/ {print $1}' "$1"; }
# CPU time (user + system, clock ticks) the process has used so far. CPU per
# request hardly depends on other load on the machine, unlike req/s.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
tick_us=$(( 1000000 / $(getconf CLK_TCK) ))

declare -A total_rps total_p99 count best_rps best_p99 total_cpu
run_one() {  # name, command...
  local name=$1; shift
  local port; port=$(free_port)
  "$@" --port "$port" >/dev/null 2>"$tmp/$name.log" &
  pid=$!
  wait_ready "$port"
  wrk -t2 -c"$connections" -d2s "http://127.0.0.1:$port/ext/srvtest/hello" >/dev/null  # warm-up
  local c0 c1; c0=$(cpu_ticks "$pid")
  wrk -t2 -c"$connections" -d"$duration" --latency "http://127.0.0.1:$port/ext/srvtest/hello" >"$tmp/$name.wrk"
  c1=$(cpu_ticks "$pid")
  local r p m cpu; r=$(rps "$tmp/$name.wrk"); p=$(p99_us "$tmp/$name.wrk"); m=$(rss_mib "$pid")
  cpu=$(echo "($c1 - $c0) * $tick_us / $(requests "$tmp/$name.wrk")" | bc -l)
  grep -q "Non-2xx" "$tmp/$name.wrk" && { echo "$name: non-2xx responses" >&2; cat "$tmp/$name.wrk" >&2; exit 1; }
  kill "$pid"; wait "$pid" 2>/dev/null || true; pid=
  printf "  %-26s %10s req/s   p99 %7s us   server CPU %5.2f us/request   RSS %6s MiB\n" "$name" "$r" "$p" "$cpu" "$m"
  total_cpu[$name]=$(echo "${total_cpu[$name]:-0} + $cpu" | bc -l)
  total_rps[$name]=$(( ${total_rps[$name]:-0} + r ))
  total_p99[$name]=$(( ${total_p99[$name]:-0} + p ))
  count[$name]=$(( ${count[$name]:-0} + 1 ))
  (( r > ${best_rps[$name]:-0} )) && best_rps[$name]=$r
  (( p < ${best_p99[$name]:-999999999} )) && best_p99[$name]=$p
  return 0
}
bare() { exec "$tmp/bare_server" "$2" "$threads"; }  # called as: bare --port N (exec: $! is the server)
# nginx-light, one process serving (master_process off: $! is the worker),
# the usual keep-alive tuning, no access log. Called as: nginx_server --port N
nginx_server() {
  local dir="$tmp/nginx-$2"
  mkdir -p "$dir/logs"
  cat >"$dir/nginx.conf" <<CONF
worker_processes 1;
master_process off;
daemon off;
pid $dir/nginx.pid;
error_log $dir/logs/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 100000;
  keepalive_timeout 30s;
  client_body_temp_path $dir/body;
  proxy_temp_path $dir/proxy;
  fastcgi_temp_path $dir/fastcgi;
  uwsgi_temp_path $dir/uwsgi;
  scgi_temp_path $dir/scgi;
  server {
    listen 127.0.0.1:$2;
    default_type "text/plain; charset=utf-8";
    location / { return 200 "hello"; }
  }
}
CONF
  exec "$nginx_bin" -p "$dir" -c "$dir/nginx.conf" 2>>"$dir/logs/stderr"
}
names=(nginx bare ordinaut_no_log ordinaut_request_log)

echo "== throughput: wrk -t2 -c$connections -d$duration, GET /ext/srvtest/hello, $threads worker threads, $(nproc) cores"
for round in $(seq 1 "$rounds"); do
  echo " round $round"
  run_one nginx nginx_server
  run_one bare bare
  run_one ordinaut_no_log "$server" --ext-path "$srvtest" --threads "$threads" --no-request-log
  run_one ordinaut_request_log "$server" --ext-path "$srvtest" --threads "$threads"
done
# Other load on the machine only ever lowers a figure, so the best of the
# rounds is shown beside the mean.
summary() {  # label, rps-of(name), p99-of(name)
  echo " $1"
  for name in "${names[@]}"; do
    local r p br bp nr np; r=$($2 "$name"); p=$($3 "$name"); br=$($2 bare); bp=$($3 bare)
    nr=$($2 nginx); np=$($3 nginx)
    printf "  %-22s %8s req/s  p99 %6s us  %.3fx nginx  %.3fx bare  p99 %.2fx nginx  %.2fx bare\n" \
      "$name" "$r" "$p" "$(echo "$r / $nr" | bc -l)" "$(echo "$r / $br" | bc -l)" \
      "$(echo "$p / $np" | bc -l)" "$(echo "$p / $bp" | bc -l)"
  done
}
mean_rps() { echo $(( total_rps[$1] / count[$1] )); }
mean_p99() { echo $(( total_p99[$1] / count[$1] )); }
top_rps() { echo "${best_rps[$1]}"; }
top_p99() { echo "${best_p99[$1]}"; }
summary "mean of $rounds rounds" mean_rps mean_p99
summary "best of $rounds rounds (highest throughput, lowest p99)" top_rps top_p99
echo " server CPU per request, mean of $rounds rounds"
for name in "${names[@]}"; do
  printf "  %-26s %5.2f us   %.3fx bare\n" "$name" "$(echo "${total_cpu[$name]} / ${count[$name]}" | bc -l)" \
    "$(echo "${total_cpu[$name]} / ${total_cpu[bare]}" | bc -l)"
done
echo "  targets: throughput >= 0.9x nginx and >= 1.0x bare; p99 <= 1.2x nginx"

echo "== $idle_count idle keep-alive connections on ordinaut-server; wrk -t2 -c$connections -d$duration on /health meanwhile"
port=$(free_port)
"$server" --ext-path "$srvtest" --threads "$threads" --no-request-log --port "$port" >/dev/null 2>"$tmp/idle-server.log" &
pid=$!
wait_ready "$port"
wrk -t2 -c"$connections" -d2s "http://127.0.0.1:$port/health" >/dev/null  # warm-up
wrk -t2 -c"$connections" -d"$duration" --latency "http://127.0.0.1:$port/health" >"$tmp/health-alone.wrk"
rss_alone=$(rss_mib "$pid")
python3 "$here/idle_conns.py" "$port" --count "$idle_count" >"$tmp/idle.out" &
holder=$!
for _ in $(seq 1 1200); do grep -q ready "$tmp/idle.out" 2>/dev/null && break; sleep 0.05; done
grep -q ready "$tmp/idle.out" || { echo "idle connections did not open" >&2; exit 1; }
rss_idle=$(rss_mib "$pid")
files=$(ls "/proc/$pid/fd" | wc -l)
wrk -t2 -c"$connections" -d"$duration" --latency "http://127.0.0.1:$port/health" >"$tmp/health-idle.wrk"
rss_after=$(rss_mib "$pid")
kill "$holder"; wait "$holder" 2>/dev/null || true; holder=
sleep 6  # a housekeeping round returns the freed memory
rss_released=$(rss_mib "$pid")
kill "$pid"; wait "$pid" 2>/dev/null || true; pid=
printf "  /health alone:                   %8s req/s  p99 %6s us  RSS %6s MiB\n" \
  "$(rps "$tmp/health-alone.wrk")" "$(p99_us "$tmp/health-alone.wrk")" "$rss_alone"
printf "  /health with %5s idle conns:    %8s req/s  p99 %6s us  RSS %6s MiB (before wrk %s MiB, %s open files)\n" \
  "$idle_count" "$(rps "$tmp/health-idle.wrk")" "$(p99_us "$tmp/health-idle.wrk")" "$rss_after" "$rss_idle" "$files"
printf "  after the idle connections closed:                         RSS %6s MiB\n" "$rss_released"
echo "  target: RSS <= 64 MiB with 10,000 idle connections + 1,000 streams + 200 slow clients"

echo "== start-up to /health 200 and resident memory (built-ins + 100 lazy extensions)"
python3 "$here/startup.py" "$server" "$srvtest" --count 100 --runs 10
echo "  targets: start-up <= 50 ms, RSS <= 16 MiB"
