-- Pins down POST /message/:station/:partner: raw and multipart bodies, their limits and
-- errors, the Link header, content-type detection, and the subject/partnerType/profile
-- query parameters.
local h = require "helpers"

local MIB = 1024 * 1024

local unescape = h.unescape

local assert_generic = h.assert_generic

-- POST a raw body. headers: a list of "Name: value" lines, exactly as sent.
local function post(path, opts)
  return h.api("POST", "/message/" .. (path or "ACME-AS2/GLOBEX-AS2"), opts)
end

-- content_type nil: curl's default (application/x-www-form-urlencoded) goes out;
-- "": the header "Content-Type:" removes it, so the request carries none.
local function send_raw(name, body, content_type, query, path)
  local headers = { "Name: " .. name }
  if content_type == "" then
    headers[#headers + 1] = "Content-Type:"
  elseif content_type then
    headers[#headers + 1] = "Content-Type: " .. content_type
  end
  return post(path, { headers = headers, body = body, query = query })
end

-- The AS2 ID of an accepted send, from its Link header.
local function id_of(res)
  assert.equal(202, res.status, res.body)
  local enc = assert(res.headers.link:match("/message/sent/([^/]+)$"), res.headers.link)
  return unescape(enc)
end

-- What the control surface knows of an outbound message (queued, sent or stopped).
local function internal(id)
  local info, status = h.control("GET", "messages/" .. h.escape(id))
  assert.equal(200, status)
  return info.queued[1] or info.sent[1] or info.stopped[1], info
end

local function content_type_of(res)
  return internal(id_of(res)).attachments[1].contentType
end

local function multipart(parts, boundary)
  boundary = boundary or "as2g-spec-boundary-7d1f"
  local out = {}
  for _, p in ipairs(parts) do
    out[#out + 1] = "--" .. boundary .. "\r\n"
    local cd = 'Content-Disposition: form-data; name="' .. (p.field or "file") .. '"'
    if p.filename then cd = cd .. '; filename="' .. p.filename .. '"' end
    out[#out + 1] = cd .. "\r\n"
    out[#out + 1] = "Content-Type: " .. (p.type or "application/octet-stream") .. "\r\n\r\n"
    out[#out + 1] = p.data .. "\r\n"
  end
  out[#out + 1] = "--" .. boundary .. "--\r\n"
  return table.concat(out), "multipart/form-data; boundary=" .. boundary
end

local function send_multipart(parts, query)
  local body, ctype = multipart(parts)
  return post(nil, { headers = { "Content-Type: " .. ctype }, body = body, query = query })
end

local function files(n, size)
  local parts = {}
  for i = 1, n do
    parts[i] = { filename = ("part-%02d.bin"):format(i),
      data = string.rep(string.char(64 + i), size or (i * 7)) }
  end
  return parts
end

local function sent_message(id)
  h.advance(2)
  local res = h.api("GET", "/message/sent/" .. h.escape(id))
  assert.equal(200, res.status, res.body)
  return res.json, res
end

local function count(kind, query)
  local res = h.api("GET", "/message/" .. kind, { query = query })
  assert.equal(200, res.status)
  return res.json.totalRecords
end

describe("raw single-file send", function()
  before_each(h.reset)

  it("answers 202 with a Generic Response and a bare Link to the future sent message",
    function()
      local res = send_raw("invoice.xml", "<invoice/>\n", "text/xml")
      assert.equal(202, res.status)
      assert.same({ message = "Successfully added a new outbound entry" }, res.json)
      local link = res.headers.link
      assert.is_string(link)
      assert.is_nil(link:find("[<>; ]"), "not a bare URL: " .. link)
      assert.is_nil(link:find("rel=", 1, true))
      local id = id_of(res)
      assert.truthy(id:match("^<.+@.+>$"), id)
      assert.equal(h.url .. "/message/sent/" .. h.escape(id), link)
      local entry = internal(id)
      assert.equal(id, entry.as2MessageId)
      assert.equal("invoice.xml", entry.attachments[1].name)
      assert.equal(11, entry.attachments[1].size)
    end)

  it("answers 400 without a Name header", function()
    assert_generic(post(nil, { headers = { "Content-Type: text/plain" }, body = "hello" }),
      400)
    assert_generic(send_raw("", "hello", "text/plain"), 400)
  end)

  it("answers 400 to an empty body", function()
    assert_generic(send_raw("empty.txt", "", "text/plain"), 400)
  end)

  it("answers 413 to a body one byte over 10 MiB and enqueues nothing", function()
    local path = h.tmpname()
    h.write_file(path, string.rep("x", 10 * MIB + 1))
    local res = post(nil, { headers = { "Name: big.txt", "Content-Type: text/plain" },
      body_file = path })
    os.remove(path)
    assert_generic(res, 413)
    h.advance(5)
    assert.equal(1, count("sent")) -- the seed message only
    assert.equal(0, count("queued"))
  end)

  it("accepts a body of exactly 10 MiB", function()
    local path = h.tmpname()
    h.write_file(path, string.rep("y", 10 * MIB))
    local res = post(nil, { headers = { "Name: big.txt", "Content-Type: text/plain" },
      body_file = path })
    os.remove(path)
    assert.equal(202, res.status, res.body)
    local m = sent_message(id_of(res))
    assert.same({ { name = "big.txt", size = 10 * MIB } }, m.attachments)
  end)

  it("keeps the Content-Type given", function()
    assert.equal("text/xml", content_type_of(send_raw("data.bin", "<a/>", "text/xml")))
    assert.equal("application/edi-consent",
      content_type_of(send_raw("order.xml", "<a/>", "application/edi-consent")))
  end)

  it("records curl's default application/x-www-form-urlencoded as given", function()
    -- no Content-Type line at all: curl --data-binary adds its default one
    local res = post(nil, { headers = { "Name: notes.txt" }, body = "a=b" })
    assert.equal("application/x-www-form-urlencoded", content_type_of(res))
  end)

  it("detects a missing Content-Type by extension", function()
    local xml = content_type_of(send_raw("invoice.xml", "<invoice/>", ""))
    assert.is_true(xml == "application/xml" or xml == "text/xml", xml)
    assert.equal("text/plain", content_type_of(send_raw("notes.txt", "hello", "")))
    assert.equal("application/octet-stream",
      content_type_of(send_raw("blob.qqq", "\0\1\2", "")))
    assert.equal("application/octet-stream",
      content_type_of(send_raw("noextension", "hello", "")))
    local by_extension = { ["a.csv"] = "text/csv", ["a.json"] = "application/json",
      ["a.pdf"] = "application/pdf", ["a.zip"] = "application/zip",
      ["a.x12"] = "application/edi-x12", ["a.edifact"] = "application/edifact" }
    for name, ctype in pairs(by_extension) do
      assert.equal(ctype, content_type_of(send_raw(name, "content", "")), name)
    end
  end)

  it("detects .edi content as X12, EDIFACT or other EDI", function()
    local x12 = "ISA*00*          *00*          *ZZ*ACME           *ZZ*GLOBEX         "
      .. "*251101*1200*U*00401*000000101*0*P*>~"
    local unb = "UNB+UNOA:1+ACME+GLOBEX+251101:1200+1'UNH+1+ORDERS:D:96A:UN'"
    local una = "UNA:+.? 'UNB+UNOC:3+ACME+GLOBEX+251101:1200+1'"
    assert.equal("application/edi-x12", content_type_of(send_raw("a.edi", x12, "")))
    assert.equal("application/edifact", content_type_of(send_raw("b.edi", unb, "")))
    assert.equal("application/edifact", content_type_of(send_raw("c.edi", una, "")))
    assert.equal("application/edi-consent",
      content_type_of(send_raw("d.edi", "HDR|ACME|GLOBEX|1001\n", "")))
    -- the content decides for .edi only
    assert.equal("text/plain", content_type_of(send_raw("e.txt", x12, "")))
  end)
end)

describe("multipart send", function()
  before_each(h.reset)

  for _, n in ipairs { 1, 2, 10 } do
    it("accepts " .. n .. " file part(s) and sends them with their names and sizes",
      function()
        local parts = files(n)
        local res = send_multipart(parts)
        assert.equal(202, res.status, res.body)
        assert.same({ message = "Successfully added a new outbound entry" }, res.json)
        local m = sent_message(id_of(res))
        local expected = {}
        for i, p in ipairs(parts) do expected[i] = { name = p.filename, size = #p.data } end
        assert.same(expected, m.attachments)
      end)
  end

  it("keeps each part's bytes and Content-Type", function()
    local bytes = "\0\1\2\r\n--not-a-boundary\r\n\255\254"
    local res = send_multipart {
      { filename = "a.bin", data = bytes, type = "application/octet-stream" },
      { filename = "b.xml", data = "<b/>", type = "text/xml" },
    }
    local id = id_of(res)
    local entry = internal(id)
    assert.equal("application/octet-stream", entry.attachments[1].contentType)
    assert.equal("text/xml", entry.attachments[2].contentType)
    sent_message(id)
    local dl = h.api("GET", "/message/sent/" .. h.escape(id) .. "/attachments/0")
    assert.equal(200, dl.status)
    assert.equal(bytes, dl.body)
  end)

  it("answers 400 to 11 file parts", function()
    assert_generic(send_multipart(files(11)), 400)
  end)

  it("answers 400 to a part not named file", function()
    local parts = files(2)
    parts[2].field = "upload"
    assert_generic(send_multipart(parts), 400)
  end)

  it("answers 400 to duplicate filenames", function()
    local parts = files(3)
    parts[3].filename = parts[1].filename
    assert_generic(send_multipart(parts), 400)
  end)

  it("answers 400 to a part without filename", function()
    local parts = files(2)
    parts[2].filename = nil
    assert_generic(send_multipart(parts), 400)
  end)

  it("answers 413 to files adding up to over 10 MiB", function()
    local parts = { { filename = "one.bin", data = string.rep("a", 5 * MIB) },
      { filename = "two.bin", data = string.rep("b", 5 * MIB + 1) } }
    assert_generic(send_multipart(parts), 413)
  end)

  it("accepts files adding up to exactly 10 MiB", function()
    local parts = { { filename = "one.bin", data = string.rep("a", 5 * MIB) },
      { filename = "two.bin", data = string.rep("b", 5 * MIB) } }
    local res = send_multipart(parts)
    assert.equal(202, res.status, res.body)
    local m = sent_message(id_of(res))
    assert.same({ { name = "one.bin", size = 5 * MIB }, { name = "two.bin", size = 5 * MIB } },
      m.attachments)
  end)

  it("answers 400 to a multipart Content-Type without boundary", function()
    local body = multipart(files(1))
    assert_generic(post(nil, { headers = { "Content-Type: multipart/form-data" },
      body = body }), 400)
  end)

  it("enqueues nothing for a refused multipart body", function()
    assert_generic(send_multipart(files(11)), 400)
    local parts = files(2)
    parts[2].filename = parts[1].filename
    assert_generic(send_multipart(parts), 400)
    h.advance(5)
    assert.equal(1, count("sent"))
    assert.equal(0, count("failed"))
    assert.equal(0, count("queued"))
  end)
end)

describe("send query parameters", function()
  before_each(h.reset)

  it("uses the subject given", function()
    local res = send_raw("s.txt", "hello", "text/plain", { subject = "Invoice 77 & more" })
    assert.equal("Invoice 77 & more", sent_message(id_of(res)).subject)
  end)

  it("falls back to the partner's messageSubject", function()
    local res = send_raw("s.txt", "hello", "text/plain", nil, "ACME-AS2/AS2G-ECHO")
    assert.equal("Echo", sent_message(id_of(res)).subject)
  end)

  it("leaves subject out when neither the send nor the partner has one", function()
    local res = send_raw("s.txt", "hello", "text/plain")
    local m, raw = sent_message(id_of(res))
    assert.is_nil(m.subject)
    assert.is_nil(raw.body:find('"subject"', 1, true))
  end)

  it("sends to a Test partner with partnerType=test", function()
    local res = send_raw("t.txt", "hello", "text/plain", { partnerType = "test" },
      "ACME-AS2/AS2G-ECHO-TEST")
    local id = id_of(res)
    local m = sent_message(id)
    assert.equal("Test", m.partnerType)
    assert.equal("AS2G-ECHO-TEST", m.receiverId)
    local listed = h.api("GET", "/message/sent", { query = { partnerType = "test" } })
    assert.equal(1, listed.json.totalRecords)
    assert.equal(id, listed.json.records[1].as2MessageId)
    local prod = h.api("GET", "/message/sent", { query = { as2MessageId = id } })
    assert.equal(0, prod.json.totalRecords)
  end)

  it("answers 404 when partnerType does not match the partner's type", function()
    assert_generic(send_raw("t.txt", "hi", "text/plain", { partnerType = "test" }), 404)
    assert_generic(send_raw("t.txt", "hi", "text/plain", nil, "ACME-AS2/HOOLI-TEST"), 404)
    assert_generic(send_raw("t.txt", "hi", "text/plain", { partnerType = "production" },
      "ACME-AS2/AS2G-ECHO-TEST"), 404)
  end)

  it("answers 404 to an unknown station or partner", function()
    assert_generic(send_raw("t.txt", "hi", "text/plain", nil, "NOPE-AS2/GLOBEX-AS2"), 404)
    assert_generic(send_raw("t.txt", "hi", "text/plain", nil, "ACME-AS2/NOPE-AS2"), 404)
    -- the other account's station and partner are unknown here
    assert_generic(send_raw("t.txt", "hi", "text/plain", nil, "UMBRELLA-AS2/WAYNE-AS2"), 404)
  end)

  it("accepts and records a known profile", function()
    local res = send_raw("p.edi", "ISA*00*", nil, { profile = "edi-headers" })
    local entry = internal(id_of(res))
    assert.equal("edi-headers", entry.profile)
  end)

  it("answers 400 to an unknown profile", function()
    assert_generic(send_raw("p.txt", "hi", "text/plain", { profile = "no-such-profile" }), 400)
  end)

  it("answers 400 to a bad partnerType", function()
    assert_generic(send_raw("p.txt", "hi", "text/plain", { partnerType = "bogus" }), 400)
  end)
end)
