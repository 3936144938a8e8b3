-- as2g's documented exit codes, each provoked for real: 0 ok ... 7 unknown outcome of a send.
local h = require "helpers"
local S = require "cli.support"

describe("as2g exit codes", function()
  local home, file

  local function run(args, opts) return S.run(home, args, opts) end

  -- The pending count of the fault `id` (nil once it is used up).
  local function fault_left(id)
    for _, f in ipairs((h.control("GET", "faults"))) do
      if f.id == id then return f.count end
    end
  end

  before_each(function()
    h.reset()
    home = S.home()
    file = home.dir .. "/a.xml"
    h.write_file(file, "<a/>")
  end)

  after_each(function()
    h.rmtree(home.dir)
  end)

  it("0: success, diagnostics on stderr only", function()
    local out, _, code = run { "stations" }
    assert.equal(0, code)
    assert.matches("ACME-AS2", out, 1, true)
  end)

  it("1: the gateway refused the request, or a local file problem", function()
    local _, err, code = run { "ls", "received", "--page-length", "0" }
    assert.equal(1, code)
    assert.matches("refused", err, 1, true)
    _, _, code = run { "send", "ACME-AS2", "GLOBEX-AS2", home.dir .. "/none.xml" }
    assert.equal(1, code)
    h.control("POST", "faults", { path = "/station", status = 403 })
    _, err, code = run { "stations" }
    assert.equal(1, code)
    assert.matches("403", err, 1, true)
  end)

  it("2: usage errors", function()
    assert.equal(2, select(3, run { "ls" }))
    assert.equal(2, select(3, run { "nope" }))
    assert.equal(2, select(3, run { "--account", "none", "stations" }))
  end)

  it("3: credentials refused, a token refused, or none available", function()
    local _, err, code = run({ "stations" }, { env = { AS2G_PASSWORD = "wrong" } })
    assert.equal(3, code)
    assert.matches("username or password", err, 1, true)
    -- a token the gateway refuses, and no password to get another
    assert.equal(0, select(3, run { "login" }))
    local dir = home.state .. "/as2gateway/"
    local name = S.files(dir)[1]:match("^[^/]+") .. "/token"
    local token, expiry = h.read_file(dir .. name):match("^(%S+) (%d+)")
    token = token:sub(1, -3) .. (token:sub(-2) == "AA" and "BB" or "AA")
    h.write_file(dir .. name, token .. " " .. expiry .. "\n")
    _, _, code = run({ "stations" }, { env = { AS2G_PASSWORD = false }, no_tty = true })
    assert.equal(3, code)
    -- with the password at hand, the refused token is replaced
    _, _, code = run { "stations" }
    assert.equal(0, code)
    assert.equal(0, select(3, run({ "stations" }, { env = { AS2G_PASSWORD = false },
      no_tty = true })))
  end)

  it("4: not found", function()
    assert.equal(4, select(3, run { "show", "sent", "<nope@x>" }))
    assert.equal(4, select(3, run { "send", "ACME-AS2", "NOPE", file }))
    assert.equal(4, select(3, run { "rm", "failed", "<nope@x>" }))
  end)

  it("5: rate-limited, still, after waiting and retrying", function()
    assert.equal(0, select(3, run { "login" }))
    local id = h.control("POST", "faults", { path = "*", count = 20, status = 429,
      retry_after = 0 }).id
    local out, err, code = run { "ls", "received" }
    assert.equal(5, code)
    assert.equal("", out)
    assert.matches("rate limit", err, 1, true)
    assert.is_true(fault_left(id) < 19, "the tool did not retry")
  end)

  it("5: not when a retry gets through", function()
    assert.equal(0, select(3, run { "login" }))
    h.control("POST", "faults", { path = "*", count = 2, status = 429, retry_after = 0 })
    assert.equal(0, select(3, run { "ls", "received" }))
  end)

  it("6: TLS failure (an untrusted certificate)", function()
    local _, err, code = run({ "stations" }, { env = { AS2G_CA = false } })
    assert.equal(6, code)
    assert.matches("tls", err, 1, true)
    _, _, code = run { "--ca", "/etc/ssl/certs/ca-certificates.crt", "stations" }
    assert.equal(6, code)
  end)

  it("6: timeout", function()
    h.control("POST", "partner/GLOBEX-AS2", { behaviour = "pause" })
    local out = run { "send", "ACME-AS2", "GLOBEX-AS2", file }
    local _, err, code = run { "wait", (out:gsub("%s+$", "")), "--timeout", "1", "--initial",
      "0.3" }
    assert.equal(6, code)
    assert.matches("timeout", err, 1, true)
  end)

  it("7: the outcome of a send is unknown (the answer was lost), never a resend", function()
    h.control("POST", "faults", { path = "/message/ACME-AS2/GLOBEX-AS2", method = "POST",
      drop_response = true })
    local before = h.stats().by_endpoint["POST /message/:station/:partner"] or 0
    local _, err, code = run { "send", "ACME-AS2", "GLOBEX-AS2", file }
    assert.equal(7, code)
    assert.matches("check the queued and sent lists", err, 1, true)
    assert.equal(before + 1, h.stats().by_endpoint["POST /message/:station/:partner"])
  end)
end)
