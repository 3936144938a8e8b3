-- resolve: a send of unknown outcome found on the gateway, or proved absent, counted in
-- requests; send_dir resends only what provably did not arrive.
local h = require "helpers"
local as2gateway = require "as2gateway"
local S = require "workflows.support"

local SEND = "POST /message/:station/:partner"
local FAST = { max_processing = 2 } -- the sandbox sends for 0.5 s

local function outbound_names()
  local res = h.control("GET", "messages")
  local count = {}
  for _, m in ipairs(res.outbound) do
    for _, a in ipairs(m.attachments) do count[a.name] = (count[a.name] or 0) + 1 end
  end
  return count
end

-- Requests the sandbox counted while fn ran, and fn's results.
local function counted(fn)
  local before = h.stats().requests
  local r = table.pack(fn())
  return h.stats().requests - before, table.unpack(r, 1, r.n)
end

describe("client:resolve", function()
  local dir, client

  before_each(function()
    h.reset()
    dir = h.mkdtemp()
    client = as2gateway.new(h.core_options())
  end)

  after_each(function()
    client:close()
    h.rmtree(dir)
  end)

  it("tells a dropped answer (enqueued) from a 502 before processing (not), and send_dir "
     .. "resends only the second", function()
    h.write_file(dir .. "/a.xml", "<a/>\n")
    h.write_file(dir .. "/b.xml", "<b/>\n")
    h.write_file(dir .. "/c.xml", "<c/>\n")
    -- a: the gateway enqueues it and the answer is lost; b: a proxy answers 502 and the
    -- gateway never sees it; c goes through
    h.fault { path = "/message/ACME-AS2/GLOBEX-AS2", method = "POST", drop_response = true }
    h.fault { path = "/message/ACME-AS2/GLOBEX-AS2", method = "POST", status = 502 }
    local report = assert(client:send_dir("ACME-AS2", "GLOBEX-AS2", dir))
    assert.same({ "unknown", "unknown", "sent" },
      { report[1].state, report[2].state, report[3].state })
    assert.equal("unknown_outcome", report[1].err.kind)
    assert.equal("unknown_outcome", report[2].err.kind)
    local c_id = report[3].as2MessageId

    -- right away (a still in the queue, which shows no attachments): 3 requests
    local used, found, where = counted(function()
      return client:resolve(report[1].record, { max_processing = 2, exclude = { [c_id] = true } })
    end)
    assert.is_table(found)
    assert.equal("sent", where) -- looked up by its ID once it left the queue
    assert.same({ { name = "a.xml", size = 5 } }, found.attachments)
    assert.is_true(used <= 3, ("%d requests"):format(used))
    -- once sent, the common case: 1 request
    used, found, where = counted(function()
      return client:resolve(report[1].record, FAST)
    end)
    assert.equal("sent", where)
    assert.equal(1, used)
    -- b: proved absent in 4 requests (and a wait of max_processing), once the gateway
    -- has surely handled every request of its send (max_processing after it ended)
    as2gateway.core.sleep(3)
    local absent, why
    used, absent, why = counted(function()
      return client:resolve(report[2].record,
        { max_processing = 2, exclude = { [found.as2MessageId] = true, [c_id] = true } })
    end)
    assert.is_false(absent)
    assert.equal("absent", why)
    assert.equal(4, used)

    -- the next run resolves both first and sends b alone
    local before = S.route_count(h.stats(), SEND)
    report = assert(client:send_dir("ACME-AS2", "GLOBEX-AS2", dir, { resolve = FAST }))
    assert.equal(1, S.route_count(h.stats(), SEND) - before)
    assert.equal(3, #report)
    assert.is_true(report[1].resolved)
    assert.equal("sent", report[1].state)
    assert.equal(found.as2MessageId, report[1].as2MessageId)
    assert.is_true(report[2].resolved)
    assert.equal("unsent", report[2].state)
    assert.equal("sent", report[3].state)
    assert.same({ dir .. "/b.xml" }, report[3].files)
    assert.equal(1, report.settled) -- c
    assert.same({ ["a.xml"] = 1, ["b.xml"] = 1, ["c.xml"] = 1, ["order-5001.xml"] = 1 },
      outbound_names())
    -- and the run after that has nothing to do
    before = h.stats().requests
    report = assert(client:send_dir("ACME-AS2", "GLOBEX-AS2", dir, { resolve = FAST }))
    assert.equal(0, #report)
    assert.equal(3, report.settled)
    assert.equal(before, h.stats().requests)
  end)

  it("needs no resolve after a connection refused: unsent, sent on the next run", function()
    h.write_file(dir .. "/a.xml", "<a/>\n")
    h.write_file(dir .. "/b.xml", "<b/>\n")
    -- a port where nothing listens: refused before anything went out
    local offline = as2gateway.new(h.core_options { url = "https://127.0.0.1:1/v1",
      retries = 1, backoff_base = 0.01, backoff_cap = 0.02 })
    local before = h.stats().requests
    local report, err, partial = offline:send_dir("ACME-AS2", "GLOBEX-AS2", dir)
    offline:close()
    assert.is_nil(report)
    assert.equal("network", err.kind)
    -- the run stops at the first file: the next one would meet the same
    assert.equal(1, #partial)
    assert.equal("unsent", partial[1].state)
    assert.equal(before, h.stats().requests)
    report = assert(client:send_dir("ACME-AS2", "GLOBEX-AS2", dir, { resolve = FAST }))
    assert.equal(2, #report)
    assert.equal("sent", report[1].state)
    assert.is_nil(report[1].resolved)
    assert.equal("sent", report[2].state)
    assert.equal(2, S.route_count(h.stats(), SEND))
    assert.same({ ["a.xml"] = 1, ["b.xml"] = 1, ["order-5001.xml"] = 1 }, outbound_names())
  end)

  it("proves a send that never reached the gateway absent, and sends it again", function()
    -- what a crash right after journalling a send, before it went out, leaves behind
    h.write_file(dir .. "/a.xml", "<a/>\n")
    local sha = as2gateway.core.sha256("<a/>\n")
    h.write_file(dir .. "/.as2g-send.journal", h.json_encode { n = 1, op = "send",
      files = { { name = "a.xml", size = 5, sha256 = sha } }, station = "ACME-AS2",
      partner = "GLOBEX-AS2", partnerType = "production", time = os.time() * 1000 } .. "\n")
    local used, report = counted(function()
      return client:send_dir("ACME-AS2", "GLOBEX-AS2", dir, { resolve = FAST })
    end)
    assert.is_table(report)
    assert.equal("unsent", report[1].state)
    assert.is_true(report[1].resolved)
    assert.equal("sent", report[2].state)
    -- login, the proof (the queue looked at again once max_processing has passed since
    -- the send began: it may have been on its way), the send
    assert.equal(1 + 5 + 1, used)
    assert.same({ ["a.xml"] = 1, ["order-5001.xml"] = 1 }, outbound_names())
  end)

  it("finds a Test partner's message, and one that failed and is being retried", function()
    h.behaviour("AS2G-ECHO-TEST", "fail")
    local res = assert(client:send("ACME-AS2", "AS2G-ECHO-TEST", { { name = "t.csv",
      data = "a,b\n" } }, { partnerType = "test", subject = "Retry me" }))
    h.advance(3) -- one failed attempt; back in the queue
    local record = { station = "ACME-AS2", partner = "AS2G-ECHO-TEST", partnerType = "test",
      subject = "Retry me", files = { { name = "t.csv", size = 4 } },
      time = os.time() * 1000 }
    local found, where = client:resolve(record, FAST)
    assert.is_table(found)
    assert.equal(res.as2MessageId, found.as2MessageId)
    assert.equal("failed", where)
    -- other subjects, files or partners are not it
    for _, other in ipairs {
      { subject = "Other" }, { files = { { name = "t.csv", size = 5 } } },
      { partnerType = "production" } } do
      local r = {}
      for k, v in pairs(record) do r[k] = v end
      for k, v in pairs(other) do r[k] = v end
      local none, why = client:resolve(r, FAST)
      assert.is_false(none)
      assert.equal("absent", why)
    end
  end)

  it("stays undecided while a message that may be it is held in the queue", function()
    h.behaviour("GLOBEX-AS2", "pause")
    local t0 = os.time() * 1000
    assert(client:send("ACME-AS2", "GLOBEX-AS2", { { name = "p.xml", data = "<p/>" } }))
    local record = { station = "ACME-AS2", partner = "GLOBEX-AS2",
      files = { { name = "p.xml", size = 4 } }, time = t0 }
    local none, err = client:resolve(record, { max_processing = 2, timeout = 3 })
    assert.is_nil(none)
    assert.equal("unknown_outcome", err.kind)
    assert.matches("still undecided", err.message)
    -- once it moves, it is decided
    h.behaviour("GLOBEX-AS2", "deliver")
    h.advance(2)
    assert.is_table((client:resolve(record, FAST)))
  end)

  it("looks a record with a known ID up directly, and raises on misuse", function()
    local res = assert(client:send("ACME-AS2", "GLOBEX-AS2", { { name = "k.xml", data = "<k/>" } }))
    local used, found, where = counted(function()
      return client:resolve({ station = "ACME-AS2", partner = "GLOBEX-AS2",
        files = { { name = "k.xml", size = 4 } }, time = 0, as2MessageId = res.as2MessageId })
    end)
    assert.equal(res.as2MessageId, found.as2MessageId)
    assert.equal("queued", where)
    assert.equal(2, used) -- not sent yet, then queued
    local ok = { station = "A", partner = "B", files = { { name = "x", size = 1 } }, time = 1 }
    assert.has_error(function() client:resolve(nil) end)
    assert.has_error(function() client:resolve({ station = "A", partner = "B", time = 1 }) end)
    assert.has_error(function() client:resolve({ station = "A", partner = "B", files = { "x" },
      time = 1 }) end)
    assert.has_error(function() client:resolve({ station = "A", files = ok.files, time = 1 }) end)
    assert.has_error(function() client:resolve(ok, { bogus = 1 }) end)
    assert.has_error(function() client:resolve(ok, { max_processing = -1 }) end)
  end)
end)
