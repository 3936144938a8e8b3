-- as2g download and mdn destinations: checked before the transfer; a trailing "/",
-- --all or a batch is a folder (made when missing); "-" is stdout; --overwrite.
local h = require "helpers"
local S = require "cli.support"

local ATTACHMENT = "GET /message/:kind/:id/attachments/:index"
local FIRST = "GET /message/:kind/:id/attachments"

describe("as2g download destinations", function()
  local home, dir, id2, id1 -- the seed's received messages: two attachments, and one

  local function run(args, opts) return S.run(home, args, opts) end

  -- attachment requests the sandbox has answered so far
  local function transfers()
    local by = h.stats().by_endpoint
    return (by[ATTACHMENT] or 0) + (by[FIRST] or 0)
  end

  before_each(function()
    home, dir = S.fresh("to")
    local ids = S.ids("received")
    id2, id1 = ids[1], ids[2]
  end)

  after_each(function()
    h.rmtree(home.dir)
  end)

  it("refuses a file path in a missing folder before the transfer", function()
    local before = transfers()
    local out, err, code = run { "download", "received", id1, "--to", dir .. "/no/x.edi" }
    assert.equal(1, code)
    assert.equal("", out)
    assert.matches(dir .. "/no is not a folder", err, 1, true)
    assert.equal(before, transfers())
  end)

  it("refuses an existing file before the transfer, and replaces it with --overwrite",
    function()
      local path = dir .. "/mine.edi"
      h.write_file(path, "mine")
      local before = transfers()
      local _, err, code = run { "download", "received", id1, "--to", path }
      assert.equal(1, code)
      assert.matches("the file exists", err, 1, true)
      assert.equal(before, transfers())
      assert.equal("mine", h.read_file(path))
      local out
      out, err, code = run { "download", "received", id1, "--to", path, "--overwrite" }
      assert.equal(0, code, err)
      assert.equal(path .. "\n", out)
      assert.equal(217, #h.read_file(path))
    end)

  it("takes a trailing / as a folder, made when missing, under the gateway's name",
    function()
      local out, err, code = run { "download", "received", id1, "--to", dir .. "/new/" }
      assert.equal(0, code, err)
      assert.equal(dir .. "/new/invoice-1001.edi\n", out)
      assert.equal(217, #h.read_file(dir .. "/new/invoice-1001.edi"))
    end)

  it("takes --to of --all as a folder, made when missing: no zip under its name", function()
    local out, err, code = run { "download", "received", id2, "--all", "--to", dir .. "/all" }
    assert.equal(0, code, err)
    assert.same({ "all/invoice-1002.pdf", "all/invoice-1002.xml" }, S.files(dir))
    assert.equal(2, S.count(out, dir .. "/all/"))
  end)

  it("replaces files with --all --overwrite, and keeps them without it", function()
    assert.equal(0, select(3, run { "download", "received", id2, "--all", "--to", dir }))
    h.write_file(dir .. "/invoice-1002.xml", "mine")
    assert.equal(0, select(3, run { "download", "received", id2, "--all", "--to", dir }))
    assert.equal("mine", h.read_file(dir .. "/invoice-1002.xml"))
    assert.equal(4, #S.files(dir))
    assert.equal(0, select(3, run { "download", "received", id2, "--all", "--to", dir,
      "--overwrite" }))
    assert.equal(61, #h.read_file(dir .. "/invoice-1002.xml"))
    assert.equal(4, #S.files(dir))
  end)

  it("writes the attachment to stdout with --to -, and nothing else there", function()
    local expected = h.api("GET", "/message/received/" .. h.escape(id2) .. "/attachments/1").body
    local out, err, code = run({ "download", "received", id2, "--index", "1", "--to", "-" },
      { cwd = dir }) -- where a file named "-" would show
    assert.equal(0, code, err)
    assert.equal(expected, out)
    assert.same({}, S.files(dir))
  end)

  it("writes the MDN to stdout with mdn --to -", function()
    local sent = S.ids("sent")[1]
    local expected = h.api("GET", "/message/sent/" .. h.escape(sent) .. "/mdn").body
    local out, err, code = run({ "mdn", "sent", sent, "--to", "-" }, { cwd = dir })
    assert.equal(0, code, err)
    assert.equal(expected, out)
    assert.same({}, S.files(dir))
  end)

  it("refuses --to - for a batch and with --json (exit 2)", function()
    local _, err, code = run({ "download", "received", id1, id2, "--to", "-" }, { cwd = dir })
    assert.equal(2, code)
    assert.matches("not a batch", err, 1, true)
    _, err, code = run({ "--json", "download", "received", id1, "--to", "-" }, { cwd = dir })
    assert.equal(2, code)
    assert.matches("leave out --json", err, 1, true)
  end)
end)
