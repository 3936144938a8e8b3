#!/usr/bin/env bash
# Benchmark (not a test): listing speed and transfers against peers on the same wire.
# Starts an nginx of its own on free loopback ports (HTTP and HTTPS with a
# self-signed certificate) serving a fixed 100-record page, a 10 MiB download and an
# upload sink; builds the C peer for Lua 5.4 and for LuaJIT; then rounds.lua runs the
# interleaved rounds and prints the table. Nothing but loopback is used.
#   bench/listing/run.sh [ROUNDS]       (after make build; make bench runs it)
# BENCH_ONLY=listings,decode,transfers,callgrind picks parts; BENCH_RUN=CMD runs CMD
# instead of the rounds, with the BENCH_* variables set (to try things by hand).
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds=${1:-9}
for t in nginx openssl curl gcc luajit lua5.4 python3 pkg-config; do
  command -v "$t" >/dev/null || [ -x "/usr/sbin/$t" ] || { echo "needs $t: make deps" >&2; exit 2; }
done
[ -f build/lua54/as2gateway/core.so ] && [ -f build/luajit/as2gateway/core.so ] \
  || { echo "build the core first: make build" >&2; exit 2; }
modules=/usr/lib/nginx/modules

dir=$(mktemp -d "${TMPDIR:-/tmp}/as2g-bench.XXXXXX")
cleanup() {
  if [ -f "$dir/nginx.pid" ]; then kill "$(cat "$dir/nginx.pid")" 2>/dev/null || true; fi
  rm -rf "$dir"
}
trap cleanup EXIT
mkdir -p "$dir/www" "$dir/logs" "$dir/tmp"

gcc -O2 -o "$dir/peer-lua54" bench/listing/peer.c $(pkg-config --cflags --libs lua5.4) -lcurl
gcc -O2 -o "$dir/peer-luajit" bench/listing/peer.c $(pkg-config --cflags --libs luajit) -lcurl
LUA_PATH='./lua/?.lua;./lua/?/init.lua;;' luajit bench/listing/page.lua > "$dir/www/page.json"
head -c $((10 * 1024 * 1024)) /dev/urandom > "$dir/www/blob.bin"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
  -keyout "$dir/key.pem" -out "$dir/cert.pem" -subj "/CN=127.0.0.1" \
  -addext "subjectAltName=IP:127.0.0.1" -addext "basicConstraints=critical,CA:TRUE" 2>/dev/null

user_line=""
if [ "$(id -u)" = 0 ]; then user_line="user root root;"; fi
write_conf() {
  cat > "$dir/nginx.conf" <<CONF
$user_line
worker_processes 1;
pid $dir/nginx.pid;
error_log $dir/logs/error.log warn;
load_module $modules/ndk_http_module.so;
load_module $modules/ngx_http_lua_module.so;
events { worker_connections 64; }
http {
  access_log off;
  client_body_temp_path $dir/tmp/body;
  proxy_temp_path $dir/tmp/proxy;
  fastcgi_temp_path $dir/tmp/fastcgi;
  uwsgi_temp_path $dir/tmp/uwsgi;
  scgi_temp_path $dir/tmp/scgi;
  keepalive_requests 1000000;
  keepalive_timeout 120s;
  client_max_body_size 11m;
  sendfile on;
  server_tokens off;
  server {
    listen 127.0.0.1:$http_port;
    listen 127.0.0.1:$https_port ssl;
    ssl_certificate $dir/cert.pem;
    ssl_certificate_key $dir/key.pem;
    root $dir/www;
    # the listing: GET /v1/message/received?...
    location = /v1/message/received {
      default_type application/json;
      try_files /page.json =404;
    }
    # a download: GET /v1/message/received/ID/attachments
    location /v1/message/received/ {
      default_type application/octet-stream;
      add_header Content-Disposition 'attachment; filename="blob.bin"';
      try_files /blob.bin =404;
    }
    # a raw send: POST /v1/message/STATION/PARTNER, read to its end and dropped
    location /v1/message/ {
      content_by_lua_block {
        local left = tonumber(ngx.var.http_content_length)
        if not left then return ngx.exit(411) end
        local sock = assert(ngx.req.socket())
        while left > 0 do
          local data, err = sock:receive(left < 65536 and left or 65536)
          if not data then ngx.log(ngx.ERR, err) return ngx.exit(400) end
          left = left - #data
        end
        ngx.status = 202
        ngx.header["Link"] = "https://127.0.0.1/v1/message/sent/%3Cbench%40example.com%3E"
        ngx.header["Content-Type"] = "application/json"
        ngx.print('{"message":"Message enqueued"}')
      }
    }
  }
}
CONF
}

random_port() { echo $(( 20000 + (RANDOM * 32768 + RANDOM) % 40000 )); }
tries=0
while :; do
  http_port=$(random_port) https_port=$(random_port)
  [ "$http_port" != "$https_port" ] || continue
  write_conf
  if /usr/sbin/nginx -p "$dir" -c "$dir/nginx.conf" -e "$dir/logs/error.log" 2>>"$dir/logs/start.log"; then
    break
  fi
  tries=$((tries + 1))
  if ! grep -q "Address already in use" "$dir/logs/error.log" "$dir/logs/start.log" \
     || [ $tries -ge 20 ]; then
    tail -n 20 "$dir/logs/start.log" "$dir/logs/error.log" >&2
    echo "nginx did not start" >&2
    exit 1
  fi
done
deadline=$((SECONDS + 10))
until curl -fsS -o /dev/null --cacert "$dir/cert.pem" \
      "https://127.0.0.1:$https_port/v1/message/received" 2>/dev/null; do
  [ $SECONDS -lt $deadline ] || { echo "nginx did not answer within 10 s" >&2; exit 1; }
  sleep 0.1
done

BENCH_DIR=$dir BENCH_CA=$dir/cert.pem BENCH_ROUNDS=$rounds \
BENCH_HTTP=http://127.0.0.1:$http_port/v1 BENCH_HTTPS=https://127.0.0.1:$https_port/v1 \
  ${BENCH_RUN:-lua5.4 bench/listing/rounds.lua}
