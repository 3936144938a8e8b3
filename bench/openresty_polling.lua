-- Benchmark (not a test): what polling costs inside nginx. ngx_lua cannot wait on
-- libcurl's sockets, so as2gateway.openresty polls a transfer in flight with ngx.sleep
-- (as2gateway.driver: sleep(0) first, then 1 ms doubling to 16 ms). Measured against the sandbox, rate
-- limit off, one nginx worker of its own:
--   * the same listing (GET /message/received?pageLength=1) CALLS times, one after
--     another: made with plain `curl` (one process, one kept-alive connection), and
--     made by the client inside nginx, timed in the worker around the call
--     (as2gateway.core.now, monotonic); the added latency is the difference of their
--     percentiles (p50, p90, p99), with the client's own work (the Lua layer, the
--     JSON) inside it;
--   * the wake-ups (ngx.sleep calls of the driver) per call: for those fast calls,
--     and for calls the sandbox holds 1 s (a fault's delay_ms), 8 of them at once.
--   bin/as2g-sandbox run -- lua5.4 bench/openresty_polling.lua [CALLS]
package.path = "./bench/?.lua;./spec/?.lua;./lua/?.lua;./lua/?/init.lua;" .. package.path
package.cpath = "./build/lua54/?.so;" .. package.cpath
local h = require "helpers"
local support = require "openresty.support"
local cjson = require "cjson"

local CALLS = tonumber(arg[1]) or 200

h.reset()
h.config { rate_limit = "off" }

-- The bench's locations: the call, timed in the worker, and its wake-ups counted.
local LOCATIONS = [[
    location = /bench/call {
      content_by_lua_block {
        local core = require "as2gateway.core"
        if not BENCH then
          BENCH = require("as2gateway.openresty").new {
            url = os.getenv("AS2G_URL"), username = os.getenv("AS2G_USERNAME"),
            password = os.getenv("AS2G_PASSWORD"), cainfo = os.getenv("AS2G_CA"),
            rate_limit = false,
          }
          WAKEUPS = 0
          BENCH.host_sleep = function(s) WAKEUPS = WAKEUPS + 1; return ngx.sleep(s) end
        end
        local t0, w0 = core.now(), WAKEUPS
        local page, err = BENCH:list("received", { pageLength = 1 })
        local took = core.now() - t0
        if not page then ngx.status = 502; return ngx.say(tostring(err)) end
        ngx.say(("%.6f %d"):format(took, WAKEUPS - w0))
      }
    }
    location = /bench/wakeups {
      content_by_lua_block { ngx.say(WAKEUPS or 0); WAKEUPS = 0 }
    }
]]

local function percentile(list, p)
  local s = {}
  for i, v in ipairs(list) do s[i] = v end
  table.sort(s)
  return s[math.max(1, math.ceil(#s * p))]
end

-- curl, one process and one connection for all `n` requests of `url`; each line of
-- its output: the body (with -o -: the worker's timing) or -w's time_total.
local function curl_loop(n, url, extra, write_out)
  local args = {}
  for i = 1, n do args[i] = (write_out and "-o /dev/null " or "") .. h.quote(url) end
  local cmd = ("curl -sS %s %s %s"):format(extra or "",
    write_out and "-w '%{time_total}\\n'" or "", table.concat(args, " "))
  local out, wakes = {}, {}
  for line in h.sh(cmd):gmatch("[^\n]+") do
    local v, w = line:match("^(%S+) ?(%d*)$")
    v = tonumber(v)
    assert(v, "unexpected answer: " .. line)
    out[#out + 1], wakes[#wakes + 1] = v, tonumber(w)
  end
  assert(#out == n, ("%d answers of %d"):format(#out, n))
  return out, wakes
end

local nginx = support.start(1, LOCATIONS)
local ok, err = pcall(function()
  local token = h.login()
  local direct_url = h.url .. "/message/received?pageLength=1"
  local auth = ("--cacert %s -H %s"):format(h.quote(h.ca), h.quote("Authorization: " .. token))
  -- warm-up: the worker's client logs in and opens its connection
  curl_loop(5, nginx.url .. "/bench/call")
  h.sh("curl -s " .. h.quote(nginx.url .. "/bench/wakeups"))
  local direct, inside, histogram = {}, {}, {}
  -- alternate rounds of 20, so that both sides see the same machine
  for _ = 1, math.ceil(CALLS / 20) do
    for _, v in ipairs(curl_loop(20, direct_url, auth, true)) do direct[#direct + 1] = v end
    local took, wakes = curl_loop(20, nginx.url .. "/bench/call")
    for i, v in ipairs(took) do
      inside[#inside + 1] = v
      histogram[wakes[i]] = (histogram[wakes[i]] or 0) + 1
    end
  end
  local fast_wakeups = tonumber(h.sh("curl -s " .. h.quote(nginx.url .. "/bench/wakeups")))
  print(("%d calls, GET /message/received?pageLength=1, sandbox over HTTPS on loopback")
    :format(#inside))
  print(("%-34s %9s %9s %9s"):format("", "p50 ms", "p90 ms", "p99 ms"))
  local rows = { { "plain curl (kept-alive connection)", direct },
    { "as2gateway.openresty, in the worker", inside } }
  for _, row in ipairs(rows) do
    print(("%-34s %9.2f %9.2f %9.2f"):format(row[1], percentile(row[2], 0.5) * 1000,
      percentile(row[2], 0.9) * 1000, percentile(row[2], 0.99) * 1000))
  end
  print(("%-34s %9.2f %9.2f %9.2f"):format("added", (percentile(inside, 0.5)
    - percentile(direct, 0.5)) * 1000, (percentile(inside, 0.9) - percentile(direct, 0.9))
    * 1000, (percentile(inside, 0.99) - percentile(direct, 0.99)) * 1000))
  local spread = {}
  for w, n in pairs(histogram) do spread[#spread + 1] = ("%d: %d calls"):format(w, n) end
  table.sort(spread)
  print(("wake-ups per fast call: %.2f (%s)"):format(fast_wakeups / #inside,
    table.concat(spread, ", ")))
  -- 8 calls at once that the sandbox holds 1 s each
  h.fault { path = "/message/received", method = "GET", delay_ms = 1000, count = 8 }
  local marks = h.tmpname()
  local bg = {}
  for i = 1, 8 do
    bg[i] = ("curl -s %s >> %s &"):format(h.quote(nginx.url .. "/bench/call"), h.quote(marks))
  end
  os.execute(table.concat(bg, " ") .. " wait")
  local slow = {}
  for v in (h.read_file(marks) or ""):gmatch("([%d.]+) %d+") do slow[#slow + 1] = tonumber(v) end
  os.remove(marks)
  local slow_wakeups = tonumber(h.sh("curl -s " .. h.quote(nginx.url .. "/bench/wakeups")))
  print(("8 calls at once held 1 s: %.3f-%.3f s each, %.1f wake-ups per call (%.1f/s)")
    :format(percentile(slow, 0), percentile(slow, 1), slow_wakeups / 8,
      slow_wakeups / 8 / percentile(slow, 0.5)))
  local s = h.stats()
  print(("sandbox: %d requests on %d connections"):format(s.requests, s.connections))
  print(cjson.encode { added_p50_ms = (percentile(inside, 0.5) - percentile(direct, 0.5)) * 1000,
    added_p99_ms = (percentile(inside, 0.99) - percentile(direct, 0.99)) * 1000,
    wakeups_fast = fast_wakeups / #inside, wakeups_1s = slow_wakeups / 8 })
end)
nginx.stop()
if not ok then error(err, 0) end
