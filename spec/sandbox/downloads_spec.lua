-- Pins down attachment, zip, batch and MDN downloads: indexes, headers, bytes, markAsRead,
-- and the batch's folders, .error entries, limits and 206 truncation.
local h = require "helpers"

local assert_generic = h.assert_generic

local unescape = h.unescape

local function path_of(kind, id, rest)
  return "/message/" .. kind .. "/" .. h.escape(id) .. (rest or "")
end

local function download(kind, id, rest, query)
  return h.api("GET", path_of(kind, id, rest), { query = query })
end

local function set_of(list)
  local s = {}
  for _, v in ipairs(list) do s[v] = true end
  return s
end

local function unread_ids(query)
  query = query or {}
  query.unreadOnly, query.pageLength = "true", 100
  local res = h.api("GET", "/message/received", { query = query })
  assert.equal(200, res.status)
  local s = {}
  for _, m in ipairs(res.json.records) do s[m.as2MessageId] = true end
  return s
end

local ONE = "first attachment\0\1\2\255\254 binary\r\n"
local TWO = "<second attachment=\"yes\"/>\n"

local function inbound_two(opts)
  opts = opts or {}
  return h.inbound { partner = opts.partner, subject = opts.subject, attachments = {
    { name = "one.bin", data = h.b64(ONE) }, { name = "two.xml", data = h.b64(TWO) } } }
end

-- Sends one raw file to a partner and lets the queue send it; returns its AS2 ID.
local function sent_message(partner, body, query, name)
  local res = h.api("POST", "/message/ACME-AS2/" .. partner, { query = query, body = body,
    headers = { "Name: " .. (name or "payload.bin"), "Content-Type: application/octet-stream" } })
  assert.equal(202, res.status, res.body)
  local id = unescape(res.headers.link:match("/message/sent/([^/]+)$"))
  h.advance(2)
  return id
end

local function post_zip(ids, query)
  local out = h.tmpname()
  local res = h.api("POST", "/message/received/batch/attachments",
    { json = ids, query = query, output = out })
  res.file = out
  res.entries = h.zip_entries(out)
  return res
end

describe("single attachment download", function()
  before_each(h.reset)

  it("downloads attachment 0 by default, with its name and bytes", function()
    local id = inbound_two()
    local res = download("received", id, "/attachments")
    assert.equal(200, res.status)
    assert.equal(ONE, res.body)
    assert.equal("application/octet-stream", res.headers["content-type"])
    assert.equal('attachment; filename="one.bin"', res.headers["content-disposition"])
  end)

  it("downloads the attachment at an explicit zero-based index", function()
    local id = inbound_two()
    local zero = download("received", id, "/attachments/0")
    assert.equal(200, zero.status)
    assert.equal(ONE, zero.body)
    local one = download("received", id, "/attachments/1")
    assert.equal(200, one.status)
    assert.equal(TWO, one.body)
    assert.equal("application/octet-stream", one.headers["content-type"])
    assert.equal('attachment; filename="two.xml"', one.headers["content-disposition"])
  end)

  it("answers 404 to an index out of range and 400 to a non-numeric one", function()
    local id = inbound_two()
    assert_generic(download("received", id, "/attachments/2"), 404)
    assert_generic(download("received", id, "/attachments/99"), 404)
    assert_generic(download("received", id, "/attachments/x"), 400)
    assert_generic(download("received", id, "/attachments/-1"), 400)
  end)

  it("answers 404 for an unknown message", function()
    assert_generic(download("received", "<nope@example.com>", "/attachments"), 404)
    assert_generic(download("sent", "<nope@example.com>", "/attachments/0"), 404)
  end)

  it("downloads the attachments of a sent message", function()
    local bytes = "sent bytes \0\128\255 end"
    local id = sent_message("GLOBEX-AS2", bytes, nil, "outbound.dat")
    local res = download("sent", id, "/attachments")
    assert.equal(200, res.status)
    assert.equal(bytes, res.body)
    assert.equal('attachment; filename="outbound.dat"', res.headers["content-disposition"])
    assert.equal("application/octet-stream", res.headers["content-type"])
    assert.equal(bytes, download("sent", id, "/attachments/0").body)
    assert_generic(download("sent", id, "/attachments/1"), 404)
  end)

  it("answers 404 for failed and queued messages", function()
    h.control("POST", "partner/GLOBEX-AS2", { behaviour = "fail" })
    h.control("POST", "partner/INITECH-AS2", { behaviour = "pause" })
    local failed = sent_message("GLOBEX-AS2", "will fail")
    local queued = sent_message("INITECH-AS2", "stays queued")
    assert.equal(200, download("failed", failed, "").status)
    assert.equal(200, download("queued", queued, "").status)
    for _, rest in ipairs { "/attachments", "/attachments/0", "/attachments/all", "/mdn" } do
      assert_generic(download("failed", failed, rest), 404)
      assert_generic(download("queued", queued, rest), 404)
    end
  end)

  it("marks a received message read with markAsRead=true", function()
    local id = inbound_two()
    local other = inbound_two()
    assert.equal(200, download("received", id, "/attachments/1").status)
    assert.is_true(unread_ids()[id]) -- not without markAsRead
    local res = download("received", id, "/attachments/1", { markAsRead = "true" })
    assert.equal(200, res.status)
    assert.equal(TWO, res.body)
    local unread = unread_ids()
    assert.is_nil(unread[id])
    assert.is_true(unread[other])
  end)

  it("answers 400 to markAsRead=maybe on a received download", function()
    local id = inbound_two()
    assert_generic(download("received", id, "/attachments", { markAsRead = "maybe" }), 400)
    assert.is_true(unread_ids()[id])
  end)

  it("ignores markAsRead on a sent download", function()
    local id = sent_message("GLOBEX-AS2", "hello")
    local res = download("sent", id, "/attachments", { markAsRead = "true" })
    assert.equal(200, res.status)
    assert.equal("hello", res.body)
    local info = h.control("GET", "messages/" .. h.escape(id))
    assert.is_false(info.read)
  end)
end)

describe("all attachments of a message", function()
  before_each(h.reset)

  it("downloads a zip with entries named by attachment name", function()
    local id = inbound_two()
    local out = h.tmpname()
    local res = h.api("GET", path_of("received", id, "/attachments/all"), { output = out })
    assert.equal(200, res.status)
    assert.equal("application/octet-stream", res.headers["content-type"])
    assert.truthy(res.headers["content-disposition"]:find('filename="attachments.zip"', 1,
      true))
    assert.same({ "one.bin", "two.xml" }, h.zip_entries(out))
    assert.equal(ONE, h.zip_read(out, "one.bin"))
    assert.equal(TWO, h.zip_read(out, "two.xml"))
    os.remove(out)
    assert.is_true(unread_ids()[id])
  end)

  it("marks the message read with markAsRead=true", function()
    local id = inbound_two()
    local res = download("received", id, "/attachments/all", { markAsRead = "true" })
    assert.equal(200, res.status)
    assert.is_nil(unread_ids()[id])
  end)

  it("downloads the zip of a sent message", function()
    local id = sent_message("GLOBEX-AS2", "sent zip bytes", nil, "s.txt")
    local out = h.tmpname()
    local res = h.api("GET", path_of("sent", id, "/attachments/all"), { output = out })
    assert.equal(200, res.status)
    assert.same({ "s.txt" }, h.zip_entries(out))
    assert.equal("sent zip bytes", h.zip_read(out, "s.txt"))
    os.remove(out)
  end)
end)

describe("batch download", function()
  before_each(h.reset)

  it("puts each message in a folder named by its AS2 ID, and .error for unknown IDs",
    function()
      local a = inbound_two()
      local b = h.inbound { attachments = { { name = "b.txt", data = h.b64("bee") } } }
      local unknown = "<404.1.1@nowhere.example.com>"
      local res = post_zip({ a, unknown, b })
      assert.equal(200, res.status, res.body)
      assert.equal("application/octet-stream", res.headers["content-type"])
      assert.is_nil(res.headers["x-batch-truncation-index"])
      local expected = { a .. "/one.bin", a .. "/two.xml", b .. "/b.txt", unknown .. "/.error" }
      table.sort(expected)
      assert.same(expected, res.entries)
      assert.equal(ONE, h.zip_read(res.file, a .. "/one.bin"))
      assert.equal(TWO, h.zip_read(res.file, a .. "/two.xml"))
      assert.equal("bee", h.zip_read(res.file, b .. "/b.txt"))
      assert.is_true(#h.zip_read(res.file, unknown .. "/.error") > 0)
      os.remove(res.file)
      -- without markAsRead nothing is marked
      local unread = unread_ids()
      assert.is_true(unread[a] and unread[b])
    end)

  it("answers 400 to 0 or 101 IDs and to a body that is not an array", function()
    local id = inbound_two()
    local many = {}
    for i = 1, 101 do many[i] = id end
    local function post(body)
      return h.api("POST", "/message/received/batch/attachments", { json = body })
    end
    assert_generic(post("[]"), 400)
    assert_generic(post(many), 400)
    assert_generic(post { ids = { id } }, 400)
    assert_generic(post(h.json_encode(id)), 400)
    assert_generic(post("not json"), 400)
    many[101] = nil
    assert.equal(200, post(many).status)
  end)

  it("stops at the batch limit with 206 and the truncation index, marking only complete "
    .. "messages", function()
      local _, status = h.control("POST", "config", { batch_limit = 2500 })
      assert.equal(200, status)
      local ids = {}
      for i = 1, 3 do
        ids[i] = h.inbound { partner = "INITECH-AS2", subject = "Batch " .. i, attachments = {
          { name = "m" .. i .. "-a.dat", size = 1000 }, { name = "m" .. i .. "-b.dat",
            size = 1000 } } }
      end
      local res = post_zip(ids, { markAsRead = "true" })
      assert.equal(206, res.status)
      assert.equal("(1,0)", res.headers["x-batch-truncation-index"])
      -- the first message complete, then the first attachment of the second: the one
      -- that takes the total over the limit is the last one included
      local expected = { ids[1] .. "/m1-a.dat", ids[1] .. "/m1-b.dat", ids[2] .. "/m2-a.dat" }
      table.sort(expected)
      assert.same(expected, res.entries)
      assert.equal(1000, #h.zip_read(res.file, ids[2] .. "/m2-a.dat"))
      os.remove(res.file)
      local unread = unread_ids { partnerAS2Id = "INITECH-AS2" }
      assert.same(set_of { ids[2], ids[3] }, unread)
    end)

  it("gets every file by continuing from the partly included message", function()
    h.control("POST", "config", { batch_limit = 2500 })
    local ids = {}
    for i = 1, 3 do
      ids[i] = h.inbound { partner = "INITECH-AS2", attachments = {
        { name = "m" .. i .. "-a.dat", size = 1000 }, { name = "m" .. i .. "-b.dat",
          size = 1000 } } }
    end
    local got, requests, remaining = {}, 0, ids
    while #remaining > 0 do
      requests = requests + 1
      assert(requests <= 5, "no progress: the continuation keeps getting the same files")
      local res = post_zip(remaining, { markAsRead = "true" })
      for _, e in ipairs(res.entries) do
        got[e] = #h.zip_read(res.file, e)
      end
      os.remove(res.file)
      if res.status == 206 then
        local m = tonumber(res.headers["x-batch-truncation-index"]:match("^%((%d+),%d+%)$"))
        remaining = { table.unpack(remaining, m + 1) }
      else
        assert.equal(200, res.status)
        remaining = {}
      end
    end
    assert.equal(3, requests)
    local expected = {}
    for i, id in ipairs(ids) do
      expected[id .. "/m" .. i .. "-a.dat"] = 1000
      expected[id .. "/m" .. i .. "-b.dat"] = 1000
    end
    assert.same(expected, got)
    assert.same({}, unread_ids { partnerAS2Id = "INITECH-AS2" })
  end)

  it("answers 200 within the limit and marks every message with markAsRead", function()
    h.control("POST", "config", { batch_limit = 2500 })
    local a = h.inbound { partner = "INITECH-AS2", attachments = { { name = "a", size = 1200 } } }
    local b = h.inbound { partner = "INITECH-AS2", attachments = { { name = "b", size = 1300 } } }
    local c = h.inbound { partner = "INITECH-AS2", attachments = { { name = "c", size = 10 } } }
    local res = post_zip({ a, b }, { markAsRead = "true" })
    assert.equal(200, res.status)
    assert.is_nil(res.headers["x-batch-truncation-index"])
    local expected = { a .. "/a", b .. "/b" }
    table.sort(expected)
    assert.same(expected, res.entries)
    os.remove(res.file)
    assert.same(set_of { c }, unread_ids { partnerAS2Id = "INITECH-AS2" })
  end)
end)

describe("MDN download", function()
  before_each(h.reset)

  it("downloads the MDN of a received message", function()
    local id = inbound_two()
    local res = download("received", id, "/mdn")
    assert.equal(200, res.status)
    assert.equal("application/octet-stream", res.headers["content-type"])
    assert.truthy(res.headers["content-disposition"]:find('filename="mdn.txt"', 1, true))
    assert.truthy(res.body:find("Original-Message-ID: " .. id, 1, true), res.body)
  end)

  it("downloads the MDN of a message sent to a partner that requested one", function()
    local id = sent_message("GLOBEX-AS2", "mdn please")
    local res = download("sent", id, "/mdn")
    assert.equal(200, res.status)
    assert.truthy(res.body:find("Original-Message-ID: " .. id, 1, true), res.body)
    local seed = h.api("GET", "/message/sent").json.records
    local seeded = download("sent", seed[#seed].as2MessageId, "/mdn")
    assert.equal(200, seeded.status)
    assert.truthy(seeded.body:find(seed[#seed].as2MessageId, 1, true))
  end)

  it("answers 404 for a message sent to a partner that requested no MDN", function()
    local id = sent_message("HOOLI-TEST", "no mdn", { partnerType = "test" })
    assert.equal(200, download("sent", id, "").status)
    assert_generic(download("sent", id, "/mdn"), 404)
  end)

  it("answers 404 for an unknown message", function()
    assert_generic(download("received", "<nope@example.com>", "/mdn"), 404)
  end)
end)
