#!/usr/bin/env bash
# Load benchmark, one run, same machine: requests/s and p50/p99 latency (wrk) for
#   1. the origin directly (nginx returning a small JSON body)
#   2. nginx as a tuned reverse proxy (the reference: keep-alive upstream, same workers)
#   3. Sluice with no plugins
#   4. Sluice with kafka-logger, to an Apache Kafka 4 broker
#   5. Sluice with key-auth + limit-count + limit-req (limits never reached)
#   6. Sluice proxying POSTs with 1 KiB bodies, and
#   7. Sluice diverting the same POSTs into Kafka (kafka-divert, 202 after the ack)
# and the ratios between them. Both Sluice variants are routes of one Sluice process
# (`/plain/*` without plugins, `/logged/*` with kafka-logger). The targets are measured
# in interleaved rounds; ratios are taken within each round and the median reported,
# because a shared 2-core machine drifts.
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

ORIGIN=18081; NGINX=18082; SLUICE=18083; KAFKA=19093; ADMIN=19181

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

# Apache Kafka 4 (single KRaft node; topics are created on first use, 3 partitions).
pids+=("$(scripts/kafka-broker "$work/kafka" $KAFKA 3)")
cat > "$work/post.lua" <<'LUA'
wrk.method = "POST"
wrk.body = string.rep("x", 1024)
wrk.headers["Content-Type"] = "application/octet-stream"
LUA
cat > "$work/auth.lua" <<'LUA'
wrk.headers["apikey"] = "bench-api-key-0123456789"
LUA

cat > "$work/sluice.yaml" <<YML
server: { listen: ["127.0.0.1:$SLUICE"], threads: $THREADS, grace_period: 0s }
admin: { listen: "127.0.0.1:$ADMIN" }
kafka: { clusters: { default: { brokers: ["127.0.0.1:$KAFKA"] } } }
upstreams: { origin: { nodes: ["127.0.0.1:$ORIGIN"] } }
consumers: [{ name: bench, key-auth: { key: bench-api-key-0123456789 } }]
routes:
  - id: plain
    match: { paths: ["/plain/*"] }
    upstream: origin
  - id: logged
    match: { paths: ["/logged/*"] }
    upstream: origin
    plugins: { kafka-logger: { topic: bench-log, key: "{client_ip}" } }
  - id: secured
    match: { paths: ["/secured/*"] }
    upstream: origin
    plugins:
      key-auth: {}
      limit-count: { count: 1000000000, time_window: 1h, key: consumer }
      limit-req: { rate: 1000000000, burst: 1000, key: consumer }
  - id: divert
    match: { paths: ["/divert/*"], methods: [POST] }
    plugins: { kafka-divert: { topic: bench-divert, key: "{request_id}", idempotency: { scope: global } } }
YML
RUST_LOG=warn target/release/sluice -c "$work/sluice.yaml" >"$work/sluice.log" 2>&1 & pids+=($!)
for _ in $(seq 200); do curl -sf "127.0.0.1:$ADMIN/readyz" >/dev/null && break; sleep 0.1; done

run() { # name port path [wrk args] -> "name rps p50_ms p99_ms"
  local name=$1 port=$2 path=$3; shift 3
  wrk -t"$THREADS" -c"$CONNS" -d"${DUR}s" --latency "$@" "http://127.0.0.1:$port$path" > "$work/$name.wrk"
  if grep -q "Non-2xx" "$work/$name.wrk"; then echo "benchmark: $name had non-2xx answers:" >&2; cat "$work/$name.wrk" >&2; fi
  awk -v name="$name" '
    function ms(v) { if (v ~ /us$/) return v/1000; if (v ~ /ms$/) return v+0; if (v ~ /s$/) return v*1000; return v }
    /Requests\/sec/ { rps=$2 } / 50%/ { p50=ms($2) } / 99%/ { p99=ms($2) }
    END { printf "%s %.0f %.3f %.3f\n", name, rps, p50, p99 }' "$work/$name.wrk"
}

POST="-s $work/post.lua"
targets=("origin $ORIGIN /api/orders" "nginx $NGINX /api/orders" "sluice $SLUICE /plain/orders"
  "sluice+kafka-logger $SLUICE /logged/orders" "sluice+auth+limits $SLUICE /secured/orders -s $work/auth.lua"
  "sluice-post-1KiB $SLUICE /plain/orders $POST"
  "kafka-divert-1KiB $SLUICE /divert/orders $POST")
for t in "${targets[@]}"; do  # warm-up: connections and upstream pools
  set -- $t; wrk -t"$THREADS" -c"$CONNS" -d1s "${@:4}" "http://127.0.0.1:$2$3" >/dev/null 2>&1
done
# shellcheck disable=SC2086
all=$(for r in $(seq "$ROUNDS"); do for t in "${targets[@]}"; do set -- $t; echo "$r $(run "$@")"; done; done)
median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
col() { echo "$all" | awk -v n="$1" -v c="$2" '$2 == n { print $c }' | median; }
ratio() { # per-round ratio of column c: a / b, median over rounds
  echo "$all" | awk -v a="$1" -v b="$2" -v c="$3" '$2 == a { x[$1] = $c } $2 == b { y[$1] = $c }
    END { for (r in x) if (y[r] > 0) print x[r] / y[r] }' | median
}
sleep 2
events=$(curl -s "127.0.0.1:$ADMIN/metrics" | awk '
  /^sluice_kafka_events_attempted_total/ { a+=$2 }
  /^sluice_kafka_events_total.*outcome="acked"/ { k+=$2 }
  /^sluice_kafka_events_total.*outcome="failed"/ { f+=$2 }
  /^sluice_kafka_events_total.*outcome="discarded"/ { d+=$2 }
  END { printf "attempted=%d acked=%d failed=%d discarded=%d", a, k, f, d }')

ack_mean=$(curl -s "127.0.0.1:$ADMIN/metrics" | awk '
  /^sluice_divert_ack_duration_seconds_sum/ { s+=$2 } /^sluice_divert_ack_duration_seconds_count/ { c+=$2 }
  END { if (c > 0) printf "%.3f", 1000 * s / c; else print "n/a" }')
cpu=$(awk -F: '/model name/ { print $2; exit }' /proc/cpuinfo | sed 's/^ *//')
echo "# Sluice load benchmark — $(date -u +%Y-%m-%d), $(nproc) cores ($cpu)"
echo "# wrk -t$THREADS -c$CONNS -d${DUR}s x $ROUNDS interleaved rounds (medians over rounds),"
echo "# GET, 47-byte JSON body from the origin; origin, proxies, Apache Kafka and wrk all on this machine"
echo
echo "| target | requests/s | p50 ms | p99 ms |"
echo "|---|---:|---:|---:|"
for t in origin nginx sluice sluice+kafka-logger sluice+auth+limits sluice-post-1KiB kafka-divert-1KiB; do
  printf "| %s | %.0f | %.3f | %.3f |\n" "$t" "$(col $t 3)" "$(col $t 4)" "$(col $t 5)"
done
echo
printf -- "- sluice / nginx throughput: %.2f (per-round median)\n" "$(ratio sluice nginx 3)"
printf -- "- sluice / origin direct throughput: %.2f\n" "$(ratio sluice origin 3)"
printf -- "- kafka-logger throughput cost: %.1f%% (1 - logged/plain, per-round median)\n" \
  "$(awk -v r="$(ratio sluice+kafka-logger sluice 3)" 'BEGIN { print 100 * (1 - r) }')"
printf -- "- kafka-logger p99 added: %+.3f ms (median over rounds of logged - plain)\n" "$(echo "$all" | awk '$2 == "sluice" { p[$1] = $5 } $2 == "sluice+kafka-logger" { q[$1] = $5 } END { for (r in p) print q[r] - p[r] }' | median)"
printf -- "- key-auth + limit-count + limit-req throughput cost: %.1f%% (1 - secured/plain, per-round median)\n" \
  "$(awk -v r="$(ratio sluice+auth+limits sluice 3)" 'BEGIN { print 100 * (1 - r) }')"
printf -- "- kafka-divert / plain proxy, POST 1 KiB: %.2f throughput (per-round median)\n" "$(ratio kafka-divert-1KiB sluice-post-1KiB 3)"
echo "- kafka-divert mean wait for the broker's acknowledgement: $ack_mean ms (sluice_divert_ack_duration_seconds)"
echo "- Kafka events (logger + divert): $events"
