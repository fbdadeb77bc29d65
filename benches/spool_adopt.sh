#!/usr/bin/env bash
# p99 of at-least-once requests while a large orphan spool is adopted under load.
#   benches/spool_adopt.sh [FILL_SECONDS] [PHASE_SECONDS]
# 1. Instance A spools kafka-logger at_least_once events (8 KiB bodies) while the broker
#    is frozen (SIGSTOP) for FILL_SECONDS; then A is frozen and the broker resumed.
# 2. Instance B (same spool root, same cluster) serves the same route under wrk load:
#    PHASE_SECONDS as a baseline, then A is killed with `kill -9` and B adopts A's spool
#    directory (recovery reads every segment) during a second PHASE_SECONDS.
# Prints wrk's latency percentiles of both phases and the adopted spool's size.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
fill="${1:-10}"; phase="${2:-10}"
"$root/scripts/ensure-deps" --bench >/dev/null
cargo build --release --bin sluice --manifest-path "$root/Cargo.toml" -q
bin="$root/target/release/sluice"
work="$(mktemp -d /tmp/sluice-adopt-XXXX)"
kport=29092
kpid="$("$root/scripts/kafka-broker" "$work/kafka" "$kport")"
pids=("$kpid")
cleanup() { kill -CONT "$kpid" 2>/dev/null || true; kill -9 "${pids[@]}" 2>/dev/null || true; }
trap cleanup EXIT
body="$work/body"; head -c 8192 /dev/zero | tr '\0' 'x' > "$body"
cat > "$work/post.lua" <<EOF
wrk.method = "POST"
wrk.body = io.open("$body"):read("*a")
EOF
conf() { # conf NAME PORT ADMIN
  cat > "$work/$1.yaml" <<EOF
server: { listen: ["127.0.0.1:$2"], threads: 1, grace_period: 1s, pid_file: $work/$1.pid, upgrade_sock: $work/$1.sock }
admin: { listen: "127.0.0.1:$3" }
kafka:
  clusters:
    default:
      brokers: ["127.0.0.1:$kport"]
      delivery_timeout: 1s
      spool: { dir: "$work/spool", max_bytes: 4GiB }
routes:
  - id: audit
    match: { paths: ["/audit"], methods: [POST] }
    plugins:
      mocking: { status: 204 }
      kafka-logger: { topic: audit, delivery: at_least_once, include_req_body: true, max_req_body_bytes: 16KiB }
EOF
}
ready() { for _ in $(seq 300); do curl -sf "http://127.0.0.1:$1/readyz" >/dev/null && return 0; sleep 0.1; done; return 1; }

conf a 18181 19181
"$bin" -c "$work/a.yaml" > "$work/a.log" 2>&1 & apid=$!; pids+=("$apid")
ready 19181
kill -STOP "$kpid"
wrk -t1 -c16 -d"${fill}s" -s "$work/post.lua" http://127.0.0.1:18181/audit > "$work/fill.txt"
# A is frozen (its spool stays locked and unreplayed); the broker comes back.
kill -STOP "$apid"
kill -CONT "$kpid"
size="$(du -sh "$work/spool" | cut -f1)"

conf b 18182 19182
"$bin" -c "$work/b.yaml" > "$work/b.log" 2>&1 & bpid=$!; pids+=("$bpid")
ready 19182
echo "== baseline (${phase}s), spool root $size"
wrk -t1 -c16 -d"${phase}s" --latency -s "$work/post.lua" http://127.0.0.1:18182/audit | grep -E "Requests/sec|  50%|  99%"
kill -9 "$apid"
echo "== while B adopts A's spool (${phase}s)"
wrk -t1 -c16 -d"${phase}s" --latency -s "$work/post.lua" http://127.0.0.1:18182/audit | grep -E "Requests/sec|  50%|  99%"
grep -m1 "spool: replaying" "$work/b.log" || echo "(B did not adopt A's directory)"
date -u +"phase 2 ended %H:%M:%S"
