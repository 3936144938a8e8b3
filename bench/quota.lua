-- Benchmark (not a test): what one acquire + release costs in each quota engine,
-- beside a no-op (two calls of an empty Lua function), in the same run: in process
-- (core.quota_local), the file engine (a state folder on /tmp), and Redis over TCP
-- and over a Unix socket (a redis-server of its own, started and stopped here). The
-- window is large enough that nothing waits: this is the bookkeeping alone. Rounds
-- run every engine once, in an order rotated from round to round; the report gives
-- medians over the rounds. Under a sandbox it then times a whole request through a
-- client with each backend, beside the same request with none (below).
--   lua5.4 bench/quota.lua [PAIRS_PER_ROUND [ROUNDS]]
--   bin/as2g-sandbox run -- lua5.4 bench/quota.lua
package.path = "./bench/?.lua;./lua/?.lua;./lua/?/init.lua;" .. package.path
package.cpath = "./build/lua54/?.so;" .. package.cpath
local core = require "as2gateway.core"

local PAIRS, ROUNDS = tonumber(arg[1]) or 2000, tonumber(arg[2]) or 7

local function sh(cmd)
  local p = io.popen(cmd .. " 2>&1")
  local out = p:read("a")
  p:close()
  return out
end
local function q(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

local dir = sh("mktemp -d"):gsub("%s+$", "")
assert(dir:match("^/tmp/"), dir)

-- redis-server on a free loopback port and a socket in `dir`, ready within 20 s
local port, sock = nil, dir .. "/redis.sock"
for _ = 1, 20 do
  math.randomseed(os.time() + #dir)
  port = 20000 + math.random(0, 39999)
  local f = assert(io.open(dir .. "/redis.conf", "w"))
  f:write(("port %d\nbind 127.0.0.1\nunixsocket %s\nunixsocketperm 700\nsave \"\"\n"
    .. "appendonly no\ndir %s\ndaemonize yes\npidfile %s/redis.pid\nlogfile %s/redis.log\n")
    :format(port, sock, dir, dir, dir))
  f:close()
  os.remove(dir .. "/redis.log")
  sh("redis-server " .. q(dir .. "/redis.conf"))
  local deadline, state = core.now() + 20, nil
  repeat
    if sh("redis-cli -s " .. q(sock) .. " PING"):find("PONG") then state = "up" end
    local log = io.open(dir .. "/redis.log")
    if log and log:read("a"):find("Address already in use", 1, true) then state = "taken" end
    if log then log:close() end
    if not state then core.sleep(0.05) end
  until state or core.now() > deadline
  assert(state, "redis-server did not start")
  if state == "up" then break end
end

local function stop()
  local f = io.open(dir .. "/redis.pid")
  local pid = f and f:read("a"):match("%d+")
  if f then f:close() end
  if pid then
    os.execute("kill -TERM " .. pid)
    local deadline = core.now() + 20
    while os.execute("kill -0 " .. pid .. " 2>/dev/null") and core.now() < deadline do
      core.sleep(0.05)
    end
  end
  os.execute("rm -rf " .. q(dir))
end

-- A window of 2 ms lets every release leave at once, so nothing waits however many
-- pairs run; "49 in flight" first takes 49 leases on a second handle of the same
-- state and keeps them: the size of state the gateway's 50 per 10 s makes.
local function opts(extra)
  local c = { requests = 1000000, window = 0.002, margin = 0, lease = 600 }
  for k, v in pairs(extra) do c[k] = v end
  return c
end

local noop = {}
function noop.acquire() return 0, "lease" end
function noop.release() return true end

local makers = {
  { "in process (core.quota_local)", function() return core.quota_local(opts {}) end, true },
  { "file (core.quota_file, ext4 /tmp)", function()
    return assert(core.quota_file(opts { dir = dir .. "/state" })) end },
  { "Redis over TCP (127.0.0.1)", function()
    return assert(core.quota_redis(opts { url = "redis://127.0.0.1:" .. port,
      account = "tcp", retry_interval = 0.001 })) end },
  { "Redis over a Unix socket", function()
    return assert(core.quota_redis(opts { url = "unix://" .. sock, account = "unix",
      retry_interval = 0.001 })) end },
}

local engines = { { name = "no-op (two Lua calls)", q = noop } }
for _, m in ipairs(makers) do
  engines[#engines + 1] = { name = m[1], q = m[2]() }
end
for _, m in ipairs(makers) do
  if not m[3] then -- the in-process engine has no second handle on its state
    local holder = m[2]()
    for _ = 1, 49 do assert(holder:acquire() == 0) end
    engines[#engines + 1] = { name = m[1] .. ", 49 in flight", q = m[2](), holder = holder }
  end
end

local function run(e)
  local qq = e.q
  local t = core.now()
  for _ = 1, PAIRS do
    local wait, lease = qq:acquire()
    if wait ~= 0 then error(e.name .. ": had to wait " .. tostring(wait)) end
    qq:release(lease)
  end
  return (core.now() - t) / PAIRS * 1e6
end

-- ROUNDS rounds of measure(item) for every item, in an order rotated from round to
-- round: {item = {samples}}.
local function rounds(items, measure)
  local samples = {}
  for r = 1, ROUNDS do
    for i = 0, #items - 1 do
      local e = items[(i + r) % #items + 1]
      samples[e] = samples[e] or {}
      table.insert(samples[e], measure(e))
    end
  end
  return samples
end

for _, e in ipairs(engines) do run(e) end -- warm-up (connections, scripts loaded)
local samples = rounds(engines, run)

local function median(list)
  table.sort(list)
  return list[(#list + 1) // 2]
end

-- A table: a title, a header of four columns, then row(item, its median, the first
-- item's median) per item.
local function report(title, header, items, per_item, row)
  print(title .. "\n")
  print(header)
  print("|---|---:|---:|---:|")
  local base = median(per_item[items[1]])
  for _, e in ipairs(items) do print(row(e, median(per_item[e]), base)) end
end

report(("Quota engines: one acquire + release, %d pairs x %d rounds (order rotated), "
  .. "median µs per pair"):format(PAIRS, ROUNDS),
  "| engine | µs per acquire + release | pairs/s | × no-op |", engines, samples,
  function(e, m, base)
    return ("| %s | %.2f | %.0f | %.0f |"):format(e.name, m, 1e6 / m, m / base)
  end)
for _, e in ipairs(engines) do
  if e.q.close then e.q:close() end
  if e.holder then e.holder:close() end
end

-- Under a sandbox (bin/as2g-sandbox run -- lua5.4 bench/quota.lua): a whole request
-- (GET /partner, one connection kept) through a client with each backend behind it
-- (the `quota` option), beside the same request with no quota at all. The sandbox's
-- own limit is off for it, and the windows are as above: nothing waits.
local url = os.getenv("AS2G_URL")
if url then
  local as2g = require "as2gateway"
  local REQS = tonumber(os.getenv("QUOTA_BENCH_REQUESTS")) or 200
  local function control(path, body)
    sh(("curl -s --cacert %s -H %s -X POST -H 'Content-Type: application/json' -d %s %s")
      :format(q(os.getenv("AS2G_CA")), q("X-Sandbox-Secret: " .. os.getenv("AS2G_SANDBOX_SECRET")),
        q(body), q(url:gsub("/v1$", "") .. "/_sandbox/" .. path)))
  end
  control("config", '{"rate_limit": "off"}')
  local wide = { requests = 1000000, window = 0.002, margin = 0 }
  local function with(t) for k, v in pairs(wide) do t[k] = v end return t end
  local clients = {
    { "plain request (no quota)", { rate_limit = false } },
    { "in process (the default window)", { rate_limit = { requests = 1000000, window = 0.002 } } },
    { "file (quota = {file = ...})", { quota = with { file = dir .. "/client-state" } } },
    { "Redis over TCP (quota = {redis = ...})", { quota = with {
      redis = "redis://127.0.0.1:" .. port, account = "client-tcp" } } },
    { "Redis over a Unix socket", { quota = with { redis = "unix://" .. sock,
      account = "client-unix" } } },
  }
  for _, c in ipairs(clients) do
    c[2].url, c[2].cainfo = url, os.getenv("AS2G_CA")
    c[2].username, c[2].password = os.getenv("AS2G_USERNAME"), os.getenv("AS2G_PASSWORD")
    c.client = as2g.new(c[2])
    assert(c.client:partners()) -- the login and the connection
  end
  local per = rounds(clients, function(c)
    local t = core.now()
    for _ = 1, REQS do assert(c.client:partners()) end
    return (core.now() - t) / REQS * 1e6
  end)
  report(("\nA whole request (GET /partner against the sandbox, one connection), %d "
    .. "requests x %d rounds (order rotated), median µs per request"):format(REQS, ROUNDS),
    "| client | µs per request | × plain | µs over plain |", clients, per,
    function(c, m, plain)
      return ("| %s | %.0f | %.2f | %+.0f |"):format(c[1], m, m / plain, m - plain)
    end)
  for _, c in ipairs(clients) do c.client:close() end
  control("reset", "{}")
end
stop()
