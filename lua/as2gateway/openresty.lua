--- as2gateway.openresty: the client inside nginx (OpenResty / ngx_lua), without
-- blocking the worker. A class derived from as2gateway's client, with the same API and
-- three changes:
--  * every request runs step by step through the one step driver (as2gateway.driver),
--    yielding to nginx (ngx.sleep) between steps and through every rate-limit wait, so
--    the worker keeps serving other requests;
--  * with `shared_dict`, the account's rate limit holds for the whole nginx instance
--    (an exact sliding window kept in the dict, every transfer counted), and
--  * the token is obtained once and shared by all workers (one logs in, the others
--    wait for it in the dict).
-- Use it where ngx_lua may yield: content, access and rewrite phases, and timers.
local as2gateway = require "as2gateway"
local driver = require "as2gateway.driver"
local util = require "as2gateway.util"

local ngx = ngx
-- lua-resty-core's, inside nginx only
local semaphore = ngx and select(2, pcall(require, "ngx.semaphore"))

local setmetatable, type, pairs, ipairs, tostring, tonumber, pcall, error, select =
  setmetatable, type, pairs, ipairs, tostring, tonumber, pcall, error, select
local min, newproxy, getmetatable = math.min, newproxy, getmetatable

local concat = table.concat

local _M = { _VERSION = as2gateway._VERSION }

local function now()
  ngx.update_time()
  return ngx.now()
end

local Base = as2gateway.Client

---@class as2gateway.openresty.Client: as2gateway.Client
local Client = setmetatable({}, { __index = Base })
Client.__index = Client
Client.__close = Base.close
Client.host_sleep = ngx and ngx.sleep -- yields: the driver polls, nothing blocks
_M.Client = Client

-- Calls abandoned by their downstream client ----------------------------------------

--- Marks the calls of the current nginx request abandoned: those not yet sent (waiting
--- for a connection of the pool, the token, the rate limit or a retry) end at once
--- with kind `interrupted` and never reach the gateway; a transfer in flight is
--- finished (a send's outcome stays known). The client registers it with
--- `ngx.on_abort` itself (under `lua_check_client_abort on`); a handler of your own
--- registered first must call it.
function _M.abandon()
  ngx.ctx.as2g_abandoned = true
end

local function watch_abort()
  local ctx = ngx.ctx
  if ctx.as2g_watched then return end
  ctx.as2g_watched = true
  -- not in timers, nor with lua_check_client_abort off, nor after a handler of the
  -- caller's own: then nothing to do here
  pcall(ngx.on_abort, _M.abandon)
end

local function abandoned()
  if ngx.ctx.as2g_abandoned then
    return util.err("interrupted", "the downstream client went away before the call was "
      .. "sent: it was dropped, nothing of it reached the gateway")
  end
end

-- The pool: at most `pool_size` transfers of a worker in flight at once, each on its own
-- core client (one libcurl handle, its connection and TLS session kept between calls),
-- created when first needed. A call takes a free one, waiting on a semaphore (no polling).

local Pool = {}
Pool.__index = Pool

local CHUNK = 0.5 -- seconds a wait for the pool lasts before abandonment is checked

function Pool:take(deadline)
  while true do
    local gone = abandoned()
    if gone then return nil, gone end
    local wait = CHUNK
    if deadline then
      wait = min(CHUNK, deadline - now())
      if wait <= 0 then
        return util.fail("timeout", "the call's deadline passed while it waited for one "
          .. "of the worker's %d connections", self.size)
      end
    end
    if self.sem:wait(wait) then
      local core = table.remove(self.free)
      if not core then
        local err
        core, err = self.make()
        if not core then
          self.sem:post(1)
          return nil, err
        end
        self.cores[#self.cores + 1] = core
      end
      return core
    end
  end
end

function Pool:give(core)
  self.free[#self.free + 1] = core
  self.sem:post(1)
end

-- A call's hold on a core: handed back by release(), or, when the call's thread dies
-- without that (ngx.exit or ngx.thread.kill from another thread of its request), by
-- the collector (LuaJIT's newproxy: a userdata with __gc), its request closed first
-- (its transfer stopped): a pool never loses a connection for good.
local function hold(pool, core)
  local proxy = newproxy(true)
  local state = getmetatable(proxy)
  state.core = core
  state.__gc = function()
    if state.core then
      if state.req then
        pcall(state.req.close, state.req)
        -- nobody is left to be told: the log says it (a send's outcome is unknown)
        pcall(ngx.log, ngx.WARN, "as2gateway: a call's thread ended before the call "
          .. "did; its transfer was stopped (a send may have been enqueued: check the "
          .. "queued and sent lists before sending it again)")
      end
      pool:give(state.core)
      state.core = nil
    end
  end
  return proxy, state
end

--- Runs one request, yielding to nginx, on a free connection of the worker's pool; the
--- account's token is taken from the shared store first (one worker logs in for all)
--- and a renewed one goes back into it. The client's `deadline` bounds it all (the
--- wait for a connection, for the token, the rate limit, retries and the transfer).
---@param spec table a request spec of the core (docs/core.md)
---@return table|nil result
---@return as2gateway.Error|nil err
function Client:perform(spec)
  watch_abort()
  local deadline = self.deadline and now() + self.deadline
  local core, err = self.pool:take(deadline)
  if not core then return nil, err end
  local held, state = hold(self.pool, core)
  local ok, res
  ok, res, err = pcall(self._perform_on, self, state, spec, deadline)
  getmetatable(held).core, state.req = nil, nil -- (held: alive on the stack till here)
  self.pool:give(core)
  if not ok then error(res, 0) end
  return res, err
end

-- The call on the core it holds, taken from the pool: the token synced, the limits put
-- in the spec.
function Client:_perform_on(state, spec, deadline)
  local core = state.core
  if not spec.login then
    local ok, err = self.shared:sync_token(core, deadline, self.fail_fast)
    if not ok then return nil, err end
  end
  local copy = {}
  for k, v in pairs(spec) do copy[k] = v end
  if deadline then
    copy.deadline = deadline - now()
    if copy.deadline <= 0 then
      return util.fail("timeout", "the call's deadline passed before it could be sent")
    end
  end
  copy.fail_fast = self.fail_fast or nil
  if spec.query and spec.query.markAsRead then self.marks = self.marks + 1 end
  local req, err = core:request(copy)
  if not req then return nil, err end
  state.req = req
  local res
  res, err = driver.run(req, self.host_sleep, abandoned)
  self.shared:publish_token(core)
  return res, err
end

--- Logs in now (otherwise the first call does) on a connection of the pool; the token
--- becomes the account's.
---@return string|nil token
---@return number|as2gateway.Error expiry ms since the epoch, or the error
function Client:authorize()
  local ok, err = self:perform { login = true }
  if not ok then return nil, err end
  local token, expiry = (self.shared.dict:get(self.shared.token_key) or ""):match("^(%S+) (%d+)$")
  return token, tonumber(expiry)
end

--- Counters of all the worker's connections, added up (see as2gateway's stats), with
--- `pool = {size, open, busy}`.
---@return table
function Client:stats()
  local sum = {}
  for _, core in ipairs(self.pool.cores) do
    for k, v in pairs(core:stats()) do
      if type(v) == "number" then sum[k] = (sum[k] or 0) + v end
    end
  end
  sum.pool = { size = self.pool.size, open = #self.pool.cores,
    busy = #self.pool.cores - #self.pool.free }
  return sum
end

--- Closes every connection of the pool; idempotent.
function Client:close()
  for _, core in ipairs(self.pool.cores) do core:close() end
end
Client.__close = Client.close

-- The shared state of one account in a lua_shared_dict ------------------------------------

local Shared = {}
Shared.__index = Shared

local MARGIN = 0.025 -- seconds added to every window wait: the server's clock is not ours

-- The window: "owner:time:state" entries, state "p" (a transfer in flight, stamped at
-- its start) or "d" (done, stamped when its answer came). A slot is free when fewer
-- than `requests` entries are younger than `window`; in-flight entries always count.
local function decode(v)
  local list = {}
  for owner, t, st in (v or ""):gmatch("([^:,]+):([^:,]+):(%a)") do
    list[#list + 1] = { owner = owner, t = tonumber(t), st = st }
  end
  return list
end

local function encode(list)
  local out = {}
  for i, e in ipairs(list) do out[i] = ("%s:%.3f:%s"):format(e.owner, e.t, e.st) end
  return concat(out, ",")
end

local function with_lock(self, fn)
  -- never yields (acquire runs inside the core's step): a busy lock means "wait a bit"
  if not self.dict:add(self.lock_key, true, 2) then return nil end
  local ok, a, b = pcall(fn)
  self.dict:delete(self.lock_key)
  if not ok then error(a, 0) end
  return a, b
end

function Shared:acquire()
  local wait = with_lock(self, function()
    local t = now()
    local list, keep = decode(self.dict:get(self.window_key)), {}
    for _, e in ipairs(list) do
      -- an in-flight stamp of a worker that died mid-transfer ages out after 5 minutes
      if (e.st == "p" and e.t > t - 300) or e.t > t - self.window then keep[#keep + 1] = e end
    end
    if #keep >= self.requests then
      local oldest
      for _, e in ipairs(keep) do
        if e.st == "d" and (not oldest or e.t < oldest) then oldest = e.t end
      end
      -- all in flight: poll again soon; otherwise until the oldest leaves the window
      return oldest and (oldest + self.window + MARGIN - t) or 0.01
    end
    keep[#keep + 1] = { owner = self.owner, t = t, st = "p" }
    self.dict:set(self.window_key, encode(keep))
    return 0
  end)
  return wait or 0.002
end

function Shared:release(when)
  -- a lost lock race must not lose the stamp: retry a few times, then give up
  for _ = 1, 50 do
    local done = with_lock(self, function()
      local list = decode(self.dict:get(self.window_key))
      for _, e in ipairs(list) do
        if e.owner == self.owner and e.st == "p" then
          e.st, e.t = "d", when
          break
        end
      end
      self.dict:set(self.window_key, encode(list))
      return true
    end)
    if done then return end
  end
end

-- Before a request: take the account's token from the store when there is a good one
-- (the core judges, by the same renewal margin as for its own tokens), else the core's
-- own good one goes into the store; when there is none, one of the worker's connections
-- logs in (the others, of every worker, wait for its token), and the token it gets serves
-- this request whatever its lifetime: never a second login for it here.
function Shared:sync_token(core, deadline, fail_fast)
  while true do
    local v = self.dict:get(self.token_key)
    local token, expiry = (v or ""):match("^(%S+) (%d+)$")
    if token then
      if core:token() ~= token then core:set_token(token, tonumber(expiry)) end
      if select(3, core:token()) then return true end
    end
    if select(3, core:token()) then
      self:publish_token(core)
      return true
    end
    if not self.can_login then return true end -- the call fails with auth in the core
    if self.dict:add(self.login_key, true, 30) then
      local spec = { login = true, fail_fast = fail_fast or nil }
      if deadline then spec.deadline = math.max(deadline - now(), 0.001) end
      local req, err = core:request(spec)
      if req then
        local ok, res
        ok, res, err = pcall(driver.run, req, ngx.sleep)
        if not ok then
          self.dict:delete(self.login_key)
          error(res, 0)
        end
        if res then self:publish_token(core) end
      end
      self.dict:delete(self.login_key)
      if err then return nil, err end
      return true
    end
    if deadline and now() >= deadline then
      return util.fail("timeout", "the call's deadline passed while another call logged in")
    end
    ngx.sleep(0.01)
  end
end

-- After a request: a token the core obtained (a renewal after a 401, say) becomes the
-- account's.
function Shared:publish_token(core)
  local token, expiry = core:token()
  if not token then return end
  local v = token .. " " .. ("%d"):format(expiry or 0)
  if self.dict:get(self.token_key) ~= v then self.dict:set(self.token_key, v) end
end

-- Without shared_dict: the same store in the worker's memory (its connections share one
-- window and one token; each worker has its own).
local Local = {}
Local.__index = Local

function Local:get(k)
  local e = self[k]
  if e and e.ttl and e.ttl <= now() then
    self[k] = nil
    return nil
  end
  return e and e.v
end

function Local:set(k, v) self[k] = { v = v } end

function Local:add(k, v, ttl)
  if self:get(k) ~= nil then return false end
  self[k] = { v = v, ttl = ttl and now() + ttl }
  return true
end

function Local:delete(k) self[k] = nil end

--- Creates a client for use inside nginx. Options: those of as2gateway.new, plus
--- `shared_dict` (the name of a lua_shared_dict) to share the rate limit and the
--- token between workers, `pool_size` (8: transfers of the worker in flight at once,
--- each on its own kept-alive connection), `deadline` (seconds a call may take in
--- all; none) and `fail_fast` (a call that would wait for the rate limit ends at once
--- with `ratelimited`). Its sleep and clock are nginx's.
---@param opts as2gateway.Options|table
---@return as2gateway.openresty.Client
function _M.new(opts)
  if type(opts) ~= "table" then error("as2gateway.openresty.new: options table expected", 2) end
  if not ngx or not ngx.sleep then
    error("as2gateway.openresty needs ngx_lua (use as2gateway outside nginx)", 2)
  end
  local copy = {}
  for k, v in pairs(opts) do copy[k] = v end
  local size = copy.pool_size or 8
  if type(size) ~= "number" or size < 1 or size > 1000 or size % 1 ~= 0 then
    error("as2gateway.openresty.new: pool_size must be a whole number from 1 to 1000", 2)
  end
  local deadline, fail_fast = util.check_limits(copy.deadline, copy.fail_fast,
    "as2gateway.openresty.new", 2)
  copy.pool_size, copy.deadline, copy.fail_fast = nil, nil, nil
  copy.sleep = nil -- the class's host_sleep: nginx's
  copy.clock = now
  local dict
  if copy.shared_dict ~= nil then
    dict = ngx.shared[copy.shared_dict]
    if not dict then
      error(("as2gateway.openresty.new: no lua_shared_dict named %s"):format(
        tostring(copy.shared_dict)), 2)
    end
  else
    dict = setmetatable({}, Local)
  end
  copy.shared_dict = nil
  local rl = copy.rate_limit
  if rl == nil then rl = { requests = 50, window = 10 } end
  local account = tostring(copy.url) .. "|" .. tostring(copy.username or copy.token)
  local shared = setmetatable({
    dict = dict, owner = tostring(ngx.worker.pid()),
    requests = rl and rl.requests or math.huge, window = rl and rl.window or 0,
    window_key = "as2g:rl:" .. account, lock_key = "as2g:rl-lock:" .. account,
    token_key = "as2g:token:" .. account, login_key = "as2g:login:" .. account,
    can_login = copy.username ~= nil and copy.password ~= nil,
  }, Shared)
  copy.rate_limit = false -- the one window of the store replaces each core's own
  if rl then
    copy.acquire = function() return shared:acquire() end
    copy.release = function(when) shared:release(when) end
  end
  local client = setmetatable(as2gateway.new(copy), Client)
  client.shared, client.deadline, client.fail_fast = shared, deadline, fail_fast
  local first = client.core
  client.pool = setmetatable({ size = size, cores = { first }, free = { first },
    sem = semaphore.new(size),
    make = function() return as2gateway.new(copy).core end,
  }, Pool)
  return client
end

return _M
