-- No value forges a header, cuts a path at a NUL byte or walks up a URL: one check
-- for everything that reaches a header, a URL or a path, whoever gives it.
local h = require "helpers"
local hostile = require "hostile_server"
local core = require "as2gateway.core"

local INJECT = "x\r\nX-Injected: yes"

describe("forged values", function()
  local srv, c, dir

  setup(function()
    srv = hostile.start [[
      function handle(req, n)
        if req.path == "/v1/authorize" then return login { expiry = now_ms() + 3600000 } end
        return 200, { ["Content-Type"] = "application/json" }, json { path = req.target }
      end
    ]]
  end)

  teardown(function()
    srv:stop()
  end)

  before_each(function()
    dir = h.mkdtemp()
  end)

  after_each(function()
    if c then c:close() end
    c = nil
    h.rmtree(dir)
  end)

  local function options(extra)
    local o = { url = srv.url, username = "u", password = "p", retries = 0 }
    for k, v in pairs(extra or {}) do o[k] = v end
    return o
  end

  local function injected()
    for _, r in ipairs(srv:requests()) do
      if r.headers["x-injected"] then return true end
    end
    return false
  end

  it("refuses a token option that would add a header line, like set_token does", function()
    local before = srv:count()
    assert.has_error(function() core.new { url = srv.url, token = INJECT } end,
      "option 'token' holds a character a token cannot have (space, control, non-ASCII)")
    c = core.new { url = srv.url, token = "good-token" }
    assert.has_error(function() c:set_token(INJECT) end)
    assert.has_error(function() c:set_token("good\0forged") end)
    assert.has_error(function() core.new { url = srv.url, token = "abc\0def" } end)
    assert.equal(before, srv:count())
    assert.is_false(injected())
  end)

  it("refuses header values, header names and a user agent that would break the head", function()
    c = core.new(options())
    for _, headers in ipairs {
      { ["X-Note"] = INJECT }, { ["X-Note"] = "a\0b" }, { ["X-Note"] = "bell\7" },
      { ["X-Bad\r\nX-Injected"] = "yes" }, { ["X\0Y"] = "v" },
    } do
      assert.has_error(function() c:perform { path = { "station" }, headers = headers } end)
    end
    assert.has_error(function() core.new(options { user_agent = "ua\r\nX-Injected: yes" }) end)
    assert.is_false(injected())
    -- what is fine stays fine: a tab, UTF-8
    local res = assert(c:perform { path = { "station" }, headers = { ["X-Note"] = "a\tb é" } })
    assert.equal(200, res.status)
    local last = srv:requests()[srv:count()]
    assert.equal("a\tb é", last.headers["x-note"])
  end)

  it("refuses a NUL in any file path instead of using the path cut short", function()
    c = core.new(options())
    local cut = dir .. "/x"
    assert.has_error(function() c:perform { path = { "station" }, to_file = cut .. "\0.txt" } end)
    assert.has_error(function() c:perform { path = { "station" }, to_dir = dir .. "\0/sub" } end)
    h.write_file(cut, "body")
    assert.has_error(function()
      c:perform { method = "POST", path = { "station" }, body_file = cut .. "\0.txt" }
    end)
    assert.has_error(function()
      c:perform { method = "POST", path = { "station" }, body_pieces = { { path = cut .. "\0" } } }
    end)
    assert.has_error(function() core.new(options { cainfo = cut .. "\0.pem" }) end)
    for _, fn in ipairs { "mkdir", "stat", "fsync", "listdir", "zip_open" } do
      assert.has_error(function() core[fn](cut .. "\0/y") end, nil, fn)
    end
    assert.has_error(function() core.write_private(cut .. "\0.secret", "data") end)
    assert.same({ "x" }, h.entries(dir)) -- nothing written under the cut names
    assert.equal("body", h.read_file(cut))
  end)

  it("refuses a NUL in the url, the credentials and query names", function()
    assert.has_error(function() core.new(options { url = srv.url .. "\0/evil" }) end)
    assert.has_error(function() core.new(options { username = "u\0admin" }) end)
    assert.has_error(function() core.new(options { password = "p\0" }) end)
    c = core.new(options())
    assert.has_error(function() c:perform { path = { "station" }, query = { ["a\0b"] = 1 } } end)
    assert.has_error(function() c:perform { path = "/station\0/../x" } end)
  end)

  it("sends '.' and '..' IDs encoded, so that they reach the server as IDs", function()
    c = core.new(options())
    for id, encoded in pairs { ["."] = "%2E", [".."] = "%2E%2E" } do
      local res = assert(c:perform { path = { "message", "received", id }, json = true })
      assert.equal("/v1/message/received/" .. encoded, res.json.path)
    end
    -- an encoded path given whole may not hold dot segments either
    for _, p in ipairs { "/message/received/..", "/message/./received", "/../station" } do
      assert.has_error(function() c:perform { path = p } end)
    end
    assert(c:perform { path = "/message/received/%2E" })
  end)
end)
