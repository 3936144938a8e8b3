-- Benchmark (not a test): how fully the client uses the gateway's rate limit without
-- ever exceeding it. 120 listing calls against the sandbox's strict sliding window
-- (50 requests per 10 s): the fastest any client can finish is when request 51
-- starts 10 s after request 1 and request 101 10 s after request 51; the report is
-- that ideal next to the measured time, and the 429s the sandbox gave (must be 0).
--   bin/as2g-sandbox run -- lua5.4 bench/ratelimit.lua [CALLS]
package.path = "./bench/?.lua;./lua/?.lua;./lua/?/init.lua;" .. package.path
package.cpath = "./build/lua54/?.so;" .. package.cpath
local core = require "as2gateway.core"

local calls = tonumber(arg[1]) or 120
local LIMIT, WINDOW = 50, 10

local control = require "sandbox_control"

control("POST", "reset")
control("POST", "config", { rate_limit = LIMIT .. "/" .. WINDOW })

local function now()
  local p = io.popen("date +%s.%N")
  local t = tonumber(p:read("a"))
  p:close()
  return t
end

local client = core.new { url = os.getenv("AS2G_URL"), username = os.getenv("AS2G_USERNAME"),
  password = os.getenv("AS2G_PASSWORD"), cainfo = os.getenv("AS2G_CA"),
  rate_limit = { requests = LIMIT, window = WINDOW } }
local t0 = now()
local failed = 0
for _ = 1, calls - 1 do -- the login is the first request of the budget
  local res = client:perform { path = { "message", "received" }, query = { pageLength = 1 } }
  if not res then failed = failed + 1 end
end
local elapsed = now() - t0
local stats = control("GET", "stats")
local ideal = math.floor((calls - 1) / LIMIT) * WINDOW

print(("rate-limit utilisation: %d requests (login included) against a strict %d/%ds "
  .. "sliding window"):format(calls, LIMIT, WINDOW))
print(("  ideal (window-bound) time  %6.2f s"):format(ideal))
print(("  measured time              %6.2f s"):format(elapsed))
print(("  utilisation ideal/measured %6.1f %%"):format(100 * ideal / elapsed))
print(("  429 answers from the sandbox: %d; failed calls: %d; client waits: %d (%.1f s)")
  :format(stats.rate_limited, failed, client:stats().waits, client:stats().waited))
client:close()
os.exit(stats.rate_limited == 0 and failed == 0)
