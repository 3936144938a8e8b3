-- as2g's progress bar: on stderr when it is a terminal (under script(1)), drawn once to 100%, absent otherwise.
local h = require "helpers"
local S = require "cli.support"

local BIG = 5 * 1024 * 1024

describe("as2g progress bar", function()
  local home, dir

  local function run(args, opts) return S.run(home, args, opts) end

  -- Runs as2g with a terminal as its stderr (stdout still to a file): stdout, what the
  -- terminal showed, exit code.
  local function run_tty(args)
    local out, screen = h.tmpname(), h.tmpname()
    local inner = S.command(home, args) .. " >" .. h.quote(out)
    local ok, _, code = os.execute("script -qec " .. h.quote(inner) .. " /dev/null >"
      .. h.quote(screen) .. " </dev/null")
    local o, s = h.read_file(out) or "", h.read_file(screen) or ""
    os.remove(out) os.remove(screen)
    return o, s, ok and 0 or code
  end

  before_each(function()
    h.reset()
    home = S.home()
    dir = home.dir .. "/to"
    S.capture("mkdir -p " .. h.quote(dir))
  end)

  after_each(function()
    h.rmtree(home.dir)
  end)

  describe("downloading a 5 MB attachment", function()
    local id

    before_each(function()
      id = h.inbound { attachments = { { name = "big.bin", size = BIG } } }
    end)

    it("shows a bar that reaches 100% once, when stderr is a terminal", function()
      local out, screen, code = run_tty { "download", "received", id, "--to", dir }
      assert.equal(0, code, screen)
      assert.equal(dir .. "/big.bin\n", out)
      assert.equal(BIG, #h.read_file(dir .. "/big.bin"))
      assert.matches("\r", screen, 1, true)
      assert.matches("%[=+%s*%]", screen)
      assert.matches("100% [" .. ("="):rep(30) .. "] 5.0/5.0 MB", screen, 1, true)
      assert.equal(1, S.count(screen, "100%"))
      assert.not_matches("0.0/0.0 MB", screen, 1, true) -- no bar for the small answers
    end)

    it("shows none when stderr is not a terminal", function()
      local out, err, code = run { "download", "received", id, "--to", dir }
      assert.equal(0, code)
      assert.equal(dir .. "/big.bin\n", out)
      assert.equal("", err)
    end)

    it("shows one for a batch download too, and none with stderr redirected", function()
      local other = h.inbound { attachments = { { name = "small.txt", size = 10 } } }
      local out, screen, code = run_tty { "download", "received", id, other, "--to", dir }
      assert.equal(0, code, screen)
      assert.equal(2, S.count(out, "\n"))
      assert.matches("100% [", screen, 1, true)
      local err
      out, err, code = run { "download", "received", id, other, "--to", dir .. "/" }
      assert.equal(0, code)
      assert.equal(2, S.count(out, "\n"))
      assert.equal("", err)
    end)
  end)

  describe("sending a 6 MB file", function()
    local file

    before_each(function()
      file = home.dir .. "/big.dat"
      local chunk = ("0123456789abcdef"):rep(4096) -- 64 KiB
      h.write_file(file, chunk:rep(96))
    end)

    it("shows a bar for the upload when stderr is a terminal", function()
      local out, screen, code = run_tty { "send", "ACME-AS2", "GLOBEX-AS2", file }
      assert.equal(0, code, screen)
      assert.matches("^<.+>\n$", out)
      assert.matches("100% [" .. ("="):rep(30) .. "] 6.0/6.0 MB", screen, 1, true)
      assert.equal(1, S.count(screen, "100%"))
      assert.matches("Queued 1 file(s) for GLOBEX-AS2", screen, 1, true)
    end)

    it("shows none when stderr is not a terminal", function()
      local out, err, code = run { "send", "ACME-AS2", "GLOBEX-AS2", file }
      assert.equal(0, code)
      assert.matches("^<.+>\n$", out)
      assert.equal("Queued 1 file(s) for GLOBEX-AS2\n", err)
    end)
  end)

  it("shows no bar for small requests, even on a terminal", function()
    local out, screen, code = run_tty { "ls", "received" }
    assert.equal(0, code)
    assert.matches("Invoice 1001", out, 1, true)
    assert.not_matches("%", screen, 1, true)
    assert.not_matches("MB", screen, 1, true)
    assert.matches("2 of 2 (page 0)", screen, 1, true)
  end)
end)
