-- Pins down the client methods: new, authorize, list, get, flags, queue, delete, downloads.
local h = require "helpers"
local as2gateway = require "as2gateway"

local BULK_DELETE = "DELETE /message/:kind"

local mkdtemp = h.mkdtemp

local rmtree = h.rmtree

local entries = h.entries

local unescape = h.unescape

local behaviour = h.behaviour

local function info(id)
  local res, status = h.control("GET", "messages/" .. h.escape(id))
  assert.equal(200, status)
  return res
end

local function endpoint(name)
  return h.stats().by_endpoint[name] or 0
end

-- A seed message found with curl (not with the client under test).
local function seed(kind, subject)
  local res = h.api("GET", "/message/" .. kind, { query = { subject = subject } })
  assert.equal(200, res.status, res.body)
  assert.equal(1, #res.json.records, "seed message " .. subject)
  return res.json.records[1]
end

-- An attachment's bytes, fetched with curl.
local function attachment(kind, id, index)
  local res = h.api("GET", "/message/" .. kind .. "/" .. h.escape(id) .. "/attachments/"
    .. (index or 0))
  assert.equal(200, res.status, res.body)
  return res.body
end

local function ids_of(records)
  local set = {}
  for _, r in ipairs(records) do set[r.as2MessageId] = true end
  return set
end

describe("as2gateway client", function()
  local client

  before_each(function()
    h.reset()
    client = as2gateway.new(h.core_options())
  end)

  after_each(function()
    if client then client:close() end
  end)

  it("gets and deletes the IDs '.' and '..' as IDs: not found, nothing else touched", function()
    for _, id in ipairs { ".", ".." } do
      local m, err = client:get("received", id)
      assert.is_nil(m)
      assert.equal("notfound", err.kind)
      local n
      n, err = client:delete("received", id)
      assert.is_nil(n)
      assert.equal("notfound", err.kind)
    end
    assert.equal(3, #h.api("GET", "/message/received", { query = { partnerType = "test" } })
      .json.records + #h.api("GET", "/message/received").json.records)
  end)

  describe("new", function()
    it("raises on an unknown option", function()
      assert.has_error(function() as2gateway.new(h.core_options { colour = "blue" }) end)
    end)

    it("raises without a url", function()
      local o = h.core_options()
      o.url = nil
      assert.has_error(function() as2gateway.new(o) end)
    end)

    it("raises without an options table", function()
      assert.has_error(function() as2gateway.new() end)
    end)

    it("sends nothing until the first call", function()
      local c = as2gateway.new(h.core_options())
      c:close()
      assert.equal(0, h.stats().requests)
    end)
  end)

  describe("authorize", function()
    it("logs in and returns the token and its expiry in ms since the epoch", function()
      local token, expiry = client:authorize()
      assert.is_string(token)
      assert.truthy(token:match("^[%w_-]+%.[%w_-]+%.[%w_-]+$"), token)
      assert.equal("integer", math.type(expiry))
      local now_ms = h.control("GET", "clock").now
      assert.truthy(expiry > now_ms + 23 * 3600 * 1000, "expiry about 24 h ahead")
      assert.truthy(expiry < now_ms + 25 * 3600 * 1000, "expiry about 24 h ahead")
      assert.equal(1, h.stats().authorizations)
    end)

    it("returns nil and an auth error for a wrong password", function()
      local c = as2gateway.new(h.core_options { password = "wrong" })
      local token, err = c:authorize()
      c:close()
      assert.is_nil(token)
      assert.equal("auth", err.kind)
      assert.equal(401, err.status)
    end)
  end)

  describe("list", function()
    it("returns a page of received messages with the API's field names", function()
      local page, err = client:list("received")
      assert.is_table(page, tostring(err))
      assert.equal(2, page.totalRecords) -- the production seed messages
      assert.equal("integer", math.type(page.totalRecords))
      assert.equal(2, #page.records)
      for _, m in ipairs(page.records) do
        assert.is_string(m.as2MessageId)
        assert.equal("integer", math.type(m.persistedTimestamp))
        assert.equal("GLOBEX-AS2", m.receiverId)
        assert.equal("ACME-AS2", m.senderId)
        assert.equal("Production", m.partnerType)
        assert.is_boolean(m.encrypted)
        assert.is_boolean(m.signed)
        assert.is_boolean(m.compressed)
        assert.is_string(m.mdnStatus)
        assert.is_table(m.attachments)
        for _, a in ipairs(m.attachments) do
          assert.is_string(a.name)
          assert.equal("integer", math.type(a.size))
        end
      end
      -- newest first by default
      assert.equal("Invoice 1002", page.records[1].subject)
      assert.equal("Invoice 1001", page.records[2].subject)
    end)

    it("passes the API's query parameters", function()
      local page = assert(client:list("received", { partnerType = "test" }))
      assert.equal(1, page.totalRecords)
      assert.equal("HOOLI-TEST", page.records[1].receiverId)
      page = assert(client:list("received", { sortDir = "asc", pageLength = 1, pageOffset = 1 }))
      assert.equal(2, page.totalRecords)
      assert.equal(1, #page.records)
      assert.equal("Invoice 1002", page.records[1].subject)
      page = assert(client:list("received", { subject = "1001" }))
      assert.equal(1, page.totalRecords)
      assert.equal("Invoice 1001", page.records[1].subject)
    end)

    it("lists sent messages with their delivery fields", function()
      local page = assert(client:list("sent"))
      assert.equal(1, page.totalRecords)
      local m = page.records[1]
      assert.equal("integer", math.type(m.persistedTimestamp))
      assert.equal("integer", math.type(m.transportStatusReceived))
      assert.equal("Delivered", m.deliveryStatus)
      assert.equal("integer", math.type(m.mdnMessage.persistedTimestamp))
    end)

    it("lists failed attempts", function()
      behaviour("GLOBEX-AS2", "fail")
      local sent = assert(client:send("ACME-AS2", "GLOBEX-AS2",
        { { name = "f.txt", data = "fails" } }, { subject = "Failing" }))
      h.advance(5)
      local page = assert(client:list("failed", { as2MessageId = sent.as2MessageId }))
      assert.truthy(page.totalRecords >= 1)
      assert.equal("integer", math.type(page.totalRecords))
      assert.equal(sent.as2MessageId, page.records[1].as2MessageId)
      assert.equal("Not Delivered", page.records[1].deliveryStatus)
    end)

    it("lists queued messages and filters them with query", function()
      behaviour("GLOBEX-AS2", "pause")
      local sent = assert(client:send("ACME-AS2", "GLOBEX-AS2",
        { { name = "q.txt", data = "queued" } }, { subject = "Held back" }))
      h.advance(5)
      local page = assert(client:list("queued", { query = "Held back" }))
      assert.equal(1, page.totalRecords)
      assert.equal("integer", math.type(page.totalRecords))
      assert.equal(sent.as2MessageId, page.records[1].as2MessageId)
      assert.equal("integer", math.type(page.records[1].persistedTimestamp))
      page = assert(client:list("queued", { query = "nothing like it" }))
      assert.equal(0, page.totalRecords)
      assert.same({}, page.records)
    end)

    it("raises on an unknown kind", function()
      assert.has_error(function() client:list("stopped") end)
      assert.has_error(function() client:list("inbox") end)
      assert.has_error(function() client:list() end)
    end)

    it("raises on a parameter the endpoint does not take", function()
      assert.has_error(function() client:list("received", { pageSize = 10 }) end)
      assert.has_error(function() client:list("sent", { unreadOnly = true }) end)
      assert.has_error(function() client:list("queued", { subject = "x" }) end)
      assert.has_error(function() client:list("received", "pageLength=10") end)
      assert.equal(0, h.stats().requests)
    end)

    it("returns nil and an invalid error with status 400 for a bad parameter value", function()
      local page, err = client:list("received", { pageLength = 101 })
      assert.is_nil(page)
      assert.equal("invalid", err.kind)
      assert.equal(400, err.status)
      assert.is_string(err.message)
      page, err = client:list("sent", { sortCol = "colour" })
      assert.is_nil(page)
      assert.equal("invalid", err.kind)
      assert.equal(400, err.status)
    end)
  end)

  describe("get", function()
    it("returns one message with integer numbers, without marking it read", function()
      local s = seed("received", "Invoice 1002")
      local m, err = client:get("received", s.as2MessageId)
      assert.is_table(m, tostring(err))
      assert.equal(s.as2MessageId, m.as2MessageId)
      assert.equal("integer", math.type(m.persistedTimestamp))
      assert.same({ { name = "invoice-1002.xml", size = 61 },
        { name = "invoice-1002.pdf", size = 31 } }, m.attachments)
      assert.is_false(info(s.as2MessageId).read)
    end)

    it("marks a received message read with markAsRead, and mark_unread undoes it", function()
      local unread = assert(client:list("received", { unreadOnly = true }))
      assert.equal(2, unread.totalRecords)
      local id = unread.records[1].as2MessageId
      local m = assert(client:get("received", id, { markAsRead = true }))
      assert.equal(id, m.as2MessageId)
      assert.is_true(info(id).read)
      unread = assert(client:list("received", { unreadOnly = true }))
      assert.equal(1, unread.totalRecords)
      assert.is_nil(ids_of(unread.records)[id])
      local ack, err = client:mark_unread(id)
      assert.is_table(ack, tostring(err))
      assert.is_string(ack.message)
      assert.is_false(info(id).read)
      unread = assert(client:list("received", { unreadOnly = true }))
      assert.equal(2, unread.totalRecords)
      assert.is_true(ids_of(unread.records)[id])
    end)

    it("gets sent messages", function()
      local s = seed("sent", "Order 5001")
      local m = assert(client:get("sent", s.as2MessageId))
      assert.equal("Delivered", m.deliveryStatus)
    end)

    it("returns nil and a notfound error for an unknown ID", function()
      local m, err = client:get("received", "<no-such-message@example.com>")
      assert.is_nil(m)
      assert.equal("notfound", err.kind)
      assert.equal(404, err.status)
      m, err = client:mark_unread("<no-such-message@example.com>")
      assert.is_nil(m)
      assert.equal("notfound", err.kind)
    end)

    it("raises on misuse: a bad kind, an empty ID, markAsRead outside received", function()
      assert.has_error(function() client:get("stopped", "<a@b>") end)
      assert.has_error(function() client:get("received", "") end)
      assert.has_error(function() client:get("received", nil) end)
      assert.has_error(function() client:get("sent", "<a@b>", { markAsRead = true }) end)
      assert.has_error(function() client:mark_unread("") end)
    end)
  end)

  describe("stop and retry", function()
    it("stops a queued message and brings it back with retry", function()
      behaviour("GLOBEX-AS2", "pause")
      local sent = assert(client:send("ACME-AS2", "GLOBEX-AS2",
        { { name = "stop.txt", data = "stop me" } }, { subject = "Stop me" }))
      local id = sent.as2MessageId
      h.advance(5)
      assert.equal(1, #info(id).queued)

      local ack, err = client:stop(id)
      assert.is_table(ack, tostring(err))
      assert.truthy(ack.message:find(id, 1, true), ack.message)
      assert.equal(1, #info(id).stopped)
      assert.equal(0, #info(id).queued)
      assert.equal(0, assert(client:list("queued", { query = id })).totalRecords)
      local _, gone = client:get("queued", id)
      assert.equal("notfound", gone.kind)

      ack, err = client:retry(id)
      assert.is_table(ack, tostring(err))
      assert.is_string(ack.message)
      assert.equal(0, #info(id).stopped)
      assert.equal(1, #info(id).queued)
      assert.equal(id, assert(client:get("queued", id)).as2MessageId)
    end)

    it("returns a notfound error to stop an unknown or already stopped message", function()
      local ack, err = client:stop("<no-such-message@example.com>")
      assert.is_nil(ack)
      assert.equal("notfound", err.kind)
      ack, err = client:retry("<no-such-message@example.com>")
      assert.is_nil(ack)
      assert.equal("notfound", err.kind)
    end)
  end)

  describe("delete", function()
    it("deletes one message and returns 1", function()
      local id = h.inbound { subject = "Delete me" }
      local n, err = client:delete("received", id)
      assert.is_nil(err)
      assert.equal(1, n)
      assert.equal("integer", math.type(n))
      local _, gone = client:get("received", id)
      assert.equal("notfound", gone.kind)
    end)

    it("returns a notfound error to delete an unknown message", function()
      local n, err = client:delete("received", "<no-such-message@example.com>")
      assert.is_nil(n)
      assert.equal("notfound", err.kind)
    end)

    it("deletes a list 100 IDs per request and counts only the IDs deleted", function()
      local real = {}
      for i = 1, 4 do real[i] = h.inbound { subject = "Bulk " .. i } end
      local ids = {}
      for i = 1, 150 do ids[i] = ("<unknown.%d@example.com>"):format(i) end
      -- real IDs in both requests: first, 100th, 101st and last
      ids[1], ids[100], ids[101], ids[150] = real[1], real[2], real[3], real[4]
      local n, err = client:delete("received", ids)
      assert.is_nil(err)
      assert.equal(4, n)
      assert.equal("integer", math.type(n))
      assert.equal(2, endpoint(BULK_DELETE))
      for _, id in ipairs(real) do
        local _, gone = client:get("received", id)
        assert.equal("notfound", gone.kind)
      end
      -- the seed messages are untouched
      assert.equal(2, assert(client:list("received")).totalRecords)
    end)

    it("deletes an empty list without a request", function()
      assert.equal(0, client:delete("received", {}))
      assert.equal(0, h.stats().requests)
    end)

    it("raises on a bad ID anywhere in the list before deleting anything", function()
      local keep = { h.inbound { subject = "Keep 1" }, h.inbound { subject = "Keep 2" } }
      local ids = {}
      for i = 1, 150 do ids[i] = ("<unknown.%d@example.com>"):format(i) end
      ids[1], ids[2], ids[120] = keep[1], keep[2], ""
      assert.has_error(function() client:delete("received", ids) end)
      assert.equal(0, endpoint(BULK_DELETE))
      for _, id in ipairs(keep) do
        assert.equal(id, assert(client:get("received", id)).as2MessageId)
      end
    end)

    it("deletes stopped messages", function()
      behaviour("GLOBEX-AS2", "pause")
      local id = assert(client:send("ACME-AS2", "GLOBEX-AS2",
        { { name = "s.txt", data = "stopped" } })).as2MessageId
      assert(client:stop(id))
      assert.equal(1, client:delete("stopped", id))
      assert.equal(0, #info(id).stopped)
    end)

    it("builds its paths from DELETE_PREFIX alone, apart from the other endpoints", function()
      -- the vendor text leaves DELETE's prefix open: changing it must move only DELETE
      local paths = {}
      local logged = as2gateway.new(h.core_options { log = function(e)
        if e.event == "request" then paths[#paths + 1] = e.method .. " " .. e.path end
      end })
      local saved, dir = as2gateway.DELETE_PREFIX, mkdtemp()
      as2gateway.DELETE_PREFIX = "cleanup"
      local ok, why = pcall(function()
        local _, err = logged:delete("sent", "<x@y>")
        assert.equal("notfound", err.kind) -- the sandbox has no /cleanup/
        _, err = logged:delete("failed", { "<x@y>", "<z@y>" })
        assert.equal("notfound", err.kind)
        assert(logged:list("sent", { pageLength = 1 }))
        assert(logged:download_batch({ "<x@y>" }, { to = dir }))
      end)
      as2gateway.DELETE_PREFIX = saved
      logged:close()
      rmtree(dir)
      assert(ok, why)
      assert.same({ "POST /authorize", "DELETE /cleanup/sent/%3Cx%40y%3E", "DELETE /cleanup/failed",
        "GET /message/sent?pageLength=1", "POST /message/received/batch/attachments" },
        paths)
    end)

    it("raises on a kind that cannot be deleted", function()
      assert.has_error(function() client:delete("inbox", "<a@b>") end)
      assert.has_error(function() client:delete("received", 42) end)
    end)
  end)

  describe("partners and stations", function()
    it("lists every partner, or those matching a query", function()
      local all = assert(client:partners())
      local names = {}
      for _, p in ipairs(all) do names[#names + 1] = p.as2Identifier end
      table.sort(names)
      assert.same({ "AS2G-ECHO", "AS2G-ECHO-TEST", "GLOBEX-AS2", "HOOLI-TEST", "INITECH-AS2" },
        names)
      local some = assert(client:partners("globex"))
      assert.equal(1, #some)
      assert.equal("GLOBEX-AS2", some[1].as2Identifier)
      assert.equal("integer", math.type(some[1].partnerId))
      assert.equal("integer", math.type(some[1].encryptCert.id))
      assert.is_boolean(some[1].requestMdn)
      assert.same({}, assert(client:partners("no such partner")))
    end)

    it("lists every station, or those matching a query", function()
      local all = assert(client:stations())
      assert.equal(2, #all)
      local some = assert(client:stations("EU"))
      assert.equal(1, #some)
      assert.equal("ACME-EU-AS2", some[1].as2Identifier)
      assert.equal(2, some[1].id)
      assert.equal("integer", math.type(some[1].id))
      assert.equal("integer", math.type(some[1].certificate.id))
    end)
  end)

  describe("close", function()
    it("is idempotent and a closed client raises on use", function()
      assert(client:list("received"))
      client:close()
      client:close()
      assert.has_error(function() client:list("received") end)
      assert.has_error(function() client:authorize() end)
      assert.has_error(function() client:get("received", "<a@b>") end)
      client = nil
    end)

    it("closes at the end of a to-be-closed block", function()
      local c = as2gateway.new(h.core_options())
      do
        local closing <close> = c
        assert(closing:list("received"))
      end
      assert.has_error(function() c:list("received") end)
    end)
  end)

  describe("download", function()
    local dir, id, xml, pdf

    before_each(function()
      dir = mkdtemp()
      id = seed("received", "Invoice 1002").as2MessageId
      xml, pdf = attachment("received", id, 0), attachment("received", id, 1)
    end)

    after_each(function()
      rmtree(dir)
    end)

    it("writes the first attachment into a file path", function()
      local path, err = client:download("received", id, { to = dir .. "/first" })
      assert.is_nil(err) -- one value on success
      assert.equal(dir .. "/first", path)
      assert.equal(xml, h.read_file(path))
      assert.same({ "first" }, entries(dir)) -- no temporary file left behind
      assert.is_false(info(id).read)
    end)

    it("writes the attachment of an index", function()
      local path = assert(client:download("received", id, { index = 1, to = dir .. "/second" }))
      assert.equal(pdf, h.read_file(path))
      assert.are_not.equal(xml, pdf)
      local _, err = client:download("received", id, { index = 2, to = dir .. "/third" })
      assert.equal("notfound", err.kind)
      assert.is_nil(h.read_file(dir .. "/third"))
      assert.same({ "second" }, entries(dir))
    end)

    it("raises on a bad index or without a destination", function()
      assert.has_error(function() client:download("received", id, { index = -1, to = dir }) end)
      assert.has_error(function() client:download("received", id, { index = 0.5, to = dir }) end)
      assert.has_error(function() client:download("received", id, {}) end)
      assert.has_error(function() client:download("failed", id, { to = dir }) end)
      assert.has_error(function() client:download("received", id, { to = dir, name = "x" }) end)
    end)

    it("names a file in an existing folder after the server, never replacing one", function()
      local first = assert(client:download("received", id, { to = dir }))
      assert.equal(dir .. "/invoice-1002.xml", first)
      assert.equal(xml, h.read_file(first))
      local second = assert(client:download("received", id, { to = dir }))
      assert.equal(dir .. "/invoice-1002 (2).xml", second)
      assert.equal(xml, h.read_file(second))
      local third = assert(client:download("received", id, { index = 1, to = dir }))
      assert.equal(dir .. "/invoice-1002.pdf", third)
      assert.same({ "invoice-1002 (2).xml", "invoice-1002.pdf", "invoice-1002.xml" },
        entries(dir))
    end)

    it("keeps a hostile name from the server inside the folder", function()
      local hostile = h.inbound { attachments = {
        { name = "../../evil.txt", data = h.b64("evil") },
        { name = "..", data = h.b64("dots") },
        { name = "a\r\nb.txt", data = h.b64("crlf") } } }
      local inner = dir .. "/inner"
      assert(os.execute("mkdir " .. h.quote(inner)))
      for i = 0, 2 do
        local path = assert(client:download("received", hostile, { index = i, to = inner }))
        local parent, name = path:match("^(.*)/([^/]+)$")
        assert.equal(inner, parent)
        assert.is_nil(name:find("[%c/\\]"), name)
        assert.are_not.equal("..", name)
        assert.are_not.equal(".", name)
      end
      assert.same({ "inner" }, entries(dir))
      assert.equal(3, #entries(inner))
    end)

    it("extracts all attachments into a folder and returns their paths", function()
      local paths, err = client:download("received", id, { all = true, to = dir })
      assert.is_table(paths, tostring(err))
      assert.is_nil(err)
      table.sort(paths)
      assert.same({ dir .. "/invoice-1002.pdf", dir .. "/invoice-1002.xml" }, paths)
      assert.equal(xml, h.read_file(dir .. "/invoice-1002.xml"))
      assert.equal(pdf, h.read_file(dir .. "/invoice-1002.pdf"))
      assert.same({ "invoice-1002.pdf", "invoice-1002.xml" }, entries(dir)) -- no zip left
      -- a second extraction does not replace the first files
      paths = assert(client:download("received", id, { all = true, to = dir }))
      table.sort(paths)
      assert.same({ dir .. "/invoice-1002 (2).pdf", dir .. "/invoice-1002 (2).xml" }, paths)
      assert.equal(4, #entries(dir))
    end)

    it("writes all attachments as a zip into a file path", function()
      local zip = dir .. "/x.zip"
      local path = assert(client:download("received", id, { all = true, to = zip }))
      assert.equal(zip, path)
      assert.same({ "invoice-1002.pdf", "invoice-1002.xml" }, h.zip_entries(zip))
      assert.equal(xml, h.zip_read(zip, "invoice-1002.xml"))
      assert.equal(pdf, h.zip_read(zip, "invoice-1002.pdf"))
    end)

    it("streams into a sink", function()
      local chunks = {}
      local res, err = client:download("received", id, { index = 1,
        sink = function(chunk) chunks[#chunks + 1] = chunk end })
      assert.is_table(res, tostring(err))
      assert.is_nil(err)
      assert.equal("invoice-1002.pdf", res.filename)
      assert.equal(pdf, table.concat(chunks))
      assert.same({}, entries(dir))
    end)

    it("marks a received message read with markAsRead", function()
      assert(client:download("received", id, { to = dir .. "/a" }))
      assert.is_false(info(id).read)
      assert(client:download("received", id, { to = dir .. "/b", markAsRead = true }))
      assert.is_true(info(id).read)
      local unread = assert(client:list("received", { unreadOnly = true }))
      assert.is_nil(ids_of(unread.records)[id])
    end)

    it("does not replace an existing file unless overwrite is true", function()
      local path = dir .. "/taken.xml"
      h.write_file(path, "mine")
      local got, err = client:download("received", id, { to = path })
      assert.is_nil(got)
      assert.equal("io", err.kind)
      assert.equal("mine", h.read_file(path))
      assert.same({ "taken.xml" }, entries(dir)) -- no temporary file left behind
      got, err = client:download("received", id, { to = path, all = true })
      assert.is_nil(got)
      assert.is_table(err)
      assert.equal("mine", h.read_file(path))
      got = assert(client:download("received", id, { to = path, overwrite = true }))
      assert.equal(path, got)
      assert.equal(xml, h.read_file(path))
    end)

    it("downloads sent messages", function()
      local s = seed("sent", "Order 5001")
      local path = assert(client:download("sent", s.as2MessageId, { to = dir }))
      assert.equal(dir .. "/order-5001.xml", path)
      assert.equal(attachment("sent", s.as2MessageId), h.read_file(path))
    end)

    it("returns a notfound error for an unknown message and writes nothing", function()
      local got, err = client:download("received", "<no-such@example.com>", { to = dir })
      assert.is_nil(got)
      assert.equal("notfound", err.kind)
      assert.same({}, entries(dir))
    end)
  end)

  describe("mdn", function()
    local dir

    before_each(function() dir = mkdtemp() end)
    after_each(function() rmtree(dir) end)

    it("downloads the MDN of a received message", function()
      local id = seed("received", "Invoice 1001").as2MessageId
      local path = assert(client:mdn("received", id, { to = dir .. "/mdn.txt" }))
      assert.equal(dir .. "/mdn.txt", path)
      local text = h.read_file(path)
      assert.truthy(text:find("Original-Message-ID: " .. id, 1, true), text)
      assert.equal(h.api("GET", "/message/received/" .. h.escape(id) .. "/mdn").body, text)
    end)

    it("downloads the MDN of a sent message into a folder under the server's name", function()
      local id = seed("sent", "Order 5001").as2MessageId
      local path = assert(client:mdn("sent", id, { to = dir }))
      assert.equal(dir .. "/mdn.txt", path)
      assert.truthy(h.read_file(path):find(id, 1, true))
    end)

    it("returns a notfound error when there is no MDN", function()
      local sent = assert(client:send("ACME-AS2", "HOOLI-TEST", { { name = "n.txt", data = "x" } },
        { partnerType = "test" }))
      h.advance(5)
      assert(client:get("sent", sent.as2MessageId))
      local got, err = client:mdn("sent", sent.as2MessageId, { to = dir .. "/mdn.txt" })
      assert.is_nil(got)
      assert.equal("notfound", err.kind)
      assert.same({}, entries(dir))
    end)

    it("raises on an unknown option", function()
      assert.has_error(function() client:mdn("sent", "<a@b>", { index = 1, to = dir }) end)
    end)
  end)

  describe("id_of", function()
    it("decodes the last segment of a Link URL and passes IDs through", function()
      local link = h.url .. "/message/sent/%3C1.2.3%40as2gateway.com%3E"
      assert.equal("<1.2.3@as2gateway.com>", as2gateway.id_of(link))
      assert.equal(unescape("%3C1.2.3%40as2gateway.com%3E"), as2gateway.id_of(link))
      assert.equal("<1.2.3@as2gateway.com>", as2gateway.id_of("<1.2.3@as2gateway.com>"))
    end)
  end)
end)
