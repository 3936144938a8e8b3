-- as2g's help and usage errors: every command listed, exit codes documented, exit 2 for misuse.
local h = require "helpers"
local S = require "cli.support"

describe("as2g usage", function()
  local home

  local function run(args, opts) return S.run(home, args, opts) end

  before_each(function()
    h.reset()
    home = S.home()
  end)

  after_each(function()
    h.rmtree(home.dir)
  end)

  it("lists every command and documents every exit code in --help", function()
    local out, _, code = run { "--help" }
    assert.equal(0, code)
    for _, c in ipairs { "login", "logout", "send", "ls", "show", "download", "mdn", "inbox",
      "wait", "stop", "retry", "rm", "partners", "stations", "sandbox" } do
      assert.matches("\n   " .. c .. " ", out, 1, true)
    end
    for n = 0, 7 do assert.matches("\n  " .. n .. "  ", out, 1, true) end
    assert.matches("never taken from the command line", out, 1, true)
  end)

  it("shows a command's options with `help COMMAND`, hidden test options left out", function()
    local out, _, code = run { "help", "inbox" }
    assert.equal(0, code)
    assert.matches("Usage: as2g inbox", out, 1, true)
    for _, o in ipairs { "--to", "--watch", "--interval", "--exec" } do
      assert.matches(o, out, 1, true)
    end
    assert.not_matches("max-runs", out, 1, true)
    out = run { "help", "wait" }
    assert.matches("--timeout", out, 1, true)
    assert.not_matches("--initial", out, 1, true)
  end)

  it("exits 2 with the usage on stderr for an unknown command, and sends no request", function()
    local before = h.stats().requests
    local out, err, code = run { "frobnicate" }
    assert.equal(2, code)
    assert.equal("", out)
    assert.matches("Usage: as2g", err, 1, true)
    assert.matches("unknown command 'frobnicate'", err, 1, true)
    assert.equal(before, h.stats().requests)
  end)

  it("exits 2 for a bad message kind, a missing argument or an unknown option", function()
    for _, args in ipairs {
      { "ls", "archived" },
      { "show", "received" },
      { "send", "ACME-AS2", "GLOBEX-AS2" },
      { "download", "failed", "x" },
      { "rm", "bogus", "x" },
      { "inbox" },                          -- --to is required
      { "ls", "received", "--frob" },
      { "ls", "received", "--asc", "--desc" },
      { "download", "received", "x", "--all", "--index", "1" },
      { "sandbox", "restart" },
    } do
      local out, err, code = run(args)
      assert.equal(2, code, table.concat(args, " "))
      assert.equal("", out, table.concat(args, " "))
      assert.matches("Error: ", err, 1, true)
    end
  end)

  it("exits 2 for options that do not fit the command's kind", function()
    local _, err, code = run { "ls", "sent", "--unread" }
    assert.equal(2, code)
    assert.matches("--unread is for received", err, 1, true)
    _, err, code = run { "download", "sent", "a", "b", "--to", home.dir }
    assert.equal(2, code)
    assert.matches("a batch of IDs is for received", err, 1, true)
  end)

  it("exits 2 for --mark-read on anything but received, and sends nothing", function()
    local before = h.stats().requests
    local out, err, code = run { "show", "sent", "<x@y>", "--mark-read" }
    assert.equal(2, code)
    assert.equal("", out)
    assert.matches("--mark-read is for received", err, 1, true)
    assert.not_matches("traceback", err, 1, true)
    assert.equal(before, h.stats().requests)
  end)

  it("exits 2 for a numeric option that is not a number, instead of using the default",
    function()
      local before = h.stats().requests
      for _, args in ipairs {
        { "download", "received", "<x@y>", "--index", "abc", "--to", home.dir },
        { "download", "received", "<x@y>", "--index", "1.5", "--to", home.dir },
        { "ls", "received", "--page", "two" },
        { "ls", "received", "--page-length=-5" },
        { "wait", "<x@y>", "--timeout", "soon" },
        { "send", "ACME-AS2", "GLOBEX-AS2", "/etc/hostname", "--wait", "--timeout", "x" },
        { "inbox", "--to", home.dir, "--watch", "--interval", "often" },
      } do
        local out, err, code = run(args)
        assert.equal(2, code, table.concat(args, " "))
        assert.equal("", out)
        assert.matches("expected, got", err, 1, true)
      end
      assert.equal(before, h.stats().requests)
    end)

  it("exits 2 when no gateway URL or username is configured", function()
    local _, err, code = run({ "stations" }, { env = { AS2G_URL = false } })
    assert.equal(2, code)
    assert.matches("no gateway URL", err, 1, true)
    _, err, code = run({ "stations" }, { env = { AS2G_USERNAME = false } })
    assert.equal(2, code)
    assert.matches("no username", err, 1, true)
  end)

  it("exits 2 when `rm -` reads no IDs from stdin", function()
    local _, err, code = run({ "rm", "received", "-" }, { stdin = "\n  \n" })
    assert.equal(2, code)
    assert.matches("no IDs to delete", err, 1, true)
  end)
end)
