#!/usr/bin/env bash
# compose.yaml's scaled-out shape without a container engine: nginx with
# deploy/compose/nginx.conf (its upstream names pointed at 127.0.0.1), two
# nl-server replicas sharing a PostgreSQL queue (the distribution's package,
# in a temporary directory) and a store directory. One client's calls on one
# connection must reach both replicas (nginx balances per gRPC call), jobs
# must run, and the HTTP gateway must answer through the proxy.
# Usage: .ci/check_compose_proxy.sh NL_SERVER NL_CLIENT
set -euo pipefail
server=$(realpath "${1:?usage: .ci/check_compose_proxy.sh NL_SERVER NL_CLIENT}")
client=$(realpath "${2:?usage: .ci/check_compose_proxy.sh NL_SERVER NL_CLIENT}")
cd "$(dirname "$0")/.."
root=$PWD
work=$(mktemp -d)
chmod 755 "$work"
pgbin=$(find /usr/lib/postgresql -maxdepth 2 -name bin -type d | sort | tail -n 1)
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  nginx -c "$work/nginx.conf" -p "$work" -s stop 2>/dev/null || true
  as_pg "$pgbin/pg_ctl" -D "$work/pg/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_port() {
  for _ in $(seq 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "compose-proxy: nothing listens on $1" >&2
  exit 1
}

mkdir -p "$work/pg"
[ "$(id -u)" = 0 ] && chown postgres "$work/pg"
pg=$(port)
as_pg "$pgbin/initdb" -D "$work/pg/data" -U postgres --auth=trust --no-sync >/dev/null
as_pg "$pgbin/pg_ctl" -D "$work/pg/data" -l "$work/pg/log" -w \
  -o "-c listen_addresses=127.0.0.1 -p $pg -k $work/pg" start >/dev/null

declare -A grpc http metrics
for r in 1 2; do
  grpc[$r]=$(port) http[$r]=$(port) metrics[$r]=$(port)
  "$server" --port "${grpc[$r]}" --http-addr "127.0.0.1:${http[$r]}" --metrics-addr "127.0.0.1:${metrics[$r]}" \
    --store "$work/store" --database "postgres://postgres@127.0.0.1:$pg/postgres" \
    --data-dir "$work/data$r" 2>"$work/replica$r.log" &
  pids+=($!)
done
front_grpc=$(port) front_http=$(port)
sed -e "s/nl-server-1:50051/127.0.0.1:${grpc[1]}/; s/nl-server-2:50051/127.0.0.1:${grpc[2]}/" \
  -e "s/nl-server-1:8080/127.0.0.1:${http[1]}/; s/nl-server-2:8080/127.0.0.1:${http[2]}/" \
  -e "s/listen 50051;/listen 127.0.0.1:$front_grpc;/; s/listen 8080;/listen 127.0.0.1:$front_http;/" \
  -e "s#^events {}#pid $work/nginx.pid; error_log $work/nginx.log; events {}#" \
  -e "s#^http {#http { access_log off; client_body_temp_path $work/body; proxy_temp_path $work/proxy;#" \
  deploy/compose/nginx.conf >"$work/nginx.conf"
# nginx before 1.25.1 has no `http2 on;`; there `listen ... http2` says the same.
tested=$(nginx -t -c "$work/nginx.conf" -p "$work" 2>&1) || true
if grep -q 'unknown directive "http2"' <<<"$tested"; then
  sed -i -e "s/listen 127.0.0.1:$front_grpc;/listen 127.0.0.1:$front_grpc http2;/" -e '/http2 on;/d' "$work/nginx.conf"
fi
nginx -t -c "$work/nginx.conf" -p "$work" >/dev/null 2>&1 || { nginx -t -c "$work/nginx.conf" -p "$work"; exit 1; }
nginx -c "$work/nginx.conf" -p "$work"
for p in "${grpc[1]}" "${grpc[2]}" "$front_grpc" "$front_http"; do wait_port "$p"; done

id=$("$client" put "$root/docs/sample.png" --port "$front_grpc" 2>/dev/null | cut -d' ' -f1)
for _ in 1 2 3 4 5 6 7 8; do echo "$id"; done >"$work/sources"
"$client" job submit --from "$work/sources" --op thumbnail=48 --format png --jobs 1 --wait --port "$front_grpc" >/dev/null
code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$front_http/v1/images/$id.jpg?op=thumbnail:32")
[ "$code" = 200 ] || { echo "compose-proxy: HTTP through the proxy answered $code" >&2; exit 1; }
# 1 Put, 8 Submits and 8 Watches on one client connection: balanced per
# call, each replica serves a share of them.
for r in 1 2; do
  n=$(curl -s "http://127.0.0.1:${metrics[$r]}/metrics" \
    | awk '/^nlimage_requests_total[{]/ { n += $2 } END { print n + 0 }')
  if [ "$n" -lt 4 ]; then
    echo "compose-proxy: replica $r served $n of 17 calls: nginx did not balance per call" >&2
    exit 1
  fi
  echo "compose-proxy: replica $r served $n of 17 calls"
done
echo "compose-proxy: ok (per-call balancing, jobs on a shared PostgreSQL, HTTP through the proxy)"
