-- Pins down client:send: raw and multipart bodies, params, result, local checks, 500 and 429.
local h = require "helpers"
local as2gateway = require "as2gateway"

local SEND = "POST /message/:station/:partner"
local MiB = 1024 * 1024

local mkdtemp = h.mkdtemp

local rmtree = h.rmtree

local unescape = h.unescape

local behaviour = h.behaviour

local config = h.config

local fault = h.fault

-- What the sandbox knows of a message (the API does not show content types).
local function info(id)
  local res, status = h.control("GET", "messages/" .. h.escape(id))
  assert.equal(200, status)
  return res
end

local function queued_entry(id)
  local i = info(id)
  assert.equal(1, #i.queued, "queued once")
  return i.queued[1]
end

local fake_time = h.fake_time

-- Bytes that survive no careless handling: NUL, CR LF, a boundary-like line, high bytes.
local function awkward(n)
  local parts = { "\0\r\n--as2gateway-\r\n" }
  for i = 0, n - 1 do parts[#parts + 1] = string.char(i % 256) end
  return table.concat(parts)
end

describe("client:send", function()
  local client, dir

  before_each(function()
    h.reset()
    config { queue_delay = 60 } -- messages stay queued until the clock is moved on
    client = as2gateway.new(h.core_options())
    dir = mkdtemp()
  end)

  after_each(function()
    client:close()
    rmtree(dir)
  end)

  describe("one file", function()
    it("sends a path raw, without a Content-Type, so the gateway detects it", function()
      local path = dir .. "/order.xml"
      h.write_file(path, "<order number=\"1\"/>\n")
      local res, err = client:send("ACME-AS2", "GLOBEX-AS2", path)
      assert.is_table(res, tostring(err))
      local e = queued_entry(res.as2MessageId)
      assert.equal(1, #e.attachments)
      assert.equal("order.xml", e.attachments[1].name)
      assert.equal(#"<order number=\"1\"/>\n", e.attachments[1].size)
      assert.equal("application/xml", e.attachments[1].contentType)
      local by = h.stats().by_endpoint
      assert.equal(1, by[SEND])
    end)

    it("lets the gateway detect EDI by content", function()
      local path = dir .. "/invoice.edi"
      h.write_file(path, "UNB+UNOC:3+ACME+GLOBEX'")
      local res = assert(client:send("ACME-AS2", "GLOBEX-AS2", { path }))
      assert.equal("application/edifact", queued_entry(res.as2MessageId).attachments[1].contentType)
    end)

    it("sends a data table raw with its name and content_type", function()
      local res = assert(client:send("ACME-AS2", "GLOBEX-AS2",
        { { name = "note.dat", data = "hello", content_type = "text/x-note" } }))
      local a = queued_entry(res.as2MessageId).attachments[1]
      assert.equal("note.dat", a.name)
      assert.equal(5, a.size)
      assert.equal("text/x-note", a.contentType)
    end)

    it("returns the gateway's message, the Link and the AS2 ID from it", function()
      local res = assert(client:send("ACME-AS2", "GLOBEX-AS2", { { name = "a.txt", data = "a" } }))
      assert.is_string(res.message)
      assert.equal(h.url .. "/message/sent/", res.link:sub(1, #h.url + 14))
      local last = assert(res.link:match("/([^/]+)$"))
      assert.equal(unescape(last), res.as2MessageId)
      assert.truthy(res.as2MessageId:match("^<.+@.+>$"), res.as2MessageId)
      assert.equal(res.as2MessageId, queued_entry(res.as2MessageId).as2MessageId)
    end)
  end)

  describe("several files", function()
    it("sends a list of paths as one multipart message", function()
      local a, b = dir .. "/a.csv", dir .. "/b.bin"
      h.write_file(a, "id,qty\n1,2\n")
      h.write_file(b, awkward(3000))
      local res = assert(client:send("ACME-AS2", "GLOBEX-AS2", { a, b }))
      local e = queued_entry(res.as2MessageId)
      assert.equal(2, #e.attachments)
      assert.equal("a.csv", e.attachments[1].name)
      assert.equal(11, e.attachments[1].size)
      assert.equal("text/csv", e.attachments[1].contentType) -- no part Content-Type sent
      assert.equal("b.bin", e.attachments[2].name)
      assert.equal(#awkward(3000), e.attachments[2].size)
      assert.equal(1, h.stats().by_endpoint[SEND])
    end)

    it("delivers the same bytes: the sent message and the echo's copy match", function()
      local files = {
        { name = "first.bin", data = awkward(5000), content_type = "application/x-first" },
        { name = "second.txt", data = "second\r\n" },
        { name = "third \"q\" façade.csv", data = "x,y\n" },
      }
      local res = assert(client:send("ACME-AS2", "AS2G-ECHO", files, { subject = "Round trip" }))
      local e = queued_entry(res.as2MessageId)
      assert.equal(3, #e.attachments)
      for i, f in ipairs(files) do
        assert.equal(f.name, e.attachments[i].name)
        assert.equal(#f.data, e.attachments[i].size)
      end
      assert.equal("application/x-first", e.attachments[1].contentType)
      assert.equal("text/plain", e.attachments[2].contentType)
      h.advance(65)
      local sent = assert(client:get("sent", res.as2MessageId))
      assert.equal("Round trip", sent.subject)
      local echo = assert(client:list("received", { subject = "Round trip" }))
      assert.equal(1, echo.totalRecords)
      local copy = echo.records[1]
      assert.are_not.equal(res.as2MessageId, copy.as2MessageId)
      for i, f in ipairs(files) do
        assert.equal(f.name, copy.attachments[i].name)
        assert.equal(#f.data, copy.attachments[i].size)
        local s = assert(client:download("sent", res.as2MessageId,
          { index = i - 1, to = dir .. "/sent-" .. i }))
        local r = assert(client:download("received", copy.as2MessageId,
          { index = i - 1, to = dir .. "/received-" .. i }))
        assert.equal(f.data, h.read_file(s))
        assert.equal(f.data, h.read_file(r))
      end
    end)

    it("mixes paths and data tables, a path renamed by name", function()
      local p = dir .. "/on-disk.txt"
      h.write_file(p, "from disk")
      local res = assert(client:send("ACME-AS2", "GLOBEX-AS2", {
        p, { name = "renamed.xml", path = p }, { name = "inline.txt", data = "inline" } }))
      local e = queued_entry(res.as2MessageId)
      assert.same({ "on-disk.txt", "renamed.xml", "inline.txt" },
        { e.attachments[1].name, e.attachments[2].name, e.attachments[3].name })
      assert.equal("application/xml", e.attachments[2].contentType)
    end)

    it("takes 10 files and exactly 10 MiB", function()
      local files = {}
      for i = 1, 9 do files[i] = { name = ("f%d.bin"):format(i), data = "x" } end
      files[10] = { name = "big.bin", data = ("y"):rep(10 * MiB - 9) }
      local res, err = client:send("ACME-AS2", "GLOBEX-AS2", files)
      assert.is_table(res, tostring(err))
      assert.equal(10, #queued_entry(res.as2MessageId).attachments)
    end)
  end)

  describe("params", function()
    it("honours subject, partnerType and profile", function()
      local res = assert(client:send("ACME-AS2", "AS2G-ECHO-TEST",
        { { name = "t.txt", data = "test" } },
        { subject = "A test subject", partnerType = "test", profile = "edi-headers" }))
      local e = queued_entry(res.as2MessageId)
      assert.equal("A test subject", e.subject)
      assert.equal("Test", e.partnerType)
      assert.equal("AS2G-ECHO-TEST", e.receiverId)
      assert.equal("edi-headers", e.profile)
    end)

    it("uses the partner's subject and the default type without params", function()
      local res = assert(client:send("ACME-AS2", "AS2G-ECHO", { { name = "t.txt", data = "t" } }))
      local e = queued_entry(res.as2MessageId)
      assert.equal("Echo", e.subject)
      assert.equal("Production", e.partnerType)
    end)

    it("returns the gateway's errors: unknown profile, partner of another type", function()
      local res, err = client:send("ACME-AS2", "GLOBEX-AS2", { { name = "t.txt", data = "t" } },
        { profile = "no-such-profile" })
      assert.is_nil(res)
      assert.equal("invalid", err.kind)
      assert.equal(400, err.status)
      res, err = client:send("ACME-AS2", "GLOBEX-AS2", { { name = "t.txt", data = "t" } },
        { partnerType = "test" })
      assert.is_nil(res)
      assert.equal("notfound", err.kind)
      res, err = client:send("NO-SUCH-STATION", "GLOBEX-AS2", { { name = "t.txt", data = "t" } })
      assert.is_nil(res)
      assert.equal("notfound", err.kind)
    end)

    it("raises on an unknown parameter, a missing station or partner, a bad file shape",
      function()
        local f = { { name = "t.txt", data = "t" } }
        assert.has_error(function() client:send("ACME-AS2", "GLOBEX-AS2", f, { Subject = "x" }) end)
        assert.has_error(function() client:send("ACME-AS2", "GLOBEX-AS2", f, "subject") end)
        assert.has_error(function() client:send("", "GLOBEX-AS2", f) end)
        assert.has_error(function() client:send("ACME-AS2", nil, f) end)
        assert.has_error(function() client:send("ACME-AS2", "GLOBEX-AS2", 42) end)
        assert.has_error(function()
          client:send("ACME-AS2", "GLOBEX-AS2", { { name = "t.txt", data = "t", type = "x" } })
        end)
        assert.equal(0, h.stats().requests)
      end)
  end)

  describe("checks before sending", function()
    local function many(n)
      local list = {}
      for i = 1, n do list[i] = { name = ("f%02d.txt"):format(i), data = "x" } end
      return list
    end

    local cases = {
      { "no file", function() return {} end },
      { "11 files", function() return many(11) end },
      { "over 10 MiB across two files", function()
        return { { name = "a.bin", data = ("a"):rep(5 * MiB) },
          { name = "b.bin", data = ("b"):rep(5 * MiB + 1) } }
      end },
      { "over 10 MiB in one file on disk", function()
        local p = dir .. "/huge.bin"
        h.write_file(p, ("h"):rep(10 * MiB + 1))
        return p
      end },
      { "a duplicate name", function()
        return { { name = "same.txt", data = "1" }, { name = "same.txt", data = "2" } }
      end },
      { "a duplicate name from two paths in different folders", function()
        assert(os.execute("mkdir " .. h.quote(dir .. "/one") .. " " .. h.quote(dir .. "/two")))
        h.write_file(dir .. "/one/same.txt", "1")
        h.write_file(dir .. "/two/same.txt", "2")
        return { dir .. "/one/same.txt", dir .. "/two/same.txt" }
      end },
      { "a name with /", function() return { { name = "a/b.txt", data = "x" } } end },
      { "a name with \\", function() return { { name = "a\\b.txt", data = "x" } } end },
      { "a name with CR LF (header injection)", function()
        return { { name = "a.txt\r\nX-Injected: yes", data = "x" } }
      end },
      { "a name with LF in a multipart message", function()
        return { { name = "a\n.txt", data = "x" }, { name = "b.txt", data = "y" } }
      end },
      { "a name with a NUL", function() return { { name = "a\0.txt", data = "x" } } end },
      { "a name with a tab", function() return { { name = "a\t.txt", data = "x" } } end },
      { "a name with an escape character", function()
        return { { name = "a\27[31m.txt", data = "x" } }
      end },
      { "a name with DEL", function() return { { name = "a\127.txt", data = "x" } } end },
      { "the name .", function() return { { name = ".", data = "x" } } end },
      { "the name ..", function() return { { name = "..", data = "x" } } end },
      { "an empty name", function() return { { name = "", data = "x" } } end },
      { "a name over 255 bytes", function()
        return { { name = ("n"):rep(252) .. ".txt", data = "x" } }
      end },
      { "a missing file", function() return dir .. "/no-such-file.txt" end },
      { "a missing file among others", function()
        h.write_file(dir .. "/here.txt", "here")
        return { dir .. "/here.txt", dir .. "/gone.txt" }
      end },
      { "a directory instead of a file", function()
        assert(os.execute("mkdir " .. h.quote(dir .. "/folder.txt")))
        return { dir .. "/folder.txt" }
      end },
      { "both path and data", function()
        return { { name = "x.txt", path = "/etc/hostname", data = "x" } }
      end },
      { "neither path nor data", function() return { { name = "x.txt" } } end },
      { "a content_type with CR LF", function()
        return { { name = "x.txt", data = "x", content_type = "text/plain\r\nX-Injected: yes" } }
      end },
    }

    for _, case in ipairs(cases) do
      it("refuses " .. case[1] .. " with an invalid error, sending nothing", function()
        local files = case[2]()
        local res, err = client:send("ACME-AS2", "GLOBEX-AS2", files)
        assert.is_nil(res)
        assert.is_table(err)
        assert.equal("invalid", err.kind)
        assert.is_nil(err.status)
        assert.is_string(err.message)
        assert.equal(0, h.stats().requests)
      end)
    end

    it("refuses a header injection whatever the name says", function()
      local _, err = client:send("ACME-AS2", "GLOBEX-AS2",
        { { name = "a.txt\r\nX-Injected: yes", data = "x" } })
      assert.equal("invalid", err.kind)
      assert.truthy(err.message:find("control character", 1, true), err.message)
    end)
  end)

  describe("failures", function()
    it("reports a 500 as unknown_outcome and does not send again", function()
      fault { path = "/message/ACME-AS2/GLOBEX-AS2", method = "POST", status = 500, count = 10 }
      local res, err = client:send("ACME-AS2", "GLOBEX-AS2", { { name = "x.txt", data = "x" } })
      assert.is_nil(res)
      assert.equal("unknown_outcome", err.kind)
      assert.equal(1, h.stats().by_endpoint[SEND])
    end)

    it("retries a send refused with 429 and queues it once", function()
      behaviour("GLOBEX-AS2", "pause")
      fault { path = "/message/ACME-AS2/GLOBEX-AS2", method = "POST", status = 429,
        retry_after = 7 }
      local t = fake_time()
      local c = as2gateway.new(h.core_options { clock = t.clock, sleep = t.sleep })
      local res, err = c:send("ACME-AS2", "GLOBEX-AS2", { { name = "x.txt", data = "x" } },
        { subject = "Retried after 429" })
      c:close()
      assert.is_table(res, tostring(err))
      assert.equal(2, h.stats().by_endpoint[SEND])
      assert.truthy(t.now - 1000 >= 7, "waited for Retry-After")
      local page = assert(client:list("queued", { query = "Retried after 429" }))
      assert.equal(1, page.totalRecords)
      assert.equal(res.as2MessageId, page.records[1].as2MessageId)
    end)
  end)
end)
