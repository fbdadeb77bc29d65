#!/usr/bin/env bash
# Instructions per request (valgrind callgrind: counts, not seconds, so the figure does
# not move with whatever else the machine is doing) of bare Pingora, bare Pingora with
# Sluice's upstream timeouts, and Sluice (no Kafka cluster: a route without plugins, and
# one with key-auth, consumer-restriction and limit-count), each with one thread, proxying GETs over one keep-alive connection to an nginx origin. Each
# proxy runs twice, with N1 and N2 requests; the difference of the totals divided by
# N2 - N1 removes start-up and shutdown. User space only (the kernel's share is not
# counted).
# Usage: benches/instructions.sh [N1] [N2] [SLUICE_BINARY]
set -euo pipefail
cd "$(dirname "$0")/.."
N1="${1:-500}"; N2="${2:-3500}"
scripts/ensure-deps --bench
command -v valgrind >/dev/null 2>&1 || { echo "instructions.sh: valgrind not found (apt install valgrind)" >&2; exit 1; }
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:/usr/sbin:$PATH"
cargo build --release --locked -p sluice -p bare-pingora >/dev/null
SLUICE_BIN="${3:-target/release/sluice}"
work=$(mktemp -d /tmp/sluice-instr.XXXX)
ORIGIN=18091; PROXY=18092; ADMIN=18093
cat > "$work/origin.conf" <<NGX
worker_processes 1;
pid $work/origin.pid;
error_log $work/origin.err warn;
events { worker_connections 1024; }
http { access_log off; keepalive_requests 1000000;
  server { listen 127.0.0.1:$ORIGIN;
    location / { default_type application/json; return 200 '{"orders":[{"id":42,"item":"coffee","qty":2}]}'; } } }
NGX
cat > "$work/sluice.yaml" <<YML
server: { listen: ["127.0.0.1:$PROXY"], threads: 1, grace_period: 0s }
admin: { listen: "127.0.0.1:$ADMIN" }
upstreams: { origin: { nodes: ["127.0.0.1:$ORIGIN"] } }
consumers:
  - { name: bench, key-auth: { key: bench-key-0123456789 } }
routes:
  - { id: plain, match: { paths: ["/plain/*"] }, upstream: origin }
  - id: guarded
    match: { paths: ["/guarded/*"] }
    upstream: origin
    plugins:
      key-auth: {}
      consumer-restriction: { allow: [bench] }
      limit-count: { count: 100000000, time_window: 60s }
YML
nginx -c "$work/origin.conf" -p "$work" -g 'daemon off;' & origin=$!
trap 'kill $origin 2>/dev/null; wait 2>/dev/null' EXIT

measure() { # name path command... -> instructions per request
  local name=$1 path=$2 totals=() n v; shift 2
  for n in "$N1" "$N2"; do
    RUST_LOG=warn valgrind --tool=callgrind --callgrind-out-file="$work/$name.$n.%p" "$@" >/dev/null 2>&1 & v=$!
    for _ in $(seq 600); do curl -sf -o /dev/null -H "apikey: bench-key-0123456789" "127.0.0.1:$PROXY$path" && break; sleep 0.2; done
    curl -s -o /dev/null -H "apikey: bench-key-0123456789" "http://127.0.0.1:$PROXY$path?[1-$n]"   # one connection, n requests
    kill -INT "$v"; wait "$v" || true
    totals+=("$(for f in "$work/$name.$n".*; do callgrind_annotate "$f" | awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1 }'; done | awk '{ s += $1 } END { print s }')")
  done
  echo $(( (totals[1] - totals[0]) / (N2 - N1) ))
}
bare=$(measure bare /api/orders target/release/bare-pingora "127.0.0.1:$PROXY" "127.0.0.1:$ORIGIN" 1)
baret=$(measure bare-timeouts /api/orders target/release/bare-pingora --timeouts "127.0.0.1:$PROXY" "127.0.0.1:$ORIGIN" 1)
sluice=$(measure sluice /plain/orders "$SLUICE_BIN" -c "$work/sluice.yaml")
guarded=$(measure sluice-guarded /guarded/orders "$SLUICE_BIN" -c "$work/sluice.yaml")
echo "# instructions per request (callgrind, user space), $(date -u +%Y-%m-%d): benches/instructions.sh $N1 $N2"
echo "| proxy | instructions/request | / bare-pingora | / bare-pingora+timeouts |"
echo "|---|---:|---:|---:|"
for row in "bare-pingora $bare" "bare-pingora+timeouts $baret" "sluice $sluice" "sluice+key-auth,consumer-restriction,limit-count $guarded"; do
  set -- $row
  awk -v n="$1" -v v="$2" -v b="$bare" -v t="$baret" 'BEGIN { printf "| %s | %d | %.2f | %.2f |\n", n, v, v / b, v / t }'
done
rm -rf "$work"
