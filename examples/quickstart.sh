#!/usr/bin/env bash
# Quickstart against the sandbox (`make demo` runs it inside `as2g-sandbox run`):
# send two files to the echo partner, wait until both are delivered, drain the
# inbox into ./inbox, print a summary. Plain curl, so every request is visible.
set -euo pipefail
: "${AS2G_URL:?run me through make demo, or eval \"\$(bin/as2g-sandbox start)\" first}"
inbox=${INBOX:-./inbox}
api() { curl -sS --fail-with-body --cacert "$AS2G_CA" -H "Authorization: $token" "$@"; }
field() { FIELD=$1 lua5.4 -e 'local v = require("cjson").decode(io.read("a"))
  for k in os.getenv("FIELD"):gmatch("[^.]+") do v = v[tonumber(k) or k] end
  print(math.type(v) == "float" and math.tointeger(v) or v)'; }

echo "== authorize as $AS2G_USERNAME"
token=$(curl -sS --fail-with-body --cacert "$AS2G_CA" -H 'Content-Type: application/json' \
  --data "{\"username\":\"$AS2G_USERNAME\",\"password\":\"$AS2G_PASSWORD\"}" \
  "$AS2G_URL/authorize" | field token)

work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
printf '<?xml version="1.0" encoding="UTF-8"?>\n<invoice number="20200101" total="1000"/>\n' \
  > "$work/invoice_20200101.xml"
printf 'ISA*00*          *00*          *ZZ*ACME           *ZZ*ECHO           ~\n' \
  > "$work/order_5001.edi"

links=()
for f in "$work/invoice_20200101.xml" "$work/order_5001.edi"; do
  name=$(basename "$f")
  link=$(api -D - -o /dev/null -XPOST -H "Name: $name" -H 'Content-Type:' \
    --data-binary "@$f" "$AS2G_URL/message/ACME-AS2/AS2G-ECHO?subject=Quickstart+$name" \
    | tr -d '\r' | sed -n 's/^[Ll]ink: //p')
  echo "== sent $name -> $link"
  links+=("$link")
done

for link in "${links[@]}"; do
  for _ in $(seq 30); do
    if body=$(api "$link" 2>/dev/null); then
      echo "== delivered $(echo "$body" | field as2MessageId): $(echo "$body" | field deliveryStatus), MDN $(echo "$body" | field mdnStatus)"
      continue 2
    fi
    sleep 1
  done
  echo "not delivered within 30 s: $link" >&2; exit 1
done

page=$(api "$AS2G_URL/message/received?unreadOnly=true&pageLength=100&partnerAS2Id=AS2G-ECHO")
ids=$(echo "$page" | lua5.4 -e 'local c = require "cjson"; local ids = {}
  for _, m in ipairs(c.decode(io.read("a")).records) do ids[#ids + 1] = m.as2MessageId end
  print(c.encode(ids))')
mkdir -p "$inbox"
api -XPOST -H 'Content-Type: application/json' --data "$ids" -o "$work/batch.zip" \
  "$AS2G_URL/message/received/batch/attachments?markAsRead=true"
unzip -q -o "$work/batch.zip" -d "$inbox"
left=$(api "$AS2G_URL/message/received?unreadOnly=true&partnerAS2Id=AS2G-ECHO" | field totalRecords)
echo "== inbox drained into $inbox: $(find "$inbox" -type f | wc -l) files from" \
  "$(echo "$page" | field totalRecords) messages; unread left: $left"
find "$inbox" -type f | sort | sed 's/^/   /'
