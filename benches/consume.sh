#!/usr/bin/env bash
# Consume-side benchmark, one run, same machine (Apache Kafka 4, nginx as the webhook receiver):
#   1. fill a 3-partition topic with N 1 KiB records through kafka-divert (wrk),
#   2. kafka-webhook: a fresh Sluice delivers them all to nginx (`204`), with 1000 keys
#      (per-key order) at concurrency 16 and 64, and without keys at concurrency 64;
#      records/s from the first delivery to the last commit-worthy one
#      (sluice_webhook_deliveries_total),
#   3. kafka-sse: one stream from `earliest` reads all N events (curl), events/s.
# Usage: benches/consume.sh [FILL_SECONDS] [sse]   (`sse`: only step 3)
set -euo pipefail
cd "$(dirname "$0")/.."
FILL="${1:-5}"
ONLY="${2:-}"
scripts/ensure-deps --test --bench
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:/usr/sbin:$PATH"
cargo build --release --locked -p sluice >/dev/null

work=$(mktemp -d /tmp/sluice-consume.XXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

RECEIVER=18091; KAFKA=19095; PORT=18093; ADMIN=19191

mkdir -p "$work/nginx"
cat > "$work/nginx/nginx.conf" <<NGX
worker_processes 1;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  client_body_buffer_size 16k;
  server { listen 127.0.0.1:$RECEIVER; location / { return 204; } }
}
NGX
nginx -c "$work/nginx/nginx.conf" -p "$work/nginx" -g 'daemon off;' & pids+=($!)

# Apache Kafka 4 (single KRaft node; topics are created on first use, 3 partitions).
pids+=("$(scripts/kafka-broker "$work/kafka" $KAFKA 3)")

metric() { curl -s "127.0.0.1:$ADMIN/metrics" | awk -v m="$1" -v l="$2" 'index($0, m) == 1 && index($0, l) { s += $NF } END { printf "%d", s }'; }

start_sluice() { # config-body -> waits for readiness
  cat > "$work/sluice.yaml" <<YML
server: { listen: ["127.0.0.1:$PORT"], threads: 2, grace_period: 0s }
admin: { listen: "127.0.0.1:$ADMIN" }
kafka: { clusters: { default: { brokers: ["127.0.0.1:$KAFKA"] } } }
$1
YML
  RUST_LOG=warn target/release/sluice -c "$work/sluice.yaml" >>"$work/sluice.log" 2>&1 & SLUICE_PID=$!; pids+=($!)
  for _ in $(seq 200); do curl -sf "127.0.0.1:$ADMIN/readyz" >/dev/null && break; sleep 0.1; done
}
stop_sluice() { kill "$SLUICE_PID"; wait "$SLUICE_PID" 2>/dev/null || true; }

# 1. Fill both topics through kafka-divert.
cat > "$work/post.lua" <<'LUA'
local n = 0
wrk.method = "POST"
wrk.body = string.rep("x", 1024)
wrk.headers["Content-Type"] = "application/octet-stream"
request = function() n = n + 1; return wrk.format(nil, "/keyed/k" .. (n % 1000)) end
LUA
start_sluice "routes:
  - { id: keyed, match: { paths: ['/keyed/*'], methods: [POST] }, plugins: { kafka-divert: { topic: keyed, key: '{path.1}', idempotency: { scope: global } } } }
  - { id: unkeyed, match: { paths: ['/unkeyed/*'], methods: [POST] }, plugins: { kafka-divert: { topic: unkeyed, key: '', idempotency: { scope: global } } } }"
wrk -t2 -c32 -d"${FILL}s" -s "$work/post.lua" "http://127.0.0.1:$PORT" >/dev/null
N=$(metric sluice_divert_requests_total 'outcome="accepted"')
sed 's#/keyed/k#/unkeyed/k#' "$work/post.lua" > "$work/post2.lua"
wrk -t2 -c32 -d"${FILL}s" -s "$work/post2.lua" "http://127.0.0.1:$PORT" >/dev/null
N2=$(( $(metric sluice_divert_requests_total 'outcome="accepted"') - N ))
stop_sluice

# 2. Webhook delivery rate.
webhook() { # name topic count concurrency
  start_sluice "subscriptions:
  - id: $1
    topics: [$2]
    kafka-webhook: { url: 'http://127.0.0.1:$RECEIVER/hook/{key}', concurrency: $4, allow_private_targets: true, secrets: ['whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw'] }"
  local t0 t1 first done_
  for _ in $(seq 6000); do [ "$(metric sluice_webhook_deliveries_total "subscription=\"$1\"")" -gt 0 ] && break; sleep 0.01; done
  t0=$(date +%s.%N); first=$(metric sluice_webhook_deliveries_total "subscription=\"$1\"")
  for _ in $(seq 60000); do done_=$(metric sluice_webhook_deliveries_total "subscription=\"$1\""); [ "$done_" -ge "$3" ] && break; sleep 0.05; done
  t1=$(date +%s.%N)
  local dead; dead=$(metric sluice_webhook_deliveries_total "outcome=\"dead_lettered\"")
  printf "| kafka-webhook %s, concurrency %s | %d | %.0f records/s | %d dead-lettered |\n" \
    "$1" "$4" "$3" "$(awk -v a="$t0" -v b="$t1" -v n="$(( done_ - first ))" 'BEGIN { print n / (b - a) }')" "$dead"
  stop_sluice
}

# 3. One SSE stream from the start of the topic.
sse() { # count
  start_sluice "routes:
  - { id: stream, match: { paths: ['/stream'], methods: [GET] }, plugins: { kafka-sse: { topic: keyed, start: earliest } } }"
  local t0 t1 got; t0=$(date +%s.%N)
  # grep stops at the Nth event and prints how many it saw (awk, mawk at least, reads
  # pipes in blocks and would see the last events late); curl ends on its next write, a
  # keep-alive comment, or gives up after 300 s so a stalled stream shows a short count.
  got=$({ curl -sN --max-time 300 "127.0.0.1:$PORT/stream" || true; } \
    | { grep -c -m "$1" '^id: ' || true; date +%s.%N > "$work/sse.done"; })
  t1=$(cat "$work/sse.done" 2>/dev/null || date +%s.%N)
  printf "| kafka-sse, one stream from earliest | %d of %d | %.0f events/s | |\n" "$got" "$1" "$(awk -v a="$t0" -v b="$t1" -v n="$got" 'BEGIN { print n / (b - a) }')"
  stop_sluice
}

cpu=$(awk -F: '/model name/ { print $2; exit }' /proc/cpuinfo | sed 's/^ *//')
echo "# Sluice consume benchmark — $(date -u +%Y-%m-%d), $(nproc) cores ($cpu); Apache Kafka 4, nginx receiver, 1 KiB records"
echo
echo "| what | records | rate | notes |"
echo "|---|---:|---:|---|"
if [ "$ONLY" != sse ]; then
  webhook keyed16 keyed "$N" 16
  webhook keyed64 keyed "$N" 64
  webhook unkeyed64 unkeyed "$N2" 64
fi
sse "$N"
