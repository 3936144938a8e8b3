-- as2g sandbox start|stop: a second, private sandbox that as2g then talks to, stopped again.
local h = require "helpers"
local S = require "cli.support"

describe("as2g sandbox", function()
  local home, state

  local function run(args, opts) return S.run(home, args, opts) end

  before_each(function()
    h.reset()
    home = S.home()
    state = home.dir .. "/sandbox"
  end)

  after_each(function()
    -- never leave an nginx behind, whatever failed
    run { "sandbox", "stop", "--dir", state }
    h.rmtree(home.dir)
  end)

  it("starts a sandbox that prints its variables, serves as2g, and stops", function()
    local out, err, code = run { "sandbox", "start", "--dir", state }
    assert.equal(0, code, err)
    local vars = {}
    for k, v in out:gmatch("(AS2G_[%u_]+)=([^\n]*)") do vars[k] = v end
    for _, k in ipairs { "AS2G_URL", "AS2G_CA", "AS2G_USERNAME", "AS2G_PASSWORD",
      "AS2G_SANDBOX_SECRET" } do
      assert.is_string(vars[k], k)
    end
    assert.matches("^export AS2G_URL", out:match("[^\n]*\n?$"))
    assert.not_equal(h.url, vars.AS2G_URL)
    assert.equal(state .. "/ca.pem", vars.AS2G_CA)
    local env = { AS2G_URL = vars.AS2G_URL, AS2G_CA = vars.AS2G_CA,
      AS2G_USERNAME = vars.AS2G_USERNAME, AS2G_PASSWORD = vars.AS2G_PASSWORD }
    local stations
    stations, err, code = run({ "--json", "stations" }, { env = env })
    assert.equal(0, code, err)
    assert.equal("ACME-AS2", h.json_decode(stations)[1].as2Identifier)

    out, err, code = run { "sandbox", "stop", "--dir", state }
    assert.equal(0, code, out .. err)
    -- gone: nothing answers on its port any more (curl: quicker than as2g's retries)
    local res = h.curl { url = vars.AS2G_URL .. "/station", args = { "--cacert", vars.AS2G_CA,
      "--max-time", "5" } }
    assert.not_equal(0, res.exit)
    assert.equal(0, res.status)
    -- and our own sandbox is untouched
    assert.equal(0, select(3, run { "stations" }))
  end)

  it("keeps the attachment data of a --dir sandbox readable by its owner alone", function()
    local out, err, code = run { "sandbox", "start", "--dir", state }
    assert.equal(0, code, err)
    local vars = {}
    for k, v in out:gmatch("(AS2G_[%u_]+)=([^\n]*)") do vars[k] = v end
    local control = vars.AS2G_URL:gsub("/v1$", "") .. "/_sandbox/inbound"
    local res = h.curl { method = "POST", url = control,
      headers = { ["X-Sandbox-Secret"] = vars.AS2G_SANDBOX_SECRET },
      json = { station = "ACME-AS2", partner = "GLOBEX-AS2",
        attachments = { { name = "secret.edi", data = h.b64("confidential") } } },
      args = { "--cacert", vars.AS2G_CA } }
    assert.equal(200, res.status, res.body)
    local files = S.capture("find " .. h.quote(state .. "/data") .. " -type f -printf '%m\\n'")
    local n = 0
    for mode in files:gmatch("%d+") do
      n = n + 1
      assert.equal("600", mode)
    end
    assert.is_true(n > 0, "no data file")
  end)

  it("passes the sandbox script's failure on", function()
    local _, _, code = run { "sandbox", "start", "--no-such-option" }
    assert.not_equal(0, code)
  end)
end)
