-- The core's rate limiting: no 429 under the real window, Retry-After honoured (one longer
-- than retry_after_cap ends the call at once), own limiter waits.
local h = require "helpers"
local core = require "as2gateway.core"

local LIST = "GET /message/:kind"

local function list(c)
  return c:perform { path = { "message", "received" }, json = true }
end

local fake_time = h.fake_time

local fault = h.fault

describe("core rate limit", function()
  local c

  before_each(function()
    h.reset()
  end)

  after_each(function()
    if c then c:close() end
    c = nil
  end)

  it("makes 120 calls under the gateway's 50 per 10 s without a single 429", function()
    local config = h.control("GET", "config")
    assert.are.same({ requests = 50, window = 10 }, config.rate_limit)
    c = core.new(h.core_options())
    for i = 1, 120 do
      local res, err = c:perform { path = { "message", "received" },
        query = { pageLength = 1 }, json = true }
      assert.is_nil(err, "call " .. i)
      assert.are.equal(200, res.status)
    end
    local st = h.stats()
    assert.are.equal(0, st.rate_limited)
    assert.are.equal(120, st.by_endpoint[LIST])
    local cs = c:stats()
    assert.are.equal(0, cs.ratelimited)
    assert.are.equal(0, cs.retries)
    assert.is_true(cs.waits >= 1)
    -- 121 requests at 50 per 10 s cannot take less than two full windows
    assert.is_true(cs.waited >= 15, "waited only " .. cs.waited .. " s")
  end)

  it("waits for Retry-After on a 429 and then succeeds", function()
    local t = fake_time()
    c = core.new(h.core_options { clock = t.clock, sleep = t.sleep })
    assert.is_nil(select(2, list(c)))
    fault { path = "/message/received", status = 429, retry_after = 2 }
    local started = os.time()
    local res, err = list(c)
    assert.is_nil(err)
    assert.are.equal(200, res.status)
    assert.is_true(t.total >= 2, "slept " .. t.total .. " s")
    assert.is_true(t.total < 3, "slept " .. t.total .. " s")
    assert.is_true(os.time() - started < 2, "the fake clock should not really wait")
    local cs = c:stats()
    assert.are.equal(1, cs.ratelimited)
    assert.are.equal(1, cs.retries)
    assert.are.equal(3, h.stats().by_endpoint[LIST])
  end)

  it("waits a full window on a 429 without Retry-After", function()
    local t = fake_time()
    c = core.new(h.core_options { clock = t.clock, sleep = t.sleep })
    assert.is_nil(select(2, list(c)))
    fault { path = "/message/received", status = 429 }
    local res, err = list(c)
    assert.is_nil(err)
    assert.are.equal(200, res.status)
    assert.is_true(t.total >= 10, "slept " .. t.total .. " s")
    assert.is_true(t.total < 11, "slept " .. t.total .. " s")
  end)

  it("waits the client's window on a 429 with an unreadable Retry-After", function()
    local t = fake_time()
    c = core.new(h.core_options { clock = t.clock, sleep = t.sleep,
      rate_limit = { requests = 50, window = 4 } })
    fault { path = "/message/received", status = 429, retry_after = "soon" }
    local res, err = list(c)
    assert.is_nil(err)
    assert.are.equal(200, res.status)
    assert.is_true(t.total >= 4 and t.total < 5, "slept " .. t.total .. " s")
  end)

  it("ends the call at once with err.retry_after when Retry-After is over the cap", function()
    local t = fake_time()
    c = core.new(h.core_options { clock = t.clock, sleep = t.sleep, retry_after_cap = 120 })
    assert(list(c))
    fault { path = "/message/received", status = 429, retry_after = 3600 }
    local res, err = list(c)
    assert.is_nil(res)
    assert.equal("ratelimited", err.kind)
    assert.equal(429, err.status)
    assert.equal(3600, err.retry_after)
    assert.equal(0, t.total) -- no sleep
    -- the next call does not ask again before the time is up: no request at all
    t.now = t.now + 600
    local before = h.stats().by_endpoint[LIST]
    res, err = list(c)
    assert.is_nil(res)
    assert.equal("ratelimited", err.kind)
    assert.equal(3000, err.retry_after)
    assert.equal(before, h.stats().by_endpoint[LIST])
    t.now = t.now + 3000
    assert(list(c))
    -- below the cap it waits, as before
    fault { path = "/message/received", status = 429, retry_after = 2 }
    assert(list(c))
    assert.is_true(t.total >= 2 and t.total < 3, t.total)
  end)

  it("ends the call at once when a Retry-After HTTP date is over the cap", function()
    local t = fake_time()
    c = core.new(h.core_options { clock = t.clock, sleep = t.sleep, retry_after_cap = 60 })
    fault { path = "/message/received", status = 429,
      retry_after = os.date("!%a, %d %b %Y %H:%M:%S GMT", os.time() + 7200) }
    local res, err = list(c)
    assert.is_nil(res)
    assert.equal("ratelimited", err.kind)
    assert.truthy(err.retry_after > 7000 and err.retry_after <= 7200, err.retry_after)
    assert.equal(0, t.total)
  end)

  it("honours a Retry-After given as an HTTP date", function()
    local t = fake_time()
    c = core.new(h.core_options { clock = t.clock, sleep = t.sleep })
    fault { path = "/message/received", status = 429,
      retry_after = os.date("!%a, %d %b %Y %H:%M:%S GMT", os.time() + 5) }
    local res, err = list(c)
    assert.is_nil(err)
    assert.are.equal(200, res.status)
    assert.is_true(t.total >= 3 and t.total <= 6, "slept " .. t.total .. " s")
  end)

  it("waits for Retry-After on a 429 to /authorize, then logs in", function()
    local t = fake_time()
    c = core.new(h.core_options { clock = t.clock, sleep = t.sleep })
    fault { path = "/authorize", status = 429, retry_after = 2 }
    local res, err = list(c)
    assert.is_nil(err)
    assert.are.equal(200, res.status)
    assert.is_true(t.total >= 2, "slept " .. t.total .. " s")
    assert.are.equal(2, h.stats().by_endpoint["POST /authorize"])
    assert.are.equal(1, h.stats().authorizations)
  end)

  it("fails with kind ratelimited when still 429 after the retries", function()
    local t = fake_time()
    c = core.new(h.core_options { clock = t.clock, sleep = t.sleep, retries = 2 })
    assert.is_nil(select(2, list(c)))
    fault { path = "/message/received", status = 429, retry_after = 1, count = 5 }
    local res, err = list(c)
    assert.is_nil(res)
    assert.are.equal("ratelimited", err.kind)
    assert.are.equal(429, err.status)
    assert.are.equal(4, h.stats().by_endpoint[LIST]) -- 1 before, then 1 + 2 retries
    assert.are.equal(3, c:stats().ratelimited)
    assert.is_true(t.total >= 2)
  end)

  it("makes a request wait for its own limiter and logs ratelimit_wait", function()
    local t = fake_time()
    local events = {}
    c = core.new(h.core_options { clock = t.clock, sleep = t.sleep,
      rate_limit = { requests = 3, window = 1 },
      log = function(ev) events[#events + 1] = ev end })
    for _ = 1, 4 do -- /authorize and 4 calls: 5 requests, at most 3 per second
      local res, err = list(c)
      assert.is_nil(err)
      assert.are.equal(200, res.status)
    end
    local waits = {}
    for _, ev in ipairs(events) do
      if ev.event == "ratelimit_wait" then waits[#waits + 1] = ev end
    end
    assert.is_true(#waits >= 1, "no ratelimit_wait event")
    for _, ev in ipairs(waits) do
      assert.is_number(ev.delay)
      assert.is_true(ev.delay > 0 and ev.delay <= 1.1)
    end
    assert.is_true(t.total >= 1, "slept " .. t.total .. " s")
    local cs = c:stats()
    assert.are.equal(#waits, cs.waits)
    assert.is_true(cs.waited >= 1)
    assert.are.equal(0, cs.ratelimited)
  end)

  it("does not wait at all with rate_limit = false", function()
    local t = fake_time()
    local events = {}
    c = core.new(h.core_options { clock = t.clock, sleep = t.sleep, rate_limit = false,
      log = function(ev) events[#events + 1] = ev.event end })
    for _ = 1, 6 do assert.is_nil(select(2, list(c))) end
    assert.are.equal(0, t.total)
    assert.are.equal(0, c:stats().waits)
    for _, e in ipairs(events) do assert.are_not.equal("ratelimit_wait", e) end
  end)
end)
