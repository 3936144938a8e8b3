-- One call of the core, and several: a request's own bound, `deadline = seconds`,
-- covers its rate-limit waits, retries and transfers, and `fail_fast` never waits for
-- the rate limit; each ends with the truth: `ratelimited` (with retry_after) when the
-- rate limit would hold it past the deadline, `timeout` otherwise, `unknown_outcome`
-- for a send stopped in flight. Several transfers of one client run at once
-- (`max_transfers`) for a caller that steps several requests, over connections that
-- are kept and reused; a request's sink runs on the state that is stepping, whichever
-- request that step is for.
local h = require "helpers"
local core = require "as2gateway.core"

local LIST = { path = { "message", "received" }, query = { pageLength = 1 }, json = true }

local function with(spec, extra)
  local s = {}
  for k, v in pairs(spec) do s[k] = v end
  for k, v in pairs(extra) do s[k] = v end
  return s
end

local function timed(fn)
  local t0 = core.now()
  local res, err = fn()
  return res, err, core.now() - t0
end

local function list()
  return { path = { "message", "received" }, query = { pageLength = 1 }, json = true }
end

-- Steps every request of `reqs` in turn until all are done; the seconds it took.
local function step_all(reqs)
  local t0 = core.now()
  local left = #reqs
  while left > 0 do
    left = 0
    for _, r in ipairs(reqs) do
      if r:step(0) ~= "done" then left = left + 1 end
    end
    core.sleep(0.002)
  end
  return core.now() - t0
end

describe("calls of the core", function()
  local c

  before_each(h.reset)

  after_each(function()
    if c then c:close() end
    c = nil
  end)

  describe("a call's deadline", function()
    it("stops a transfer the gateway holds past it", function()
      c = core.new(h.core_options())
      assert(c:perform(LIST)) -- login and connection first
      h.fault { path = "/message/received", method = "GET", delay_ms = 3000 }
      local res, err, took = timed(function() return c:perform(with(LIST, { deadline = 1 })) end)
      assert.is_nil(res)
      assert.are.equal("timeout", err.kind)
      assert.truthy(err.message:find("deadline", 1, true), err.message)
      assert.is_true(took >= 0.95 and took < 1.5, took)
      -- the client goes on: the next call has time enough
      assert(c:perform(with(LIST, { deadline = 10 })))
    end)

    it("says a send stopped in flight may have been enqueued", function()
      c = core.new(h.core_options())
      assert(c:perform(LIST))
      h.fault { path = "/message/ACME-AS2/AS2G-ECHO", method = "POST", delay_ms = 3000 }
      local res, err = c:perform { method = "POST", path = { "message", "ACME-AS2", "AS2G-ECHO" },
        body = "order", headers = { Name = "o.txt" }, send = true, json = true, deadline = 1 }
      assert.is_nil(res)
      assert.are.equal("unknown_outcome", err.kind)
      assert.truthy(err.message:find("queued and sent lists", 1, true), err.message)
    end)

    it("ends at once with ratelimited when the rate limit would hold it longer", function()
      c = core.new(h.core_options { rate_limit = { requests = 1, window = 8 } })
      assert(c:perform { login = true }) -- the window's one slot
      local res, err, took = timed(function() return c:perform(with(LIST, { deadline = 2 })) end)
      assert.is_nil(res)
      assert.are.equal("ratelimited", err.kind)
      assert.is_true(err.retry_after >= 7 and err.retry_after <= 9, tostring(err.retry_after))
      assert.is_true(took < 0.5, took)
      -- fail_fast: the same at once, without a deadline
      res, err, took = timed(function() return c:perform(with(LIST, { fail_fast = true })) end)
      assert.is_nil(res)
      assert.are.equal("ratelimited", err.kind)
      assert.truthy(err.message:find("fail_fast", 1, true), err.message)
      assert.is_true(took < 0.5, took)
      assert.are.equal(1, h.stats().requests) -- neither reached the gateway
    end)

    it("ends with timeout when its next retry would come after it", function()
      c = core.new(h.core_options { backoff_base = 6 })
      assert(c:perform(LIST))
      h.fault { path = "/message/received", method = "GET", status = 503 }
      local res, err, took = timed(function() return c:perform(with(LIST, { deadline = 1 })) end)
      assert.is_nil(res)
      assert.are.equal("timeout", err.kind)
      assert.truthy(err.message:find("next retry", 1, true), err.message)
      assert.is_true(took < 0.5, took)
    end)

    it("bounds a step-wise request too", function()
      c = core.new(h.core_options())
      assert(c:perform(LIST))
      h.fault { path = "/message/received", method = "GET", delay_ms = 3000 }
      local req = c:request(with(LIST, { deadline = 0.5 }))
      local t0 = core.now()
      while req:step(0) ~= "done" do core.sleep(0.005) end
      local _, err = req:result()
      req:close()
      assert.are.equal("timeout", err.kind)
      assert.is_true(core.now() - t0 < 1, core.now() - t0)
    end)

    it("refuses a deadline that is not a positive number of seconds", function()
      c = core.new(h.core_options())
      for _, bad in ipairs { 0, -1, "2", 0 / 0, 1e10 } do
        assert.has_error(function() c:request(with(LIST, { deadline = bad })) end)
      end
      assert.has_error(function() c:request(with(LIST, { fail_fast = "yes" })) end)
    end)
  end)

  describe("a client's transfers", function()
    it("run 4 at once with max_transfers = 4, each delayed 1 s, over kept connections",
      function()
        c = core.new(h.core_options { max_transfers = 4 })
        assert(c:perform(list())) -- login, first connection
        h.fault { path = "/message/received", method = "GET", delay_ms = 1000, count = 4 }
        local reqs = {}
        for i = 1, 4 do reqs[i] = c:request(list()) end
        local took = step_all(reqs)
        for _, r in ipairs(reqs) do
          local res, err = r:result()
          assert.is_nil(err)
          assert.are.equal(200, res.status)
          r:close()
        end
        assert.is_true(took >= 0.95 and took < 1.8, took) -- one at a time: 4 s
        local conns = h.stats().connections
        assert.is_true(conns <= 4, conns .. " connections")
        -- the next 4 reuse them
        reqs = {}
        for i = 1, 4 do reqs[i] = c:request(list()) end
        step_all(reqs)
        for _, r in ipairs(reqs) do
          assert.are.equal(200, r:result().status)
          r:close()
        end
        assert.are.equal(conns, h.stats().connections)
        assert.are.equal(10, c:stats().requests) -- the login, 1 + 4 + 4
      end)

    it("take turns with the default of one", function()
      c = core.new(h.core_options())
      assert(c:perform(list()))
      h.fault { path = "/message/received", method = "GET", delay_ms = 500, count = 2 }
      local took = step_all { c:request(list()), c:request(list()) }
      assert.is_true(took >= 0.95, took)
    end)

    it("run a sink on the state that steps, not on a coroutine that stepped it before",
      function()
        c = core.new(h.core_options { max_transfers = 2 })
        assert(c:perform(list()))
        h.fault { path = "/message/received", method = "GET", delay_ms = 300 }
        local chunks = {}
        local b = c:request { path = { "message", "received" }, query = { pageLength = 1 },
          sink = function(chunk) chunks[#chunks + 1] = chunk end }
        -- b starts in a coroutine that is then left suspended
        local co = coroutine.create(function()
          assert.are.equal("io", (b:step(0)))
          coroutine.yield()
        end)
        assert(coroutine.resume(co))
        -- a blocking call on the main state runs b's transfer (and its sink) too
        assert(c:perform(list()))
        while b:step(0) ~= "done" do core.sleep(0.002) end
        local res, err = b:result()
        assert.is_nil(err)
        assert.are.equal(200, res.status)
        assert.truthy(table.concat(chunks):find('"totalRecords"', 1, true))
        b:close()
      end)

    it("refuses a max_transfers that is not a count", function()
      local ok, err = pcall(core.new, h.core_options { max_transfers = 0 })
      assert.is_false(ok)
      assert.truthy(tostring(err):find("option 'max_transfers' must be from 1 to", 1, true), err)
      core.new(h.core_options { max_transfers = 1000 }):close() -- counts as 64
      for _, bad in ipairs { 0, -1, 0 / 0, "2" } do
        assert.has_error(function() core.new(h.core_options { max_transfers = bad }) end)
      end
    end)
  end)
end)
