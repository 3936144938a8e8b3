-- A request's own bound: `deadline = seconds` covers its rate-limit waits, retries and
-- transfers; `fail_fast` never waits for the rate limit. Each ends with the truth:
-- `ratelimited` (with retry_after) when the rate limit would hold it past the
-- deadline, `timeout` otherwise, `unknown_outcome` for a send stopped in flight.
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

describe("a call's deadline", function()
  local c

  before_each(h.reset)

  after_each(function()
    if c then c:close() end
    c = nil
  end)

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
