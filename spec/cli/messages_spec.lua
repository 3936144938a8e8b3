-- as2g ls, show, partners, stations, stop, retry and rm: tables, --json, and their exit codes.
local h = require "helpers"
local S = require "cli.support"
local hostile = require "hostile_server"
local util = require "as2gateway.util"

-- The rows of a table output (the header first), split on runs of 2+ spaces.
local function rows(out)
  local list = {}
  for line in out:gmatch("[^\n]+") do
    local cells = {}
    for cell in (line .. "  "):gmatch("(.-)%s%s+") do cells[#cells + 1] = cell end
    list[#list + 1] = cells
  end
  return list
end

describe("as2g messages", function()
  local home, file

  local function run(args, opts) return S.run(home, args, opts) end

  -- A message waiting in the queue of a paused partner; returns its ID.
  local function queued()
    h.control("POST", "partner/GLOBEX-AS2", { behaviour = "pause" })
    local out, _, code = run { "send", "ACME-AS2", "GLOBEX-AS2", file, "--subject", "held" }
    assert.equal(0, code)
    return (out:gsub("%s+$", ""))
  end

  before_each(function()
    h.reset()
    home = S.home()
    file = home.dir .. "/order.xml"
    h.write_file(file, "<order id='1'/>")
  end)

  after_each(function()
    h.rmtree(home.dir)
  end)

  describe("ls", function()
    it("--all ends with a protocol error against a gateway that ignores pageOffset", function()
      local srv = hostile.start [[
        local listings = 0
        function handle(req, n)
          if req.path == "/v1/authorize" then return login { expiry = now_ms() + 3600000 } end
          listings = listings + 1
          if listings > 200 then return page({}, 0) end -- a safety net for old code
          return page(messages(100), 1000)
        end
      ]]
      local out, err, code = run({ "--json", "ls", "received", "--all" }, { timeout = 60,
        env = { AS2G_URL = srv.url, AS2G_USERNAME = "u", AS2G_PASSWORD = "p", AS2G_CA = false } })
      local listings = srv:count("/v1/message/received")
      srv:stop()
      assert.equal(1, code, err)
      assert.matches("protocol", err)
      assert.matches("no progress", err)
      local lines = 0
      for _ in out:gmatch("[^\n]+") do lines = lines + 1 end
      assert.equal(100, lines) -- each message once
      assert.equal(1 + util.MAX_STALE_PAGES, listings)
    end)

    it("prints a page as a table with a count on stderr", function()
      local out, err, code = run { "ls", "received" }
      assert.equal(0, code)
      local t = rows(out)
      assert.same({ "ID", "TIME (UTC)", "PARTNER", "STATION", "SUBJECT", "STATUS", "FILES" }, t[1])
      assert.equal(3, #t)
      local ids = S.ids("received")
      assert.same(ids, { t[2][1], t[3][1] })
      assert.same({ "GLOBEX-AS2", "ACME-AS2", "Invoice 1002", "Received", "2" },
        { t[2][3], t[2][4], t[2][5], t[2][6], t[2][7] })
      assert.matches("^%d%d%d%d%-%d%d%-%d%d %d%d:%d%d:%d%d$", t[2][2])
      assert.matches("2 of 2 (page 0)", err, 1, true)
    end)

    it("prints the gateway's page as one JSON document with --json", function()
      local out, err, code = run { "--json", "ls", "received" }
      assert.equal(0, code)
      assert.equal("", err)
      local page = h.json_decode(out)
      assert.equal(2, page.totalRecords)
      local _, records = S.ids("received")
      assert.same(records, page.records)
    end)

    it("writes empty lists as [] in --json, as the gateway does", function()
      local out, _, code = run { "ls", "sent", "--partner", "NOBODY", "--json" }
      assert.equal(0, code)
      assert.matches('"records":%[%]', out)
      out, _, code = run { "partners", "no-such-partner", "--json" }
      assert.equal(0, code)
      assert.equal("[]\n", out)
      out = run { "partners", "AS2G-ECHO", "--json" }
      assert.matches('"customHeaders":%[%]', out)
      assert.matches('"flows":%[%]', out)
    end)

    it("pages with --page and --page-length, and filters by partner type and subject", function()
      local out = run { "--json", "ls", "received", "--page-length", "1", "--page", "1",
        "--asc" }
      local page = h.json_decode(out)
      assert.equal(1, #page.records)
      assert.equal("Invoice 1002", page.records[1].subject)
      out = run { "--json", "ls", "received", "--partner-type", "test" }
      page = h.json_decode(out)
      assert.equal(1, page.totalRecords)
      assert.equal("HOOLI-TEST", page.records[1].receiverId)
      out = run { "--json", "ls", "received", "--subject", "1001" }
      assert.equal("Invoice 1001", h.json_decode(out).records[1].subject)
    end)

    it("lists every page with --all: a table, or one JSON message per line", function()
      for i = 1, 12 do h.inbound { subject = "bulk " .. i } end
      local out, _, code = run { "ls", "received", "--all", "--page-length", "5" }
      assert.equal(0, code)
      assert.equal(15, #rows(out)) -- header + 14
      out, _, code = run { "--json", "ls", "received", "--all", "--page-length", "5" }
      assert.equal(0, code)
      local docs = S.json_lines(out)
      assert.equal(14, #docs)
      local seen = {}
      for _, m in ipairs(docs) do
        assert.is_nil(seen[m.as2MessageId])
        seen[m.as2MessageId] = true
      end
    end)

    it("shows only unread received messages with --unread", function()
      local ids = S.ids("received")
      assert.equal(0, select(3, run { "show", "received", ids[1], "--mark-read" }))
      local page = h.json_decode((run { "--json", "ls", "received", "--unread" }))
      assert.equal(1, #page.records)
      assert.equal(ids[2], page.records[1].as2MessageId)
    end)

    it("lists the queue, filtered with --query", function()
      local id = queued()
      local page = h.json_decode((run { "--json", "ls", "queued", "--query", "held" }))
      assert.equal(1, #page.records)
      assert.equal(id, page.records[1].as2MessageId)
      page = h.json_decode((run { "--json", "ls", "queued", "--query", "nothing-like-it" }))
      assert.equal(0, #page.records)
    end)

    it("exits 1 with the gateway's reason for a value it refuses", function()
      local out, err, code = run { "ls", "received", "--page-length", "500" }
      assert.equal(1, code)
      assert.equal("", out)
      assert.matches("pageLength", err, 1, true)
    end)
  end)

  describe("show", function()
    it("prints one message as name/value lines", function()
      local id = S.ids("sent")[1]
      local out, _, code = run { "show", "sent", id }
      assert.equal(0, code)
      assert.matches("as2MessageId%s+" .. id:gsub("%p", "%%%0") .. "\n", out)
      assert.matches("receiverId%s+GLOBEX%-AS2\n", out)
      assert.matches("deliveryStatus%s+Delivered\n", out)
      assert.matches("attachment 0%s+order%-5001%.xml %(44 bytes%)\n", out)
      assert.matches("persistedTimestamp%s+%d+%-%d+%-%d+ %d+:%d+:%d+ UTC\n", out)
    end)

    it("prints the message as the gateway gave it with --json", function()
      local id = S.ids("sent")[1]
      local out, _, code = run { "--json", "show", "sent", id }
      assert.equal(0, code)
      local res = h.api("GET", "/message/sent/" .. h.escape(id))
      assert.same(res.json, h.json_decode(out))
    end)

    it("marks a received message read with --mark-read, and only then", function()
      local id = S.ids("received")[1]
      assert.equal(0, select(3, run { "show", "received", id }))
      assert.is_false(S.where(id).read)
      assert.equal(0, select(3, run { "show", "received", id, "--mark-read" }))
      assert.is_true(S.where(id).read)
    end)

    it("exits 4 for an unknown message, with nothing on stdout", function()
      local out, err, code = run { "show", "received", "<nope@example.com>" }
      assert.equal(4, code)
      assert.equal("", out)
      assert.matches("not found", err, 1, true)
      out, err, code = run { "--json", "show", "queued", "<nope@example.com>" }
      assert.equal(4, code, err)
      assert.equal("", out)
    end)
  end)

  describe("partners and stations", function()
    it("list partners as a table: AS2 ID, name, type, MDN mode, outgoing", function()
      h.control("POST", "partner/GLOBEX-AS2", { behaviour = "pause" })
      local out, _, code = run { "partners" }
      assert.equal(0, code)
      local t = rows(out)
      assert.same({ "AS2 ID", "NAME", "TYPE", "MDN", "OUTGOING" }, t[1])
      local by = {}
      for i = 2, #t do by[t[i][1]] = t[i] end
      assert.same({ "GLOBEX-AS2", "Globex Corporation", "Production", "sync", "paused" },
        by["GLOBEX-AS2"])
      assert.same({ "INITECH-AS2", "Initech", "Production", "async", "on" }, by["INITECH-AS2"])
      assert.same({ "HOOLI-TEST", "Hooli (test)", "Test", "no", "on" }, by["HOOLI-TEST"])
      assert.equal(6, #t)
    end)

    it("list partners as JSON, filtered by a query", function()
      local out, _, code = run { "--json", "partners", "echo" }
      assert.equal(0, code)
      local ids = {}
      for _, p in ipairs(h.json_decode(out)) do ids[#ids + 1] = p.as2Identifier end
      table.sort(ids)
      assert.same({ "AS2G-ECHO", "AS2G-ECHO-TEST" }, ids)
    end)

    it("list stations as a table and as JSON", function()
      local out, _, code = run { "stations" }
      assert.equal(0, code)
      local t = rows(out)
      assert.same({ "AS2 ID", "NAME", "EMAIL" }, t[1])
      assert.same({ "ACME-AS2", "Acme Main", "edi@acme.example.com" }, t[2])
      out, _, code = run { "--json", "stations", "EU" }
      assert.equal(0, code)
      local list = h.json_decode(out)
      assert.equal(1, #list)
      assert.equal("ACME-EU-AS2", list[1].as2Identifier)
    end)
  end)

  describe("stop and retry", function()
    it("stop takes a message out of the queue and retry puts it back", function()
      local id = queued()
      local out, err, code = run { "stop", id }
      assert.equal(0, code)
      assert.equal("", out)
      assert.matches("Stopped retrying " .. id, err, 1, true)
      assert.equal(1, #S.where(id).stopped)
      assert.equal(0, #S.where(id).queued)
      out, err, code = run { "retry", id }
      assert.equal(0, code)
      assert.equal("", out)
      assert.matches("Retrying " .. id, err, 1, true)
      assert.equal(1, #S.where(id).queued)
    end)

    it("print the gateway's acknowledgement as JSON with --json", function()
      local id = queued()
      local out, _, code = run { "--json", "stop", id }
      assert.equal(0, code)
      local doc = h.json_decode(out)
      assert.equal(id, doc.as2MessageId)
      assert.is_string(doc.message)
      out, _, code = run { "--json", "retry", id }
      assert.equal(0, code)
      assert.equal(id, h.json_decode(out).as2MessageId)
    end)

    it("exit 4 for a message that is not queued", function()
      local id = queued()
      assert.equal(0, select(3, run { "stop", id }))
      local _, err, code = run { "stop", id }
      assert.equal(4, code)
      assert.matches("not found", err, 1, true)
      _, _, code = run { "retry", "<nope@example.com>" }
      assert.equal(4, code)
    end)
  end)

  describe("rm", function()
    it("deletes one message", function()
      local ids = S.ids("received")
      local out, err, code = run { "rm", "received", ids[1] }
      assert.equal(0, code)
      assert.equal("", out)
      assert.matches("Deleted 1 of 1", err, 1, true)
      assert.same({ ids[2] }, S.ids("received"))
    end)

    it("deletes many, and says how many with --json", function()
      local ids = S.ids("received")
      local out, _, code = run { "--json", "rm", "received", ids[1], ids[2] }
      assert.equal(0, code)
      assert.same({ deleted = 2, of = 2 }, h.json_decode(out))
      assert.same({}, S.ids("received"))
    end)

    it("reads the IDs from stdin for -", function()
      local ids = S.ids("received")
      local _, err, code = run({ "rm", "received", "-" },
        { stdin = "  " .. ids[1] .. "\n\n" .. ids[2] .. "  \n" })
      assert.equal(0, code)
      assert.matches("Deleted 2 of 2", err, 1, true)
      assert.same({}, S.ids("received"))
    end)

    it("deletes more than 100 IDs from stdin, 100 a request", function()
      h.inject(105, { subject = "bulk" })
      local ids = S.ids("received", { pageLength = 100 })
      local more = S.ids("received", { pageLength = 100, pageOffset = 1 })
      for _, id in ipairs(more) do ids[#ids + 1] = id end
      assert.equal(107, #ids)
      local before = h.stats().by_endpoint["DELETE /message/:kind"] or 0
      local out, _, code = run({ "--json", "rm", "received", "-" },
        { stdin = table.concat(ids, "\n") })
      assert.equal(0, code)
      assert.same({ deleted = 107, of = 107 }, h.json_decode(out))
      assert.equal(before + 2, h.stats().by_endpoint["DELETE /message/:kind"])
    end)

    it("exits 4 when some IDs were not found, table or --json", function()
      local ids = S.ids("received")
      local _, err, code = run { "rm", "received", ids[1], "<nope@example.com>" }
      assert.equal(4, code)
      assert.matches("Deleted 1 of 2", err, 1, true)
      local out
      out, _, code = run { "--json", "rm", "received", ids[2], "<nope@example.com>" }
      assert.equal(4, code)
      assert.same({ deleted = 1, of = 2 }, h.json_decode(out))
    end)

    it("exits 4 for one unknown ID", function()
      local _, err, code = run { "rm", "sent", "<nope@example.com>" }
      assert.equal(4, code)
      assert.matches("not found", err, 1, true)
    end)

    it("deletes a stopped message", function()
      local id = queued()
      assert.equal(0, select(3, run { "stop", id }))
      assert.equal(0, select(3, run { "rm", "stopped", id }))
      assert.equal(0, #S.where(id).stopped)
    end)
  end)
end)
