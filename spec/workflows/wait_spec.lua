-- wait: from a send result to sent (with MDN), failed, stopped or a timeout, polling sparingly.
local h = require "helpers"
local as2gateway = require "as2gateway"
local S = require "workflows.support"

local now = require("as2gateway.core").now

local FILE = { { name = "order.xml", data = "<order number='1'/>" } }

-- A clock and a sleep hook that jump ahead: each sleep moves this clock and the
-- sandbox's clock by the time asked for plus a minute, so a 17-minute retry schedule
-- passes in a moment.
local function fast_time()
  local t = { now = 0 }
  t.clock = function() return t.now end
  t.sleep = function(s)
    t.now = t.now + s + 60
    h.advance(s + 60)
  end
  return t
end

local function partner(name, behaviour)
  local _, status = h.control("POST", "partner/" .. name, { behaviour = behaviour })
  assert.equal(200, status)
end

describe("client:wait", function()
  local client

  before_each(function()
    h.reset()
  end)

  after_each(function()
    if client then client:close() end
    client = nil
  end)

  it("follows a send's link until the message is sent, with its MDN status", function()
    client = as2gateway.new(h.core_options())
    local result = assert(client:send("ACME-AS2", "AS2G-ECHO", FILE))
    local before, t0 = h.stats().requests, now()
    local message, state = client:wait(result.link, { initial = 1, timeout = 30 })
    local used, took = h.stats().requests - before, now() - t0
    assert.equal("sent", state)
    assert.is_table(message)
    assert.equal(result.as2MessageId, message.as2MessageId)
    assert.equal("Received", message.mdnStatus)
    assert.equal("Delivered", message.deliveryStatus)
    assert.equal("order.xml", message.attachments[1].name)
    -- about 1.5 s of queue: a handful of polls, not a busy loop
    assert.is_true(used <= 6, ("%d requests"):format(used))
    assert.is_true(took < 15, ("took %.1f s"):format(took))
  end)

  it("takes the AS2 message ID as well as the link", function()
    client = as2gateway.new(h.core_options())
    local result = assert(client:send("ACME-AS2", "AS2G-ECHO", FILE))
    local message, state = client:wait(result.as2MessageId, { initial = 1, timeout = 30 })
    assert.equal("sent", state)
    assert.equal(result.as2MessageId, message.as2MessageId)
  end)

  it("with opts.mdn, returns only once an asynchronous MDN is received", function()
    client = as2gateway.new(h.core_options())
    local result = assert(client:send("ACME-AS2", "INITECH-AS2", FILE))
    local before = h.stats().requests
    local message, state = client:wait(result.link, { initial = 1, timeout = 30, mdn = true })
    local used = h.stats().requests - before
    assert.equal("sent", state)
    assert.equal(result.as2MessageId, message.as2MessageId)
    assert.equal("Received", message.mdnStatus)
    assert.is_true(used <= 10, ("%d requests"):format(used))
  end)

  it("reports a message whose retries ran out as stopped, with its last failed attempt",
    function()
      partner("GLOBEX-AS2", "fail")
      local t = fast_time()
      client = as2gateway.new(h.core_options { clock = t.clock, sleep = t.sleep })
      local result = assert(client:send("ACME-AS2", "GLOBEX-AS2", FILE))
      local before, t0 = h.stats().requests, now()
      local message, state = client:wait(result.link, { timeout = 4 * 3600 })
      local used, took = h.stats().requests - before, now() - t0
      assert.equal("stopped", state)
      assert.equal(result.as2MessageId, message.as2MessageId)
      assert.equal("Not Delivered", message.deliveryStatus)
      local seen = S.inspect(result.as2MessageId)
      assert.equal(1, #seen.stopped)
      assert.equal(10, seen.stopped[1].attempts)
      assert.equal(10, #seen.failed)
      local last = 0
      for _, f in ipairs(seen.failed) do last = math.max(last, f.persistedTimestamp) end
      assert.equal(last, message.persistedTimestamp)
      -- about 17 minutes of retries, in fake time: a poll every 30 s at most
      assert.is_true(t.now >= 1000, ("only %.0f fake seconds"):format(t.now))
      assert.is_true(used <= 45, ("%d requests"):format(used))
      assert.is_true(took < 20, ("took %.1f s"):format(took))
    end)

  it("with opts.first_failure, returns the first failed attempt as failed", function()
    partner("GLOBEX-AS2", "fail")
    local t = fast_time()
    client = as2gateway.new(h.core_options { clock = t.clock, sleep = t.sleep })
    local result = assert(client:send("ACME-AS2", "GLOBEX-AS2", FILE))
    local before = h.stats().requests
    local message, state = client:wait(result.link, { timeout = 3600, first_failure = true })
    local used = h.stats().requests - before
    assert.equal("failed", state)
    assert.equal(result.as2MessageId, message.as2MessageId)
    assert.equal(503, message.transportStatusReceived)
    local seen = S.inspect(result.as2MessageId)
    assert.equal(1, #seen.queued) -- still being retried
    local first = math.huge
    for _, f in ipairs(seen.failed) do first = math.min(first, f.persistedTimestamp) end
    assert.equal(first, message.persistedTimestamp)
    assert.is_true(used <= 4, ("%d requests"):format(used))
  end)

  it("gives up with a timeout error while the partner keeps the message queued", function()
    partner("GLOBEX-AS2", "pause")
    local t = fast_time()
    client = as2gateway.new(h.core_options { clock = t.clock, sleep = t.sleep })
    local result = assert(client:send("ACME-AS2", "GLOBEX-AS2", FILE))
    local before, t0 = h.stats().requests, now()
    local message, err = client:wait(result.link, { timeout = 600 })
    local used, took = h.stats().requests - before, now() - t0
    assert.is_nil(message)
    assert.is_table(err)
    assert.equal("timeout", err.kind)
    assert.matches(result.as2MessageId, err.message, 1, true)
    assert.is_true(t.now >= 600)
    assert.equal(1, #S.inspect(result.as2MessageId).queued)
    -- 600 s with polls at most 30 s apart: about 20 polls of 2 requests, not hundreds
    assert.is_true(used <= 30, ("%d requests"):format(used))
    assert.is_true(took < 10, ("took %.1f s"):format(took))
  end)

  it("raises on an unknown option", function()
    client = as2gateway.new(h.core_options())
    assert.has_error(function() client:wait("x@y", { bogus = true }) end)
  end)
end)
