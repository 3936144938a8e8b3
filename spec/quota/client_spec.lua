-- The client's `quota` option (a shared backend behind every request): its forms and
-- their errors, the token shared through the backend (taken, waited for under the
-- login lock, never a refused one again), a 429 blocking every sharer, and what stats()
-- and the log hook show. One process; the many-process runs are in e2e_spec.lua.
local h = require "helpers"
local as2gateway = require "as2gateway"
local core = require "as2gateway.core"
local support = require "quota.support"

describe("the client's quota option", function()
  local dir

  before_each(function()
    h.reset()
    dir = h.mkdtemp()
  end)
  after_each(function() h.rmtree(dir) end)

  local function client(extra)
    return as2gateway.new(h.core_options(extra))
  end

  it("takes file:<folder>, {file = ...} and an engine, which it takes over", function()
    local a = client { quota = "file:" .. dir .. "/a" }
    assert(a:stations())
    assert.same({ backend = "file", mode = "file" }, a:stats().quota)
    local b = client { quota = { file = dir .. "/b", lease = 30 } }
    assert(b:stations())
    assert.equal("file", b:stats().quota.backend)
    local engine = assert(core.quota_file { dir = dir .. "/c" })
    local c = client { quota = engine }
    assert.error_matches(function() engine:acquire() end, "closed")
    assert(c:stations())
    for _, x in ipairs { a, b, c } do x:close() end
    -- the default: this process's window
    local d = client {}
    assert.same({ backend = "window", mode = "window" }, d:stats().quota)
    d:close()
  end)

  it("raises for what is not a backend, naming the option", function()
    for _, bad in ipairs { "nonsense", "file:", 42, { dir = dir }, { file = dir, redis = "x" },
      { file = dir, bogus = 1 } } do
      assert.error_matches(function() client { quota = bad } end, "quota", nil, true)
    end
    assert.error_matches(function() client { quota = core.quota_local {} } end,
      "rate_limit", nil, true)
    local closed = assert(core.quota_file { dir = dir .. "/x" })
    closed:close()
    assert.error_matches(function() client { quota = closed } end, "closed", nil, true)
  end)

  it("shares one login: a second client takes the first one's token", function()
    local events = {}
    local a = client { quota = "file:" .. dir .. "/s" }
    local b = client { quota = "file:" .. dir .. "/s",
      log = function(ev) events[#events + 1] = ev.event end }
    assert(a:stations())
    assert(b:partners())
    assert.equal(1, h.stats().authorizations)
    assert.equal(1, a:stats().authorizations)
    assert.equal(0, b:stats().authorizations)
    assert.equal(1, b:stats().tokens_shared)
    assert.same({ "token_shared" }, (function()
      local shared = {}
      for _, e in ipairs(events) do if e == "token_shared" then shared[#shared + 1] = e end end
      return shared
    end)())
    a:close()
    b:close()
  end)

  it("waits for another process's login under the lock, and takes its token", function()
    local other = assert(core.quota_file { dir = dir .. "/w" })
    assert.is_true(other:login()) -- "another process" is logging in
    local token = h.login()
    local c
    c = client { quota = "file:" .. dir .. "/w", sleep = function(s)
      -- while the client waits, the other process finishes its login
      if c and other:token() == nil then
        other:set_token(token, (os.time() + 3600) * 1000)
        other:login_done()
      end
      core.sleep(s)
    end }
    local before = h.stats().authorizations
    assert(c:stations())
    assert.equal(before, h.stats().authorizations) -- no login of the client's own
    assert.equal(1, c:stats().login_waits)
    assert.equal(1, c:stats().tokens_shared)
    c:close()
    other:close()
  end)

  it("never takes a token the gateway refused again: it logs in, once, for everyone",
    function()
      local engine = assert(core.quota_file { dir = dir .. "/r" })
      assert(engine:set_token("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.bm90LXRoZS1rZXk",
        (os.time() + 3600) * 1000))
      local c = client { quota = "file:" .. dir .. "/r" }
      assert(c:stations())
      assert.equal(1, c:stats().reauthentications)
      assert.equal(1, h.stats().authorizations)
      local fresh = engine:token()
      assert.equal(c:token(), fresh) -- the new token is everyone's now
      assert.not_matches("not-the-key", fresh, 1, true)
      c:close()
      engine:close()
    end)

  it("blocks every sharer for a 429's Retry-After", function()
    local engine = assert(core.quota_file { dir = dir .. "/q" })
    local seen -- what another process of the folder sees while the client waits
    local a = client { quota = "file:" .. dir .. "/q", sleep = function(s)
      seen = seen or engine:state().wait
      core.sleep(s)
    end }
    assert(a:stations()) -- logged in
    assert.is_nil(seen)
    assert.equal(200, select(2, h.control("POST", "faults",
      { path = "/partner", method = "GET", status = 429, retry_after = 2 })))
    local t = core.now()
    assert(a:partners()) -- the 429, then the retry after 2 s
    assert.is_true(core.now() - t >= 2)
    assert.equal(1, a:stats().ratelimited)
    assert.is_true(seen > 1.5, tostring(seen)) -- the folder was blocked, for everyone
    a:close()
    engine:close()
  end)

  it("shows Redis's fallback and return in the log and in stats()", function()
    local redis = support.redis()
    local events = {}
    local c = client { quota = { redis = redis.url, lease = 1, window = 1, requests = 50,
      retry_interval = 0.2 }, rate_limit = { requests = 50, window = 1 },
      log = function(ev)
        if ev.event:match("^quota_") then events[#events + 1] = ev.event .. ": " .. ev.reason end
      end }
    assert(c:stations())
    assert.equal("redis", c:stats().quota.mode)
    redis.kill()
    assert(c:partners()) -- on the local share, after the hold (a lease and a window)
    assert.equal("fallback", c:stats().quota.mode)
    assert.matches("^quota_fallback: ", events[1])
    assert.is_true(redis.start())
    core.sleep(0.3)
    assert(c:partners())
    assert.matches("^quota_redis: ", events[#events])
    local st = c:stats().quota
    assert.equal(1, st.fallbacks)
    assert.equal(1, st.returns)
    for _, e in ipairs(events) do assert.not_matches(h.password, e, 1, true) end
    c:close()
    redis.stop()
  end)
end)
