-- What the quota specs share: a redis-server of their own (a free loopback port and a
-- Unix socket in a mktemp folder, ready within a deadline, stopped at the end), worker
-- processes (worker.lua), and the window checker.
local h = require "helpers"
local cjson = require "cjson"

local M = {}

-- the children run on this run's interpreter (LuaJIT, the ASan host, or Lua 5.4)
M.LUA = rawget(_G, "jit") and "luajit"
  or (package.cpath:find("build/asan", 1, true) and "build/asan/lua5.4-asan") or "lua5.4"

-- A zombie (killed, not yet reaped by whoever adopted it) counts as gone.
local function pid_alive(pid)
  local stat = pid and h.read_file("/proc/" .. pid .. "/stat")
  return stat ~= nil and stat:match("^%d+ %b() (%a)") ~= "Z"
end
M.pid_alive = pid_alive

--- Starts redis-server (no persistence) on a free 127.0.0.1 port and a Unix socket in
--- a folder of its own; opts.password sets requirepass (in its config file, never on a
--- command line). Returns {port, socket, url, unix_url, dir, cli(), kill(), start(),
--- stop()}.
function M.redis(opts)
  opts = opts or {}
  local r = { dir = h.mkdtemp() }
  r.socket = r.dir .. "/redis.sock"
  local auth = opts.password and (":" .. opts.password .. "@") or ""
  local function conf(port)
    local f = assert(io.open(r.dir .. "/redis.conf", "w"))
    f:write(("port %d\nbind 127.0.0.1\nunixsocket %s\nunixsocketperm 700\nsave \"\"\n"
      .. "appendonly no\ndir %s\ndaemonize yes\npidfile %s/redis.pid\nlogfile %s/redis.log\n")
      :format(port, r.socket, r.dir, r.dir, r.dir))
    if opts.password then f:write("requirepass ", opts.password, "\n") end
    f:close()
    os.execute("chmod 600 " .. h.quote(r.dir .. "/redis.conf"))
  end

  function r.cli(...)
    local args = {}
    for i, a in ipairs { ... } do args[i] = h.quote(a) end
    local env = opts.password and ("REDISCLI_AUTH=" .. h.quote(opts.password) .. " ") or ""
    return h.sh(env .. "redis-cli -s " .. h.quote(r.socket) .. " " .. table.concat(args, " "))
  end

  local function ready()
    return r.cli("PING"):find("PONG", 1, true) ~= nil
  end

  -- (Re)starts it on r.port; false when the port was taken.
  function r.start()
    os.remove(r.dir .. "/redis.log")
    conf(r.port)
    h.sh("redis-server " .. h.quote(r.dir .. "/redis.conf"))
    local ok = h.wait_until(function()
      if ready() then return "up" end
      if (h.read_file(r.dir .. "/redis.log") or ""):find("Address already in use", 1, true) then
        return "taken"
      end
    end, 20)
    assert(ok, "redis-server did not start: " .. (h.read_file(r.dir .. "/redis.log") or ""))
    if ok == "taken" then return false end
    r.pid = tonumber((h.read_file(r.dir .. "/redis.pid") or ""):match("%d+"))
    return true
  end

  for _ = 1, 20 do
    r.port = 20000 + math.random(0, 39999)
    if r.start() then break end -- a taken port shows in its log
    r.port = nil
  end
  assert(r.port, "no free port for redis-server")
  r.url = ("redis://%s127.0.0.1:%d"):format(auth, r.port)
  r.unix_url = ("unix://%s%s"):format(auth, r.socket)

  local function wait_gone(pid)
    h.wait_until(function() return not pid_alive(pid) end, 20, "redis-server did not stop")
  end

  --- SIGKILL: no goodbye, nothing kept.
  function r.kill()
    if r.pid then
      os.execute("kill -KILL " .. r.pid .. " 2>/dev/null")
      wait_gone(r.pid)
      r.pid = nil
    end
  end

  function r.stop()
    if r.pid then
      os.execute("kill -TERM " .. r.pid .. " 2>/dev/null")
      wait_gone(r.pid)
      r.pid = nil
    end
    h.rmtree(r.dir)
  end
  return r
end

--- Starts a worker with `cfg` (see worker.lua, or `script`: client_worker.lua);
--- returns {out, pid, lines(), text(), kill(sig), wait_done(timeout)}.
function M.worker(dir, name, cfg, script)
  local w = { out = dir .. "/" .. name .. ".out", cfgfile = dir .. "/" .. name .. ".json" }
  h.write_file(w.cfgfile, cjson.encode(cfg))
  h.write_file(w.out, "")
  local pidfile = dir .. "/" .. name .. ".pid"
  assert(os.execute(("LUA_PATH=%s LUA_CPATH=%s %s %s %s %s "
    .. ">>%s 2>&1 & echo $! >%s"):format(h.quote(package.path), h.quote(package.cpath),
    M.LUA, script or "spec/quota/worker.lua",
    h.quote(w.cfgfile), h.quote(w.out), h.quote(w.out), h.quote(pidfile))))
  w.pid = h.wait_until(function() return tonumber(h.read_file(pidfile) or "") end, 20,
    "the worker did not start")
  function w.text() return h.read_file(w.out) or "" end
  function w.kill(sig)
    os.execute(("kill -%s %d 2>/dev/null"):format(sig or "KILL", w.pid))
    if sig == "STOP" or sig == "CONT" then return end
    h.wait_until(function() return not pid_alive(w.pid) end, 20, "the worker did not end")
  end
  function w.wait_done(timeout)
    h.wait_until(function()
      local t = w.text()
      return t:find("\ndone\n") or not pid_alive(w.pid)
    end, timeout or 120, "worker " .. name .. " did not finish")
    assert(w.text():find("\ndone\n"), "worker " .. name .. " failed:\n" .. w.text())
  end
  return w
end

--- The admissions a worker recorded: list of {a, r}.
function M.admissions(text)
  local list = {}
  for a, r in text:gmatch("\nok (%S+) (%S+)") do
    list[#list + 1] = { a = tonumber(a), r = tonumber(r) }
  end
  return list
end

--- The gateway's worst case: a request may be stamped anywhere in [a, r], so it can be
--- in a window (T - window, T] whenever T is in [a, r + window). Returns the largest
--- number of requests one window can hold, and a T where it does.
function M.worst_window(list, window)
  local ev = {}
  for _, x in ipairs(list) do
    ev[#ev + 1] = { x.a, 1 }
    ev[#ev + 1] = { x.r + window, -1 }
  end
  table.sort(ev, function(p, q)
    if p[1] ~= q[1] then return p[1] < q[1] end
    return p[2] < q[2] -- an exit before an entry at the same instant: half-open
  end)
  local n, worst, at = 0, 0, nil
  for _, e in ipairs(ev) do
    n = n + e[2]
    if n > worst then worst, at = n, e[1] end
  end
  return worst, at
end

return M
