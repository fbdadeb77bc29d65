#!/usr/bin/env bash
# Memory bound under overload with Kafka down: the release binary mirrors 16 KiB request
# bodies (kafka-logger, include_req_body) to a cluster whose broker does not exist, at
# full speed (wrk), and the resident memory is sampled. Reports baseline and peak RSS
# against the bound the README documents:
#   baseline + queue_max_bytes x (1 + divert profiles) x ~1.3 + spool buffer_bytes + ~30 MiB
# Usage: benches/memory.sh [SECONDS] [QUEUE_MIB]
set -euo pipefail
cd "$(dirname "$0")/.."
DUR="${1:-30}"; QUEUE="${2:-64}"
scripts/ensure-deps --bench
export PATH="/usr/sbin:$PATH"
cargo build --release --locked -p sluice >/dev/null

work=$(mktemp -d /tmp/sluice-mem.XXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
ORIGIN=18181; PORT=18183; ADMIN=19191

cat > "$work/nginx.conf" <<NGX
worker_processes 1;
pid $work/nginx.pid;
error_log $work/error.log warn;
events { worker_connections 4096; }
http { access_log off; client_max_body_size 1m;
  server { listen 127.0.0.1:$ORIGIN; location / { return 200 'ok'; } } }
NGX
nginx -c "$work/nginx.conf" -p "$work" -g 'daemon off;' & pids+=($!)
cat > "$work/sluice.yaml" <<YML
server: { listen: ["127.0.0.1:$PORT"], threads: 2, grace_period: 0s }
admin: { listen: "127.0.0.1:$ADMIN" }
kafka: { clusters: { default: { brokers: ["127.0.0.1:1"], queue_max_bytes: ${QUEUE}MiB, delivery_timeout: 10m, flush_timeout: 1s } } }
upstreams: { origin: { nodes: ["127.0.0.1:$ORIGIN"] } }
routes:
  - id: big
    match: { paths: ["/*"] }
    upstream: origin
    plugins: { kafka-logger: { topic: mem, include_req_body: true, max_req_body_bytes: 16KiB } }
YML
RUST_LOG=error target/release/sluice -c "$work/sluice.yaml" >"$work/sluice.log" 2>&1 & pids+=($!)
spid=$!
for _ in $(seq 200); do curl -sf "127.0.0.1:$ADMIN/readyz" >/dev/null && break; sleep 0.1; done
cat > "$work/post.lua" <<'LUA'
wrk.method = "POST"
wrk.body = string.rep("x", 16384)
LUA
rss() { awk '/VmRSS/ { print $2 }' "/proc/$spid/status"; }
base=$(rss); peak=$base
wrk -t2 -c32 -d"${DUR}s" -s "$work/post.lua" "http://127.0.0.1:$PORT/upload" > "$work/wrk.txt" &
wpid=$!
while kill -0 "$wpid" 2>/dev/null; do r=$(rss); [ "$r" -gt "$peak" ] && peak=$r; sleep 0.2; done
metrics=$(curl -s "127.0.0.1:$ADMIN/metrics")
inflight=$(echo "$metrics" | awk '/^sluice_kafka_events_in_flight/ { s += $2 } END { print s + 0 }')
discarded=$(echo "$metrics" | awk '/^sluice_kafka_events_total.*outcome="discarded"/ { s += $2 } END { print s + 0 }')
bound=$((base + QUEUE * 1024 * 13 / 10 + 8 * 1024 + 30 * 1024))
echo "# Sluice memory with Kafka down — $(date -u +%Y-%m-%d), $(nproc) cores; ${DUR}s of wrk -t2 -c32 POST 16 KiB"
echo "- requests: $(awk '/requests in/ { print $1 }' "$work/wrk.txt") ($(awk '/Requests\/sec/ { print $2 }' "$work/wrk.txt")/s)"
echo "- queue_max_bytes ${QUEUE} MiB; events queued $inflight, discarded (queue_full) $discarded"
echo "- RSS baseline $((base / 1024)) MiB, peak $((peak / 1024)) MiB, documented bound $((bound / 1024)) MiB"
[ "$peak" -le "$bound" ] && echo "- within the bound" || { echo "- OVER THE BOUND"; exit 1; }
