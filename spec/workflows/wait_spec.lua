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

  it("sees a Test partner's message fail and stop: stopped, not a timeout", function()
    partner("AS2G-ECHO-TEST", "fail")
    local t = fast_time()
    client = as2gateway.new(h.core_options { clock = t.clock, sleep = t.sleep })
    local result = assert(client:send("ACME-AS2", "AS2G-ECHO-TEST", FILE,
      { partnerType = "test" }))
    -- by ID alone: the type comes from the entries wait finds
    local message, state = client:wait(result.as2MessageId, { timeout = 4 * 3600 })
    assert.equal("stopped", state)
    assert.equal(result.as2MessageId, message.as2MessageId)
    assert.equal("Test", message.partnerType)
    local seen = S.inspect(result.as2MessageId)
    local last = 0
    for _, f in ipairs(seen.failed) do last = math.max(last, f.persistedTimestamp) end
    assert.equal(last, message.persistedTimestamp)
    -- and its first failure, from the Test listing
    h.reset()
    partner("AS2G-ECHO-TEST", "fail")
    result = assert(client:send("ACME-AS2", "AS2G-ECHO-TEST", FILE, { partnerType = "test" }))
    message, state = client:wait(result.as2MessageId, { timeout = 3600, first_failure = true })
    assert.equal("failed", state)
    assert.equal(result.as2MessageId, message.as2MessageId)
  end)

  it("answers notfound within the grace period for an ID in no list", function()
    local t = fast_time()
    client = as2gateway.new(h.core_options { clock = t.clock, sleep = t.sleep })
    local before = h.stats().requests
    local message, err = client:wait("<no.such.message@as2gateway.com>", { grace = 30 })
    local used = h.stats().requests - before
    assert.is_nil(message)
    assert.equal("notfound", err.kind)
    assert.equal("<no.such.message@as2gateway.com>", err.as2MessageId)
    assert.matches("in no list", err.message)
    -- within the grace period (plus one poll), nowhere near the 300 s timeout
    assert.is_true(t.now <= 30 + 2 * 61, ("answered after %.0f fake seconds"):format(t.now))
    assert.is_true(used <= 12, ("%d requests"):format(used))
  end)

  it("reports a message stopped before its first attempt as gone", function()
    partner("GLOBEX-AS2", "pause")
    local t = fast_time()
    local sleeps = 0
    local function sleep(s)
      sleeps = sleeps + 1
      -- someone stops it while wait is polling: no failed attempt, no stopped listing
      if sleeps == 3 then
        assert.equal(200, h.api("POST", "/message/queued/" .. h.escape(t.id) .. "/stop").status)
      end
      t.sleep(s)
    end
    client = as2gateway.new(h.core_options { clock = t.clock, sleep = sleep })
    local result = assert(client:send("ACME-AS2", "GLOBEX-AS2", FILE))
    t.id = result.as2MessageId
    local message, state = client:wait(result.as2MessageId, { timeout = 3600 })
    assert.equal("gone", state)
    assert.equal(result.as2MessageId, message.as2MessageId) -- the queued entry seen last
    assert.equal(1, #S.inspect(result.as2MessageId).stopped)
    assert.equal(0, #S.inspect(result.as2MessageId).failed)
    -- a send result is known to have been accepted: gone, even if never seen queued
    local other = assert(client:send("ACME-AS2", "GLOBEX-AS2", FILE))
    assert.equal(200, h.api("POST", "/message/queued/" .. h.escape(other.as2MessageId)
      .. "/stop").status)
    message, state = client:wait(other, { timeout = 3600 })
    assert.equal("gone", state)
    assert.equal(other.as2MessageId, message.as2MessageId)
    -- the bare ID of it is in no list: notfound, and the message says why that may be
    local none, err = client:wait(other.as2MessageId, { timeout = 3600 })
    assert.is_nil(none)
    assert.equal("notfound", err.kind)
    assert.matches("stopped before its first attempt", err.message)
  end)

  it("reports an error MDN as mdn_error, not sent, with the MDN read", function()
    h.control("POST", "partner/GLOBEX-AS2", { mdnError = true })
    client = as2gateway.new(h.core_options())
    local result = assert(client:send("ACME-AS2", "GLOBEX-AS2", FILE))
    local message, state = client:wait(result, { initial = 1, timeout = 30 })
    assert.equal("mdn_error", state)
    assert.is_true(message.mdnMessage.mdnError)
    local mdn
    message, state, mdn = client:wait(result, { initial = 1, timeout = 30, mdn = true })
    assert.equal("mdn_error", state)
    assert.equal(result.as2MessageId, message.as2MessageId)
    assert.equal("decryption-failed", mdn.error)
    assert.equal(result.as2MessageId, mdn.original_message_id)
  end)

  it("with opts.mdn, returns the parsed MDN of a good delivery", function()
    client = as2gateway.new(h.core_options())
    local result = assert(client:send("ACME-AS2", "INITECH-AS2", FILE))
    local message, state, mdn = client:wait(result, { initial = 1, timeout = 30, mdn = true })
    assert.equal("sent", state)
    assert.equal("Received", message.mdnStatus)
    assert.equal("processed", mdn.disposition)
    assert.is_nil(mdn.error)
    assert.equal("INITECH-AS2", mdn.final_recipient)
    assert.equal(result.as2MessageId, mdn.original_message_id)
  end)

  it("times out with the sent message when its MDN never comes", function()
    h.control("POST", "partner/INITECH-AS2", { mdnLost = true })
    local t = fast_time()
    client = as2gateway.new(h.core_options { clock = t.clock, sleep = t.sleep })
    local result = assert(client:send("ACME-AS2", "INITECH-AS2", FILE))
    local message, err = client:wait(result, { timeout = 600, mdn = true })
    assert.is_nil(message)
    assert.equal("timeout", err.kind)
    assert.equal("sent", err.last_state)
    assert.equal(result.as2MessageId, err.last.as2MessageId)
    assert.equal("Pending", err.last.mdnStatus)
    assert.matches("MDN is still pending", err.message)
    -- without opts.mdn, that message is simply sent
    message, err = client:wait(result, { timeout = 600 })
    assert.equal("sent", err)
    assert.equal("Delivered", message.deliveryStatus)
  end)

  it("reports No Status as no_status", function()
    h.control("POST", "partner/GLOBEX-AS2", { deliveryStatus = "No Status" })
    client = as2gateway.new(h.core_options())
    local result = assert(client:send("ACME-AS2", "GLOBEX-AS2", FILE))
    local message, state = client:wait(result, { initial = 1, timeout = 30, mdn = true })
    assert.equal("no_status", state)
    assert.equal("No Status", message.deliveryStatus)
    h.control("POST", "partner/GLOBEX-AS2", { deliveryStatus = "Not Delivered" })
    result = assert(client:send("ACME-AS2", "GLOBEX-AS2", FILE))
    message, state = client:wait(result, { initial = 1, timeout = 30 })
    assert.equal("not_delivered", state)
    assert.equal("Not Delivered", message.deliveryStatus)
  end)

  it("refuses a send result without an ID, and raises on misuse", function()
    client = as2gateway.new(h.core_options())
    local none, err = client:wait({ message = "Successfully added a new outbound entry" })
    assert.is_nil(none)
    assert.equal("invalid", err.kind)
    assert.equal(0, h.stats().requests)
    assert.has_error(function() client:wait("x@y", { bogus = true }) end)
    assert.has_error(function() client:wait("x@y", { grace = -1 }) end)
    assert.has_error(function() client:wait("") end)
    assert.has_error(function() client:wait(42) end)
  end)
end)
