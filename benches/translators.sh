#!/usr/bin/env bash
# Protocol translator benchmark, one run, same machine (Apache Kafka 4, nginx origin):
#   1. kafka-websocket: one connection publishing N 1 KiB messages with a window of 64
#      (messages/s acknowledged by the broker), then one connection reading them all
#      from `earliest` (messages/s);
#   2. kafka-request-reply: C clients for S seconds against a responder (plain
#      librdkafka) that answers every request record; round trips/s, p50 and p99;
#   3. kafka-cache: wrk GETs of one 1 KiB item from the view, against the same GET
#      proxied by Sluice to an nginx origin returning that body; requests/s and p99.
# Usage: benches/translators.sh [N] [CLIENTS] [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
N="${1:-20000}"; C="${2:-16}"; S="${3:-10}"
scripts/ensure-deps --test --bench
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:/usr/sbin:$PATH"
cargo build --release --locked -p sluice -p sluice-benches --bin sluice --bin translate-load >/dev/null

work=$(mktemp -d /tmp/sluice-translate.XXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

ORIGIN=18191; KAFKA=19195; PORT=18193; ADMIN=19291
BODY=$(head -c 1024 /dev/zero | tr '\0' 'x')

mkdir -p "$work/nginx"
cat > "$work/nginx/nginx.conf" <<NGX
worker_processes 1;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log warn;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000;
  server { listen 127.0.0.1:$ORIGIN; location / { default_type application/json; return 200 '$BODY'; } } }
NGX
nginx -c "$work/nginx/nginx.conf" -p "$work/nginx" -g 'daemon off;' & pids+=($!)
pids+=("$(scripts/kafka-broker "$work/kafka" $KAFKA 3)")

cat > "$work/sluice.yaml" <<YML
server: { listen: ["127.0.0.1:$PORT"], threads: 2, grace_period: 0s }
admin: { listen: "127.0.0.1:$ADMIN" }
kafka: { clusters: { default: { brokers: ["127.0.0.1:$KAFKA"] } } }
upstreams: { origin: { nodes: ["127.0.0.1:$ORIGIN"] } }
routes:
  - { id: ws-pub, match: { paths: ["/ws-pub"] }, plugins: { kafka-websocket: { publish: { topic: ws-bench, max_in_flight: 64 } } } }
  - { id: ws-sub, match: { paths: ["/ws-sub"] }, plugins: { kafka-websocket: { subscribe: { topic: ws-bench, start: earliest } } } }
  - { id: rr, match: { paths: ["/rr"] }, plugins: { kafka-request-reply: { topic: rr-requests, reply_topic: rr-replies, timeout: 10s } } }
  - { id: cache, match: { paths: ["/cache/*"] }, plugins: { kafka-cache: { topic: cache-bench, key: "{path.1}" } } }
  - { id: proxied, match: { paths: ["/proxied/*"] }, upstream: origin }
YML
# The topics exist before Sluice reads them (the broker creates them on first produce).
cat > "$work/seed.yaml" <<YML
server: { listen: ["127.0.0.1:$PORT"], threads: 1, grace_period: 0s }
admin: { listen: "127.0.0.1:$ADMIN" }
kafka: { clusters: { default: { brokers: ["127.0.0.1:$KAFKA"] } } }
routes:
  - { id: seed, match: { paths: ["/seed/*"] }, plugins: { kafka-divert: { topic: '{path.1}', topics_allowed: [rr-requests, rr-replies, cache-bench, ws-bench], key: item, idempotency: { scope: global } } } }
YML
RUST_LOG=warn target/release/sluice -c "$work/seed.yaml" >>"$work/sluice.log" 2>&1 & seed=$!
for _ in $(seq 300); do curl -sf "127.0.0.1:$ADMIN/readyz" >/dev/null && break; sleep 0.1; done
for t in rr-requests rr-replies cache-bench ws-bench; do
  curl -sf -o /dev/null -X POST --data-binary "$BODY" "127.0.0.1:$PORT/seed/$t"
done
kill "$seed"; wait "$seed" 2>/dev/null || true

RUST_LOG=warn target/release/sluice -c "$work/sluice.yaml" >>"$work/sluice.log" 2>&1 & pids+=($!)
for _ in $(seq 600); do curl -sf "127.0.0.1:$ADMIN/readyz" >/dev/null && break; sleep 0.1; done

wrk_row() { # name path
  local out rps p99
  out=$(wrk -t2 -c32 -d"${S}s" --latency "http://127.0.0.1:$PORT$2")
  rps=$(awk '/Requests\/sec/ { print $2 }' <<<"$out")
  p99=$(awk '$1 == "99%" { print $2 }' <<<"$out")
  printf "| %s | %s s | %.0f requests/s | p99 %s |\n" "$1" "$S" "$rps" "$p99"
}

cpu=$(awk -F: '/model name/ { print $2; exit }' /proc/cpuinfo | sed 's/^ *//')
echo "# Sluice translator benchmark — $(date -u +%Y-%m-%d), $(nproc) cores ($cpu); Apache Kafka 4; benches/translators.sh $N $C $S"
echo
echo "| what | count | rate | notes |"
echo "|---|---:|---:|---|"
target/release/translate-load ws-publish "$PORT" /ws-pub "$N" 64
target/release/translate-load ws-subscribe "$PORT" /ws-sub "$N"
target/release/translate-load request-reply "$PORT" /rr "127.0.0.1:$KAFKA" rr-requests "$C" "$S"
wrk_row "kafka-cache, one 1 KiB item (wrk, 32 connections)" /cache/item
wrk_row "the same GET proxied to nginx (wrk, 32 connections)" /proxied/item
