-- SIGINT in a host that traps it (as as2g does): the core's blocking waits end at once
-- with kind "interrupted", and a download in flight leaves no file behind.
local h = require "helpers"
local core = require "as2gateway.core"

-- the child runs on this run's interpreter: LuaJIT, the ASan host of `make asan` (its
-- core cannot load in another), or Lua 5.4
local LUA = rawget(_G, "jit") and "luajit"
  or (package.cpath:find("build/asan", 1, true) and "build/asan/lua5.4-asan") or "lua5.4"

describe("core interrupts", function()
  local dir, job

  -- Starts the child with SIGINT at its default (a shell's background job would have
  -- it ignored) and the same module paths as this run.
  local function start(...)
    job = { out = dir .. "/out", pid = dir .. "/pid" }
    local args = {}
    for i, a in ipairs { ... } do args[i] = h.quote(a) end
    local cmd = ("LUA_PATH=%s LUA_CPATH=%s env --default-signal=INT %s "
      .. "spec/core/interrupt_child.lua %s >%s 2>&1 & echo $! >%s"):format(
      h.quote(package.path), h.quote(package.cpath), LUA, table.concat(args, " "),
      h.quote(job.out), h.quote(job.pid))
    assert(os.execute(cmd))
    job.id = h.wait_until(function() return tonumber(h.read_file(job.pid) or "") end, 20,
      "the child did not start")
    h.wait_until(function() return (h.read_file(job.out) or ""):find("trapped") end, 20,
      "the child did not trap SIGINT")
    return job
  end

  -- Sends SIGINT; returns the child's report {kind, signal, seconds} once it ended.
  local function interrupt()
    local sent = h.now()
    assert(os.execute("kill -INT " .. job.id))
    local line = h.wait_until(function()
      return (h.read_file(job.out) or ""):match("\n(%S+ %S+ [%d.]+)\n")
    end, 60, "the child did not end")
    local kind, sig, secs = line:match("^(%S+) (%S+) ([%d.]+)$")
    return { kind = kind, signal = sig, seconds = tonumber(secs), after = h.now() - sent }
  end

  before_each(function()
    h.reset()
    dir = h.mkdtemp()
  end)

  after_each(function()
    if job and job.id then os.execute("kill -KILL " .. job.id .. " 2>/dev/null") end
    job = nil
    h.rmtree(dir)
  end)

  it("lists interrupted among the error kinds", function()
    local found = false
    for _, k in ipairs(core.kinds) do found = found or k == "interrupted" end
    assert.is_true(found)
  end)

  it("ends a slow download with kind interrupted and no file, partial or final", function()
    -- 2 MB at 40 kB/s: 50 s for the whole transfer
    local id = h.inbound { attachments = { { name = "slow.bin", size = 2 * 1024 * 1024 } } }
    h.fault { path = "/message/received/*", method = "GET", trickle_bytes_per_s = 40000 }
    local target = dir .. "/slow.bin"
    start("download", id, target)
    assert.matches("trapped true", h.read_file(job.out), 1, true)
    h.wait_until(function() return #h.entries(dir) > 2 end, 30,
      "the download did not start writing") -- out, pid and the .part file
    local r = interrupt()
    assert.equal("interrupted", r.kind)
    assert.equal("2", r.signal)
    assert.is_true(r.after < 10, ("took %.1f s after SIGINT"):format(r.after))
    assert.same({ "out", "pid" }, h.entries(dir)) -- no slow.bin, no .slow.bin.*.part
  end)

  it("says so when a send it ends may have reached the gateway", function()
    -- a server of our own that takes the connection and never reads: the upload stalls
    local port_file = dir .. "/port"
    assert(os.execute(("timeout 120 perl -MIO::Socket::INET -e %s >%s 2>/dev/null &")
      :format(h.quote('$s = IO::Socket::INET->new(LocalAddr => "127.0.0.1", LocalPort => 0, '
        .. 'Listen => 1) or die; $| = 1; print $s->sockport, "\\n"; $c = $s->accept; '
        .. 'sleep 120'), h.quote(port_file))))
    local port = h.wait_until(function() return (h.read_file(port_file) or ""):match("%d+") end,
      20, "the listener did not start")
    start("send", port)
    h.sleep(1) -- the body is on its way, as far as the server lets it
    local r = interrupt()
    assert.equal("interrupted", r.kind)
    assert.matches("interrupted after the message went out: it may have been enqueued",
      h.read_file(job.out), 1, true)
  end)

  it("cuts a rate-limit wait short", function()
    start("ratelimit")
    h.wait_until(function() return h.stats().authorizations >= 1 end, 20,
      "the child did not log in")
    local r = interrupt()
    assert.equal("interrupted", r.kind)
    assert.is_true(r.seconds < 30, ("waited %.1f s"):format(r.seconds))
  end)

  it("cuts core.sleep short", function()
    start("sleep", "30")
    local r = interrupt()
    assert.equal("ok", r.kind)
    assert.equal("2", r.signal)
    assert.is_true(r.seconds < 20, ("slept %.1f s"):format(r.seconds))
  end)
end)
