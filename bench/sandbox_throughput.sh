#!/usr/bin/env bash
# Benchmark (not a test): how many small listings per second the sandbox serves with
# the rate limit off, measured with wrk over HTTPS on loopback, next to a trivial
# request of the same server as the baseline. The gateway's own limit is 5 requests/s
# per account, so the sandbox must be orders of magnitude faster than any client.
#   bench/sandbox_throughput.sh [SECONDS] [CONNECTIONS]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10} conns=${2:-8}
command -v wrk >/dev/null || { echo "needs wrk: make bench-deps" >&2; exit 2; }

eval "$(bin/as2g-sandbox start --rate-limit off)"
trap 'bin/as2g-sandbox stop' EXIT
token=$(curl -sS --cacert "$AS2G_CA" -H 'Content-Type: application/json' \
  --data "{\"username\":\"$AS2G_USERNAME\",\"password\":\"$AS2G_PASSWORD\"}" \
  "$AS2G_URL/authorize" | lua5.4 -e 'print(require("cjson").decode(io.read("a")).token)')
# a realistic inbox: 200 more received messages to page through
for i in $(seq 200); do
  curl -sS -o /dev/null --cacert "$AS2G_CA" -H "X-Sandbox-Secret: $AS2G_SANDBOX_SECRET" \
    --data "{\"station\":\"ACME-AS2\",\"partner\":\"GLOBEX-AS2\",\"subject\":\"bench $i\",\"attachments\":[{\"name\":\"f$i.edi\",\"size\":2000}]}" \
    "${AS2G_URL%/v1}/_sandbox/inbound"
done

rate() { # URL [header] -> requests/s
  local out
  out=$(wrk -t2 -c"$conns" -d"${secs}s" ${2:+-H "$2"} "$1")
  echo "$out" | awk '/^Requests\/sec/ { print $2 }'
  echo "$out" | grep -E 'Non-2xx|Socket errors' >&2 || true
}

echo "sandbox throughput, wrk -t2 -c$conns -d${secs}s over HTTPS on loopback"
base=$(rate "${AS2G_URL%/v1}/_sandbox/health" "X-Sandbox-Secret: $AS2G_SANDBOX_SECRET")
list=$(rate "$AS2G_URL/message/received?pageLength=10" "Authorization: $token")
big=$(rate "$AS2G_URL/message/received?pageLength=100" "Authorization: $token")
printf '%-44s %10s req/s\n' "baseline: GET /_sandbox/health" "$base" \
  "GET /message/received?pageLength=10" "$list" \
  "GET /message/received?pageLength=100" "$big"
awk -v b="$base" -v l="$list" -v g="$big" 'BEGIN {
  printf "listing(10) / baseline = %.2f; listing(100) / baseline = %.2f\n", l / b, g / b
  printf "listing(10) = %.0fx the gateway rate limit of 5 requests/s\n", l / 5 }'
