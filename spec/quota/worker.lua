-- A process of the quota specs: opens an engine from a JSON config and runs one job,
-- writing what it did, a line at a time, to its out file. Times are core.now()
-- (CLOCK_MONOTONIC: one clock for every process of the host), taken after acquire
-- returned and before release is called: the gateway sees the request in between.
--   worker.lua CONFIG OUT
-- CONFIG: {kind = "file" | "redis", opts = {...}, job = "cycles" | "hold" | "login" |
--          "storm", cycles, hold_min, hold_max, seed, start_at}
local core = require "as2gateway.core"
local cjson = require "cjson"

local cfg = cjson.decode(assert(io.open(arg[1])):read("a"))
local out = assert(io.open(arg[2], "a"))
out:setvbuf("line")

local q = assert((cfg.kind == "file" and core.quota_file or core.quota_redis)(cfg.opts))

local function events()
  for _, e in ipairs(q:events()) do out:write("ev ", e.event, " ", e.message, "\n") end
end

-- Waits for a slot and returns its lease.
local function acquire()
  while true do
    local wait, lease = q:acquire()
    if wait == nil then error("acquire failed: " .. tostring(lease)) end
    events()
    if wait == 0 then return lease end
    core.sleep(wait)
  end
end

if cfg.start_at then -- all start together
  while core.now() < cfg.start_at do core.sleep(0.001) end
end
out:write("pid ", tostring(cfg.pid or ""), "\n")
math.randomseed(cfg.seed or os.time())

if cfg.job == "cycles" then
  for _ = 1, cfg.cycles do
    local lease = acquire()
    local a = core.now()
    core.sleep(cfg.hold_min + math.random() * (cfg.hold_max - cfg.hold_min))
    local r = core.now()
    assert(q:release(lease))
    out:write(("ok %.6f %.6f\n"):format(a, r))
  end
  events()
  local st = q:state()
  out:write("mode ", st.mode, "\n")
  out:write("done\n")
elseif cfg.job == "hold" then
  local lease = acquire()
  out:write(("held %s %.6f\n"):format(lease, core.now()))
  while true do core.sleep(1) end
elseif cfg.job == "login" then
  -- what a client does: a good token of the account first; else the login lock (and a
  -- second look, for a token that came meanwhile); else wait for the one who logs in
  local deadline, token = core.now() + 20, nil
  while not token and core.now() < deadline do
    token = q:token()
    if not token and q:login() then
      token = q:token()
      if not token then
        out:write("login\n")
        core.sleep(0.3) -- the others ask meanwhile
        token = ("tok-%d"):format(cfg.seed)
        assert(q:set_token(token, 4102444800000))
      end
      q:login_done()
    elseif not token then
      core.sleep(0.02)
    end
  end
  out:write("token ", tostring(token), "\n")
  out:write("done\n")
elseif cfg.job == "storm" then
  local n = 0
  while true do
    local wait, lease = q:acquire()
    if wait == 0 then assert(q:release(lease)) else core.sleep(math.min(wait, 0.002)) end
    n = n + 1
    if n % 50 == 0 then out:write("n ", n, "\n") end
  end
end
q:close()
