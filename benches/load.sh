#!/usr/bin/env bash
# Load benchmark, one run, same machine: requests/s and p50/p99 latency (wrk) for
#   1. the origin directly (nginx returning a small JSON body)
#   2. nginx as a tuned reverse proxy (the reference: keep-alive upstream, same workers)
#   3. Sluice with no plugins
#   4. Sluice with kafka-logger, to a Tansu broker
# and the ratios between them. The targets are measured in interleaved rounds and the
# median round is reported, because a shared 2-core machine is noisy.
# Usage: benches/load.sh [DURATION_S] [CONNECTIONS] [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
DUR="${1:-5}"; CONNS="${2:-32}"; ROUNDS="${3:-5}"; THREADS=2
scripts/ensure-deps --test --bench
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:/usr/sbin:$PATH"
cargo build --release --locked -p sluice >/dev/null

work=$(mktemp -d /tmp/sluice-bench.XXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

ORIGIN=18081; NGINX=18082; SLUICE=18083; SLUICE_LOG=18084; KAFKA=19093
ADMIN1=19181; ADMIN2=19182

mkdir -p "$work/nginx"
cat > "$work/nginx/nginx.conf" <<NGX
worker_processes $THREADS;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 100000;
  upstream origin { server 127.0.0.1:$ORIGIN; keepalive 128; }
  server {
    listen 127.0.0.1:$ORIGIN;
    location / { default_type application/json; return 200 '{"orders":[{"id":42,"item":"coffee","qty":2}]}'; }
  }
  server {
    listen 127.0.0.1:$NGINX;
    location / {
      proxy_pass http://origin;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host \$host;
      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
    }
  }
}
NGX
nginx -c "$work/nginx/nginx.conf" -p "$work/nginx" -g 'daemon off;' & pids+=($!)

tansu broker --listener-url tcp://127.0.0.1:$KAFKA --advertised-listener-url tcp://127.0.0.1:$KAFKA \
  --storage-engine memory://tansu/ >"$work/tansu.log" 2>&1 & pids+=($!)
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$KAFKA) 2>/dev/null && break; sleep 0.1; done
tansu topic create --broker tcp://127.0.0.1:$KAFKA --partitions 3 bench-log >/dev/null

sluice_conf() { # port admin plugins
  cat <<YML
server: { listen: ["127.0.0.1:$1"], threads: $THREADS, grace_period: 0s }
admin: { listen: "127.0.0.1:$2" }
kafka: { clusters: { default: { brokers: ["127.0.0.1:$KAFKA"] } } }
upstreams: { origin: { nodes: ["127.0.0.1:$ORIGIN"] } }
routes:
  - id: bench
    match: { paths: ["/*"] }
    upstream: origin
$3
YML
}
sluice_conf $SLUICE $ADMIN1 "" > "$work/plain.yaml"
sluice_conf $SLUICE_LOG $ADMIN2 "    plugins: { kafka-logger: { topic: bench-log, key: \"{client_ip}\" } }" > "$work/logger.yaml"
RUST_LOG=warn target/release/sluice -c "$work/plain.yaml" >"$work/plain.log" 2>&1 & pids+=($!)
RUST_LOG=warn target/release/sluice -c "$work/logger.yaml" >"$work/logger.log" 2>&1 & pids+=($!)
for port in $ADMIN1 $ADMIN2; do
  for _ in $(seq 200); do curl -sf "127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.1; done
done

run() { # name port -> "name rps p50_ms p99_ms"
  wrk -t"$THREADS" -c"$CONNS" -d"${DUR}s" --latency "http://127.0.0.1:$2/api/orders" > "$work/$1.wrk"
  awk -v name="$1" '
    function ms(v) { if (v ~ /us$/) return v/1000; if (v ~ /ms$/) return v+0; if (v ~ /s$/) return v*1000; return v }
    /Requests\/sec/ { rps=$2 } / 50%/ { p50=ms($2) } / 99%/ { p99=ms($2) }
    END { printf "%s %.0f %.3f %.3f\n", name, rps, p50, p99 }' "$work/$1.wrk"
}

targets=("origin $ORIGIN" "nginx $NGINX" "sluice $SLUICE" "sluice+kafka-logger $SLUICE_LOG")
for t in "${targets[@]}"; do  # warm-up: connections, pools, JIT-free but caches
  set -- $t; wrk -t"$THREADS" -c"$CONNS" -d1s "http://127.0.0.1:$2/api/orders" >/dev/null 2>&1
done
all=$(for r in $(seq "$ROUNDS"); do for t in "${targets[@]}"; do set -- $t; run "$1" "$2"; done; done)
# Per target, the round with the median throughput.
results=$(for t in "${targets[@]}"; do
  set -- $t
  echo "$all" | awk -v n="$1" '$1 == n' | sort -k2,2n | awk -v r="$ROUNDS" 'NR == int((r + 1) / 2)'
done)
sleep 2
events=$(curl -s "127.0.0.1:$ADMIN2/metrics" | awk '
  /^sluice_kafka_events_attempted_total/ { a+=$2 }
  /^sluice_kafka_events_total.*outcome="acked"/ { k+=$2 }
  /^sluice_kafka_events_total.*outcome="failed"/ { f+=$2 }
  /^sluice_kafka_events_total.*outcome="discarded"/ { d+=$2 }
  END { printf "attempted=%d acked=%d failed=%d discarded=%d", a, k, f, d }')

cpu=$(awk -F: '/model name/ { print $2; exit }' /proc/cpuinfo | sed 's/^ *//')
echo "# Sluice load benchmark — $(date -u +%Y-%m-%d), $(nproc) cores ($cpu)"
echo "# wrk -t$THREADS -c$CONNS -d${DUR}s x $ROUNDS interleaved rounds (median round shown), GET /api/orders,"
echo "# 47-byte JSON body; origin, proxies, broker and wrk all on this machine"
echo
echo "| target | requests/s | p50 ms | p99 ms |"
echo "|---|---:|---:|---:|"
echo "$results" | awk '{ printf "| %s | %s | %s | %s |\n", $1, $2, $3, $4 }'
echo
echo "$results" | awk '
  { rps[$1]=$2; p99[$1]=$4 }
  END {
    printf "- sluice / nginx throughput: %.2f\n", rps["sluice"]/rps["nginx"]
    printf "- sluice / origin direct throughput: %.2f\n", rps["sluice"]/rps["origin"]
    printf "- kafka-logger cost: %.1f%% throughput, %+.3f ms p99 (vs sluice without plugins)\n", 100*(1-rps["sluice+kafka-logger"]/rps["sluice"]), p99["sluice+kafka-logger"]-p99["sluice"]
  }'
echo "- kafka-logger events: $events"
