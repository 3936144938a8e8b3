-- Benchmark (not a test): 10,000 clients and 10,000 requests leave RSS and open descriptors flat.
-- Phase A creates and closes 10,000 clients (as2gateway.new) on a token from one login;
-- every 10th of them lists one message (a new connection: TLS, request, close), and
-- every 1,000th logs in with the password first instead of using the token. Phase B
-- runs 10,000 small listings on one client. After a warm-up of both, RSS (VmRSS in
-- /proc/self/status) and the open descriptors (/proc/<pid>/fd) are read after a full
-- GC at a checkpoint every 1,000; the growth from the first checkpoint of a phase to
-- its last must stay within 3 MB and 2 descriptors, else the exit status is 1. The
-- baseline, last: 200 clients kept open instead of closed, to show what a leak costs.
-- The sandbox's and the client's rate limits are off: 11,000 requests would take over
-- 2,000 s within 50 per 10 s.
--   bin/as2g-sandbox run -- lua5.4 bench/resources.lua [N]
package.path = "./bench/?.lua;./lua/?.lua;./lua/?/init.lua;" .. package.path
package.cpath = "./build/lua54/?.so;" .. package.cpath
local as2gateway = require "as2gateway"
local core = require "as2gateway.core"

local N = tonumber(arg[1]) or 10000
local STEP = N // 10
local MAX_RSS_KB, MAX_FDS = 3 * 1024, 2
local KEPT = 200

local control = require "sandbox_control"

-- this process's pid (not the shell's that io.popen starts)
local PID = (function()
  local f = assert(io.open("/proc/self/stat", "rb"))
  local pid = f:read("a"):match("^(%d+)")
  f:close()
  return pid
end)()

local status_kb = require "proc_status"
local function rss_kb() return status_kb("VmRSS") end

-- Open descriptors, as ls sees them from outside; the pipe io.popen reads ls through
-- is one of them, at every reading alike.
local function fds()
  local p = io.popen("ls /proc/" .. PID .. "/fd")
  local n = 0
  for _ in p:lines() do n = n + 1 end
  p:close()
  return n
end

local rows = {}
local function checkpoint(phase, done)
  collectgarbage("collect")
  collectgarbage("collect") -- a second cycle for what the first one's finalizers freed
  rows[#rows + 1] = { phase = phase, done = done, rss = rss_kb(), fds = fds(),
    t = core.now() }
end

control("POST", "reset")
control("POST", "config", { rate_limit = "off" })

local function options(extra)
  local o = { url = os.getenv("AS2G_URL"), cainfo = os.getenv("AS2G_CA"), rate_limit = false }
  for k, v in pairs(extra) do o[k] = v end
  return o
end
local login = { username = os.getenv("AS2G_USERNAME"), password = os.getenv("AS2G_PASSWORD") }
local QUERY = { pageLength = 1 }

local first = as2gateway.new(options(login))
local token = assert(first:authorize())
first:close()

-- client i of phase A: on the token; a listing on every 10th, a login every 1,000th
local function one_client(i)
  local c = as2gateway.new(options(i % 1000 == 0 and login or { token = token }))
  if i % 10 == 0 then assert(c:list("received", QUERY)) end
  c:close()
end

local one = as2gateway.new(options(login))
local function one_request()
  assert(one:list("received", QUERY))
end

-- warm-up: both paths a few hundred times, so that allocator pools, the TLS session
-- and libcurl's caches are in place before the first reading
for i = 1, 500 do one_client(i) end
for _ = 1, 500 do one_request() end

local t0 = core.now()
checkpoint("A", 0)
for i = 1, N do
  one_client(i)
  if i % STEP == 0 then checkpoint("A", i) end
end
checkpoint("B", 0)
for i = 1, N do
  one_request()
  if i % STEP == 0 then checkpoint("B", i) end
end
local one_requests = one:stats().requests
one:close()
checkpoint("closed", N) -- phase B's client closed
local t1 = core.now()
local served = control("GET", "stats")

-- the baseline: what a leak looks like here, 200 clients with a connection each kept
-- instead of closed (200 only: each holds descriptors, and `ulimit -n` may be 1024)
local kept = {}
for i = 1, KEPT do
  kept[i] = as2gateway.new(options { token = token })
  assert(kept[i]:list("received", QUERY))
end
checkpoint("kept", KEPT)
for _, c in ipairs(kept) do c:close() end
kept = nil -- luacheck: ignore
checkpoint("freed", KEPT)
control("POST", "reset")

local function mb(kb) return kb / 1024 end
print(("%-6s %7s %9s %5s %8s"):format("phase", "done", "RSS MB", "fds", "time s"))
for _, r in ipairs(rows) do
  print(("%-6s %7d %9.2f %5d %8.1f"):format(r.phase, r.done, mb(r.rss), r.fds, r.t - t0))
end
print(("\nA and B: %.1f s; the sandbox served %d requests (%d logins), %d of them to the"
  .. " client of phase B (its login and warm-up included)\n"):format(t1 - t0,
  served.requests, served.authorizations, one_requests))

local ok = true
local function growth(label, from, to, count, limited)
  local drss, dfds = to.rss - from.rss, to.fds - from.fds
  local bad = limited and (drss > MAX_RSS_KB or dfds > MAX_FDS)
  print(("%-40s RSS %+6.2f MB (%+5.0f bytes each), fds %+4d%s"):format(label, mb(drss),
    drss * 1024 / count, dfds, bad and "   <- over the limit" or ""))
  ok = ok and not bad
end
local by = {}
for _, r in ipairs(rows) do
  by[r.phase] = by[r.phase] or {}
  table.insert(by[r.phase], r)
end
local A, B = by.A, by.B
growth(("A: %d clients created and closed"):format(N), A[1], A[#A], N, true)
growth(("B: %d requests on one client"):format(N), B[1], B[#B], N, true)
growth("A and B", A[1], B[#B], 2 * N, true)
growth(("baseline: %d clients kept open"):format(KEPT), by.closed[1], by.kept[1], KEPT)
print(("limits: RSS +%.0f MB, fds +%d; %s"):format(mb(MAX_RSS_KB), MAX_FDS,
  ok and "flat" or "GROWING"))
os.exit(ok)
