"""The benchmark's Python peer: http.client and json from the standard library, one
connection kept alive, the answer read whole and decoded with json.loads.
  peer.py list URL N [CAFILE]   N listings after one warm-up
  peer.py decode FILE N         N decodes of FILE's text
Prints one number: seconds per operation."""
import http.client
import json
import ssl
import sys
import time
import urllib.parse


def main():
    mode = sys.argv[1]
    if mode == "decode":
        with open(sys.argv[2], "rb") as f:
            text = f.read()
        n = int(sys.argv[3])
        json.loads(text)
        t0 = time.perf_counter()
        for _ in range(n):
            json.loads(text)
        t1 = time.perf_counter()
    elif mode == "list":
        url = urllib.parse.urlsplit(sys.argv[2])
        n = int(sys.argv[3])
        if url.scheme == "https":
            ctx = ssl.create_default_context(cafile=sys.argv[4])
            conn = http.client.HTTPSConnection(url.hostname, url.port, context=ctx)
        else:
            conn = http.client.HTTPConnection(url.hostname, url.port)
        target = url.path + ("?" + url.query if url.query else "")
        headers = {"Authorization": "bench-token"}
        t0 = 0.0
        for i in range(n + 1):
            if i == 1:
                t0 = time.perf_counter()
            conn.request("GET", target, headers=headers)
            resp = conn.getresponse()
            body = resp.read()
            if resp.status != 200:
                sys.exit("peer.py: HTTP %d" % resp.status)
            json.loads(body)
        t1 = time.perf_counter()
        conn.close()
    else:
        sys.exit("usage: peer.py list|decode ...")
    print("%.9f" % ((t1 - t0) / n))


main()
