-- Pins down account isolation: neither account can see or touch the other's data.
local h = require "helpers"

local function api(token, method, path, opts)
  opts = opts or {}
  opts.token = token
  return h.api(method, path, opts)
end

local function ids_of(res)
  local ids = {}
  for _, m in ipairs(res.json.records) do ids[#ids + 1] = m.as2MessageId end
  return ids
end

local function as2_ids(list)
  local ids = {}
  for _, e in ipairs(list) do ids[#ids + 1] = e.as2Identifier end
  table.sort(ids)
  return ids
end

local function assert_404(res, what)
  assert.are.equal(404, res.status, what)
  assert.is_string(res.json and res.json.message, what)
end

describe("account isolation", function()
  local demo, other
  before_each(function()
    h.reset()
    demo = h.login()
    other = h.login(h.other_username, h.other_password)
  end)
  after_each(function() h.token = nil end)

  -- The first account's messages of every kind: received (seed), sent (seed), failed
  -- and queued (a paused partner keeps one queued; a failing one leaves failed attempts).
  local function demo_messages()
    local msgs = {}
    local rec = api(demo, "GET", "/message/received", { query = { pageLength = 100 } })
    msgs.received = rec.json.records[1].as2MessageId
    msgs.received_test = h.inbound { partner = "HOOLI-TEST", station = "ACME-EU-AS2",
      attachments = { { name = "t.csv", size = 10 } } }
    msgs.sent = api(demo, "GET", "/message/sent").json.records[1].as2MessageId
    assert.are.equal(200, select(2, h.control("POST", "partner/INITECH-AS2",
      { behaviour = "fail" })))
    local r = api(demo, "POST", "/message/ACME-AS2/INITECH-AS2",
      { headers = { Name = "fail.txt" }, body = "will fail" })
    assert.are.equal(202, r.status)
    h.advance(5)
    local failed = api(demo, "GET", "/message/failed")
    assert.is_true(failed.json.totalRecords >= 1)
    msgs.failed = failed.json.records[1].as2MessageId
    assert.are.equal(200, select(2, h.control("POST", "partner/GLOBEX-AS2",
      { behaviour = "pause" })))
    r = api(demo, "POST", "/message/ACME-AS2/GLOBEX-AS2",
      { headers = { Name = "held.txt" }, body = "held back" })
    assert.are.equal(202, r.status)
    local queued = api(demo, "GET", "/message/queued", { query = { query = "GLOBEX-AS2" } })
    assert.are.equal(1, queued.json.totalRecords)
    msgs.queued = queued.json.records[1].as2MessageId
    return msgs
  end

  describe("the second account", function()
    it("lists none of the first account's messages", function()
      local msgs = demo_messages()
      local mine = {}
      for _, kind in ipairs { "received", "sent", "failed", "queued" } do
        for _, ptype in ipairs { "production", "test" } do
          local res = api(other, "GET", "/message/" .. kind,
            { query = { partnerType = ptype, pageLength = 100 } })
          assert.are.equal(200, res.status)
          for _, id in ipairs(ids_of(res)) do mine[id] = kind end
        end
      end
      for kind, id in pairs(msgs) do
        assert.is_nil(mine[id], kind .. " message " .. id .. " is visible")
      end
      -- what it does see is its own seed: one received message and nothing else
      local own = api(other, "GET", "/message/received")
      assert.are.equal(1, own.json.totalRecords)
      assert.are.equal("Umbrella secret", own.json.records[1].subject)
      for _, kind in ipairs { "sent", "failed", "queued" } do
        assert.are.equal(0, api(other, "GET", "/message/" .. kind).json.totalRecords, kind)
      end
    end)

    it("finds none of them with the as2MessageId or query filters", function()
      local msgs = demo_messages()
      assert.are.equal(0, api(other, "GET", "/message/received",
        { query = { as2MessageId = msgs.received } }).json.totalRecords)
      assert.are.equal(0, api(other, "GET", "/message/sent",
        { query = { as2MessageId = msgs.sent } }).json.totalRecords)
      assert.are.equal(0, api(other, "GET", "/message/failed",
        { query = { as2MessageId = msgs.failed } }).json.totalRecords)
      assert.are.equal(0, api(other, "GET", "/message/queued",
        { query = { query = msgs.queued } }).json.totalRecords)
      -- the filters work: the first account finds each one
      assert.are.equal(1, api(demo, "GET", "/message/received",
        { query = { as2MessageId = msgs.received } }).json.totalRecords)
      assert.are.equal(1, api(demo, "GET", "/message/queued",
        { query = { query = msgs.queued } }).json.totalRecords)
    end)

    it("gets 404 for each of the first account's messages by ID", function()
      local msgs = demo_messages()
      local kinds = { received = "received", received_test = "received", sent = "sent",
        failed = "failed", queued = "queued" }
      for key, kind in pairs(kinds) do
        local path = "/message/" .. kind .. "/" .. h.escape(msgs[key])
        assert_404(api(other, "GET", path), "GET " .. path)
        assert.are.equal(200, api(demo, "GET", path).status, "owner GET " .. path)
      end
    end)

    it("gets 404 for the first account's attachments and MDNs", function()
      local msgs = demo_messages()
      for _, kind in ipairs { "received", "sent" } do
        local base = "/message/" .. kind .. "/" .. h.escape(msgs[kind])
        for _, sub in ipairs { "/attachments", "/attachments/0", "/attachments/all", "/mdn" } do
          assert_404(api(other, "GET", base .. sub), "GET " .. base .. sub)
        end
        assert.are.equal(200, api(demo, "GET", base .. "/attachments/0").status)
        assert.are.equal(200, api(demo, "GET", base .. "/mdn").status)
      end
    end)

    it("gets only .error entries from a batch download of the first account's IDs",
      function()
        local msgs = demo_messages()
        local out = h.tmpname()
        local res = api(other, "POST", "/message/received/batch/attachments",
          { json = { msgs.received, msgs.received_test }, query = { markAsRead = "true" },
            output = out })
        assert.are.equal(200, res.status)
        local entries = h.zip_entries(out)
        os.remove(out)
        local want = { msgs.received .. "/.error", msgs.received_test .. "/.error" }
        table.sort(want)
        assert.are.same(want, entries)
        local inside = h.control("GET", "messages/" .. h.escape(msgs.received))
        assert.is_false(inside.read)
      end)

    it("cannot mark the first account's messages read or unread", function()
      local msgs = demo_messages()
      local path = "/message/received/" .. h.escape(msgs.received)
      assert_404(api(other, "GET", path, { query = { markAsRead = "true" } }), "markAsRead")
      assert_404(api(other, "GET", path .. "/attachments/0",
        { query = { markAsRead = "true" } }), "attachment markAsRead")
      local unread = api(demo, "GET", "/message/received",
        { query = { unreadOnly = "true", as2MessageId = msgs.received } })
      assert.are.equal(1, unread.json.totalRecords)
      assert.are.equal(200, api(demo, "GET", path, { query = { markAsRead = "true" } }).status)
      assert_404(api(other, "POST", path .. "/markUnread"), "markUnread")
      unread = api(demo, "GET", "/message/received",
        { query = { unreadOnly = "true", as2MessageId = msgs.received } })
      assert.are.equal(0, unread.json.totalRecords)
      assert.is_true(h.control("GET", "messages/" .. h.escape(msgs.received)).read)
    end)

    it("cannot delete the first account's messages, one by one or in bulk", function()
      local msgs = demo_messages()
      local kinds = { received = "received", sent = "sent", failed = "failed",
        queued = "queued" }
      for key, kind in pairs(kinds) do
        local path = "/message/" .. kind .. "/" .. h.escape(msgs[key])
        assert_404(api(other, "DELETE", path), "DELETE " .. path)
        local bulk = api(other, "DELETE", "/message/" .. kind, { json = { msgs[key] } })
        assert.are.equal(200, bulk.status)
        assert.are.equal("Deleted 0 messages", bulk.json.message)
        assert.are.equal(200, api(demo, "GET", path).status, "after delete: " .. path)
      end
    end)

    it("cannot stop or retry the first account's queued message", function()
      local msgs = demo_messages()
      local id = h.escape(msgs.queued)
      assert_404(api(other, "POST", "/message/queued/" .. id .. "/stop"), "stop")
      assert_404(api(other, "POST", "/message/queued/" .. id .. "/retry"), "retry")
      local inside = h.control("GET", "messages/" .. id)
      assert.are.equal(1, #inside.queued)
      assert.are.equal(0, #inside.stopped)
      -- the owner can, which shows the calls reach the entry
      assert.are.equal(200, api(demo, "POST", "/message/queued/" .. id .. "/stop").status)
      assert_404(api(other, "POST", "/message/queued/" .. id .. "/retry"), "retry stopped")
      assert_404(api(other, "DELETE", "/message/stopped/" .. id), "delete stopped")
      assert.are.equal(1, #h.control("GET", "messages/" .. id).stopped)
    end)

    it("sees none of the first account's partners or stations", function()
      local p = api(other, "GET", "/partner")
      assert.are.same({ "STARK-TEST", "WAYNE-AS2" }, as2_ids(p.json))
      assert.are.same({ "UMBRELLA-AS2" }, as2_ids(api(other, "GET", "/station").json))
      assert.are.same({}, api(other, "GET", "/partner", { query = { query = "ECHO" } }).json)
      assert.are.same({}, api(other, "GET", "/station", { query = { query = "ACME" } }).json)
    end)

    it("cannot send from the first account's station or to its partners", function()
      for _, path in ipairs { "/message/ACME-AS2/AS2G-ECHO", "/message/ACME-AS2/WAYNE-AS2",
                              "/message/UMBRELLA-AS2/AS2G-ECHO" } do
        assert_404(api(other, "POST", path, { headers = { Name = "x.txt" }, body = "x" }), path)
      end
      assert_404(api(other, "POST", "/message/UMBRELLA-AS2/HOOLI-TEST",
        { query = { partnerType = "test" }, headers = { Name = "x.txt" }, body = "x" }), "test")
      h.advance(5)
      assert.are.equal(1, api(demo, "GET", "/message/sent").json.totalRecords)
      assert.are.equal(2, api(demo, "GET", "/message/received").json.totalRecords)
      assert.are.equal(0, api(other, "GET", "/message/sent").json.totalRecords)
      -- its own station and partner work
      assert.are.equal(202, api(other, "POST", "/message/UMBRELLA-AS2/WAYNE-AS2",
        { headers = { Name = "x.txt" }, body = "x" }).status)
    end)
  end)

  describe("the first account", function()
    local function other_received()
      return api(other, "GET", "/message/received").json.records[1].as2MessageId
    end

    it("lists none of the second account's messages", function()
      local id = other_received()
      local sent = api(other, "POST", "/message/UMBRELLA-AS2/WAYNE-AS2",
        { headers = { Name = "umbrella.txt" }, body = "umbrella only" })
      assert.are.equal(202, sent.status)
      h.advance(5)
      local other_sent = api(other, "GET", "/message/sent")
      assert.are.equal(1, other_sent.json.totalRecords)
      local sent_id = other_sent.json.records[1].as2MessageId
      for _, kind in ipairs { "received", "sent", "failed", "queued" } do
        for _, ptype in ipairs { "production", "test" } do
          local res = api(demo, "GET", "/message/" .. kind,
            { query = { partnerType = ptype, pageLength = 100 } })
          for _, seen in ipairs(ids_of(res)) do
            assert.are_not.equal(id, seen)
            assert.are_not.equal(sent_id, seen)
          end
        end
      end
      assert.are.equal(0, api(demo, "GET", "/message/received",
        { query = { subject = "Umbrella" } }).json.totalRecords)
      assert_404(api(demo, "GET", "/message/sent/" .. h.escape(sent_id)), "GET sent")
      assert_404(api(demo, "GET", "/message/sent/" .. h.escape(sent_id) .. "/attachments"),
        "sent attachments")
    end)

    it("gets 404 for the second account's message, attachments and MDN", function()
      local id = h.escape(other_received())
      for _, sub in ipairs { "", "/attachments", "/attachments/0", "/attachments/all", "/mdn" } do
        assert_404(api(demo, "GET", "/message/received/" .. id .. sub), sub)
      end
      assert.are.equal(200, api(other, "GET", "/message/received/" .. id).status)
    end)

    it("cannot mark, unmark or delete the second account's message", function()
      local id = other_received()
      local path = "/message/received/" .. h.escape(id)
      assert_404(api(demo, "GET", path, { query = { markAsRead = "true" } }), "markAsRead")
      assert.is_false(h.control("GET", "messages/" .. h.escape(id) .. "?account="
        .. h.escape(h.other_username)).read)
      assert.are.equal(200, api(other, "GET", path, { query = { markAsRead = "true" } }).status)
      assert_404(api(demo, "POST", path .. "/markUnread"), "markUnread")
      assert.are.equal(0, api(other, "GET", "/message/received",
        { query = { unreadOnly = "true" } }).json.totalRecords)
      assert_404(api(demo, "DELETE", path), "DELETE")
      assert.are.equal("Deleted 0 messages",
        api(demo, "DELETE", "/message/received", { json = { id } }).json.message)
      assert.are.equal(1, api(other, "GET", "/message/received").json.totalRecords)
    end)

    it("cannot stop or retry the second account's queued message", function()
      assert.are.equal(200, select(2, h.control("POST", "partner/WAYNE-AS2",
        { behaviour = "pause", account = h.other_username })))
      assert.are.equal(202, api(other, "POST", "/message/UMBRELLA-AS2/WAYNE-AS2",
        { headers = { Name = "held.txt" }, body = "held" }).status)
      local q = api(other, "GET", "/message/queued")
      assert.are.equal(1, q.json.totalRecords)
      local id = h.escape(q.json.records[1].as2MessageId)
      assert_404(api(demo, "POST", "/message/queued/" .. id .. "/stop"), "stop")
      assert_404(api(demo, "POST", "/message/queued/" .. id .. "/retry"), "retry")
      assert_404(api(demo, "GET", "/message/queued/" .. id), "GET queued")
      assert_404(api(demo, "DELETE", "/message/queued/" .. id), "DELETE queued")
      assert.are.equal(1, api(other, "GET", "/message/queued").json.totalRecords)
    end)

    it("sees none of the second account's partners or stations and cannot send from them",
      function()
        local p = api(demo, "GET", "/partner")
        assert.are.same({ "AS2G-ECHO", "AS2G-ECHO-TEST", "GLOBEX-AS2", "HOOLI-TEST",
          "INITECH-AS2" }, as2_ids(p.json))
        assert.are.same({ "ACME-AS2", "ACME-EU-AS2" }, as2_ids(api(demo, "GET", "/station").json))
        assert.are.same({}, api(demo, "GET", "/partner", { query = { query = "WAYNE" } }).json)
        assert.are.same({}, api(demo, "GET", "/station", { query = { query = "UMBRELLA" } }).json)
        for _, path in ipairs { "/message/UMBRELLA-AS2/WAYNE-AS2",
                                "/message/UMBRELLA-AS2/AS2G-ECHO",
                                "/message/ACME-AS2/WAYNE-AS2" } do
          assert_404(api(demo, "POST", path, { headers = { Name = "x.txt" }, body = "x" }), path)
        end
        h.advance(5)
        assert.are.equal(0, api(other, "GET", "/message/sent").json.totalRecords)
      end)
  end)
end)
