-- as2g send, wait, download (one, --all, a batch) and mdn: outputs, files on disk, exit codes.
local h = require "helpers"
local S = require "cli.support"

describe("as2g transfers", function()
  local w = S.workspace()
  local run, file = w.run, w.file
  before_each(w.setup)
  after_each(w.teardown)

  describe("send", function()
    it("prints the new AS2 message ID on stdout and a summary on stderr", function()
      local out, err, code = run { "send", "ACME-AS2", "GLOBEX-AS2", file("a.xml", "<a/>"),
        "--subject", "PO 1" }
      assert.equal(0, code)
      local id = out:match("^(<[^\n]+>)\n$")
      assert.truthy(id, out)
      assert.matches("Queued 1 file(s) for GLOBEX-AS2", err, 1, true)
      local where = S.where(id)
      local entry = where.queued[1] or where.sent[1]
      assert.equal("PO 1", entry.subject)
      assert.equal("a.xml", entry.attachments[1].name)
    end)

    it("prints message, link and ID as JSON with --json; several files go as one message",
      function()
        local out, _, code = run { "--json", "send", "ACME-AS2", "GLOBEX-AS2",
          file("a.xml", "<a/>"), file("b.csv", "1,2"), "--profile", "edi-headers" }
        assert.equal(0, code)
        local doc = h.json_decode(out)
        assert.is_string(doc.message)
        assert.matches("^<.+>$", doc.as2MessageId)
        assert.equal(h.url .. "/message/sent/" .. h.escape(doc.as2MessageId), doc.link)
        local entry = S.where(doc.as2MessageId).queued[1]
        assert.equal(2, #entry.attachments)
        assert.equal("edi-headers", entry.profile)
      end)

    it("sends to a test partner with --partner-type test", function()
      local _, _, code = run { "send", "ACME-AS2", "HOOLI-TEST", file("a.txt", "x") }
      assert.equal(4, code)
      local out
      out, _, code = run { "send", "ACME-AS2", "HOOLI-TEST", file("b.txt", "x"),
        "--partner-type", "test" }
      assert.equal(0, code)
      assert.equal("Test", S.where((out:gsub("%s+$", ""))).queued[1].partnerType)
    end)

    it("waits for the final state with --wait", function()
      local out, err, code = run { "--json", "send", "ACME-AS2", "GLOBEX-AS2",
        file("a.xml", "<a/>"), "--wait" }
      assert.equal(0, code, err)
      local doc = h.json_decode(out)
      assert.equal("sent", doc.state)
      assert.equal("Received", doc.mdnStatus)
    end)

    it("exits 1 with --wait when the message was stopped unsent", function()
      h.control("POST", "config", { max_attempts = 1, queue_delay = 0 })
      h.control("POST", "partner/GLOBEX-AS2", { behaviour = "fail" })
      local out, err, code = run { "send", "ACME-AS2", "GLOBEX-AS2", file("a.xml", "<a/>"),
        "--wait", "--timeout", "20" }
      assert.equal(1, code)
      assert.matches("^<.+>\n$", out)
      assert.matches("stopped", err, 1, true)
    end)

    it("exits 4 for an unknown partner or station", function()
      local out, err, code = run { "send", "ACME-AS2", "NOPE-AS2", file("a.xml", "<a/>") }
      assert.equal(4, code)
      assert.equal("", out)
      assert.matches("NOPE-AS2", err, 1, true)
      code = select(3, run { "send", "NOPE-AS2", "GLOBEX-AS2", file("a.xml", "<a/>") })
      assert.equal(4, code)
    end)

    it("exits 1 for a missing file or over 10 files, before any request", function()
      local before = h.stats().requests
      local out, err, code = run { "send", "ACME-AS2", "GLOBEX-AS2", w.dir .. "/missing.xml" }
      assert.equal(1, code)
      assert.equal("", out)
      assert.matches("missing.xml is not a readable file", err, 1, true)
      local files = { "send", "ACME-AS2", "GLOBEX-AS2" }
      for i = 1, 11 do files[#files + 1] = file("f" .. i .. ".txt", "x") end
      out, err, code = run(files)
      assert.equal(1, code)
      assert.equal("", out)
      assert.matches("at most 10 files", err, 1, true)
      assert.equal(before, h.stats().requests)
    end)

    it("exits 1 for a profile the gateway does not know", function()
      local _, err, code = run { "send", "ACME-AS2", "GLOBEX-AS2", file("a.xml", "<a/>"),
        "--profile", "no-such-profile" }
      assert.equal(1, code)
      assert.matches("400", err, 1, true)
    end)

    it("exits 7 when the connection broke after the message went out", function()
      h.control("POST", "faults", { path = "/message/ACME-AS2/GLOBEX-AS2", method = "POST",
        drop_response = true })
      local out, err, code = run { "send", "ACME-AS2", "GLOBEX-AS2", file("a.xml", "<a/>") }
      assert.equal(7, code)
      assert.equal("", out)
      assert.matches("may have been enqueued", err, 1, true)
      -- it was enqueued, once: the tool did not send it again
      assert.equal(1, #S.ids("queued"))
    end)
  end)

  describe("wait", function()
    local function send(partner)
      local out, _, code = run { "send", "ACME-AS2", partner, file("a.xml", "<a/>") }
      assert.equal(0, code)
      return (out:gsub("%s+$", ""))
    end

    it("prints `sent` and the delivery on stderr once the message is delivered", function()
      local id = send("GLOBEX-AS2")
      h.advance(5)
      local out, err, code = run { "wait", id, "--initial", "0.05" }
      assert.equal(0, code)
      assert.equal("sent\n", out)
      assert.matches(id .. ": Delivered, MDN Received", err, 1, true)
    end)

    it("takes the Link of a send as well as the ID, and prints JSON with --json", function()
      local doc = h.json_decode((run { "--json", "send", "ACME-AS2", "GLOBEX-AS2",
        file("a.xml", "<a/>") }))
      h.advance(5)
      local out, _, code = run { "--json", "wait", doc.link, "--initial", "0.05" }
      assert.equal(0, code)
      local res = h.json_decode(out)
      assert.equal("sent", res.state)
      assert.equal(doc.as2MessageId, res.message.as2MessageId)
      assert.equal("Delivered", res.message.deliveryStatus)
    end)

    it("waits for an asynchronous MDN with --mdn", function()
      local id = send("INITECH-AS2")
      h.advance(2)
      local out, _, code = run { "--json", "wait", id, "--initial", "0.05" }
      assert.equal(0, code)
      assert.equal("Pending", h.json_decode(out).message.mdnStatus)
      h.advance(5)
      out, _, code = run { "--json", "wait", id, "--mdn", "--initial", "0.05" }
      assert.equal(0, code)
      assert.equal("Received", h.json_decode(out).message.mdnStatus)
    end)

    it("prints `stopped` and exits 1, table or --json, for a message that never got through",
      function()
        h.control("POST", "config", { max_attempts = 1 })
        h.control("POST", "partner/GLOBEX-AS2", { behaviour = "fail" })
        local id = send("GLOBEX-AS2")
        h.advance(10)
        local out, err, code = run { "wait", id, "--initial", "0.05" }
        assert.equal(1, code)
        assert.equal("stopped\n", out)
        assert.matches("Not Delivered", err, 1, true)
        out, err, code = run { "--json", "wait", id, "--initial", "0.05" }
        assert.equal(1, code, err)
        assert.equal("stopped", h.json_decode(out).state)
      end)

    it("exits 6 after --timeout for a message that stays queued", function()
      h.control("POST", "partner/GLOBEX-AS2", { behaviour = "pause" })
      local id = send("GLOBEX-AS2")
      local out, err, code = run { "wait", id, "--timeout", "1", "--initial", "0.2" }
      assert.equal(6, code)
      assert.equal("", out)
      assert.matches("no final state within 1 s", err, 1, true)
    end)
  end)

  describe("download", function()
    local id2, id1 -- the seed's received messages: two attachments, and one

    before_each(function()
      local ids = S.ids("received")
      id2, id1 = ids[1], ids[2]
    end)

    it("writes the first attachment into a folder under the gateway's name", function()
      local out, err, code = run { "download", "received", id2, "--to", w.dir }
      assert.equal(0, code)
      assert.equal("", err)
      assert.equal(w.dir .. "/invoice-1002.xml\n", out)
      assert.equal(61, #h.read_file(w.dir .. "/invoice-1002.xml"))
    end)

    it("writes into the current folder without --to", function()
      local out, _, code = run({ "download", "received", id1 }, { cwd = w.dir })
      assert.equal(0, code)
      assert.equal("./invoice-1001.edi\n", out)
      assert.equal(217, #h.read_file(w.dir .. "/invoice-1001.edi"))
    end)

    it("takes --index and a file path, and prints the paths as JSON with --json", function()
      local out, _, code = run { "--json", "download", "received", id2, "--index", "1", "--to",
        w.dir .. "/copy.pdf" }
      assert.equal(0, code)
      assert.same({ paths = { w.dir .. "/copy.pdf" } }, h.json_decode(out))
      assert.equal(31, #h.read_file(w.dir .. "/copy.pdf"))
    end)

    it("never replaces a file: a second download gets a new name", function()
      h.write_file(w.dir .. "/invoice-1001.edi", "mine")
      local out, _, code = run { "download", "received", id1, "--to", w.dir }
      assert.equal(0, code)
      assert.equal(w.dir .. "/invoice-1001 (2).edi\n", out)
      assert.equal("mine", h.read_file(w.dir .. "/invoice-1001.edi"))
    end)

    it("writes every attachment with --all", function()
      local out, _, code = run { "download", "received", id2, "--all", "--to", w.dir }
      assert.equal(0, code)
      local paths = {}
      for p in out:gmatch("[^\n]+") do paths[#paths + 1] = p end
      table.sort(paths)
      assert.same({ w.dir .. "/invoice-1002.pdf", w.dir .. "/invoice-1002.xml" }, paths)
      assert.same({ "invoice-1002.pdf", "invoice-1002.xml" }, S.files(w.dir))
      out = run { "--json", "download", "sent", S.ids("sent")[1], "--all", "--to", w.dir }
      assert.same({ paths = { w.dir .. "/order-5001.xml" } }, h.json_decode(out))
    end)

    it("marks the message read only with --mark-read", function()
      assert.equal(0, select(3, run { "download", "received", id1, "--to", w.dir }))
      assert.is_false(S.where(id1).read)
      assert.equal(0, select(3, run { "download", "received", id1, "--to", w.dir,
        "--mark-read" }))
      assert.is_true(S.where(id1).read)
    end)

    it("downloads a batch of IDs into one folder per message", function()
      local out, err, code = run { "download", "received", id1, id2, "--to", w.dir }
      assert.equal(0, code, err)
      local f1 = require("as2gateway.batch").folder_of(id1)
      local f2 = require("as2gateway.batch").folder_of(id2)
      local expected = { f1 .. "/invoice-1001.edi", f2 .. "/invoice-1002.pdf",
        f2 .. "/invoice-1002.xml" }
      table.sort(expected)
      assert.same(expected, S.files(w.dir))
      local printed = {}
      for p in out:gmatch("[^\n]+") do printed[#printed + 1] = p:sub(#w.dir + 2) end
      table.sort(printed)
      assert.same(expected, printed)
    end)

    it("reports a batch as one JSON line per ID, and exits 4 when one is unknown", function()
      local out, err, code = run { "--json", "download", "received", id1, "<nope@x>", id2,
        "--to", w.dir, "--mark-read" }
      assert.equal(4, code)
      local docs = S.json_lines(out)
      assert.equal(3, #docs)
      assert.equal(id1, docs[1].as2MessageId)
      assert.equal(1, #docs[1].paths)
      assert.is_nil(docs[1].error)
      assert.equal("<nope@x>", docs[2].as2MessageId)
      assert.matches("notfound", docs[2].error, 1, true)
      assert.equal(id2, docs[3].as2MessageId)
      assert.equal(2, #docs[3].paths)
      assert.is_true(S.where(id1).read)
      assert.not_matches("lua", err, 1, true) -- no traceback
      -- the table form says which ID failed, on stderr
      out, err, code = run { "download", "received", "<nope@x>", id1, "--to", w.dir }
      assert.equal(4, code)
      assert.matches("<nope@x>: ", err, 1, true)
      assert.matches("invoice%-1001 %(2%)%.edi\n", out)
    end)

    it("creates the folder of a batch when it does not exist", function()
      local out, err, code = run { "download", "received", id1, id2, "--to", w.dir .. "/new/er" }
      assert.equal(0, code, err)
      assert.equal(3, S.count(out, w.dir .. "/new/er/"))
      assert.equal(3, #S.files(w.dir .. "/new/er"))
    end)

    it("exits 1 for a batch into a folder that cannot be made", function()
      h.write_file(w.dir .. "/plain", "x")
      local _, err, code = run { "download", "received", id1, id2, "--to", w.dir .. "/plain" }
      assert.equal(1, code)
      assert.matches("plain", err, 1, true)
    end)

    it("exits 4 for an unknown message or attachment index", function()
      local out, _, code = run { "download", "received", "<nope@x>", "--to", w.dir }
      assert.equal(4, code)
      assert.equal("", out)
      _, _, code = run { "download", "received", id1, "--index", "3", "--to", w.dir }
      assert.equal(4, code)
      assert.same({}, S.files(w.dir))
    end)
  end)

  describe("mdn", function()
    it("writes the MDN receipt of a message and prints its path", function()
      local id = S.ids("sent")[1]
      local out, _, code = run { "mdn", "sent", id, "--to", w.dir }
      assert.equal(0, code)
      assert.equal(w.dir .. "/mdn.txt\n", out)
      local mdn = h.read_file(w.dir .. "/mdn.txt")
      assert.matches("Original-Message-ID: " .. id, mdn, 1, true)
      assert.matches("Disposition: automatic-action/MDN-sent-automatically; processed", mdn, 1,
        true)
    end)

    it("prints the path as JSON with --json", function()
      local id = S.ids("received")[1]
      local out, _, code = run { "--json", "mdn", "received", id, "--to", w.dir .. "/r.txt" }
      assert.equal(0, code)
      assert.same({ path = w.dir .. "/r.txt" }, h.json_decode(out))
    end)

    it("exits 4 for a message without an MDN", function()
      local out, _, code = run { "send", "ACME-AS2", "HOOLI-TEST", file("a.txt", "x"),
        "--partner-type", "test" }
      assert.equal(0, code)
      h.advance(5)
      local err
      out, err, code = run { "mdn", "sent", (out:gsub("%s+$", "")), "--to", w.dir }
      assert.equal(4, code)
      assert.equal("", out)
      assert.matches("not found", err, 1, true)
    end)
  end)
end)
