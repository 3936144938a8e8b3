-- The core's token handling: lazy login, ready tokens, renewal, one re-auth per 401, auth
-- errors, and no more than 2 logins per request whatever the expiry looks like.
local h = require "helpers"
local hostile = require "hostile_server"
local core = require "as2gateway.core"

local LIST = "GET /message/:kind"

local function list(c)
  return c:perform { path = { "message", "received" }, json = true }
end

local now_ms = h.now_ms

local STATIONS = { path = { "station" }, json = true }

-- A log hook that counts logins and stops a client that logs in endlessly: the third
-- login of one call raises (and the raise ends the call), so the spec never hangs.
local function login_counter()
  local t = { logins = 0, requests = 0 }
  function t.log(e)
    if e.event == "authorize" then
      t.logins = t.logins + 1
      if t.logins > t.limit then error("endless logins: " .. t.logins .. " in one call", 0) end
    elseif e.event == "request" and e.path ~= "/authorize" then
      t.requests = t.requests + 1
    end
  end
  t.limit = 2
  return t
end

local wall_ms = h.now_ms

-- The client's token expires `seconds` from now by our clock (a second's slack).
local function assert_expires_in(c, seconds)
  local _, expiry = c:token()
  local left = expiry - wall_ms()
  assert.truthy(left > (seconds - 60) * 1000 and left <= seconds * 1000, left)
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

  it("logs in before a call when the given token has expired by our clock", function()
    local token = h.login()
    -- the margin is a quarter of what is left (5 minutes at most): a token given with
    -- a minute left is used, one given past its expiry is renewed first
    c = core.new(h.core_options { token = token, token_expiry = now_ms() + 60 * 1000 })
    assert.is_true(select(3, c:token()))
    c:close()
    c = core.new(h.core_options { token = token, token_expiry = now_ms() - 1000 })
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

  -- Logins are bounded: a token whose expiry is short, in seconds, in the past by our
  -- clock or absurd never makes the client log in again and again. At most 2 logins per
  -- request, and a token just obtained is used for the request it was obtained for.
  describe("bounded logins", function()

    it("uses a 2-minute token (inside the old 5-minute margin) for many calls", function()
      h.config { token_lifetime = 120 }
      local count = login_counter()
      c = core.new(h.core_options { log = count.log })
      for _ = 1, 3 do
        local res, err = c:perform(STATIONS)
        assert.is_nil(err)
        assert.equal(200, res.status)
      end
      assert.equal(1, count.logins)
      assert.equal(3, count.requests)
      assert.equal(1, h.stats().authorizations)
      local _, expiry = c:token()
      if math.type then assert.equal("integer", math.type(expiry)) end -- Lua 5.4
    end)

    it("renews a token only near its expiry, the margin scaled to its lifetime", function()
      h.config { token_lifetime = 120 }
      local count = login_counter()
      c = core.new(h.core_options { log = count.log })
      assert(c:perform(STATIONS))
      assert_expires_in(c, 120)
      local token, _, usable = c:token()
      assert.is_true(usable)
      -- a token with 20 s left is still good (a quarter of it is the margin) ...
      c:set_token(token, wall_ms() + 20 * 1000)
      assert.is_true(select(3, c:token()))
      assert(c:perform(STATIONS))
      assert.equal(1, count.logins)
      -- ... one past its expiry is renewed first
      c:set_token(token, wall_ms() - 1000)
      assert.is_false(select(3, c:token()))
      assert(c:perform(STATIONS))
      assert.equal(2, count.logins)
    end)

    describe("against a gateway whose expiry cannot be taken as it is", function()
      local srv

      after_each(function()
        if srv then srv:stop() end
        srv = nil
      end)

      local function gateway(login_answer)
        srv = hostile.start([[
          function handle(req, n)
            if req.path == "/v1/authorize" then ]] .. login_answer .. [[ end
            if not req.headers.authorization then return 401, {}, json { message = "no token" } end
            return 200, { ["Content-Type"] = "application/json" }, "[]"
          end
        ]])
        return srv
      end

      local function client(count)
        return core.new { url = srv.url, username = "u", password = "p", log = count.log,
          retries = 0 }
      end

      -- `calls` calls succeed with one login between them
      local function assert_one_login(calls)
        local count = login_counter()
        c = client(count)
        for _ = 1, calls do assert(c:perform(STATIONS)) end
        assert.equal(1, count.logins)
      end

      it("reads an expiry given in seconds", function()
        gateway("return login { expiry = math.floor(now_ms() / 1000) + 86400 }")
        assert_one_login(3)
        assert_expires_in(c, 86400)
      end)

      it("takes the JWT's own lifetime when our clock runs a day ahead of the gateway's", function()
        -- the gateway's clock is a day behind ours: its expiry (in 1 hour by its clock)
        -- is 23 hours in our past; the token's claims say it lives 24 hours
        gateway([[
          local now = math.floor(now_ms() / 1000) - 86400
          return login { expiry = (now + 3600) * 1000,
            token = jwt { sub = "u", iat = now, exp = now + 86400 } }
        ]])
        assert_one_login(3)
        assert_expires_in(c, 86400)
      end)

      it("uses a token whose expiry is already past and unreadable until it is refused", function()
        gateway("return login { expiry = 1000, token = 'opaque-token-' .. n }")
        assert_one_login(3)
        assert.equal(3, srv:count("/v1/station"))
        for _, r in ipairs(srv:requests()) do
          if r.path == "/v1/station" then
            assert.equal("opaque-token-1", r.headers.authorization)
          end
        end
      end)

      it("uses a token that expires within a second of arriving for its own request", function()
        gateway("return login { expiry = now_ms() + 300, token = 'short-' .. n }")
        local count = login_counter()
        c = client(count)
        assert(c:perform(STATIONS))
        assert.equal(1, count.logins)
        local r = srv:requests()
        assert.equal("/v1/station", r[2].path)
        assert.equal("short-1", r[2].headers.authorization)
      end)

      it("never logs in more than twice in one call, whatever the gateway answers", function()
        -- every token is refused, and every token is born expired by our clock
        srv = hostile.start [[
          function handle(req, n)
            if req.path == "/v1/authorize" then
              return login { expiry = now_ms() - 1000, token = jwt { iat = 1, exp = 2 } }
            end
            return 401, {}, json { message = "token refused" }
          end
        ]]
        local count = login_counter()
        count.limit = 3
        c = client(count)
        local res, err = c:perform(STATIONS)
        assert.is_nil(res)
        assert.equal("auth", err.kind)
        assert.equal(2, count.logins)
        assert.equal(2, srv:count("/v1/authorize"))
        assert.equal(2, srv:count("/v1/station"))
      end)
    end)
  end)
end)
