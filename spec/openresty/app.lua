-- The test application of the OpenResty specs: nginx locations that use the client
-- (one per worker, sharing the rate limit and the token through lua_shared_dict).
local openresty = require "as2gateway.openresty"
local cjson = require "cjson.safe"

local M = {}
local client, limited, tiny

local function get()
  if not client then
    client = openresty.new {
      url = os.getenv("AS2G_URL"), username = os.getenv("AS2G_USERNAME"),
      password = os.getenv("AS2G_PASSWORD"), cainfo = os.getenv("AS2G_CA"),
      shared_dict = "as2gateway",
    }
  end
  return client
end

local function reply(status, value)
  ngx.status = status
  ngx.header["Content-Type"] = "application/json"
  ngx.say(cjson.encode(value))
end

local function fail(err)
  return reply(502, { kind = err.kind, message = err.message, status = err.status })
end

-- POST /send?name=...: the request body goes to the echo partner as one file.
function M.send()
  ngx.req.read_body()
  local body = ngx.req.get_body_data() or ""
  local res, err = get():send("ACME-AS2", "AS2G-ECHO",
    { { name = ngx.var.arg_name or "order.xml", data = body } }, { subject = "from nginx" })
  if not res then return fail(err) end
  reply(200, res)
end

-- GET /received: the first page of received messages.
function M.received()
  local page, err = get():list("received", { pageLength = tonumber(ngx.var.arg_n) or 10 })
  if not page then return fail(err) end
  reply(200, { worker = ngx.worker.pid(), totalRecords = page.totalRecords,
    ids = (function()
      local ids = {}
      for i, m in ipairs(page.records) do ids[i] = m.as2MessageId end
      return ids
    end)() })
end

-- Rewrite and access phases may yield too: the count is taken there, said later.
function M.count_in_phase()
  local page, err = get():list("received", { pageLength = 1 })
  ngx.ctx.count = page and page.totalRecords or ("error: " .. tostring(err))
end

function M.say_count()
  reply(200, { phase = ngx.var.uri, totalRecords = ngx.ctx.count })
end

-- GET /timer: a timer makes the call (as a background drain would) and leaves the
-- result in the shared dict; the request waits for it.
function M.timer()
  local dict = ngx.shared.as2gateway
  local key = "timer-result-" .. ngx.now() .. "-" .. math.random(1e9)
  local ok, terr = ngx.timer.at(0, function(premature)
    if premature then return end
    local page, err = get():list("received", { pageLength = 1 })
    dict:set(key, page and tostring(page.totalRecords) or ("error: " .. tostring(err)), 60)
  end)
  if not ok then return reply(500, { error = terr }) end
  for _ = 1, 200 do
    local v = dict:get(key)
    if v then return reply(200, { totalRecords = tonumber(v) or v }) end
    ngx.sleep(0.05)
  end
  reply(504, { error = "the timer did not finish" })
end

-- A client of its own (its window in the worker, not the dict) whose rate limit allows
-- one request in 8 s: the login takes it, so its first call would wait 8 s.
local function slow_lane()
  if not limited then
    limited = openresty.new {
      url = os.getenv("AS2G_URL"), username = os.getenv("AS2G_USERNAME"),
      password = os.getenv("AS2G_PASSWORD"), cainfo = os.getenv("AS2G_CA"),
      rate_limit = { requests = 1, window = 8 },
    }
  end
  return limited
end

local function timed(c, call)
  local t0 = ngx.now()
  local res, err = call(c)
  ngx.update_time()
  local took = ngx.now() - t0
  if not res then
    return reply(200, { kind = err.kind, message = err.message, took = took,
      retry_after = err.retry_after })
  end
  reply(200, { ok = true, took = took })
end

-- The limits of a call from the query: ?deadline=2&fail_fast=1&lane=slow
local function limited_client()
  local c = ngx.var.arg_lane == "slow" and slow_lane() or get()
  local limits = {}
  if ngx.var.arg_deadline then limits.deadline = tonumber(ngx.var.arg_deadline) end
  if ngx.var.arg_fail_fast then limits.fail_fast = true end
  return c:with(limits)
end

-- GET /limits?...: one listing under those limits; the outcome and how long it took.
function M.limits()
  timed(limited_client(), function(c) return c:list("received", { pageLength = 1 }) end)
end

-- POST /limits_send?...: a send under those limits.
function M.limits_send()
  timed(limited_client(), function(c)
    return c:send("ACME-AS2", "AS2G-ECHO", { { name = "o.txt", data = "deadline" } })
  end)
end

-- A client with one connection, for the threads killed mid-call.
local function one_connection()
  if not tiny then
    tiny = openresty.new {
      url = os.getenv("AS2G_URL"), username = os.getenv("AS2G_USERNAME"),
      password = os.getenv("AS2G_PASSWORD"), cainfo = os.getenv("AS2G_CA"),
      pool_size = 1,
    }
  end
  return tiny
end

-- GET /killed: a light thread's call is in flight when the request ends (ngx.exit kills
-- the thread): its connection must not stay taken.
function M.killed()
  ngx.thread.spawn(function() one_connection():list("received", { pageLength = 1 }) end)
  ngx.sleep(0.3)
  ngx.exit(200)
end

-- GET /after_kill: the one connection serves a call again once the collector has seen
-- the killed thread.
function M.after_kill()
  collectgarbage()
  collectgarbage()
  timed(one_connection():with { deadline = 5 }, function(c)
    return c:list("received", { pageLength = 1 })
  end)
end

-- GET /lane_stats: the slow lane's counters.
function M.lane_stats()
  reply(200, slow_lane():stats())
end

-- GET /stats: this worker's client counters.
function M.stats()
  reply(200, get():stats())
end

return M
