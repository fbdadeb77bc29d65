#!/usr/bin/env bash
# Resident memory with many idle keep-alive client connections: each of CONNS connections
# sends one GET (proxied to an nginx origin), reads the answer and stays open. Reports the
# RSS of each proxy (nginx: master + worker) before and with the connections open, and the
# growth per connection. One worker/thread per proxy, as in benches/load.sh.
# Usage: benches/idle_conns.sh [CONNS]
set -euo pipefail
cd "$(dirname "$0")/.."
CONNS="${1:-10000}"
scripts/ensure-deps --test --bench
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:/usr/sbin:$PATH"
cargo build --release --locked -p sluice -p bare-pingora >/dev/null
want=$((CONNS * 2 + 1024)); hard=$(ulimit -Hn)
[ "$hard" = unlimited ] || [ "$hard" -ge "$want" ] || want=$hard
ulimit -n "$want"
[ "$want" -gt $((CONNS + 256)) ] || { echo "idle_conns: open-file limit $want is too low for $CONNS connections" >&2; exit 1; }
work=$(mktemp -d /tmp/sluice-idle.XXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
ORIGIN=18101; NGINX=18102; SLUICE=18103; BARE=18104; ADMIN=18105
cat > "$work/nginx.conf" <<NGX
worker_processes 1;
worker_rlimit_nofile $want;
pid $work/nginx.pid;
error_log $work/nginx.err warn;
events { worker_connections $((want - 256)); }
http {
  access_log off; keepalive_timeout 300s; keepalive_requests 100000;
  upstream origin { server 127.0.0.1:$ORIGIN; keepalive 128; }
  server { listen 127.0.0.1:$ORIGIN backlog=4096;
    location / { default_type application/json; return 200 '{"orders":[{"id":42,"item":"coffee","qty":2}]}'; } }
  server { listen 127.0.0.1:$NGINX backlog=4096; location / { proxy_pass http://origin;
    proxy_http_version 1.1; proxy_set_header Connection ""; } }
}
NGX
nginx -c "$work/nginx.conf" -p "$work" -g 'daemon off;' & pids+=($!); NGINX_PID=$!
target/release/bare-pingora "127.0.0.1:$BARE" "127.0.0.1:$ORIGIN" 1 >"$work/bare.log" 2>&1 & pids+=($!); BARE_PID=$!
cat > "$work/sluice.yaml" <<YML
server:
  listen: ["127.0.0.1:$SLUICE"]
  threads: 1
  grace_period: 0s
  limits: { max_connections_per_ip: 0 }
admin: { listen: "127.0.0.1:$ADMIN" }
upstreams: { origin: { nodes: ["127.0.0.1:$ORIGIN"] } }
routes:
  - { id: plain, match: { paths: ["/*"] }, upstream: origin }
YML
RUST_LOG=warn target/release/sluice -c "$work/sluice.yaml" >"$work/sluice.log" 2>&1 & pids+=($!); SLUICE_PID=$!
for _ in $(seq 300); do curl -sf "127.0.0.1:$ADMIN/readyz" >/dev/null && break; sleep 0.1; done

rss() { # KiB, the process and its children
  local all=("$1") p; all+=($(pgrep -P "$1" || true))
  for p in "${all[@]}"; do awk '/^VmRSS/ { print $2 }' "/proc/$p/status"; done | awk '{ s += $1 } END { print s }'
}
hold() { # port: open CONNS connections, one request each, keep them open until stdin closes
  python3 - "$1" "$CONNS" <<'PY'
import asyncio, sys
port, n = int(sys.argv[1]), int(sys.argv[2])
async def one(sem):
    async with sem:
        r, w = await asyncio.open_connection("127.0.0.1", port)
        w.write(b"GET /api/orders HTTP/1.1\r\nHost: bench\r\n\r\n")
        await w.drain()
        head = await r.readuntil(b"\r\n\r\n")
        length = next(int(l.split(b":")[1]) for l in head.split(b"\r\n") if l.lower().startswith(b"content-length"))
        await r.readexactly(length)
        assert head.startswith(b"HTTP/1.1 200"), head
        return w
async def main():
    sem = asyncio.Semaphore(200)
    conns = await asyncio.gather(*(one(sem) for _ in range(n)))
    print(len(conns), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
asyncio.run(main())
PY
}
echo "# RSS with $CONNS idle keep-alive connections — $(date -u +%Y-%m-%d), benches/idle_conns.sh $CONNS"
echo "| proxy | RSS before KiB | RSS with connections KiB | per connection bytes |"
echo "|---|---:|---:|---:|"
for t in "nginx $NGINX $NGINX_PID" "bare-pingora $BARE $BARE_PID" "sluice $SLUICE $SLUICE_PID"; do
  set -- $t
  before=$(rss "$3")
  rm -f "$work/ctl" "$work/opened"; mkfifo "$work/ctl"
  hold "$2" < "$work/ctl" > "$work/opened" & holder=$!
  exec 9>"$work/ctl"   # the holder keeps its connections until this closes
  for _ in $(seq 1200); do [ -s "$work/opened" ] && break; kill -0 "$holder" 2>/dev/null || break; sleep 0.1; done
  opened=$(cat "$work/opened")
  [ "$opened" = "$CONNS" ] || { echo "idle_conns: $1 opened ${opened:-nothing} of $CONNS" >&2; exit 1; }
  with=$(rss "$3")
  exec 9>&-; wait "$holder" || true
  printf "| %s | %d | %d | %d |\n" "$1" "$before" "$with" $(( (with - before) * 1024 / CONNS ))
done
