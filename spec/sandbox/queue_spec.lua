-- Pins down the outbound queue: queued -> being sent -> sent with per-partner MDN data,
-- paused and failing partners, retries with growing delays, stop/retry, and the echo
-- partner's round trip.
local h = require "helpers"

local unescape = h.unescape

local assert_generic = h.assert_generic

local config = h.config

local behaviour = h.behaviour

-- Sends one raw file; returns the AS2 ID and the Link header.
local function send(partner, opts)
  opts = opts or {}
  local res = h.api("POST", "/message/" .. (opts.station or "ACME-AS2") .. "/" .. partner, {
    query = opts.query, body = opts.body or "<order number=\"1\"/>\n",
    headers = { "Name: " .. (opts.name or "order.xml"), "Content-Type: application/xml" } })
  assert.equal(202, res.status, res.body)
  local link = res.headers.link
  return unescape(assert(link:match("/message/sent/([^/]+)$"), link)), link
end

local function get(kind, id)
  return h.api("GET", "/message/" .. kind .. "/" .. h.escape(id))
end

local function listed(kind, query)
  local res = h.api("GET", "/message/" .. kind, { query = query })
  assert.equal(200, res.status, res.body)
  return res.json
end

local function in_queue_listing(id)
  for _, m in ipairs(listed("queued", { pageLength = 100 }).records) do
    if m.as2MessageId == id then return true end
  end
  return false
end

local function failed_count(id)
  return listed("failed", { as2MessageId = id, pageLength = 100 }).totalRecords
end

-- Moves the sandbox clock to `secs` seconds after the instant `t0` (ms).
local function clock_to(t0, secs)
  local now = h.control("GET", "clock").now
  local delta = t0 + secs * 1000 - now
  assert(delta >= 0, "the clock is already past the target")
  h.advance(delta / 1000)
end

local function enqueued_at(id)
  local info = h.control("GET", "messages/" .. h.escape(id))
  local e = info.queued[1] or info.stopped[1] or info.sent[1]
  return e.persistedTimestamp
end

describe("delivery", function()
  before_each(h.reset)

  it("keeps a message queued for the queue delay, then sends it with a synchronous MDN",
    function()
      config { queue_delay = 5 }
      local id = send("GLOBEX-AS2", { query = { subject = "Sync MDN" } })
      assert.is_true(in_queue_listing(id))
      assert.equal(200, get("queued", id).status)
      assert_generic(get("sent", id), 404)
      h.advance(6)
      assert_generic(get("queued", id), 404)
      assert.is_false(in_queue_listing(id))
      local res = get("sent", id)
      assert.equal(200, res.status)
      local m = res.json
      assert.equal(id, m.as2MessageId)
      assert.equal("Sync MDN", m.subject)
      assert.equal(200, m.transportStatusReceived)
      assert.equal("Delivered", m.deliveryStatus)
      assert.equal("Received", m.mdnStatus)
      assert.equal("table", type(m.mdnMessage))
      assert.is_false(m.mdnMessage.mdnError)
      assert.equal("string", type(m.mdnMessage.content))
      assert.equal("number", type(m.mdnMessage.persistedTimestamp))
      assert.same({ { name = "order.xml", size = 20 } }, m.attachments)
    end)

  it("sends within the default queue delay and processing time", function()
    local id = send("GLOBEX-AS2")
    h.advance(1.6)
    assert.equal(200, get("sent", id).status)
  end)

  it("sends to a partner without MDN as Not Requested, without mdnMessage", function()
    local id = send("HOOLI-TEST", { query = { partnerType = "test" } })
    h.advance(2)
    local res = get("sent", id)
    assert.equal(200, res.status)
    assert.equal("Not Requested", res.json.mdnStatus)
    assert.is_nil(res.json.mdnMessage)
    assert.equal("Test", res.json.partnerType)
    assert.equal("HOOLI-TEST", res.json.receiverId)
  end)

  it("shows an asynchronous MDN as Pending, then Received", function()
    config { queue_delay = 5 }
    local id = send("INITECH-AS2")
    h.advance(5.6)
    local res = get("sent", id)
    assert.equal(200, res.status)
    assert.equal("Pending", res.json.mdnStatus)
    assert.is_nil(res.json.mdnMessage)
    h.advance(3)
    res = get("sent", id)
    assert.equal("Received", res.json.mdnStatus)
    assert.equal("table", type(res.json.mdnMessage))
    assert.is_false(res.json.mdnMessage.mdnError)
  end)

  it("makes the Link URL resolve once the message is sent", function()
    config { queue_delay = 5 }
    local id, link = send("GLOBEX-AS2")
    local before = h.curl { url = link, token = h.token }
    assert_generic(before, 404)
    h.advance(6)
    local after = h.curl { url = link, token = h.token }
    assert.equal(200, after.status, after.body)
    assert.equal(id, after.json.as2MessageId)
    assert.equal("Delivered", after.json.deliveryStatus)
  end)

  it("leaves an entry being sent out of the queued listing but finds it by ID", function()
    config { queue_delay = 0, processing_time = 30 }
    local id = send("GLOBEX-AS2")
    h.advance(1)
    assert.is_false(in_queue_listing(id))
    assert.equal(0, listed("queued", { query = id }).totalRecords)
    local res = get("queued", id)
    assert.equal(200, res.status)
    assert.equal(id, res.json.as2MessageId)
    assert_generic(get("sent", id), 404)
    h.advance(30)
    assert.equal(200, get("sent", id).status)
    assert_generic(get("queued", id), 404)
  end)
end)

describe("paused partner", function()
  before_each(h.reset)

  it("keeps messages queued until the partner delivers again", function()
    behaviour("GLOBEX-AS2", "pause")
    local partners = h.api("GET", "/partner", { query = { query = "GLOBEX-AS2" } })
    assert.is_true(partners.json[1].pauseOutgoing)
    local a = send("GLOBEX-AS2")
    local b = send("GLOBEX-AS2")
    h.advance(600)
    assert.is_true(in_queue_listing(a))
    assert.is_true(in_queue_listing(b))
    assert.equal(200, get("queued", a).status)
    assert_generic(get("sent", a), 404)
    assert.equal(0, failed_count(a))
    behaviour("GLOBEX-AS2", "deliver")
    h.advance(2)
    assert.equal(200, get("sent", a).status)
    assert.equal(200, get("sent", b).status)
    assert.is_false(in_queue_listing(a))
    partners = h.api("GET", "/partner", { query = { query = "GLOBEX-AS2" } })
    assert.is_false(partners.json[1].pauseOutgoing)
  end)
end)

describe("failing partner", function()
  before_each(h.reset)

  it("adds a failed entry per attempt, retrying after 2 s, 4 s, 8 s ...", function()
    config { processing_time = 0 }
    behaviour("GLOBEX-AS2", "fail")
    local id = send("GLOBEX-AS2", { query = { subject = "Will fail" } })
    local t0 = enqueued_at(id)
    -- attempt n fails at 2^n - 1 s: queue delay 1 s, then retries after 2, 4, 8 s
    local checks = { { 0.7, 0 }, { 1.3, 1 }, { 2.7, 1 }, { 3.3, 2 }, { 6.7, 2 }, { 7.3, 3 },
      { 14.7, 3 }, { 15.3, 4 }, { 30.7, 4 }, { 31.3, 5 } }
    for _, c in ipairs(checks) do
      clock_to(t0, c[1])
      assert.equal(c[2], failed_count(id), ("failed entries at %.1f s"):format(c[1]))
    end
    assert.is_true(in_queue_listing(id))
    local res = listed("failed", { as2MessageId = id, sortDir = "asc" })
    for i, m in ipairs(res.records) do
      assert.equal(id, m.as2MessageId)
      assert.equal("Will fail", m.subject)
      assert.equal(503, m.transportStatusReceived)
      assert.equal("Not Delivered", m.deliveryStatus)
      assert.equal("No MDN", m.mdnStatus)
      assert.equal(t0 + (2 ^ i - 1) * 1000, m.persistedTimestamp)
    end
  end)

  it("stops an entry after 10 attempts", function()
    behaviour("GLOBEX-AS2", "fail")
    local id = send("GLOBEX-AS2")
    local t0 = enqueued_at(id)
    -- with the 0.5 s processing time, attempt 9 fails at 1 + 9*0.5 + 2+4+...+256 s
    clock_to(t0, 515)
    assert.equal(8, failed_count(id))
    clock_to(t0, 516)
    assert.equal(9, failed_count(id))
    assert.is_true(in_queue_listing(id))
    assert.equal(200, get("queued", id).status)
    clock_to(t0, 1029)
    assert.equal(10, failed_count(id))
    assert.is_false(in_queue_listing(id))
    assert_generic(get("queued", id), 404)
    assert_generic(get("sent", id), 404)
    local info = h.control("GET", "messages/" .. h.escape(id))
    assert.equal(1, #info.stopped)
    assert.equal(10, info.stopped[1].attempts)
    -- no eleventh attempt
    h.advance(5000)
    assert.equal(10, failed_count(id))
    local res = listed("failed", { as2MessageId = id, pageLength = 100 })
    assert.equal(10, #res.records)
    assert.equal(200, get("failed", id).status)
  end)
end)

describe("stop and retry", function()
  before_each(h.reset)

  it("moves a queued entry out of the queue with stop", function()
    behaviour("GLOBEX-AS2", "pause")
    local id = send("GLOBEX-AS2")
    local res = h.api("POST", "/message/queued/" .. h.escape(id) .. "/stop")
    assert.equal(200, res.status)
    assert.same({ message = "Successfully stopped retrying AS2 message with ID " .. id },
      res.json)
    assert.is_false(in_queue_listing(id))
    assert_generic(get("queued", id), 404)
    -- a stopped entry is not sent when the partner delivers again
    behaviour("GLOBEX-AS2", "deliver")
    h.advance(10)
    assert_generic(get("sent", id), 404)
    local info = h.control("GET", "messages/" .. h.escape(id))
    assert.equal(1, #info.stopped)
    -- stopping it again, or an unknown ID, is 404
    assert_generic(h.api("POST", "/message/queued/" .. h.escape(id) .. "/stop"), 404)
    assert_generic(h.api("POST", "/message/queued/" .. h.escape("<nope@as2gateway.com>")
      .. "/stop"), 404)
  end)

  it("brings a stopped entry back with retry and sends it", function()
    behaviour("GLOBEX-AS2", "pause")
    local id = send("GLOBEX-AS2")
    assert.equal(200, h.api("POST", "/message/queued/" .. h.escape(id) .. "/stop").status)
    behaviour("GLOBEX-AS2", "deliver")
    local res = h.api("POST", "/message/queued/" .. h.escape(id) .. "/retry")
    assert.equal(200, res.status)
    assert.same({ message = "Successfully started retrying AS2 message with ID " .. id },
      res.json)
    h.advance(2)
    local sent = get("sent", id)
    assert.equal(200, sent.status)
    assert.equal("Delivered", sent.json.deliveryStatus)
    assert_generic(get("queued", id), 404)
  end)

  it("retries an entry stopped after 10 failed attempts", function()
    config { processing_time = 0 }
    behaviour("GLOBEX-AS2", "fail")
    local id = send("GLOBEX-AS2")
    h.advance(2000)
    assert.equal(10, failed_count(id))
    assert_generic(get("queued", id), 404)
    behaviour("GLOBEX-AS2", "deliver")
    assert.equal(200, h.api("POST", "/message/queued/" .. h.escape(id) .. "/retry").status)
    h.advance(2)
    assert.equal(200, get("sent", id).status)
    assert.equal(10, failed_count(id))
  end)

  it("makes a queued entry due now with retry", function()
    config { queue_delay = 100 }
    local id = send("GLOBEX-AS2")
    local waiting = send("GLOBEX-AS2")
    h.advance(2)
    assert.equal(200, get("queued", id).status)
    assert.equal(200, h.api("POST", "/message/queued/" .. h.escape(id) .. "/retry").status)
    h.advance(1)
    assert.equal(200, get("sent", id).status)
    assert.equal(200, get("queued", waiting).status)
    assert_generic(get("sent", waiting), 404)
  end)

  it("answers 404 to retry of an unknown ID", function()
    assert_generic(h.api("POST", "/message/queued/" .. h.escape("<nope@as2gateway.com>")
      .. "/retry"), 404)
  end)
end)

describe("echo partner", function()
  before_each(h.reset)

  it("returns what is sent to it as a new received message", function()
    local one = "first file\0with a NUL and \255 high bytes\r\n"
    local two = string.rep("0123456789", 300)
    local boundary = "echo-spec-boundary"
    local body = table.concat {
      "--", boundary, "\r\n",
      'Content-Disposition: form-data; name="file"; filename="one.bin"\r\n',
      "Content-Type: application/octet-stream\r\n\r\n", one, "\r\n",
      "--", boundary, "\r\n",
      'Content-Disposition: form-data; name="file"; filename="two.txt"\r\n',
      "Content-Type: text/plain\r\n\r\n", two, "\r\n",
      "--", boundary, "--\r\n",
    }
    local res = h.api("POST", "/message/ACME-AS2/AS2G-ECHO", { query = { subject = "Ping" },
      headers = { "Content-Type: multipart/form-data; boundary=" .. boundary }, body = body })
    assert.equal(202, res.status, res.body)
    local sent_id = unescape(res.headers.link:match("/message/sent/([^/]+)$"))
    assert.equal(0, listed("received", { partnerAS2Id = "AS2G-ECHO" }).totalRecords)
    h.advance(2)
    assert.equal(200, get("sent", sent_id).status)
    local inbox = listed("received", { partnerAS2Id = "AS2G-ECHO" })
    assert.equal(1, inbox.totalRecords)
    local m = inbox.records[1]
    assert.are_not.equal(sent_id, m.as2MessageId)
    assert.equal("AS2G-ECHO", m.receiverId)
    assert.equal("ACME-AS2", m.senderId)
    assert.equal("Ping", m.subject)
    assert.equal("Production", m.partnerType)
    assert.same({ { name = "one.bin", size = #one }, { name = "two.txt", size = #two } },
      m.attachments)
    local path = "/message/received/" .. h.escape(m.as2MessageId) .. "/attachments/"
    assert.equal(one, h.api("GET", path .. "0").body)
    assert.equal(two, h.api("GET", path .. "1").body)
  end)

  it("echoes a Test message back as a Test message", function()
    local id = send("AS2G-ECHO-TEST", { query = { partnerType = "test" }, body = "ping" })
    h.advance(2)
    local inbox = listed("received", { partnerType = "test", partnerAS2Id = "AS2G-ECHO-TEST" })
    assert.equal(1, inbox.totalRecords)
    assert.are_not.equal(id, inbox.records[1].as2MessageId)
    assert.equal("Test", inbox.records[1].partnerType)
    assert.equal("Echo test", inbox.records[1].subject)
  end)
end)
