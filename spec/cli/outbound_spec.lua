-- as2g and outbound messages: accepted sends always exit 0, send --wait timeouts keep the
-- ID, send --if-absent, --content-type, wait's every end, send-dir, settle, mdn --parse.
local h = require "helpers"
local S = require "cli.support"

local SEND = "POST /message/:station/:partner"

local function sends()
  return h.stats().by_endpoint[SEND] or 0
end

local function ls(dir)
  local t = {}
  for l in S.capture("ls -A " .. h.quote(dir)):gmatch("[^\n]+") do t[#t + 1] = l end
  return t
end

describe("as2g outbound", function()
  local w = S.workspace()
  local run, file = w.run, w.file
  before_each(w.setup)
  after_each(w.teardown)

  describe("send", function()
    it("exits 0 and warns, no traceback, when the 202 carries no usable Link", function()
      for _, headers in ipairs { { Link = false }, { Link = "not a url" } } do
        h.fault { path = "/message/ACME-AS2/GLOBEX-AS2", method = "POST", headers = headers }
        local out, err, code = run { "send", "ACME-AS2", "GLOBEX-AS2", file("a.xml", "<a/>") }
        assert.equal(0, code, err)
        assert.equal("", out)
        assert.matches("warning: the gateway accepted the message", err, 1, true)
        assert.matches("Do not send it again", err, 1, true)
        assert.is_nil(err:find("traceback", 1, true))
      end
      -- with --json: what is known, and the warning
      h.fault { path = "/message/ACME-AS2/GLOBEX-AS2", method = "POST",
        headers = { Link = false } }
      local out, _, code = run { "--json", "send", "ACME-AS2", "GLOBEX-AS2", file("b.xml",
        "<b/>"), "--wait" }
      assert.equal(0, code)
      local doc = h.json_decode(out)
      assert.is_nil(doc.as2MessageId)
      assert.equal("Successfully added a new outbound entry", doc.message)
      assert.equal("GLOBEX-AS2", doc.partner)
      assert.matches("no usable Link", doc.warning, 1, true)
      -- each was sent once, and only once
      assert.equal(3, sends())
      assert.equal(3, #S.ids("queued"))
    end)

    it("exits 0, prints the ID its Link gives and warns when the 202's body is not JSON",
      function()
      h.fault { path = "/message/ACME-AS2/GLOBEX-AS2", method = "POST", status = 202,
        body = "<html>accepted</html>", content_type = "text/html",
        headers = { Link = h.url .. "/message/sent/%3Cx%40y%3E" } }
      local out, err, code = run { "send", "ACME-AS2", "GLOBEX-AS2", file("a.xml", "<a/>") }
      assert.equal(0, code, err)
      assert.equal("<x@y>\n", out)
      assert.matches("warning: the gateway accepted the message", err, 1, true)
      assert.is_nil(err:find("traceback", 1, true))
    end)

    it("prints the ID on stdout (and in --json) when --wait times out", function()
      h.behaviour("GLOBEX-AS2", "pause")
      local out, err, code = run { "send", "ACME-AS2", "GLOBEX-AS2", file("a.xml", "<a/>"),
        "--wait", "--timeout", "1" }
      assert.equal(6, code)
      local id = out:match("^(<[^\n]+>)\n$")
      assert.truthy(id, out)
      assert.equal(1, #S.where(id).queued)
      assert.matches("no final state within 1 s", err, 1, true)
      out, err, code = run { "--json", "send", "ACME-AS2", "GLOBEX-AS2", file("b.xml", "<b/>"),
        "--wait", "--timeout", "1" }
      assert.equal(6, code)
      assert.matches("no final state within 1 s", err, 1, true)
      local doc = h.json_decode(out)
      assert.matches("^<.+>$", doc.as2MessageId)
      assert.equal("timeout", doc.state)
      assert.equal("queued", doc.last_state)
      assert.equal(1, #S.where(doc.as2MessageId).queued)
    end)

    it("sends with --content-type", function()
      local out, _, code = run { "send", "ACME-AS2", "GLOBEX-AS2", file("a.dat", "ISA*00~"),
        "--content-type", "application/edi-x12" }
      assert.equal(0, code)
      local entry = S.where((out:gsub("%s+$", ""))).queued[1]
      assert.equal("application/edi-x12", entry.attachments[1].contentType)
    end)

    it("with --if-absent after an exit 7, finds the enqueued message and sends nothing",
      function()
        h.fault { path = "/message/ACME-AS2/GLOBEX-AS2", method = "POST", drop_response = true }
        local path = file("a.xml", "<a/>")
        local _, _, code = run { "send", "ACME-AS2", "GLOBEX-AS2", path, "--subject", "PO 7" }
        assert.equal(7, code)
        local out, err
        out, err, code = run { "send", "ACME-AS2", "GLOBEX-AS2", path, "--subject", "PO 7",
          "--if-absent", "--max-processing", "1" }
        assert.equal(0, code, err)
        assert.matches("Already on the gateway", err, 1, true)
        local id = out:match("^(<[^\n]+>)\n$")
        assert.equal(S.ids("queued")[1] or S.ids("sent", { subject = "PO 7" })[1], id)
        assert.equal(1, sends())
        -- a file the gateway does not have is sent
        out, err, code = run { "--json", "send", "ACME-AS2", "GLOBEX-AS2", file("b.xml", "<b/>"),
          "--subject", "PO 7", "--if-absent", "--max-processing", "1" }
        assert.equal(0, code, err)
        assert.matches("^<.+>$", h.json_decode(out).as2MessageId)
        assert.equal(2, sends())
      end)
  end)

  describe("wait", function()
    it("sees a Test partner's message stop, without --partner-type", function()
      h.control("POST", "config", { max_attempts = 1, queue_delay = 0 })
      h.behaviour("AS2G-ECHO-TEST", "fail")
      local out, _, code = run { "send", "ACME-AS2", "AS2G-ECHO-TEST", file("t.txt", "x"),
        "--partner-type", "test" }
      assert.equal(0, code)
      local id = out:gsub("%s+$", "")
      h.advance(5)
      local err
      out, err, code = run { "wait", id, "--initial", "0.05", "--timeout", "60" }
      assert.equal(1, code, err)
      assert.equal("stopped\n", out)
      out, _, code = run { "wait", id, "--initial", "0.05", "--partner-type", "test" }
      assert.equal(1, code)
      assert.equal("stopped\n", out)
    end)

    it("exits 4 within --grace for an ID in no list", function()
      local t0 = os.time()
      local out, err, code = run { "--json", "wait", "<typo@as2gateway.com>", "--grace", "1",
        "--initial", "0.2" }
      assert.equal(4, code)
      assert.is_true(os.time() - t0 < 30)
      assert.matches("in no list", err, 1, true)
      assert.equal("notfound", h.json_decode(out).state)
    end)

    it("exits 1 for an error MDN, and reads it with --mdn", function()
      h.control("POST", "partner/GLOBEX-AS2", { mdnError = true })
      local out, _, code = run { "send", "ACME-AS2", "GLOBEX-AS2", file("a.xml", "<a/>") }
      assert.equal(0, code)
      local id = out:gsub("%s+$", "")
      h.advance(2)
      local err
      out, err, code = run { "wait", id, "--initial", "0.05", "--mdn" }
      assert.equal(1, code)
      assert.equal("mdn_error\n", out)
      assert.matches("error: decryption-failed", err, 1, true)
      out, _, code = run { "--json", "wait", id, "--initial", "0.05", "--mdn" }
      assert.equal(1, code)
      local doc = h.json_decode(out)
      assert.equal("mdn_error", doc.state)
      assert.equal("decryption-failed", doc.mdn.error)
      assert.equal(id, doc.mdn.original_message_id)
    end)
  end)

  describe("send-dir and settle", function()
    it("sends a folder once, moves what went, and a rerun sends nothing", function()
      file("a.xml", "<a/>")
      file("b.xml", "<b/>")
      file("empty.txt", "")
      local out, err, code = run { "send-dir", "ACME-AS2", "GLOBEX-AS2", w.dir, "--move-to" }
      assert.equal(1, code, err) -- the empty file was refused
      assert.matches("^sent     <.+> a%.xml\nsent     <.+> b%.xml\nrefused  %- empty%.txt\n$", out)
      assert.matches("2 sent, 1 refused", err, 1, true)
      assert.same({ ".as2g-send.journal", ".as2g-send.lock", "empty.txt", "sent" }, ls(w.dir))
      assert.same({ "a.xml", "b.xml" }, ls(w.dir .. "/sent"))
      out, err, code = run { "--json", "send-dir", "ACME-AS2", "GLOBEX-AS2", w.dir, "--move-to" }
      assert.equal(0, code, err)
      local doc = h.json_decode(out)
      assert.same({}, doc.entries)
      assert.same({ w.dir .. "/empty.txt" }, doc.refused)
      assert.equal(3, sends()) -- a.xml, b.xml and the refused empty.txt, once each
    end)

    it("exits 7 while an outcome is unknown, and settle resolves it", function()
      file("a.xml", "<a/>")
      h.fault { path = "/message/ACME-AS2/GLOBEX-AS2", method = "POST", status = 502 }
      local out, err, code = run { "send-dir", "ACME-AS2", "GLOBEX-AS2", w.dir }
      assert.equal(7, code, err)
      assert.matches("^unknown  %- a%.xml\n$", out)
      assert.matches("still unknown", err, 1, true)
      out, err, code = run { "settle", w.dir, "--max-processing", "1" }
      assert.equal(0, code, err) -- decided: proved not sent, and nothing sent by settle
      assert.matches("^unsent   %- a%.xml %(resolved%)\n$", out)
      assert.equal(1, sends())
      out, err, code = run { "send-dir", "ACME-AS2", "GLOBEX-AS2", w.dir }
      assert.equal(0, code, err)
      assert.matches("^sent     <.+> a%.xml\n$", out)
      assert.equal(2, sends())
    end)

    it("exits with the error's code when a run has to stop, after printing what it did",
      function()
        file("a.xml", "<a/>")
        local out, err, code = run { "send-dir", "ACME-AS2", "NOPE-AS2", w.dir }
        assert.equal(4, code)
        assert.matches("^unsent   %- a%.xml\n$", out)
        assert.matches("NOPE-AS2", err, 1, true)
        -- the file was not enqueued: the next run (to the right partner) sends it
        out, err, code = run { "send-dir", "ACME-AS2", "GLOBEX-AS2", w.dir }
        assert.equal(0, code, err)
        assert.matches("^sent     <.+> a%.xml\n$", out)
      end)

    it("exits 8 when another run holds the folder, without waiting by default", function()
      file("a.xml", "<a/>")
      local held = h.tmpname()
      local holder = io.popen(("lua5.4 -e %s"):format(h.quote(([[
        package.cpath = "./build/lua54/?.so;" .. package.cpath
        local l = assert(require("as2gateway.core").lock(%q))
        io.open(%q, "w"):close()
        io.read("l")
        l:close()
      ]]):format(w.dir .. "/.as2g-send.lock", held))), "w")
      assert.is_truthy(h.wait_until(function() return h.read_file(held) end, 20))
      local _, err, code = run { "send-dir", "ACME-AS2", "GLOBEX-AS2", w.dir }
      holder:write("\n")
      holder:close()
      os.remove(held)
      assert.equal(8, code)
      assert.matches("locked by another process", err, 1, true)
      assert.equal(0, sends())
    end)
  end)

  describe("mdn --parse", function()
    it("prints the MDN's fields, and exits 1 for an error MDN", function()
      local out = run { "send", "ACME-AS2", "GLOBEX-AS2", file("a.xml", "<a/>") }
      local id = out:gsub("%s+$", "")
      h.advance(2)
      local _, code
      out, _, code = run { "mdn", "sent", id, "--parse" }
      assert.equal(0, code)
      assert.matches("disposition%s+processed\n", out)
      assert.matches("original_message_id%s+" .. id:gsub("%p", "%%%0"), out)
      assert.matches("final_recipient%s+GLOBEX%-AS2\n", out)
      h.control("POST", "partner/GLOBEX-AS2", { mdnError = true })
      out = run { "send", "ACME-AS2", "GLOBEX-AS2", file("b.xml", "<b/>") }
      id = out:gsub("%s+$", "")
      h.advance(2)
      out, _, code = run { "--json", "mdn", "sent", id, "--parse" }
      assert.equal(1, code)
      assert.equal("decryption-failed", h.json_decode(out).error)
    end)
  end)
end)
