-- Pins down the sandbox's rate limit: 50 requests per sliding 10 s per account, then 429.
local h = require "helpers"

-- Sends `n` requests in ONE curl process (one connection) and returns their statuses.
-- opts: path (default /message/received), method, token, json (a value, sent as the
-- body of every request).
local function burst(n, opts)
  opts = opts or {}
  local args = { "curl", "-sS", "--cacert", h.quote(h.ca), "-X", opts.method or "GET",
    "-w", h.quote("%{http_code}\n") }
  if opts.token then args[#args + 1] = "-H " .. h.quote("Authorization: " .. opts.token) end
  if opts.json then
    args[#args + 1] = "-H 'Content-Type: application/json'"
    args[#args + 1] = "--data-binary " .. h.quote(h.json_encode(opts.json))
  end
  local url = h.quote(h.url .. (opts.path or "/message/received"))
  for _ = 1, n do args[#args + 1] = "-o /dev/null " .. url end
  local p = io.popen(table.concat(args, " ") .. " 2>/dev/null")
  local statuses = {}
  for line in p:lines() do statuses[#statuses + 1] = tonumber(line) end
  p:close()
  assert(#statuses == n, ("burst: %d answers for %d requests"):format(#statuses, n))
  return statuses
end

-- {status = count} of a burst's statuses.
local function tally(statuses)
  local t = {}
  for _, s in ipairs(statuses) do t[s] = (t[s] or 0) + 1 end
  return t
end

local function login_json(username, password)
  return { username = username or h.username, password = password or h.password }
end

local function get(token)
  return h.curl { path = "/message/received", token = token }
end

local function assert_429(res)
  assert.are.equal(429, res.status)
  local ra = res.headers["retry-after"]
  assert.is_string(ra, "no Retry-After header")
  assert.is_truthy(ra:match("^%d+$"), "Retry-After is not whole seconds: " .. ra)
  assert.is_true(tonumber(ra) >= 1 and tonumber(ra) <= 10, "Retry-After " .. ra)
  assert.is_table(res.json)
  assert.is_string(res.json.message)
  return tonumber(ra)
end

describe("the rate limit", function()
  local token, other
  before_each(function()
    h.reset()
    token = h.login()
    other = h.login(h.other_username, h.other_password)
    h.advance(10) -- the logins leave the window; the tokens stay valid for a day
  end)

  it("admits a burst of 50 and answers the 51st with 429, Retry-After and a message",
    function()
      assert.are.same({ [200] = 50 }, tally(burst(50, { token = token })))
      local ra = assert_429(get(token))
      assert.is_true(ra >= 9, "Retry-After " .. ra .. " right after a burst of 50")
      assert.are.equal(1, h.stats().rate_limited)
    end)

  it("admits requests again once the sandbox clock has moved past the window", function()
    assert.are.same({ [200] = 50 }, tally(burst(50, { token = token })))
    assert_429(get(token))
    h.advance(10)
    assert.are.equal(200, get(token).status)
    assert.are.same({ [200] = 49, [429] = 1 }, tally(burst(50, { token = token })))
  end)

  it("counts every endpoint against the same limit", function()
    assert.are.same({ [200] = 20 }, tally(burst(20, { token = token, path = "/partner" })))
    assert.are.same({ [200] = 20 }, tally(burst(20, { token = token, path = "/station" })))
    assert.are.same({ [200] = 10, [429] = 2 },
      tally(burst(12, { token = token, path = "/message/sent" })))
  end)

  it("counts /authorize against the limit", function()
    local before = h.stats().authorizations
    local statuses = burst(50, { method = "POST", path = "/authorize", json = login_json() })
    assert.are.same({ [200] = 50 }, tally(statuses))
    assert.are.equal(before + 50, h.stats().authorizations)
    assert_429(get(token))
    local res = h.curl { method = "POST", path = "/authorize", json = login_json() }
    assert_429(res)
    assert.is_nil(res.json.token)
    assert.are.equal(before + 50, h.stats().authorizations)
  end)

  it("counts a wrong password against the account's limit", function()
    assert.are.same({ [401] = 50 }, tally(burst(50, { method = "POST", path = "/authorize",
      json = login_json(h.username, "wrong") })))
    assert_429(get(token))
  end)

  it("keeps a separate window for the second account", function()
    assert.are.same({ [200] = 50 }, tally(burst(50, { token = token })))
    assert_429(get(token))
    local res = get(other)
    assert.are.equal(200, res.status)
    assert.are.equal(1, res.json.totalRecords)
    assert.are.same({ [200] = 49, [429] = 1 }, tally(burst(50, { token = other })))
    assert_429(get(token))
  end)

  it("slides: requests leave the window one by one, 10 s after they were admitted",
    function()
      assert.are.same({ [200] = 25 }, tally(burst(25, { token = token })))
      h.advance(6)
      assert.are.same({ [200] = 25 }, tally(burst(25, { token = token })))
      local ra = assert_429(get(token))
      -- the oldest admitted request is 6 s (and the time the bursts took) old
      assert.is_true(ra == 4 or ra == 3, "Retry-After " .. ra .. " with the oldest 6 s old")
      h.advance(5) -- the first 25 have left the window, the last 25 have not
      assert.are.same({ [200] = 25, [429] = 1 }, tally(burst(26, { token = token })))
    end)

  it("does not count refused requests", function()
    assert.are.same({ [200] = 50 }, tally(burst(50, { token = token })))
    h.advance(5)
    assert.are.same({ [429] = 10 }, tally(burst(10, { token = token })))
    h.advance(5.5) -- the 50 admitted have left the window; the refused 10 never were in it
    assert.are.same({ [200] = 50 }, tally(burst(50, { token = token })))
  end)

  it("does not count requests refused with 401 for a bad token", function()
    assert.are.same({ [401] = 60 }, tally(burst(60, { token = token .. "x" })))
    assert.are.same({ [200] = 50 }, tally(burst(50, { token = token })))
  end)

  it("lets 60 requests through when switched off with POST /_sandbox/config", function()
    local cfg, status = h.control("POST", "config", { rate_limit = "off" })
    assert.are.equal(200, status)
    assert.is_false(cfg.rate_limit)
    assert.are.same({ [200] = 60 }, tally(burst(60, { token = token })))
    assert.are.equal(0, h.stats().rate_limited)
  end)

  it("follows a rate limit changed with POST /_sandbox/config", function()
    local _, status = h.control("POST", "config", { rate_limit = "5/2" })
    assert.are.equal(200, status)
    assert.are.same({ [200] = 5, [429] = 1 }, tally(burst(6, { token = token })))
    local ra = assert_429(get(token))
    assert.is_true(ra <= 2, "Retry-After " .. ra .. " in a 2 s window")
    h.advance(2)
    assert.are.equal(200, get(token).status)
  end)

  it("comes back after a reset", function()
    h.control("POST", "config", { rate_limit = "off" })
    assert.are.same({ [200] = 60 }, tally(burst(60, { token = token })))
    h.reset()
    token = h.login() -- the 1st request of the window
    assert.are.same({ [200] = 49, [429] = 1 }, tally(burst(50, { token = token })))
  end)

  it("shares one window among all tokens of an account", function()
    local second = h.login() -- the 1st request of the window
    assert.are_not.equal(token, second)
    assert.are.same({ [200] = 25 }, tally(burst(25, { token = token })))
    assert.are.same({ [200] = 24, [429] = 1 }, tally(burst(25, { token = second })))
    assert_429(get(token))
  end)

  it("counts each 429 in stats.rate_limited", function()
    local before = h.stats()
    assert.are.equal(0, before.rate_limited)
    assert.are.same({ [200] = 50, [429] = 5 }, tally(burst(55, { token = token })))
    local stats = h.stats()
    assert.are.equal(5, stats.rate_limited)
    assert.are.equal(before.requests + 55, stats.requests)
    assert.are.equal(401, get(token .. "x").status)
    assert_429(get(token))
    assert.are.equal(6, h.stats().rate_limited)
  end)
end)
