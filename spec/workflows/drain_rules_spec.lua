-- drain's rule, defect by defect: a message is done only when every attachment its record lists is on disk.
local h = require "helpers"
local as2gateway = require "as2gateway"
local S = require "workflows.support"
local zipfile = require "zipfile"

local folder_of = require("as2gateway.batch").folder_of

local JOURNAL = ".as2g-drain.journal"
local BATCH = "POST /message/received/batch/attachments"
local BATCH_PATH = "/message/received/batch/attachments"
local LISTING = "GET /message/:kind"

-- The next `count` batch downloads answer with this zip (and are not processed: nothing
-- is marked read by them).
local function serve_zip(bytes, count)
  h.fault { path = BATCH_PATH, method = "POST", status = 200, body_base64 = h.b64(bytes),
    content_type = "application/zip", count = count or 1 }
end

local function att(name, data)
  return { name = name, data = h.b64(data) }
end

local count = S.count

-- A drain with a handler that records each call: calls[id] = {paths...} (the last one),
-- n[id] = how many.
local function drain(to, opts)
  local calls, n = {}, {}
  local o = { to = to, handler = function(message, paths)
    local id = message.as2MessageId
    calls[id], n[id] = paths, (n[id] or 0) + 1
  end }
  for k, v in pairs(opts or {}) do o[k] = v end
  local client = as2gateway.new(h.core_options(o.client))
  o.client = nil
  local summary, err, partial = client:drain(o)
  local requests = client:stats().requests
  client:close()
  return summary, err, calls, n, partial, requests
end

local function requests_since(before, route)
  local after = h.stats()
  if route then return S.route_count(after, route) - S.route_count(before, route) end
  return after.requests - before.requests
end

describe("client:drain's rule", function()
  local to

  before_each(function()
    h.reset()
    S.clear_unread()
    to = h.mkdtemp()
  end)

  after_each(function()
    h.rmtree(to)
  end)

  describe("names partners really send", function()
    it("stores a Windows path or a name with / under a sanitised name: every attachment kept",
      function()
        local id = h.inbound { attachments = { att("C:\\edi\\out\\INV.edi", "invoice"),
          att("out/ORDERS.edi", "orders"), att("plain.txt", "plain") } }
        local summary, err, calls = drain(to)
        assert.is_nil(err)
        assert.same({ messages = 1, done = 1, failed = 0, errors = {} }, summary)
        local dir = to .. "/" .. folder_of(id)
        assert.same({ dir .. "/C:_edi_out_INV.edi", dir .. "/out_ORDERS.edi", dir .. "/plain.txt" },
          calls[id])
        assert.equal("invoice", h.read_file(calls[id][1]))
        assert.equal("orders", h.read_file(calls[id][2]))
        assert.same({ "C:_edi_out_INV.edi", "out_ORDERS.edi", "plain.txt" }, S.ls(dir))
      end)
  end)

  describe("what the extractor refuses", function()
    it("makes a message with a refused attachment a failure: no handler, fetched again", function()
      local id = h.inbound { attachments = { att("a.txt", "hello"), att("b.txt", "world") } }
      serve_zip(zipfile.make {
        { name = id .. "/a.txt", data = "hello" },
        { name = id .. "/b.txt", data = "/etc/passwd", mode = zipfile.SYMLINK },
      })
      local summary, err, calls = drain(to)
      assert.is_nil(err)
      assert.is_nil(calls[id], "the handler got a partial set")
      assert.equal(1, summary.failed)
      assert.equal(0, summary.done)
      assert.equal("protocol", summary.errors[id].kind)
      assert.matches("b.txt", summary.errors[id].message, 1, true)
      assert.matches("a link", summary.errors[id].message, 1, true)
      assert.is_number(S.size(to .. "/" .. JOURNAL), "nothing left to fetch it again")
      assert.is_false(S.inspect(id).read)
      -- the next drain (a sound answer) finishes it
      summary, err, calls = drain(to)
      assert.is_nil(err)
      assert.same({ messages = 1, done = 1, failed = 0, errors = {} }, summary)
      assert.equal(2, #calls[id])
      assert.equal("world", h.read_file(calls[id][2]))
      assert.is_nil(S.size(to .. "/" .. JOURNAL))
    end)

    it("makes an attachment of the wrong size a failure", function()
      local id = h.inbound { attachments = { att("a.txt", "hello") } }
      serve_zip(zipfile.make { { name = id .. "/a.txt", data = "hel" } })
      local summary, _, calls = drain(to)
      assert.is_nil(calls[id])
      assert.equal(1, summary.failed)
      assert.matches("3 bytes on disk, the record says 5", summary.errors[id].message, 1, true)
      summary = drain(to)
      assert.equal(1, summary.done)
    end)

    it("marks a message unread again when the gateway marked it read and it failed", function()
      local id = h.inbound { attachments = { att("big.bin", string.rep("x", 5000)) } }
      -- a real answer (the gateway marks the message read), refused by a limit of ours
      local summary, _, calls = drain(to, { max_entry_bytes = 4000 })
      assert.is_nil(calls[id])
      assert.equal(1, summary.failed)
      assert.matches("larger than the limit", summary.errors[id].message, 1, true)
      assert.is_false(S.inspect(id).read, "left read without its files")
      assert.equal(1, S.unread())
      summary = drain(to)
      assert.equal(1, summary.done)
      assert.is_true(S.inspect(id).read)
    end)

    it("records a message the gateway no longer has as gone, once, and names it", function()
      local id = h.inbound { attachments = { att("a.txt", "hello") } }
      local record = h.api("GET", "/message/received/" .. h.escape(id)).json
      -- an earlier drain announced it and died; meanwhile somebody deleted it
      h.write_file(to .. "/" .. JOURNAL, "fetch " .. h.json_encode(record) .. "\n")
      h.api("DELETE", "/message/received/" .. h.escape(id))
      local summary, _, calls = drain(to)
      assert.is_nil(calls[id])
      assert.equal(1, summary.failed)
      assert.equal("notfound", summary.errors[id].kind)
      assert.matches("no longer on the gateway", summary.errors[id].message, 1, true)
      -- nothing is left to retry
      assert.is_nil(S.size(to .. "/" .. JOURNAL))
      summary = drain(to)
      assert.same({ messages = 0, done = 0, failed = 0, errors = {} }, summary)
    end)
  end)

  describe("zip folder names", function()
    local spellings = {
      ["without angle brackets"] = function(id) return id:match("^<(.*)>$") end,
      ["percent-encoded"] = function(id) return h.escape(id) end,
      ["in upper case"] = function(id) return id:upper() end,
    }
    for how, spell in pairs(spellings) do
      it("matches a folder spelled " .. how .. " to its message", function()
        local id = h.inbound { attachments = { att("a.txt", "hello") } }
        serve_zip(zipfile.make { { name = spell(id) .. "/a.txt", data = "hello" } })
        local summary, err, calls = drain(to)
        assert.is_nil(err)
        assert.same({ messages = 1, done = 1, failed = 0, errors = {} }, summary)
        assert.same({ to .. "/" .. folder_of(id) .. "/a.txt" }, calls[id])
        assert.equal("hello", h.read_file(calls[id][1]))
      end)
    end

    it("makes a message whose folder matches no ID a failure, never a success", function()
      local id = h.inbound { attachments = { att("a.txt", "hello") } }
      serve_zip(zipfile.make { { name = "<somebody-else@example.com>/a.txt", data = "hello" } })
      local summary, _, calls = drain(to)
      assert.is_nil(calls[id])
      assert.equal(1, summary.failed)
      assert.matches("not on disk", summary.errors[id].message, 1, true)
      -- nothing written for it: it stays in the journal, to be fetched
      assert.same({ JOURNAL, S.DRAIN_LOCK }, S.ls(to))
    end)
  end)

  it("gives two long IDs with a common prefix folders of their own, the same on every run",
    function()
      local prefix = "<" .. string.rep("7", 290)
      local a = h.inbound { as2MessageId = prefix .. ".1@example.com>",
        attachments = { att("a.txt", "first") } }
      local b = h.inbound { as2MessageId = prefix .. ".2@example.com>",
        attachments = { att("a.txt", "second") } }
      assert.are_not.equal(folder_of(a), folder_of(b))
      assert.is_true(#folder_of(a) <= 255 and #folder_of(b) <= 255)
      assert.equal(folder_of(a), folder_of(a))
      local summary, _, calls = drain(to)
      assert.equal(2, summary.done)
      assert.equal("first", h.read_file(calls[a][1]))
      assert.equal("second", h.read_file(calls[b][1]))
      local folders = { folder_of(a), folder_of(b), S.DRAIN_LOCK }
      table.sort(folders)
      assert.same(folders, S.ls(to))
      assert.same({ messages = 0, done = 0, failed = 0, errors = {} }, (drain(to)))
    end)

  it("drains both partner types by default, and one when asked", function()
    local prod = h.inbound { attachments = { att("p.txt", "production") } }
    local test = h.inbound { partner = "HOOLI-TEST", station = "ACME-EU-AS2", partnerType = "Test",
      attachments = { att("t.txt", "test") } }
    local summary, _, calls = drain(to)
    assert.equal(2, summary.done)
    assert.is_truthy(calls[prod])
    assert.is_truthy(calls[test], "a Test partner's message was left unread")
    assert.equal(0, S.unread())
    local later = h.inbound { partner = "HOOLI-TEST", station = "ACME-EU-AS2",
      partnerType = "Test", attachments = { att("t.txt", "later") } }
    summary = drain(to, { partnerType = "production" })
    assert.equal(0, summary.messages)
    summary, _, calls = drain(to, { partnerType = "test" })
    assert.equal(1, summary.done)
    assert.is_truthy(calls[later])
  end)

  describe("the listing", function()
    it("ends with a protocol error when the gateway's page is not a page", function()
      h.fault { path = "/message/received", method = "GET", status = 200,
        body = '{"totalRecords": 1, "records": 42}' }
      local summary, err = drain(to)
      assert.is_nil(summary)
      assert.equal("protocol", err.kind)
    end)

    it("ends with a protocol error after a bounded number of pages when pageOffset is ignored",
      function()
        local records = {}
        for i = 1, 100 do
          records[i] = ('{"as2MessageId": "<%d@loop.example.com>", "attachments": []}'):format(i)
        end
        h.fault { path = "/message/received", method = "GET", status = 200, count = 50,
          body = '{"totalRecords": 100000, "records": [' .. table.concat(records, ",") .. "]}" }
        local before = h.stats()
        local summary, err = drain(to)
        assert.is_nil(summary)
        assert.equal("protocol", err.kind)
        -- the first page, then the guard's pages of nothing new
        assert.equal(1 + require("as2gateway.util").MAX_STALE_PAGES,
          requests_since(before, LISTING))
        assert.is_nil(S.size(to .. "/" .. JOURNAL)) -- nothing was fetched
      end)
  end)

  describe("requests", function()
    it("tops a 206 continuation up to 100 IDs: 252 messages of 2 x 60 KiB in 7 requests",
      function()
        h.inject(252, { attachments = { { name = "a.bin", size = 60 * 1024 },
          { name = "b.bin", size = 60 * 1024 } } })
        local before = h.stats()
        local summary, err, calls = drain(to, { partnerType = "production" })
        assert.is_nil(err)
        assert.equal(252, summary.done)
        assert.equal(252, count(calls))
        -- the login, 3 listing pages, 3 batch downloads (the first two end in 206)
        assert.equal(3, requests_since(before, BATCH))
        assert.equal(3, requests_since(before, LISTING))
        assert.equal(7, requests_since(before))
      end)

    it("reads no empty last page: 200 unread messages in 2 listing pages", function()
      h.inject(200, { attachments = { { name = "a.txt", size = 10 } } })
      local before = h.stats()
      local summary = drain(to, { partnerType = "production" })
      assert.equal(200, summary.done)
      assert.equal(2, requests_since(before, LISTING))
    end)

    it("picks up what arrives after the last page on the next run", function()
      h.inject(100, { attachments = { { name = "a.txt", size = 10 } } })
      assert.equal(100, drain(to).done)
      local late = h.inbound { attachments = { att("late.txt", "late") } }
      local summary, _, calls = drain(to)
      assert.equal(1, summary.done)
      assert.is_truthy(calls[late])
    end)
  end)
end)

describe("client:drain on a full disk", function()
  local base, to
  local root = os.execute("[ \"$(id -u)\" = 0 ] && command -v mount >/dev/null")

  -- a tmpfs of `kb` KiB of the spec's own: the disk that fills
  local function mount(kb)
    base = h.mkdtemp()
    assert(os.execute(("mount -t tmpfs -o size=%dk tmpfs %s"):format(kb, h.quote(base))))
    to = base .. "/inbox"
    assert(os.execute("mkdir " .. h.quote(to)))
  end

  before_each(function()
    h.reset()
    S.clear_unread()
  end)

  after_each(function()
    if base then
      os.execute("umount " .. h.quote(base) .. " 2>/dev/null")
      h.rmtree(base)
      base = nil
    end
  end)

  it("stops before anything is marked read when the journal cannot be written; a rerun recovers",
    function()
      if not root then pending("needs root to mount a tmpfs") return end
      mount(256)
      h.inject(20, { attachments = { { name = "a.edi", size = 300 } } })
      local fill = base .. "/fill"
      os.execute("dd if=/dev/zero of=" .. h.quote(fill) .. " bs=4k >/dev/null 2>&1")
      local summary, err, calls = drain(to)
      assert.is_nil(summary)
      assert.equal("io", err.kind)
      assert.matches("journal", err.message, 1, true)
      assert.same({}, calls)
      assert.equal(20, S.unread(), "messages were marked read")
      os.remove(fill)
      summary, err, calls = drain(to)
      assert.is_nil(err)
      assert.equal(20, summary.done)
      assert.equal(20, count(calls))
      assert.equal(0, S.unread())
    end)

  it("loses nothing when the disk fills mid-drain: after space is freed every message is handled",
    function()
      if not root then pending("needs root to mount a tmpfs") return end
      mount(4096)
      h.inject(250, { attachments = { { name = "a.edi", size = 2000 },
        { name = "b.xml", size = 2000 } } })
      local expected = S.unread_messages()
      -- something else fills the disk as the first batch download arrives
      local fill, filled = base .. "/fill", false
      local function log(event)
        if event.event == "response" and not filled
           and tostring(event.path):find("/batch/", 1, true) then
          filled = true
          os.execute("dd if=/dev/zero of=" .. h.quote(fill) .. " bs=4k >/dev/null 2>&1")
        end
      end
      local handled = {}
      local summary, err, calls = drain(to, { client = { log = log } })
      assert.is_true(filled)
      -- the drain stopped with an io error (or, at the least, failed)
      assert.is_true(err ~= nil or next(summary.errors) ~= nil, "the disk did not fill")
      if err then assert.equal("io", err.kind) end
      for id in pairs(calls) do handled[id] = true end
      -- space comes back; the next drain finishes everything
      os.remove(fill)
      summary, err, calls = drain(to)
      assert.is_nil(err)
      assert.same({}, summary.errors)
      for id, paths in pairs(calls) do
        handled[id] = true
        assert.equal(2, #paths)
        for _, p in ipairs(paths) do assert.equal(2000, S.size(p)) end
      end
      local lost = {}
      for id in pairs(expected) do
        if not handled[id] then lost[#lost + 1] = id end
      end
      assert.same({}, lost)
      assert.equal(0, S.unread())
      assert.is_nil(S.size(to .. "/" .. JOURNAL))
      assert.same({}, S.hidden(to))
    end)
end)

describe("client:drain from two processes in one folder", function()
  local to, log, gate, script

  before_each(function()
    h.reset()
    S.clear_unread()
    to = h.mkdtemp()
    log, gate, script = h.tmpname(), h.tmpname(), h.tmpname()
    -- a drain in a process of its own whose handler logs each message, then waits for the
    -- gate file before it returns
    h.write_file(script, [[
      package.path = "./lua/?.lua;./lua/?/init.lua;" .. package.path
      package.cpath = "./build/lua54/?.so;" .. package.cpath
      local as2gateway = require "as2gateway"
      local to, log, gate = arg[1], arg[2], arg[3]
      local c = as2gateway.new { url = os.getenv("AS2G_URL"), cainfo = os.getenv("AS2G_CA"),
        username = os.getenv("AS2G_USERNAME"), password = os.getenv("AS2G_PASSWORD") }
      local summary, err = c:drain { to = to, handler = function(m)
        local f = assert(io.open(log, "ab"))
        f:write(m.as2MessageId, "\n")
        f:close()
        while not io.open(gate) do os.execute("sleep 0.05") end
      end }
      print(summary and ("drained " .. summary.done) or tostring(err))
    ]])
  end)

  after_each(function()
    h.write_file(gate, "") -- never leave the child waiting
    h.rmtree(to)
    for _, f in ipairs { log, gate, script } do os.remove(f) end
  end)

  it("lets one run at a time: a second ends at once with kind locked, or waits with lock_wait",
    function()
      local ids = h.inject(5, { attachments = { { name = "a.txt", size = 10 } } })
      local out = h.tmpname()
      assert(os.execute(("timeout 120 lua5.4 %s %s %s %s >%s 2>&1 &"):format(h.quote(script),
        h.quote(to), h.quote(log), h.quote(gate), h.quote(out))))
      h.wait_until(function() return (h.read_file(log) or "") ~= "" end, 30,
        "the first drain did not reach its handler")
      -- the first drain is in its handler: a second one must not start
      local started = h.now()
      local summary, err, calls = drain(to)
      assert.is_nil(summary)
      assert.equal("locked", err.kind)
      assert.matches("another drain is running", err.message, 1, true)
      assert.same({}, calls)
      assert.is_true(h.now() - started < 5)
      -- with lock_wait it waits until the first has finished (its gate opens in 1 s), and
      -- then finds nothing left to do
      assert(os.execute(("(sleep 1; touch %s) &"):format(h.quote(gate))))
      summary, err, calls = drain(to, { lock_wait = 60 })
      assert.is_nil(err)
      assert.same({ messages = 0, done = 0, failed = 0, errors = {} }, summary)
      assert.same({}, calls)
      h.wait_until(function() return (h.read_file(out) or ""):find("drained", 1, true) end, 30,
        "the first drain did not end")
      assert.matches("drained 5", h.read_file(out), 1, true)
      local handled = {}
      for id in h.read_file(log):gmatch("[^\n]+") do
        assert.is_nil(handled[id], "handled twice: " .. id)
        handled[id] = true
      end
      for _, id in ipairs(ids) do assert.is_true(handled[id], id) end
      os.remove(out)
    end)

  it("raises on a lock_wait that is not a number of seconds", function()
    local client = as2gateway.new(h.core_options())
    assert.has_error(function() client:drain { to = to, lock_wait = "soon" } end,
      "drain: lock_wait must be a number of seconds")
    client:close()
  end)
end)
