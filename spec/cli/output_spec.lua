-- as2g's output: tables aligned in characters (UTF-8), a message shown whatever fields
-- it lacks, a subcommand's own usage for its usage errors, no internal file positions.
local h = require "helpers"
local S = require "cli.support"

describe("as2g output", function()
  local t = S.each_test()
  local run = t.run

  it("aligns columns by characters and cuts long texts on a character boundary", function()
    local long = ("Größenänderung für Bestellung Nr. 4711 – "):rep(3)
    for _, subject in ipairs { "plain ascii", "Müller über Öl", "日本語の件名", long } do
      h.inbound { subject = subject }
    end
    local out, err, code = run { "ls", "received", "--page-length", "10" }
    assert.equal(0, code, err)
    local column
    for line in out:gmatch("[^\n]+") do
      assert.is_truthy(utf8.len(line), "not valid UTF-8: " .. line)
      -- the STATUS column starts at the same character on every line
      local at = line:find("Received", 1, true) or line:find("STATUS", 1, true)
      if at then
        local chars = utf8.len(line:sub(1, at - 1))
        column = column or chars
        assert.equal(column, chars, line)
      end
    end
    assert.is_truthy(column)
    assert.matches("Größenänderung", out, 1, true)
    assert.matches("~  Received", out, 1, true) -- the long one, cut to 60 characters
    assert.not_matches(long, out, 1, true)
  end)

  it("shows a message whose attachment has no size (or no name)", function()
    local id = h.inbound { subject = "sizes" }
    local body = h.json_encode { as2MessageId = id, persistedTimestamp = 1700000000000,
      receiverId = "GLOBEX-AS2", senderId = "ACME-AS2", mdnStatus = "Received",
      partnerType = "Production", attachments = { { name = "po.edi" }, { size = 5 } } }
    h.fault { path = "/message/received/" .. h.escape(id), method = "GET", status = 200,
      body = body, content_type = "application/json" }
    local out, err, code = run { "show", "received", id }
    assert.equal(0, code, err)
    assert.matches("attachment 0%s+po%.edi\n", out)
    assert.matches("attachment 1%s+%? %(5 bytes%)\n", out)
    assert.equal("", err)
  end)

  it("prints the subcommand's own usage for its usage errors", function()
    for _, args in ipairs {
      { "ls", "received", "--frob" },
      { "download", "received" },
      { "inbox", "--watch" },
      { "ls", "queued", "--partner", "GLOBEX-AS2" },
      { "ls", "sent", "--unread" },
    } do
      local out, err, code = run(args)
      assert.equal(2, code, table.concat(args, " "))
      assert.equal("", out)
      assert.matches("^Usage: as2g " .. args[1] .. " ", err)
      assert.matches("\n\nError: ", err, 1, true)
    end
  end)

  it("shows no internal file positions for arguments the library would refuse", function()
    local before = h.stats().requests
    for _, args in ipairs {
      { "send", "", "GLOBEX-AS2", "/etc/hostname" },
      { "show", "received", "" },
      { "download", "received", "", "--to", t.home.dir },
      { "stop", "" },
      { "inbox", "--to", "" },
      { "rm", "received", "" },
    } do
      local out, err, code = run(args)
      assert.equal(2, code, table.concat(args, " ") .. ": " .. err)
      assert.equal("", out)
      assert.not_matches("%.lua:%d+", err)
      assert.not_matches("traceback", err, 1, true)
      assert.matches("must not be empty", err, 1, true)
    end
    assert.equal(before, h.stats().requests)
  end)

  it("says what is wrong with a setting the client refuses, without file positions",
    function()
      local _, err, code = run { "--url", "ftp://127.0.0.1/v1", "stations" }
      assert.equal(2, code)
      assert.matches("^as2g: as2gateway%.new: the url must use https://", err)
      assert.not_matches("%.lua:%d+", err)
    end)
end)
