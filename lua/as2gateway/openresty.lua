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
local setmetatable, type, pairs, ipairs, tostring, tonumber =
  setmetatable, type, pairs, ipairs, tostring, tonumber
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

--- Runs one request, yielding to nginx; with a shared dict, the account's token is taken
--- from it first (one worker logs in for all) and a renewed one goes back into it.
---@param spec table a request spec of the core (docs/core.md)
---@return table|nil result
---@return as2gateway.Error|nil err
function Client:perform(spec)
  if self.shared then
    local ok, err = self.shared:sync_token(self)
    if not ok then return nil, err end
  end
  local res, err = Base.perform(self, spec)
  if self.shared then self.shared:publish_token(self) end
  return res, err
end

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

-- Before a request: take the account's token from the dict when there is a good one
-- (the core judges, by the same renewal margin as for its own tokens); when there is
-- none, one worker logs in (the others wait for its token), and the token it gets
-- serves this request whatever its lifetime: never a second login for it here.
function Shared:sync_token(client)
  for _ = 1, 3000 do -- up to ~30 s
    local v = self.dict:get(self.token_key)
    local token, expiry = (v or ""):match("^(%S+) (%d+)$")
    if token then
      if client.core:token() ~= token then client.core:set_token(token, tonumber(expiry)) end
      if select(3, client.core:token()) then return true end
    end
    if self.dict:add(self.login_key, true, 30) then
      local req, err = client.core:request { login = true }
      if req then
        local ok
        ok, err = driver.run(req, client.host_sleep)
        if ok then self:publish_token(client) end
      end
      self.dict:delete(self.login_key)
      if err then return nil, err end
      return true
    else
      ngx.sleep(0.01)
    end
  end
  return util.fail("auth", "no token appeared in the shared dict in time")
end

-- After a request: a token the client obtained (a renewal after a 401, say) becomes
-- the account's.
function Shared:publish_token(client)
  local token, expiry = client.core:token()
  if not token then return end
  local v = token .. " " .. ("%d"):format(expiry or 0)
  if self.dict:get(self.token_key) ~= v then self.dict:set(self.token_key, v) end
end

--- Creates a client for use inside nginx. Options: those of as2gateway.new, plus
--- `shared_dict` (the name of a lua_shared_dict) to share the rate limit and the
--- token between workers. Its sleep and clock are nginx's.
---@param opts as2gateway.Options|table
---@return as2gateway.openresty.Client
function _M.new(opts)
  if type(opts) ~= "table" then error("as2gateway.openresty.new: options table expected", 2) end
  if not ngx or not ngx.sleep then
    error("as2gateway.openresty needs ngx_lua (use as2gateway outside nginx)", 2)
  end
  local copy = {}
  for k, v in pairs(opts) do copy[k] = v end
  copy.sleep = nil -- the class's host_sleep: nginx's
  copy.clock = now
  local shared
  if copy.shared_dict ~= nil then
    local dict = ngx.shared[copy.shared_dict]
    if not dict then
      error(("as2gateway.openresty.new: no lua_shared_dict named %s"):format(
        tostring(copy.shared_dict)), 2)
    end
    local rl = copy.rate_limit
    if rl == nil then rl = { requests = 50, window = 10 } end
    local account = tostring(copy.url) .. "|" .. tostring(copy.username or copy.token)
    shared = setmetatable({
      dict = dict, owner = tostring(ngx.worker.pid()),
      requests = rl and rl.requests or math.huge, window = rl and rl.window or 0,
      window_key = "as2g:rl:" .. account, lock_key = "as2g:rl-lock:" .. account,
      token_key = "as2g:token:" .. account, login_key = "as2g:login:" .. account,
    }, Shared)
    copy.shared_dict = nil
    copy.rate_limit = false -- the shared window replaces the worker's own
    if rl then
      copy.acquire = function() return shared:acquire() end
      copy.release = function(when) shared:release(when) end
    end
  end
  local client = setmetatable(as2gateway.new(copy), Client)
  client.shared = shared
  return client
end

return _M
