-- as2g inbox --watch: transient failures are logged and retried with a backoff; only
-- what retrying cannot fix (credentials, the folder) ends it.
local h = require "helpers"
local S = require "cli.support"

describe("as2g inbox --watch", function()
  local home, to

  before_each(function()
    home = S.fresh()
    to = home.dir .. "/inbox"
  end)

  after_each(function()
    h.rmtree(home.dir)
  end)

  it("survives a run of 503s: logs it, backs off, and drains once they end", function()
    local id = h.inbound { subject = "after the outage" }
    -- every attempt of the first run's listing (1 + 5 retries) gets a 503
    h.fault { path = "/message/received*", method = "GET", count = 6, status = 503,
      message = "down for maintenance" }
    local out, err, code = S.run(home, { "--json", "inbox", "--to", to, "--watch",
      "--interval", "2", "--max-runs", "2" })
    assert.equal(0, code, err)
    assert.matches("down for maintenance (HTTP 503); trying again in 2 s", err, 1, true)
    local done = {}
    for _, doc in ipairs(S.json_lines(out)) do
      if doc.status == "done" then done[doc.as2MessageId] = true end
    end
    assert.is_true(done[id], out)
  end)

  it("doubles the delay for failures in a row, and starts over after a good run", function()
    local id = h.inbound { subject = "after two bad answers" }
    -- two listings answered with a page that is no JSON (no retry in the core: at once)
    h.fault { path = "/message/received*", method = "GET", count = 2, status = 200,
      body = "<html>maintenance</html>", content_type = "text/html" }
    local out, err, code = S.run(home, { "inbox", "--to", to, "--watch", "--interval", "2",
      "--max-runs", "4" })
    assert.equal(0, code, err)
    assert.matches("not valid JSON[^\n]*%(HTTP 200%); trying again in 2 s\n", err)
    assert.matches("not valid JSON[^\n]*%(HTTP 200%); trying again in 4 s\n", err)
    assert.matches(to .. "/" .. require("as2gateway.batch").folder_of(id) .. "/", out, 1, true)
    assert.equal(2, S.count(err, "new message(s)")) -- runs 3 and 4
  end)

  it("ends at once, exit 3, when the credentials are refused", function()
    local _, err, code = S.run(home, { "inbox", "--to", to, "--watch", "--interval", "2" },
      { env = { AS2G_PASSWORD = "wrong-" .. h.password } })
    assert.equal(3, code, err)
    assert.not_matches("trying again", err, 1, true)
  end)

  it("ends at once, exit 1, when --to cannot be a folder", function()
    h.write_file(home.dir .. "/plain", "x")
    local _, err, code = S.run(home, { "inbox", "--to", home.dir .. "/plain", "--watch" })
    assert.equal(1, code, err)
    assert.not_matches("trying again", err, 1, true)
  end)
end)
