#!/usr/bin/env bash
# Cost per request, one run, same machine. For each target and round: requests/s, p50 and
# p99 latency (wrk) and the CPU time of the proxy's own processes (user + system from
# /proc, every thread and worker) divided by the requests served. Targets:
#   origin               nginx returning a 47-byte JSON body (the limit; its own CPU)
#   nginx                nginx as a reverse proxy (keep-alive upstream)
#   nginx+lua-kafka      the same, logging every exchange to Kafka from the log phase with
#                        lua-resty-kafka's async producer (APISIX kafka-logger's method)
#   bare-pingora         benches/bare-pingora: one fixed peer, nothing else
#   bare-pingora+timeouts  the same with Sluice's default upstream timeouts on the peer
#   sluice               one route, no plugins
#   sluice+kafka-logger  + kafka-logger to Apache Kafka 4
#   sluice+auth+limits   key-auth + limit-count + limit-req (limits never reached)
#   sluice-post-1KiB     1 KiB POSTs proxied, and
#   kafka-divert-1KiB    the same POSTs diverted into Kafka (202 after the broker's ack)
# Each proxy runs THREADS workers/threads (1 is the headline configuration). Targets are
# measured in interleaved rounds; ratios are taken within each round and the median over
# rounds is reported, because a shared 2-core machine drifts.
# Usage: [TARGETS="name ..."] [LINGER=5ms] [LINGER_B=50ms] benches/load.sh [DURATION_S] [CONNECTIONS] [ROUNDS] [THREADS]
set -euo pipefail
cd "$(dirname "$0")/.."
DUR="${1:-10}"; CONNS="${2:-32}"; ROUNDS="${3:-3}"; THREADS="${4:-1}"
scripts/ensure-deps --test --bench
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:/usr/sbin:$PATH"
cargo build --release --locked -p sluice -p bare-pingora >/dev/null

work=$(mktemp -d /tmp/sluice-bench.XXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

ORIGIN=18081; NGINX=18082; SLUICE=18083; BARE=18084; LUA=18085; BARE_T=18086; SLUICE_B=18087; ADMIN_B=19182; KAFKA=19093; ADMIN=19181
HZ=$(getconf CLK_TCK)

nginx_conf() { # dir workers server-block -> starts nginx, prints the master's pid
  mkdir -p "$work/$1"
  cat > "$work/$1/nginx.conf" <<NGX
$( [ "$1" = lua ] && echo "load_module /usr/lib/nginx/modules/ndk_http_module.so; load_module /usr/lib/nginx/modules/ngx_http_lua_module.so;" )
worker_processes $2;
pid $work/$1/nginx.pid;
error_log $work/$1/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 100000;
  upstream origin { server 127.0.0.1:$ORIGIN; keepalive 128; }
  $3
}
NGX
  nginx -c "$work/$1/nginx.conf" -p "$work/$1" -g 'daemon off;' >"$work/$1/stderr" 2>&1 &
  echo $!
}
PROXY="proxy_pass http://origin; proxy_http_version 1.1; proxy_set_header Connection \"\";
      proxy_set_header Host \$host; proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;"
ORIGIN_PID=$(nginx_conf origin 1 "server { listen 127.0.0.1:$ORIGIN;
    location / { default_type application/json; return 200 '{\"orders\":[{\"id\":42,\"item\":\"coffee\",\"qty\":2}]}'; } }")
NGINX_PID=$(nginx_conf nginx "$THREADS" "server { listen 127.0.0.1:$NGINX; location / { $PROXY } }")
# lua-resty-kafka: the upstream module name (resty.kafka) when LUA_PATH has it, else
# Debian's package (nginx.kafka, 0.07). One async producer per worker, as APISIX does.
LUA_PID=$(nginx_conf lua "$THREADS" "
  lua_shared_dict kafka_errors 1m;
  lua_package_path '${LUA_RESTY_KAFKA:+$LUA_RESTY_KAFKA/?.lua;}/usr/share/lua/5.1/?.lua;;';
  init_worker_by_lua_block {
    local ok, producer = pcall(require, 'resty.kafka.producer')
    if not ok then producer = require 'nginx.kafka.producer' end
    kafka_log = producer:new({ { host = '127.0.0.1', port = $KAFKA } },
      { producer_type = 'async', required_acks = 1, batch_num = 200, max_buffering = 50000 })
  }
  server { listen 127.0.0.1:$LUA;
    location = /kafka-errors { content_by_lua_block { ngx.say(ngx.shared.kafka_errors:get('send') or 0) } }
    location / { $PROXY
    log_by_lua_block {
      local cjson = require 'cjson.safe'
      local entry = cjson.encode({
        request = { method = ngx.req.get_method(), uri = ngx.var.request_uri,
                    headers = ngx.req.get_headers(), size = tonumber(ngx.var.request_length) },
        response = { status = ngx.status, headers = ngx.resp.get_headers(),
                     size = tonumber(ngx.var.bytes_sent) },
        upstream = ngx.var.upstream_addr, client_ip = ngx.var.remote_addr,
        start_time = ngx.req.start_time() * 1000,
        latency = (ngx.now() - ngx.req.start_time()) * 1000 })
      local ok = kafka_log:send('lua-log', ngx.var.remote_addr, entry)
      if not ok then ngx.shared.kafka_errors:incr('send', 1, 0) end
    }
  } }")
pids+=("$ORIGIN_PID" "$NGINX_PID" "$LUA_PID")
target/release/bare-pingora "127.0.0.1:$BARE" "127.0.0.1:$ORIGIN" "$THREADS" >"$work/bare.log" 2>&1 & pids+=($!)
BARE_PID=$!
target/release/bare-pingora --timeouts "127.0.0.1:$BARE_T" "127.0.0.1:$ORIGIN" "$THREADS" >"$work/bare-t.log" 2>&1 & pids+=($!)
BARE_T_PID=$!

# Apache Kafka 4 (single KRaft node; topics are created on first use, 3 partitions).
KAFKA_PID=$(scripts/kafka-broker "$work/kafka" $KAFKA 3); pids+=("$KAFKA_PID")
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
kafka: { clusters: { default: { brokers: ["127.0.0.1:$KAFKA"], linger: ${LINGER:-5ms} } } }
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
SLUICE_PID=$!
for _ in $(seq 300); do curl -sf "127.0.0.1:$ADMIN/readyz" >/dev/null && break; sleep 0.1; done
# LINGER_B: a second Sluice, the same but for the cluster's linger, measured in the same
# rounds as target `sluice+kafka-logger@LINGER_B` (batching chosen by measurement).
extra=()
if [ -n "${LINGER_B:-}" ]; then
  sed -e "s/linger: ${LINGER:-5ms}/linger: $LINGER_B/" -e "s/:$SLUICE\"/:$SLUICE_B\"/" -e "s/bench-log/bench-log-b/" \
    -e "s/:$ADMIN\"/:$ADMIN_B\"/" "$work/sluice.yaml" > "$work/sluice-b.yaml"
  RUST_LOG=warn target/release/sluice -c "$work/sluice-b.yaml" >"$work/sluice-b.log" 2>&1 & pids+=($!)
  extra=("sluice+kafka-logger@$LINGER_B $SLUICE_B /logged/orders $! --")
  for _ in $(seq 300); do curl -sf "127.0.0.1:$ADMIN_B/readyz" >/dev/null && break; sleep 0.1; done
fi

ticks() { # CPU ticks (user + system) of the processes $@ and their children (nginx workers)
  local all=("$@") p
  for p in "$@"; do all+=($(pgrep -P "$p" || true)); done
  for p in "${all[@]}"; do awk '{ print $14 + $15 }' "/proc/$p/stat" 2>/dev/null || true; done |
    awk '{ s += $1 } END { print s + 0 }'
}
run() { # name port path pid... -- [wrk args] -> "name rps p50_ms p99_ms cpu_us_per_request requests"
  local name=$1 port=$2 path=$3 pl=() before after; shift 3
  while [ "$1" != "--" ]; do pl+=("$1"); shift; done; shift
  before=$(ticks "${pl[@]}")
  wrk -t1 -c"$CONNS" -d"${DUR}s" --latency "$@" "http://127.0.0.1:$port$path" > "$work/$name.wrk"
  after=$(ticks "${pl[@]}")
  if grep -q "Non-2xx" "$work/$name.wrk"; then echo "benchmark: $name had non-2xx answers:" >&2; cat "$work/$name.wrk" >&2; fi
  awk -v name="$name" -v t=$((after - before)) -v hz="$HZ" '
    function ms(v) { if (v ~ /us$/) return v/1000; if (v ~ /ms$/) return v+0; if (v ~ /s$/) return v*1000; return v }
    /Requests\/sec/ { rps=$2 } / 50%/ { p50=ms($2) } / 99%/ { p99=ms($2) } / requests in / { n=$1 }
    END { printf "%s %.0f %.3f %.3f %.1f %d\n", name, rps, p50, p99, (n > 0 ? t * 1e6 / hz / n : 0), n }' "$work/$name.wrk"
}

POST="-s $work/post.lua"
targets=("origin $ORIGIN /api/orders $ORIGIN_PID --"
  "nginx $NGINX /api/orders $NGINX_PID --"
  "nginx+lua-kafka $LUA /api/orders $LUA_PID --"
  "bare-pingora $BARE /api/orders $BARE_PID --"
  "bare-pingora+timeouts $BARE_T /api/orders $BARE_T_PID --"
  "sluice $SLUICE /plain/orders $SLUICE_PID --"
  "sluice+kafka-logger $SLUICE /logged/orders $SLUICE_PID --"
  "sluice+auth+limits $SLUICE /secured/orders $SLUICE_PID -- -s $work/auth.lua"
  "sluice-post-1KiB $SLUICE /plain/orders $SLUICE_PID -- $POST"
  "kafka-divert-1KiB $SLUICE /divert/orders $SLUICE_PID -- $POST" "${extra[@]}")
if [ -n "${TARGETS:-}" ]; then  # a subset, e.g. TARGETS="bare-pingora sluice"
  keep=(); for t in "${targets[@]}"; do [[ " $TARGETS " == *" ${t%% *} "* ]] && keep+=("$t"); done
  targets=("${keep[@]}")
fi
# shellcheck disable=SC2086
warm=$(for t in "${targets[@]}"; do set -- $t; run "$@"; done)  # connections, pools, topics
# shellcheck disable=SC2086
all=$(for r in $(seq "$ROUNDS"); do for t in "${targets[@]}"; do set -- $t; echo "$r $(run "$@")"; done; done)
median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
col() { echo "$all" | awk -v n="$1" -v c="$2" '$2 == n { print $c }' | median; }
ratio() { # per-round ratio of column c: a / b, median over rounds
  echo "$all" | awk -v a="$1" -v b="$2" -v c="$3" '$2 == a { x[$1] = $c } $2 == b { y[$1] = $c }
    END { for (r in x) if (y[r] > 0) print x[r] / y[r] }' | median
}
rounds() { # the per-round ratios behind a median, in round order
  echo "$all" | awk -v a="$1" -v b="$2" -v c="$3" '$2 == a { x[$1] = $c } $2 == b { y[$1] = $c }
    END { for (r = 1; r in x; r++) if (y[r] > 0) printf "%s%.2f", (r > 1 ? " " : ""), x[r] / y[r] }'
}
sent() { { echo "$warm" | awk -v n="$1" '$1 == n { print $6 }'; echo "$all" | awk -v n="$1" '$2 == n { print $7 }'; } | awk '{ s += $1 } END { print s + 0 }'; }

# What reached Kafka: the logger's and divert's counters against the topics' end offsets
# (an independent reader), and lua-resty-kafka's records against the requests it served.
sleep 3
offsets() { java -cp "$(scripts/kafka-fetch)/*" benches/TopicEnd.java "127.0.0.1:$KAFKA" "$1" 2>/dev/null || echo "?"; }
metrics=$(curl -s "127.0.0.1:$ADMIN/metrics")
outcome() { echo "$metrics" | awk -v r="$1" -v o="$2" '$1 ~ "^sluice_kafka_events_total" && $1 ~ "route=\"" r "\"" && $1 ~ "outcome=\"" o "\"" { s += $2 } END { print s + 0 }'; }
logged_acked=$(outcome logged acked); logged_sent=$(sent sluice+kafka-logger)
lua_sent=$(sent nginx+lua-kafka); lua_records=$(offsets lua-log); log_records=$(offsets bench-log)
lua_refused=$(curl -s "127.0.0.1:$LUA/kafka-errors")
divert_records=$(offsets bench-divert); divert_acked=$(outcome divert acked)
ack_mean=$(echo "$metrics" | awk '
  /^sluice_divert_ack_duration_seconds_sum/ { s+=$2 } /^sluice_divert_ack_duration_seconds_count/ { c+=$2 }
  END { if (c > 0) printf "%.3f", 1000 * s / c; else print "n/a" }')
rss() { awk '/VmRSS/ { print $2 }' "/proc/$1/status"; }

cpu=$(awk -F: '/model name/ { print $2; exit }' /proc/cpuinfo | sed 's/^ *//')
echo "# Sluice cost per request — $(date -u +%Y-%m-%d), $(nproc) cores ($cpu)"
echo "# benches/load.sh $DUR $CONNS $ROUNDS $THREADS: wrk -t1 -c$CONNS -d${DUR}s, $ROUNDS interleaved rounds (medians),"
echo "# $THREADS worker(s)/thread(s) per proxy; GET of a 47-byte JSON body unless POST;"
echo "# origin, proxies, Apache Kafka 4 and wrk all on this machine; CPU = the proxy's user+sys / requests"
echo
echo "| target | requests/s | p50 ms | p99 ms | CPU µs/request |"
echo "|---|---:|---:|---:|---:|"
for t in origin nginx nginx+lua-kafka bare-pingora bare-pingora+timeouts sluice sluice+kafka-logger \
  ${LINGER_B:+sluice+kafka-logger@$LINGER_B} sluice+auth+limits sluice-post-1KiB kafka-divert-1KiB; do
  printf "| %s | %.0f | %.3f | %.3f | %.1f |\n" "$t" "$(col $t 3)" "$(col $t 4)" "$(col $t 5)" "$(col $t 6)"
done
echo
printf -- "- sluice / bare-pingora CPU per request: %.2f (target ≤ 1.10; per-round median; rounds: %s)\n" "$(ratio sluice bare-pingora 6)" "$(rounds sluice bare-pingora 6)"
printf -- "- sluice / bare-pingora throughput: %.2f\n" "$(ratio sluice bare-pingora 3)"
printf -- "- sluice / bare-pingora+timeouts CPU per request: %.2f (the same upstream timeouts on both; rounds: %s)\n" "$(ratio sluice bare-pingora+timeouts 6)" "$(rounds sluice bare-pingora+timeouts 6)"
printf -- "- sluice+kafka-logger / nginx+lua-kafka throughput: %.2f (target ≥ 1.2)\n" "$(ratio sluice+kafka-logger nginx+lua-kafka 3)"
printf -- "- sluice+kafka-logger / nginx+lua-kafka CPU per request: %.2f (target ≤ 0.8; rounds: %s)\n" "$(ratio sluice+kafka-logger nginx+lua-kafka 6)" "$(rounds sluice+kafka-logger nginx+lua-kafka 6)"
printf -- "- sluice+kafka-logger / nginx+lua-kafka p99: %.2f (target ≤ 1)\n" "$(ratio sluice+kafka-logger nginx+lua-kafka 5)"
printf -- "- sluice / nginx throughput: %.2f, CPU per request: %.2f\n" "$(ratio sluice nginx 3)" "$(ratio sluice nginx 6)"
printf -- "- kafka-divert / plain proxy, POST 1 KiB: %.2f throughput (target ≥ 0.6)\n" "$(ratio kafka-divert-1KiB sluice-post-1KiB 3)"
echo "- kafka-divert mean wait for the broker's acknowledgement: $ack_mean ms (sluice_divert_ack_duration_seconds)"
echo "- delivered to Kafka (records in the topic, read back / requests sent):"
echo "  sluice+kafka-logger $log_records / $logged_sent (acked counter: $logged_acked);" \
  "nginx+lua-kafka $lua_records / $lua_sent ($lua_refused refused by its send buffer); kafka-divert $divert_records records, $divert_acked acked"
echo "- RSS after the run: sluice $(rss "$SLUICE_PID") KiB, bare-pingora $(rss "$BARE_PID") KiB"
