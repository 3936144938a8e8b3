--- as2gateway.quota_resty: the Redis quota engine inside OpenResty, over ngx.socket.tcp
-- (non-blocking: every Redis call yields to nginx), with the same methods as
-- core.quota_redis and the same scripts (as2gateway.quota_scripts). It speaks only the
-- RESP the engine needs (AUTH, SELECT, EVALSHA/EVAL, GET, SET), keeps connections
-- alive in nginx's pool, and never fails open: when Redis fails it falls back to a
-- local share (core.quota_local: this worker's own window) by the rules of
-- csrc/quota_redis.h (docs/quota.md). The local share is per worker: count every
-- worker of every host in `expected_hosts`. Use it where ngx_lua may yield.
local core = require "as2gateway.core"
local scripts = require "as2gateway.quota_scripts"

local ngx = ngx
local type, tostring, tonumber = type, tostring, tonumber
local pairs, ipairs, error = pairs, ipairs, error
local concat, floor, min, max = table.concat, math.floor, math.min, math.max

local _M = { _VERSION = "1" }
local mt = { __index = _M }

local SCRIPT_NAMES = { "acquire", "release", "renew", "cancel", "replay", "block", "state",
  "login_done" }

local sha = {} -- script name -> SHA-1 hex (EVALSHA)
for _, name in ipairs(SCRIPT_NAMES) do
  sha[name] = (ngx.sha1_bin(scripts[name]):gsub(".", function(c)
    return ("%02x"):format(c:byte())
  end))
end

local function now_ms()
  ngx.update_time()
  return floor(ngx.now() * 1000)
end

local random_seeded = false
local function random_id()
  if not random_seeded then
    local f = io.open("/dev/urandom", "rb")
    local b = f and f:read(4) or ""
    if f then f:close() end
    local seed = ngx.worker.pid() * 65537 + now_ms()
    for i = 1, #b do seed = seed * 256 + b:byte(i) end
    math.randomseed(seed % 2147483647)
    random_seeded = true
  end
  return ("%08x%08x"):format(math.random(1, 0xffffffff), math.random(0, 0xffffffff))
end

-- The URL: redis://[[user]:password@]host[:port][/db] | unix://[[user]:password@]/path[?db=N]
local function unescape(s)
  return (s:gsub("%%(%x%x)", function(x) return string.char(tonumber(x, 16)) end))
end

local function parse_url(url)
  local scheme, rest = url:match("^(%a+)://(.*)$")
  if scheme ~= "redis" and scheme ~= "unix" then
    return nil, "the Redis URL must start with redis:// or unix://"
  end
  local t = { db = 0 }
  local userinfo, after = rest:match("^([^@/]*)@(.*)$")
  if scheme == "unix" and not userinfo then userinfo, after = rest:match("^(.-)@(/.*)$") end
  if userinfo then
    local user, pass = userinfo:match("^([^:]*):(.*)$")
    t.user, t.password = unescape(user or ""), unescape(pass or userinfo)
    rest = after
  end
  if scheme == "unix" then
    local path, query = rest:match("^(/[^?]+)(.*)$")
    if not path then return nil, "a unix:// Redis URL needs an absolute socket path" end
    t.host, t.where = "unix:" .. unescape(path), unescape(path)
    if query ~= "" then
      t.db = tonumber(query:match("^%?db=(%d+)$"))
      if not t.db then return nil, "the only query of a unix:// Redis URL is ?db=N" end
    end
  else
    local host, port, db = rest:match("^([^:/]+):?(%d*)/?(%d*)$")
    if not host then return nil, "bad host, port or database in the Redis URL" end
    t.host, t.port, t.db = host, tonumber(port) or 6379, tonumber(db) or 0
    if t.port < 1 or t.port > 65535 then return nil, "bad port in the Redis URL" end
    t.where = host .. ":" .. t.port
  end
  return t
end

-- RESP ---------------------------------------------------------------------------------

local function encode(args)
  local out = { "*" .. #args .. "\r\n" }
  for _, a in ipairs(args) do
    a = tostring(a)
    out[#out + 1] = "$" .. #a .. "\r\n" .. a .. "\r\n"
  end
  return concat(out)
end

-- A reply: value | nil, message, is_redis_error. Null is false.
local function read_reply(sock)
  local line, err = sock:receive("*l")
  if not line then return nil, err end
  local kind, rest = line:sub(1, 1), line:sub(2)
  if kind == "+" then return rest end
  if kind == "-" then return nil, rest, true end
  if kind == ":" then return tonumber(rest) end
  if kind == "$" then
    local n = tonumber(rest)
    if not n then return nil, "a malformed reply" end
    if n < 0 then return false end
    local data
    data, err = sock:receive(n + 2)
    if not data then return nil, err end
    return data:sub(1, n)
  end
  if kind == "*" then
    local n = tonumber(rest)
    if not n then return nil, "a malformed reply" end
    if n < 0 then return false end
    local list = {}
    for i = 1, n do
      local v, e, redis_err = read_reply(sock)
      if v == nil then return nil, e, redis_err end
      list[i] = v
    end
    return list
  end
  return nil, "a malformed reply"
end

-- The engine ----------------------------------------------------------------------------

local function fail_err(self, msg)
  return core.error("network", ("Redis at %s: %s"):format(self.url.where, msg))
end

-- A connection (from the pool when there is one), authenticated and on its database.
function _M:_connect()
  local sock = ngx.socket.tcp()
  sock:settimeouts(self.connect_timeout, self.command_timeout, self.command_timeout)
  local ok, err
  if self.url.port then
    ok, err = sock:connect(self.url.host, self.url.port, { pool = self.pool })
  else
    ok, err = sock:connect(self.url.host, { pool = self.pool })
  end
  if not ok then return nil, "cannot connect: " .. tostring(err) end
  if sock:getreusedtimes() == 0 then
    local setup = {}
    if self.url.password then
      setup[#setup + 1] = self.url.user ~= "" and { "AUTH", self.url.user, self.url.password }
        or { "AUTH", self.url.password }
    end
    if self.url.db ~= 0 then setup[#setup + 1] = { "SELECT", self.url.db } end
    for _, cmd in ipairs(setup) do
      local _, e = sock:send(encode(cmd))
      local v
      if not e then v, e = read_reply(sock) end
      if v == nil then
        sock:close()
        return nil, cmd[1] .. ": " .. tostring(e)
      end
    end
  end
  return sock
end

-- One command (or a script): value | nil, err (the engine then falls back).
function _M:_call(args, script)
  local sock, err = self:_connect()
  if not sock then
    self.errors = self.errors + 1
    return nil, fail_err(self, err)
  end
  local v, redis_err
  local _, e = sock:send(encode(args))
  if not e then v, e, redis_err = read_reply(sock) end
  if v == nil and redis_err and script and e:find("^NOSCRIPT") then
    args[1], args[2] = "EVAL", scripts[script] -- Redis forgot it (a restart)
    _, e = sock:send(encode(args))
    if not e then v, e = read_reply(sock) end
  end
  if v == nil then
    sock:close()
    self.errors = self.errors + 1
    local msg = (script and ("script " .. script .. ": ") or (args[1] .. ": ")) .. tostring(e)
    self.last_error = ("Redis at %s: %s"):format(self.url.where, msg)
    return nil, fail_err(self, msg)
  end
  sock:setkeepalive(self.keepalive, self.pool_size)
  return v
end

function _M:_script(name, keys, args)
  local cmd = { "EVALSHA", sha[name], #keys }
  for _, k in ipairs(keys) do cmd[#cmd + 1] = k end
  for _, a in ipairs(args) do cmd[#cmd + 1] = a end
  return self:_call(cmd, name)
end

function _M:_event(back, message)
  local list = self.pending
  list[#list + 1] = { event = back and "quota_redis" or "quota_fallback", message = message }
  if #list > 16 then table.remove(list, 1) end
end

function _M:_enter_fallback(err)
  local now = now_ms()
  local hold = now + self.lease + self.window + self.margin
  self.hold_until = max(self.hold_until, hold)
  self.local_window:block(min(86400, (self.hold_until - now) / 1000))
  self.next_retry = now + self.retry
  if self.mode ~= "fallback" then
    self.mode = "fallback"
    self.fallbacks = self.fallbacks + 1
    self:_event(false, ("%s; a local share of %d requests per window after a hold of %d ms")
      :format(err and err.message or "Redis failed", self.share, self.hold_until - now))
  end
end

function _M:_try_return()
  local now = now_ms()
  if now < self.next_retry then return end
  self.next_retry = now + self.retry
  local snap = self.local_window:snapshot()
  local groups = {}
  for _, e in ipairs(snap.entries) do groups[#groups + 1] = { "e", e[1], floor(e[2] * 1000) } end
  for _, l in ipairs(snap.leases) do
    groups[#groups + 1] = { "l", l[1], max(0, floor(l[2] * 1000)) }
  end
  local i = 1
  repeat -- chunks of 18 groups; at least one call, the proof that Redis answers
    local args = { self.window, self.margin, self.lease, random_id() }
    for _ = 1, 18 do
      local g = groups[i]
      if not g then break end
      args[#args + 1], args[#args + 2], args[#args + 3] = g[1], g[2], g[3]
      i = i + 1
    end
    local epoch = self:_script("replay", { self.keys.done, self.keys.live, self.keys.epoch },
      args)
    if not epoch then return end
    self.epoch = epoch -- the window Redis holds now
  until i > #groups
  self.mode = "dual"
  -- as csrc/quota_redis.c: what only a local window knows has ended a retry interval
  -- and a lease from now, and left the window a window later
  self.dual_until = max(now + self.retry + self.lease + self.window + self.margin,
    self.hold_until)
  for _, o in pairs(self.own) do
    if o.locally then o.redis = true end -- Redis has them now: tell it their ends
  end
  self.returns = self.returns + 1
  self:_event(true, ("Redis at %s answers again: %d local entries written into it; both "
    .. "windows count for %d ms"):format(self.url.where, #groups, self.dual_until - now))
end

function _M:_update_mode()
  if self.mode == "fallback" then self:_try_return() end
  if self.mode == "dual" and now_ms() >= self.dual_until then self.mode = "redis" end
end

-- Redis's acquire: true (admitted) | wait_ms | nil, err (a failure, or the window lost)
function _M:_redis_acquire(id)
  local r, err = self:_script("acquire", { self.keys.done, self.keys.live, self.keys.block,
    self.keys.epoch }, { self.requests, self.window, self.margin, self.lease, id, random_id() })
  if not r then return nil, err end
  if type(r) ~= "table" then return nil, fail_err(self, "an answer of another shape") end
  local known = self.epoch
  self.epoch = r[3]
  if known and r[3] ~= known then
    if r[1] == 1 then self:_script("cancel", { self.keys.done, self.keys.live }, { id }) end
    return nil, fail_err(self, "no longer holds the window it held (restarted without "
      .. "its data?)")
  end
  if r[1] == 1 then return true end
  return max(1, tonumber(r[2]) or 1)
end

--- Creates the engine. Options: url, account, requests (50), window (10), margin
--- (0.025), lease (60), expected_hosts (1: count workers), fallback_requests
--- (requests / expected_hosts), retry_interval (min(1, window / 4)), connect_timeout
--- (1), command_timeout (1), login_ttl (30), keepalive (60 s idle), pool_size (16).
function _M.new(opts)
  if type(opts) ~= "table" then error("quota_resty.new: options table expected", 2) end
  local known = { url = 1, account = 1, requests = 1, window = 1, margin = 1, lease = 1,
    expected_hosts = 1, fallback_requests = 1, retry_interval = 1, connect_timeout = 1,
    command_timeout = 1, login_ttl = 1, keepalive = 1, pool_size = 1 }
  for k in pairs(opts) do
    if not known[k] then error("quota_resty.new: unknown option '" .. tostring(k) .. "'", 2) end
  end
  local function num(name, def, lo, hi)
    local v = opts[name]
    if v == nil then return def end
    if type(v) ~= "number" or v ~= v or v < lo or v > hi then
      error(("quota_resty.new: option '%s' must be a number from %s to %s"):format(name, lo, hi), 3)
    end
    return v
  end
  if type(opts.url) ~= "string" then error("quota_resty.new: option 'url' is required", 2) end
  if type(opts.account) ~= "string" or opts.account == "" or opts.account:find("[{}%s]") then
    error("quota_resty.new: option 'account' must be a string without braces or spaces", 2)
  end
  local url, uerr = parse_url(opts.url)
  if not url then return nil, core.error("invalid", "quota: " .. uerr) end
  local requests = num("requests", 50, 1, 1e6)
  if requests ~= floor(requests) then error("quota_resty.new: 'requests' must be whole", 2) end
  local window = floor(num("window", 10, 0.001, 86400) * 1000 + 0.5)
  local hosts = num("expected_hosts", 1, 1, 1e4)
  local share = floor(num("fallback_requests", requests / hosts, 0, requests))
  local retry = floor(num("retry_interval", min(1, window / 4000), 0.001, 3600) * 1000 + 0.5)
  if retry >= window then
    error("quota_resty.new: 'retry_interval' must be shorter than the window", 2)
  end
  local self = setmetatable({
    url = url, requests = requests, window = window, share = share, retry = retry,
    margin = floor(num("margin", 0.025, 0, 3600) * 1000 + 0.5),
    lease = floor(num("lease", 60, 0.001, 86400) * 1000 + 0.5),
    connect_timeout = floor(num("connect_timeout", 1, 0.001, 600) * 1000 + 0.5),
    command_timeout = floor(num("command_timeout", 1, 0.001, 600) * 1000 + 0.5),
    login_ttl = floor(num("login_ttl", 30, 0.001, 3600) * 1000 + 0.5),
    keepalive = floor(num("keepalive", 60, 0.001, 3600) * 1000 + 0.5),
    pool_size = floor(num("pool_size", 16, 1, 1000)),
    mode = "redis", hold_until = 0, dual_until = 0, next_retry = 0,
    own = {}, pending = {}, fallbacks = 0, returns = 0, errors = 0,
    login_owner = random_id(), closed = false,
  }, mt)
  -- the pool is per Redis and credentials: never a connection authenticated as another
  self.pool = "as2g-quota:" .. opts.url
  self.keys = {}
  for _, k in ipairs { "done", "live", "block", "token", "login", "epoch" } do
    self.keys[k] = ("as2g:{%s}:%s"):format(opts.account, k)
  end
  self.local_window = core.quota_local { requests = math.max(share, 1),
    window = window / 1000, margin = self.margin / 1000, lease = self.lease / 1000 }
  return self
end

local function check(self)
  if self.closed then error("the quota engine is closed", 3) end
end

--- -> 0, lease (admitted) | seconds to wait | nil, err
function _M:acquire()
  check(self)
  self:_update_mode()
  local id = random_id()
  if self.mode == "redis" then
    local r, err = self:_redis_acquire(id)
    if r == true then
      self.own[id] = { redis = true }
      return 0, id
    end
    if r then return r / 1000 end
    self:_enter_fallback(err)
  end
  if self.share == 0 then -- no local share: Redis alone admits, after the double count
    local until_ = self.mode == "fallback" and self.next_retry or self.dual_until
    return max(1, until_ - now_ms()) / 1000
  end
  local wait, lease = self.local_window:acquire()
  if wait ~= 0 then
    if self.mode == "fallback" then
      wait = min(wait, max(0.001, (self.next_retry - now_ms()) / 1000))
    end
    return wait
  end
  if self.mode == "dual" then
    local r, err = self:_redis_acquire(lease)
    if r ~= true then
      self.local_window:cancel(lease)
      if r then return r / 1000 end
      self:_enter_fallback(err)
      return self.retry / 1000
    end
    self.own[lease] = { redis = true, locally = true }
    return 0, lease
  end
  self.own[lease] = { locally = true }
  return 0, lease
end

local function own_or_raise(self, lease)
  local o = type(lease) == "string" and self.own[lease]
  if not o then error("bad lease: not a live lease of this engine", 3) end
  return o
end

function _M:_lease_op(name, lease)
  return self:_script(name, { self.keys.done, self.keys.live },
    { lease, self.window, self.margin, self.lease })
end

--- The request of `lease` ended now. -> true
function _M:release(lease)
  check(self)
  local o = own_or_raise(self, lease)
  self:_update_mode() -- a worker in fallback tries Redis at every call
  self.own[lease] = nil
  if o.redis and self.mode ~= "fallback" then
    local ok, err = self:_lease_op("release", lease)
    if not ok then
      self:_enter_fallback(err)
      o.locally = true
    end
  elseif o.redis then
    o.locally = true -- Redis counts it until its lease ends; the share from now
  end
  if o.locally then self.local_window:release(lease) end
  return true
end

--- The admission sent nothing. -> true
function _M:cancel(lease)
  check(self)
  local o = own_or_raise(self, lease)
  self:_update_mode()
  self.own[lease] = nil
  if o.redis and self.mode ~= "fallback" then
    local ok, err = self:_script("cancel", { self.keys.done, self.keys.live }, { lease })
    if not ok then self:_enter_fallback(err) end
  end
  if o.locally then self.local_window:cancel(lease) end
  return true
end

--- The transfer goes on. -> true (renewed) | false (it had run out)
function _M:renew(lease)
  check(self)
  local o = own_or_raise(self, lease)
  self:_update_mode()
  local live = false
  if o.redis and self.mode ~= "fallback" then
    local r, err = self:_lease_op("renew", lease)
    if r == nil then self:_enter_fallback(err) else live = r == 1 end
  end
  if o.redis and self.mode == "fallback" and not o.locally then
    self.local_window:adopt(lease) -- Redis cannot be told: the share counts it now
    o.locally, live = true, true
  elseif o.locally then
    live = self.local_window:renew(lease) or live
  end
  return live
end

--- No admission for `seconds` from now, on every host. -> true
function _M:block(seconds)
  check(self)
  self:_update_mode()
  if self.mode ~= "fallback" then
    local ok, err = self:_script("block", { self.keys.block }, { floor(seconds * 1000) })
    if not ok then self:_enter_fallback(err) end
  end
  self.local_window:block(seconds)
  return true
end

--- -> token, expiry | nil (none)
function _M:token()
  check(self)
  self:_update_mode()
  if self.mode == "fallback" then return nil end
  local v, err = self:_call({ "GET", self.keys.token })
  if v == nil then
    self:_enter_fallback(err)
    return nil
  end
  local token, expiry = (v or ""):match("^(%S+) (%d+)$")
  if not token then return nil end
  return token, tonumber(expiry)
end

--- -> true
function _M:set_token(token, expiry)
  check(self)
  if type(token) ~= "string" or not token:match("^[\33-\126]+$") then
    error("bad argument #1 to 'set_token' (a token of visible ASCII expected)", 2)
  end
  expiry = expiry or 0
  self:_update_mode()
  if self.mode == "fallback" then return true end
  local ttl = expiry > 0 and (expiry - floor(ngx.time() * 1000)) or 3600000
  ttl = min(max(ttl, 1000), 86400000)
  local ok, err = self:_call({ "SET", self.keys.token, ("%s %d"):format(token, expiry),
    "PX", ttl })
  if not ok then self:_enter_fallback(err) end
  return true
end

--- -> true (log in, then login_done) | false (another does: wait for token())
function _M:login()
  check(self)
  if self.login_held then return true end
  self:_update_mode()
  if self.mode == "fallback" then return true end -- Redis is out: log in for itself
  local v, err = self:_call({ "SET", self.keys.login, self.login_owner, "NX", "PX",
    self.login_ttl })
  if v == nil then
    self:_enter_fallback(err)
    return true
  end
  self.login_held = v == "OK"
  return self.login_held
end

function _M:login_done()
  check(self)
  if self.login_held then
    self:_script("login_done", { self.keys.login }, { self.login_owner })
    self.login_held = false
  end
end

--- -> {backend = "redis", mode, entries, leases, limit, wait, hold, dual, fallbacks,
--- returns, errors, last_error}
function _M:state()
  check(self)
  self:_update_mode()
  local now = now_ms()
  local st = { backend = "redis", fallbacks = self.fallbacks, returns = self.returns }
  if self.mode ~= "fallback" then
    local r, err = self:_script("state", { self.keys.done, self.keys.live, self.keys.block },
      { self.requests, self.window + self.margin })
    if r then
      st.entries, st.leases, st.wait, st.limit = r[1], r[2], r[3] / 1000, self.requests
    else
      self:_enter_fallback(err)
    end
  end
  if self.mode == "fallback" then
    local l = self.local_window:state()
    st.entries, st.leases, st.wait, st.limit = l.entries, l.leases, l.wait, self.share
  end
  st.mode = self.mode
  st.hold = max(0, self.hold_until - now) / 1000
  st.dual = self.mode == "dual" and max(0, self.dual_until - now) / 1000 or 0
  st.errors, st.last_error = self.errors, self.last_error
  return st
end

--- -> list of {event = "quota_fallback" | "quota_redis", message} since the last call
function _M:events()
  check(self)
  local list = self.pending
  self.pending = {}
  return list
end

function _M:close()
  if self.closed then return end
  if self.login_held then pcall(self.login_done, self) end
  self.local_window:close()
  self.closed = true
end

return _M
