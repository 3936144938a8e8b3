-- The client used from inside its own callbacks (sink, log, progress, clock, sleep,
-- body_reader): every such use raises a clear error at the call, nothing crashes or
-- hangs, the outer call ends with that error and the client stays usable. A
-- step-wise request left in flight does not hold the client's connection for ever.
-- These run under `make valgrind` and `make asan` too (spec/core).
local h = require "helpers"
local core = require "as2gateway.core"

local INSIDE = "cannot be used from inside its own callbacks"

local function attachment_path(id)
  return { "message", "received", id, "attachments", "0" }
end

describe("re-entrant use and requests left in flight", function()
  local c, id, dir

  before_each(function()
    h.reset()
    id = h.inbound { attachments = { { name = "big.bin", size = 200000 } } }
    dir = h.mkdtemp()
  end)

  after_each(function()
    if c then c:close() end
    c = nil
    h.rmtree(dir)
  end)

  -- A client whose hook `name` runs `inside(c)` once, the first time it is called.
  local function client_with(name, inside, extra)
    local o = h.core_options(extra)
    local done = false
    o[name] = function()
      if done then return name == "clock" and core.now() or nil end
      done = true
      inside(c)
      return name == "clock" and core.now() or nil
    end
    if name == "sleep" then o.rate_limit = { requests = 1, window = 0.05 } end
    c = core.new(o)
    return c
  end

  -- The call raises the misuse error, and the client works afterwards.
  local function assert_refused(call)
    local ok, err = pcall(call)
    assert.is_false(ok, "the call did not raise")
    assert.matches(INSIDE, tostring(err), 1, true)
    local res, e = c:perform { path = { "station" }, json = true }
    assert.is_nil(e)
    assert.equal(200, res.status)
  end

  local function download(spec)
    spec = spec or {}
    spec.path = spec.path or attachment_path(id)
    if not (spec.sink or spec.to_file or spec.to_dir) then spec.to_dir = dir end
    return c:perform(spec)
  end

  for _, name in ipairs { "log", "progress", "clock" } do
    it("raises at client:close() inside the " .. name .. " hook", function()
      client_with(name, function(self) self:close() end)
      assert_refused(download)
      assert.same({}, h.entries(dir)) -- no partial download left behind
    end)

    it("raises at a call of the client inside the " .. name .. " hook", function()
      client_with(name, function(self) self:perform { path = { "station" } } end)
      assert_refused(download)
    end)
  end

  it("raises at client:close() and at a call of the client inside the sleep hook", function()
    client_with("sleep", function(self) self:close() end)
    assert_refused(function()
      for _ = 1, 3 do assert(c:perform { path = { "station" } }) end
    end)
    c:close()
    client_with("sleep", function(self) self:perform { path = { "partner" } } end)
    assert_refused(function()
      for _ = 1, 3 do assert(c:perform { path = { "station" } }) end
    end)
  end)

  it("raises at client:close() and request:close() inside a sink", function()
    c = core.new(h.core_options())
    assert_refused(function() download { sink = function() c:close() end } end)
    local req
    req = c:request { path = attachment_path(id), sink = function() req:close() end }
    assert_refused(function()
      while req:step(1) ~= "done" do end
      req:result() -- a sink's error is raised here
    end)
    req:close()
  end)

  it("raises at a call of the client inside a sink or a body reader", function()
    c = core.new(h.core_options())
    assert_refused(function()
      download { sink = function() c:perform { path = { "station" } } end }
    end)
    assert_refused(function()
      download { sink = function() c:request { path = { "station" } } end }
    end)
    assert_refused(function()
      c:perform { method = "POST", path = { "message", "received", "x", "markUnread" },
        body_reader = function() c:set_token("abc") end }
    end)
  end)

  it("raises at another request's step inside a sink", function()
    c = core.new(h.core_options())
    local other = c:request { path = { "station" } }
    assert_refused(function() download { sink = function() other:step() end } end)
    other:close()
  end)

  it("keeps the outer download under its own name when a hook tries a second one", function()
    local second = h.inbound { attachments = { { name = "other.txt", size = 10 } } }
    client_with("progress", function(self)
      self:perform { path = attachment_path(second), to_dir = dir }
    end)
    assert_refused(download)
    local res = assert(download())
    assert.equal(dir .. "/big.bin", res.path)
    assert.same({ "big.bin" }, h.entries(dir))
  end)

  it("lets token() and stats() be read inside hooks", function()
    local seen = {}
    c = core.new(h.core_options { log = function(e)
      if e.event == "response" then
        seen[#seen + 1] = { c:stats().requests, (c:token()) ~= nil }
      end
    end })
    assert(c:perform { path = { "station" } })
    assert.same({ { 1, false }, { 2, true } }, seen) -- the login's answer, then the call's
  end)

  it("collects an unreachable request of the client during a callback without harm", function()
    c = core.new(h.core_options())
    local function orphan() c:request { path = { "station" } } end
    orphan()
    local collected = 0
    local res = assert(download { sink = function()
      collected = collected + 1
      collectgarbage()
    end })
    assert.equal(200, res.status)
    assert.is_true(collected > 0)
  end)

  describe("a step-wise request left in flight", function()
    local function in_flight(extra)
      c = core.new(h.core_options(extra))
      assert(c:perform { path = { "station" } }) -- logged in, connected
      h.fault { path = "/station", method = "GET", delay_ms = 3000 }
      local stale = c:request { path = { "station" } }
      assert.equal("io", (stale:step(0)))
      return stale
    end

    it("does not block a later blocking call: that call takes the connection", function()
      local stale = in_flight()
      local res, err = c:perform { path = { "partner" }, json = true }
      assert.is_nil(err)
      assert.equal(200, res.status)
      assert.equal("done", (stale:step()))
      local r, e = stale:result()
      assert.is_nil(r)
      assert.equal("network", e.kind)
      assert.matches("abandoned", e.message)
      stale:close()
    end)

    it("gives a send left in flight the outcome unknown, never resent", function()
      c = core.new(h.core_options())
      assert(c:perform { path = { "station" } })
      h.fault { path = "/message/ACME-AS2/AS2G-ECHO", method = "POST", delay_ms = 3000 }
      local send = c:request { method = "POST", path = { "message", "ACME-AS2", "AS2G-ECHO" },
        headers = { Name = "a.txt" }, body = "hello", send = true }
      while true do
        local state = send:step(0.05)
        if state == "io" and h.stats().by_endpoint["POST /message/:station/:partner"] then break end
      end
      assert(c:perform { path = { "station" } })
      local r, e = send:result()
      assert.is_nil(r)
      assert.equal("unknown_outcome", e.kind)
      send:close()
    end)

    it("makes another step-wise request wait its turn, then take over after 60 s", function()
      local t = h.fake_time()
      local stale = in_flight { clock = t.clock, sleep = t.sleep }
      local other = c:request { path = { "partner" } }
      local state, secs = other:step(0)
      assert.equal("sleep", state) -- its turn has not come: the first one is in flight
      assert.truthy(secs > 0 and secs < 1)
      t.now = t.now + 61
      repeat state = other:step(0.05) until state == "done"
      assert.equal(200, assert(other:result()).status)
      local r, e = stale:result()
      assert.is_nil(r)
      assert.equal("network", e.kind)
      other:close()
      stale:close()
    end)
  end)
end)
