-- The core's token handling: lazy login, ready tokens, renewal, one re-auth per 401, auth errors.
local h = require "helpers"
local core = require "as2gateway.core"

local LIST = "GET /message/:kind"

local function list(c)
  return c:perform { path = { "message", "received" }, json = true }
end

local function now_ms()
  return os.time() * 1000
end

describe("core auth", function()
  local c

  before_each(function()
    h.reset()
  end)

  after_each(function()
    if c then c:close() end
    c = nil
  end)

  it("logs in lazily, once, for several calls", function()
    c = core.new(h.core_options())
    local st = h.stats()
    assert.are.equal(0, st.requests)
    assert.are.equal(0, st.authorizations)
    assert.are.equal(0, c:stats().requests)
    for _ = 1, 4 do
      local res, err = list(c)
      assert.is_nil(err)
      assert.are.equal(200, res.status)
    end
    st = h.stats()
    assert.are.equal(1, st.authorizations)
    assert.are.equal(1, st.by_endpoint["POST /authorize"])
    assert.are.equal(4, st.by_endpoint[LIST])
    assert.are.equal(5, st.requests)
    local cs = c:stats()
    assert.are.equal(1, cs.authorizations)
    assert.are.equal(0, cs.reauthentications)
    assert.are.equal(5, cs.requests)
  end)

  it("uses a ready token without username and password", function()
    local token = h.login()
    c = core.new { url = h.url, token = token, cainfo = h.ca }
    for _ = 1, 3 do
      local res, err = list(c)
      assert.is_nil(err)
      assert.are.equal(200, res.status)
    end
    local st = h.stats()
    assert.are.equal(1, st.authorizations) -- h.login's alone
    assert.are.equal(3, st.by_endpoint[LIST])
    assert.are.equal(0, c:stats().authorizations)
  end)

  it("renews the token when the gateway's clock has passed its expiry", function()
    c = core.new(h.core_options())
    assert.is_nil(select(2, list(c)))
    h.advance(86400 + 60)
    local res, err = list(c)
    assert.is_nil(err)
    assert.are.equal(200, res.status)
    assert.are.equal(1, c:stats().reauthentications)
    assert.are.equal(2, c:stats().authorizations)
    assert.are.equal(2, h.stats().authorizations)
    -- and the new token serves the next calls without another login
    assert.is_nil(select(2, list(c)))
    assert.are.equal(2, h.stats().authorizations)
  end)

  it("logs in before a call when the given token is about to expire", function()
    local token = h.login()
    -- within the 5-minute renewal margin
    c = core.new(h.core_options { token = token, token_expiry = now_ms() + 60 * 1000 })
    local res, err = list(c)
    assert.is_nil(err)
    assert.are.equal(200, res.status)
    local st = h.stats()
    assert.are.equal(2, st.authorizations)
    assert.are.equal(1, st.by_endpoint[LIST]) -- no refused attempt with the old token
    assert.are.equal(0, c:stats().reauthentications)
  end)

  it("offers a token past its stated expiry when it cannot renew it", function()
    c = core.new { url = h.url, token = h.login(), cainfo = h.ca, token_expiry = now_ms() - 1000 }
    local res, err = list(c)
    assert.is_nil(err) -- the gateway decides, and it still takes the token
    assert.are.equal(200, res.status)
    h.advance(86400 + 60) -- now it has really expired
    res, err = list(c)
    assert.is_nil(res)
    assert.are.equal("auth", err.kind)
    assert.are.equal(401, err.status)
    assert.are.equal(2, h.stats().by_endpoint[LIST])
    assert.are.equal(0, c:stats().authorizations)
  end)

  it("re-authenticates exactly once after a 401 and then succeeds", function()
    c = core.new(h.core_options())
    assert.is_nil(select(2, list(c)))
    h.control("POST", "faults", { path = "/message/received", status = 401, count = 1 })
    local res, err = list(c)
    assert.is_nil(err)
    assert.are.equal(200, res.status)
    assert.are.equal(1, c:stats().reauthentications)
    local st = h.stats()
    assert.are.equal(2, st.authorizations)
    assert.are.equal(3, st.by_endpoint[LIST])
  end)

  it("re-authenticates after a 401 to the very first call too", function()
    c = core.new(h.core_options())
    h.control("POST", "faults", { path = "/message/received", status = 401, count = 1 })
    local res, err = list(c)
    assert.is_nil(err)
    assert.are.equal(200, res.status)
    assert.are.equal(1, c:stats().reauthentications)
    assert.are.equal(2, h.stats().authorizations)
  end)

  it("gives up with kind auth after a second 401, without a third attempt", function()
    c = core.new(h.core_options())
    assert.is_nil(select(2, list(c)))
    h.control("POST", "faults", { path = "/message/received", status = 401, count = 2 })
    local res, err = list(c)
    assert.is_nil(res)
    assert.are.equal("auth", err.kind)
    assert.are.equal(401, err.status)
    local st = h.stats()
    assert.are.equal(3, st.by_endpoint[LIST]) -- 1 before, then 2 refused
    assert.are.equal(2, st.authorizations)
    assert.are.equal(1, c:stats().reauthentications)
    -- the client recovers on the next call
    assert.is_nil(select(2, list(c)))
  end)

  it("fails with kind auth on a refused token it cannot renew", function()
    c = core.new { url = h.url, token = "not.a.token", cainfo = h.ca }
    local res, err = list(c)
    assert.is_nil(res)
    assert.are.equal("auth", err.kind)
    assert.are.equal(401, err.status)
    assert.are.equal(1, h.stats().by_endpoint[LIST])
    assert.are.equal(0, c:stats().reauthentications)
  end)

  it("fails with kind auth and the gateway's message for a wrong password", function()
    c = core.new(h.core_options { password = "not-the-password" })
    local res, err = list(c)
    assert.is_nil(res)
    assert.are.equal("auth", err.kind)
    assert.are.equal(401, err.status)
    assert.matches("Invalid username or password", err.message, 1, true)
    assert.matches("^as2gateway: auth: ", tostring(err))
    local st = h.stats()
    assert.are.equal(0, st.authorizations)
    assert.is_nil(st.by_endpoint[LIST]) -- the call itself never went out
    assert.are.equal(1, st.by_endpoint["POST /authorize"]) -- and no retry of the login
    local ok, e2 = c:authorize()
    assert.is_nil(ok)
    assert.are.equal("auth", e2.kind)
  end)

  it("authorize() logs in now and returns the token and its expiry in ms", function()
    c = core.new(h.core_options())
    local token, expiry = c:authorize()
    assert.is_string(token)
    assert.matches("^[%w%-_]+%.[%w%-_]+%.[%w%-_]+$", token)
    assert.is_number(expiry)
    assert.is_true(expiry > now_ms() + 3600 * 1000)
    assert.is_true(expiry < now_ms() + 2 * 86400 * 1000)
    assert.are.equal(1, h.stats().authorizations)
    -- the token is good for the API, and the client uses it without logging in again
    assert.are.equal(200, h.api("GET", "/station", { token = token }).status)
    assert.is_nil(select(2, list(c)))
    assert.are.equal(1, h.stats().authorizations)
  end)

  it("authorize() raises without username and password", function()
    c = core.new { url = h.url, token = h.login(), cainfo = h.ca }
    local ok, msg = pcall(c.authorize, c)
    assert.is_false(ok)
    assert.matches("username", tostring(msg))
  end)
end)
