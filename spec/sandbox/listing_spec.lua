-- Pins down the listing endpoints (GET /message/{received,sent,failed,queued}) and the
-- single-message endpoints: Pagination shape, AS2 Message fields, defaults, paging,
-- bounds, sorting, filters, read flags and 404s.
local h = require "helpers"

local FIELD_TYPES = {
  as2MessageId = "string", persistedTimestamp = "number", compressed = "boolean",
  encrypted = "boolean", signed = "boolean", subject = "string", receiverId = "string",
  senderId = "string", transportStatusReceived = "number", deliveryStatus = "string",
  mdnStatus = "string", partnerType = "string", mdnMessage = "table", attachments = "table",
}
local REQUIRED = { "as2MessageId", "persistedTimestamp", "compressed", "encrypted", "signed",
  "receiverId", "senderId", "mdnStatus", "partnerType" }
local MDN_STATUS = { Pending = true, Received = true, ["Not Requested"] = true,
  ["No MDN"] = true }
local DELIVERY_STATUS = { Delivered = true, ["Not Delivered"] = true, ["No Status"] = true }

local function is_int(v) return type(v) == "number" and v == math.floor(v) end

-- Checks one AS2 Message entity against the contract for a kind of listing.
local function check_message(m, kind)
  for k, v in pairs(m) do
    assert(FIELD_TYPES[k], "unexpected field " .. tostring(k))
    assert.equal(FIELD_TYPES[k], type(v), "type of " .. k)
  end
  for _, k in ipairs(REQUIRED) do assert.is_not_nil(m[k], "missing field " .. k) end
  assert.is_true(is_int(m.persistedTimestamp))
  assert.is_true(MDN_STATUS[m.mdnStatus], "mdnStatus " .. m.mdnStatus)
  assert.is_true(m.partnerType == "Production" or m.partnerType == "Test")
  if kind == "sent" or kind == "failed" then
    assert.is_true(is_int(m.transportStatusReceived), "transportStatusReceived")
    assert.is_true(DELIVERY_STATUS[m.deliveryStatus], "deliveryStatus")
  else
    assert.is_nil(m.transportStatusReceived)
    assert.is_nil(m.deliveryStatus)
  end
  if m.mdnMessage then
    local n = 0
    for k in pairs(m.mdnMessage) do
      n = n + 1
      assert(k == "persistedTimestamp" or k == "mdnError" or k == "content",
        "unexpected mdnMessage field " .. k)
    end
    assert.equal(3, n)
    assert.is_true(is_int(m.mdnMessage.persistedTimestamp))
    assert.equal("boolean", type(m.mdnMessage.mdnError))
    assert.equal("string", type(m.mdnMessage.content))
  end
  if kind == "queued" then
    assert.is_nil(m.attachments) -- docs/sandbox.md: queued entries carry none
  else
    assert.equal("table", type(m.attachments))
    assert.is_true(#m.attachments >= 1)
    for _, a in ipairs(m.attachments) do
      local n = 0
      for k in pairs(a) do
        n = n + 1
        assert(k == "name" or k == "size", "unexpected attachment field " .. k)
      end
      assert.equal(2, n)
      assert.equal("string", type(a.name))
      assert.is_true(is_int(a.size))
    end
  end
end

local function list(kind, query)
  return h.api("GET", "/message/" .. kind, { query = query })
end

local function get(kind, id, query)
  return h.api("GET", "/message/" .. kind .. "/" .. h.escape(id), { query = query })
end

local function ids_of(res)
  local ids = {}
  for i, m in ipairs(res.json.records) do ids[i] = m.as2MessageId end
  return ids
end

local function set_of(list_)
  local s = {}
  for _, v in ipairs(list_) do s[v] = true end
  return s
end

local assert_generic = h.assert_generic

local function empty_records(res)
  return res.body:match('"records"%s*:%s*%[%s*%]') ~= nil
end

-- Sends one small raw file; returns the AS2 ID taken from the Link header.
local function send(station, partner, query, name)
  local res = h.api("POST", "/message/" .. station .. "/" .. partner, {
    query = query, body = "<order/>\n",
    headers = { "Name: " .. (name or "order.xml"), "Content-Type: application/xml" } })
  assert.equal(202, res.status, res.body)
  local enc = assert(res.headers.link:match("/message/sent/([^/]+)$"), res.headers.link)
  return (enc:gsub("%%(%x%x)", function(x) return string.char(tonumber(x, 16)) end))
end

local function pause(partner)
  local _, status = h.control("POST", "partner/" .. partner, { behaviour = "pause" })
  assert.equal(200, status)
end

describe("listing shape", function()
  before_each(h.reset)

  it("answers received as a Pagination of AS2 Messages with the contract's fields", function()
    local res = list("received")
    assert.equal(200, res.status)
    assert.equal(2, res.json.totalRecords) -- the two Production seed messages
    assert.equal(2, #res.json.records)
    for _, m in ipairs(res.json.records) do
      check_message(m, "received")
      assert.equal("GLOBEX-AS2", m.receiverId)
      assert.equal("ACME-AS2", m.senderId)
      assert.equal("Production", m.partnerType)
    end
    local n = 0
    for _ in pairs(res.json) do n = n + 1 end
    assert.equal(2, n) -- totalRecords and records only
    local subjects = set_of { res.json.records[1].subject, res.json.records[2].subject }
    assert.same({ ["Invoice 1001"] = true, ["Invoice 1002"] = true }, subjects)
  end)

  it("shows transportStatusReceived and deliveryStatus on sent messages", function()
    local res = list("sent")
    assert.equal(200, res.status)
    assert.equal(1, res.json.totalRecords)
    local m = res.json.records[1]
    check_message(m, "sent")
    assert.equal(200, m.transportStatusReceived)
    assert.equal("Delivered", m.deliveryStatus)
    assert.equal("Order 5001", m.subject)
    assert.equal("GLOBEX-AS2", m.receiverId)
    assert.equal("ACME-AS2", m.senderId)
  end)

  it("shows failed attempts with their transport and delivery status", function()
    h.control("POST", "partner/GLOBEX-AS2", { behaviour = "fail" })
    local id = send("ACME-AS2", "GLOBEX-AS2")
    h.advance(2)
    local res = list("failed")
    assert.equal(200, res.status)
    assert.equal(1, res.json.totalRecords)
    local m = res.json.records[1]
    check_message(m, "failed")
    assert.equal(id, m.as2MessageId)
    assert.equal(503, m.transportStatusReceived)
    assert.equal("Not Delivered", m.deliveryStatus)
    assert.equal("No MDN", m.mdnStatus)
  end)

  it("shows queued entries without transport status and without attachments", function()
    pause("GLOBEX-AS2")
    local id = send("ACME-AS2", "GLOBEX-AS2", { subject = "Queued one" })
    local res = list("queued")
    assert.equal(200, res.status)
    assert.equal(1, res.json.totalRecords)
    local m = res.json.records[1]
    check_message(m, "queued")
    assert.equal(id, m.as2MessageId)
    assert.equal("Queued one", m.subject)
    assert.equal("GLOBEX-AS2", m.receiverId)
    assert.equal("ACME-AS2", m.senderId)
  end)

  it("leaves subject out of a message that has none", function()
    local id = h.inbound { attachments = { { name = "nosubject.txt", size = 10 } } }
    local res = list("received", { as2MessageId = id })
    assert.equal(1, res.json.totalRecords)
    assert.is_nil(res.json.records[1].subject)
    assert.is_nil(res.body:find('"subject"', 1, true))
    local one = get("received", id)
    assert.equal(200, one.status)
    assert.is_nil(one.json.subject)
    assert.is_nil(one.body:find('"subject"', 1, true))
  end)

  it("writes records as a JSON array [] when nothing matches", function()
    for _, kind in ipairs { "received", "sent", "failed", "queued" } do
      local res = list(kind, { pageOffset = 7 })
      assert.equal(200, res.status)
      assert.is_true(empty_records(res), kind .. ": " .. res.body)
    end
    local res = list("received", { subject = "no such subject anywhere" })
    assert.equal(0, res.json.totalRecords)
    assert.is_true(empty_records(res), res.body)
    res = list("failed")
    assert.equal(0, res.json.totalRecords)
    assert.is_true(empty_records(res), res.body)
  end)
end)

describe("listing defaults and paging", function()
  before_each(h.reset)

  it("defaults to the first page of 10, newest first, Production only", function()
    local injected = {}
    for i = 1, 12 do
      h.advance(1)
      injected[i] = h.inbound { subject = "Bulk " .. i }
    end
    h.inbound { partner = "HOOLI-TEST", station = "ACME-EU-AS2", subject = "Test one" }
    local res = list("received")
    assert.equal(200, res.status)
    assert.equal(14, res.json.totalRecords) -- 2 seed + 12, the Test ones left out
    assert.equal(10, #res.json.records)
    for i, m in ipairs(res.json.records) do
      assert.equal(injected[13 - i], m.as2MessageId)
      assert.equal("Production", m.partnerType)
    end
    for i = 2, #res.json.records do
      assert.is_true(res.json.records[i - 1].persistedTimestamp
        >= res.json.records[i].persistedTimestamp)
    end
    local explicit = list("received", { pageOffset = 0, pageLength = 10, sortDir = "desc",
      sortCol = "persistedTimestamp", partnerType = "production" })
    assert.same(ids_of(res), ids_of(explicit))
  end)

  it("reads pageOffset as a page number, not a record offset", function()
    h.control("POST", "config", { rate_limit = "off" })
    local injected = {}
    for i = 1, 25 do
      h.advance(1)
      injected[i] = h.inbound { station = "ACME-EU-AS2", subject = "Page " .. i }
    end
    local pages, seen = {}, {}
    for p = 0, 3 do
      local res = list("received", { stationAS2Id = "ACME-EU-AS2", pageLength = 10,
        pageOffset = p })
      assert.equal(200, res.status)
      assert.equal(25, res.json.totalRecords)
      pages[p] = ids_of(res)
      for _, id in ipairs(pages[p]) do
        assert.is_nil(seen[id], "listed twice: " .. id)
        seen[id] = true
      end
    end
    assert.equal(10, #pages[0])
    assert.equal(10, #pages[1])
    assert.equal(5, #pages[2])
    assert.equal(0, #pages[3])
    -- page 2 holds the 21st to 25th newest, i.e. the five oldest injected
    assert.same({ injected[5], injected[4], injected[3], injected[2], injected[1] }, pages[2])
    assert.equal(injected[15], pages[1][1])
    for _, id in ipairs(injected) do assert.is_true(seen[id]) end
  end)

  it("accepts pageLength 1 and 100", function()
    for i = 1, 3 do h.inbound { subject = "Len " .. i } end
    local res = list("received", { pageLength = 100 })
    assert.equal(200, res.status)
    assert.equal(5, #res.json.records)
    res = list("received", { pageLength = 1, pageOffset = 4 })
    assert.equal(200, res.status)
    assert.equal(5, res.json.totalRecords)
    assert.equal(1, #res.json.records)
    assert.equal("Invoice 1001", res.json.records[1].subject) -- the oldest
  end)
end)

describe("listing parameter bounds", function()
  before_each(h.reset)

  local bad = {
    { "pageLength", "0" }, { "pageLength", "101" }, { "pageLength", "ten" },
    { "pageOffset", "-1" }, { "pageOffset", "x" }, { "sortCol", "as2MessageId" },
    { "sortDir", "up" }, { "partnerType", "staging" },
  }
  for _, case in ipairs(bad) do
    it("answers 400 to " .. case[1] .. "=" .. case[2] .. " on every listing", function()
      for _, kind in ipairs { "received", "sent", "failed", "queued" } do
        assert_generic(list(kind, { [case[1]] = case[2] }), 400)
      end
    end)
  end

  it("answers 400 to a bad unreadOnly on received", function()
    assert_generic(list("received", { unreadOnly = "yes" }), 400)
    assert.equal(200, list("received", { unreadOnly = "true" }).status)
    assert.equal(200, list("received", { unreadOnly = "false" }).status)
  end)

  it("ignores unreadOnly where it does not belong", function()
    local res = list("sent", { unreadOnly = "yes" })
    assert.equal(200, res.status)
    assert.equal(1, res.json.totalRecords)
  end)
end)

describe("listing sort", function()
  before_each(h.reset)

  local function sorted(records, col, dir)
    for i = 2, #records do
      local a, b = records[i - 1][col], records[i][col]
      if dir == "asc" then
        assert.is_true(a <= b, ("%s not ascending: %s > %s"):format(col, a, b))
      else
        assert.is_true(a >= b, ("%s not descending: %s < %s"):format(col, a, b))
      end
    end
  end

  it("sorts by each column, ascending and descending", function()
    -- arrival order differs from the order of every other column
    local msgs = {
      { partner = "INITECH-AS2", station = "ACME-AS2", subject = "Charlie" },
      { partner = "AS2G-ECHO", station = "ACME-EU-AS2", subject = "Alpha" },
      { partner = "GLOBEX-AS2", station = "ACME-EU-AS2", subject = "Bravo" },
      { partner = "INITECH-AS2", station = "ACME-AS2", subject = "Delta" },
    }
    for _, m in ipairs(msgs) do
      h.advance(1)
      h.inbound(m)
    end
    for _, col in ipairs { "persistedTimestamp", "receiverId", "senderId", "subject" } do
      local asc = list("received", { sortCol = col, sortDir = "asc", pageLength = 100 })
      local desc = list("received", { sortCol = col, sortDir = "desc", pageLength = 100 })
      assert.equal(200, asc.status)
      assert.equal(200, desc.status)
      assert.equal(6, #asc.json.records)
      sorted(asc.json.records, col, "asc")
      sorted(desc.json.records, col, "desc")
      -- ties broken by arrival order in the same direction: desc is asc reversed
      local a, d = ids_of(asc), ids_of(desc)
      for i = 1, #a do assert.equal(a[i], d[#d + 1 - i]) end
    end
    local by_subject = list("received", { sortCol = "subject", sortDir = "asc" })
    local subjects = {}
    for i, m in ipairs(by_subject.json.records) do subjects[i] = m.subject end
    assert.same({ "Alpha", "Bravo", "Charlie", "Delta", "Invoice 1001", "Invoice 1002" },
      subjects)
    local by_receiver = list("received", { sortCol = "receiverId", sortDir = "desc" })
    assert.equal("INITECH-AS2", by_receiver.json.records[1].receiverId)
    assert.equal("AS2G-ECHO", by_receiver.json.records[6].receiverId)
  end)
end)

describe("listing filters", function()
  before_each(h.reset)

  it("shows only Test messages with partnerType=test", function()
    local id = h.inbound { partner = "AS2G-ECHO-TEST", station = "ACME-AS2", subject = "T2" }
    local res = list("received", { partnerType = "test" })
    assert.equal(200, res.status)
    assert.equal(2, res.json.totalRecords)
    for _, m in ipairs(res.json.records) do
      check_message(m, "received")
      assert.equal("Test", m.partnerType)
    end
    assert.is_true(set_of(ids_of(res))[id])
    assert.equal("HOOLI-TEST", res.json.records[2].receiverId)
    assert.same(ids_of(res), ids_of(list("received", { partnerType = "TEST" })))
    local prod = list("received")
    assert.is_nil(set_of(ids_of(prod))[id])
    assert.equal(2, prod.json.totalRecords)
  end)

  it("combines partnerAS2Id, stationAS2Id, as2MessageId and subject with AND", function()
    local a = h.inbound { partner = "GLOBEX-AS2", station = "ACME-AS2", subject = "Order 1" }
    local b = h.inbound { partner = "GLOBEX-AS2", station = "ACME-EU-AS2", subject = "Order 2" }
    local c = h.inbound { partner = "INITECH-AS2", station = "ACME-AS2", subject = "Order 3" }
    local d = h.inbound { partner = "INITECH-AS2", station = "ACME-EU-AS2",
      subject = "Invoice 4" }
    local function ids(q)
      local res = list("received", q)
      assert.equal(200, res.status)
      assert.equal(#res.json.records, res.json.totalRecords)
      return set_of(ids_of(res))
    end
    assert.same(set_of { c, d }, ids { partnerAS2Id = "INITECH-AS2" })
    assert.same(set_of { b, d }, ids { stationAS2Id = "ACME-EU-AS2" })
    assert.same(set_of { d }, ids { partnerAS2Id = "INITECH-AS2", stationAS2Id = "ACME-EU-AS2" })
    assert.same(set_of { a, b, c }, ids { subject = "order" })
    assert.same(set_of { c }, ids { subject = "ORDER", partnerAS2Id = "INITECH-AS2" })
    assert.same(set_of { a }, ids { as2MessageId = a })
    assert.same({}, ids { as2MessageId = a, partnerAS2Id = "INITECH-AS2" })
    assert.same({}, ids { as2MessageId = a, subject = "Order 2" })
    assert.same(set_of { b }, ids { as2MessageId = b, stationAS2Id = "ACME-EU-AS2",
      partnerAS2Id = "GLOBEX-AS2", subject = "der 2" })
    -- the filters apply to sent messages too
    local sent = list("sent", { partnerAS2Id = "GLOBEX-AS2", subject = "5001" })
    assert.equal(1, sent.json.totalRecords)
    sent = list("sent", { partnerAS2Id = "GLOBEX-AS2", stationAS2Id = "ACME-EU-AS2" })
    assert.equal(0, sent.json.totalRecords)
  end)

  it("lists queued entries of Test partners with partnerType=test only", function()
    pause("HOOLI-TEST")
    pause("GLOBEX-AS2")
    local t = send("ACME-AS2", "HOOLI-TEST", { partnerType = "test" })
    local p = send("ACME-AS2", "GLOBEX-AS2")
    assert.same({ p }, ids_of(list("queued")))
    local test = list("queued", { partnerType = "test" })
    assert.same({ t }, ids_of(test))
    assert.equal("Test", test.json.records[1].partnerType)
  end)

  it("filters queued entries with query on partner, station, ID or subject", function()
    pause("GLOBEX-AS2")
    pause("INITECH-AS2")
    local a = send("ACME-AS2", "GLOBEX-AS2", { subject = "Alpha order" })
    local b = send("ACME-EU-AS2", "GLOBEX-AS2", { subject = "Beta" })
    local c = send("ACME-AS2", "INITECH-AS2", { subject = "Gamma" })
    local function ids(q)
      local res = list("queued", q)
      assert.equal(200, res.status)
      assert.equal(#res.json.records, res.json.totalRecords)
      return set_of(ids_of(res))
    end
    assert.same(set_of { a, b, c }, ids {})
    assert.same(set_of { a, b }, ids { query = "GLOBEX-AS2" })
    assert.same(set_of { a, c }, ids { query = "ACME-AS2" })
    assert.same(set_of { b }, ids { query = b })
    assert.same(set_of { a }, ids { query = "alpha" })
    assert.same({}, ids { query = "nothing like it" })
    -- the four filters of the other listings do not apply to queued
    assert.same(set_of { a, b, c }, ids { partnerAS2Id = "INITECH-AS2" })
    assert.same(set_of { a, b, c }, ids { subject = "Gamma", as2MessageId = a })
    local res = list("queued", { query = "nothing like it" })
    assert.is_true(empty_records(res), res.body)
  end)
end)

describe("read flags", function()
  before_each(h.reset)

  it("leaves messages marked with markAsRead out of unreadOnly listings", function()
    local all = list("received")
    local first, second = all.json.records[1].as2MessageId, all.json.records[2].as2MessageId
    local unread = list("received", { unreadOnly = "true" })
    assert.same(set_of { first, second }, set_of(ids_of(unread)))
    -- reading without markAsRead, or with markAsRead=false, marks nothing
    assert.equal(200, get("received", first).status)
    assert.equal(200, get("received", first, { markAsRead = "false" }).status)
    assert.equal(2, list("received", { unreadOnly = "true" }).json.totalRecords)
    local res = get("received", first, { markAsRead = "true" })
    assert.equal(200, res.status)
    assert.equal(first, res.json.as2MessageId)
    unread = list("received", { unreadOnly = "true" })
    assert.equal(1, unread.json.totalRecords)
    assert.same({ second }, ids_of(unread))
    -- still listed without unreadOnly, and with unreadOnly=false
    assert.equal(2, list("received").json.totalRecords)
    assert.equal(2, list("received", { unreadOnly = "false" }).json.totalRecords)
  end)

  it("puts a message back in unreadOnly listings with markUnread", function()
    local id = list("received").json.records[1].as2MessageId
    assert.equal(200, get("received", id, { markAsRead = "true" }).status)
    assert.equal(1, list("received", { unreadOnly = "true" }).json.totalRecords)
    local res = h.api("POST", "/message/received/" .. h.escape(id) .. "/markUnread")
    assert.equal(200, res.status)
    assert.same({ message = "Successfully marked message " .. id .. " as unread" }, res.json)
    local unread = list("received", { unreadOnly = "true" })
    assert.equal(2, unread.json.totalRecords)
    assert.is_true(set_of(ids_of(unread))[id])
  end)

  it("answers 404 to markUnread of an unknown message", function()
    local res = h.api("POST", "/message/received/" .. h.escape("<nope@example.com>")
      .. "/markUnread")
    assert_generic(res, 404)
  end)

  it("answers 400 to markAsRead=maybe", function()
    local id = list("received").json.records[1].as2MessageId
    assert_generic(get("received", id, { markAsRead = "maybe" }), 400)
    assert.equal(2, list("received", { unreadOnly = "true" }).json.totalRecords)
  end)
end)

describe("one message", function()
  before_each(h.reset)

  it("finds a received message by its percent-encoded ID", function()
    local listed = list("received").json.records[1]
    local res = get("received", listed.as2MessageId)
    assert.equal(200, res.status)
    check_message(res.json, "received")
    assert.same(listed, res.json)
    assert.truthy(listed.as2MessageId:find("[<>@]"))
  end)

  it("finds a sent message", function()
    local listed = list("sent").json.records[1]
    local res = get("sent", listed.as2MessageId)
    assert.equal(200, res.status)
    check_message(res.json, "sent")
    assert.same(listed, res.json)
  end)

  it("finds a failed message", function()
    h.control("POST", "partner/GLOBEX-AS2", { behaviour = "fail" })
    local id = send("ACME-AS2", "GLOBEX-AS2", { subject = "Doomed" })
    h.advance(2)
    local res = get("failed", id)
    assert.equal(200, res.status)
    check_message(res.json, "failed")
    assert.equal(id, res.json.as2MessageId)
    assert.equal("Doomed", res.json.subject)
  end)

  it("finds a queued message", function()
    pause("GLOBEX-AS2")
    local id = send("ACME-AS2", "GLOBEX-AS2")
    local res = get("queued", id)
    assert.equal(200, res.status)
    check_message(res.json, "queued")
    assert.equal(id, res.json.as2MessageId)
    assert_generic(get("sent", id), 404)
  end)

  it("answers 404 with a Generic Response to unknown IDs of every kind", function()
    for _, kind in ipairs { "received", "sent", "failed", "queued" } do
      assert_generic(get(kind, "<12345.1.1700000000000@as2gateway.com>"), 404)
    end
    -- a message of one kind is not found under another
    local sent = list("sent").json.records[1].as2MessageId
    assert_generic(get("received", sent), 404)
    local received = list("received").json.records[1].as2MessageId
    assert_generic(get("sent", received), 404)
  end)

  it("ignores markAsRead on kinds other than received", function()
    local sent = list("sent").json.records[1].as2MessageId
    assert.equal(200, get("sent", sent, { markAsRead = "maybe" }).status)
  end)
end)
