-- The core never lets a password or a token out through log events or errors.
local h = require "helpers"
local core = require "as2gateway.core"

local function serialize(v, seen)
  seen = seen or {}
  if type(v) ~= "table" then return tostring(v) end
  if seen[v] then return "<cycle>" end
  seen[v] = true
  local keys = {}
  for k in pairs(v) do keys[#keys + 1] = tostring(k) end
  table.sort(keys)
  local out = {}
  for _, k in ipairs(keys) do
    local val = v[k]
    if val == nil then val = v[tonumber(k)] end
    out[#out + 1] = k .. "=" .. serialize(val, seen)
  end
  return "{" .. table.concat(out, ", ") .. "}"
end

local fake_time = h.fake_time

describe("core secrets", function()
  local texts, secrets, clients

  local function log(ev) texts[#texts + 1] = "event " .. serialize(ev) end

  local function note(err)
    assert.is_table(err)
    texts[#texts + 1] = "tostring " .. tostring(err)
    texts[#texts + 1] = "message " .. tostring(err.message)
    texts[#texts + 1] = "error " .. serialize(err)
  end

  local function new(extra)
    local t = fake_time()
    local o = { log = log, clock = t.clock, sleep = t.sleep }
    for k, v in pairs(extra or {}) do o[k] = v end
    local c = core.new(h.core_options(o))
    clients[#clients + 1] = c
    return c
  end

  local function secret(s)
    assert.is_string(s)
    assert.is_true(#s >= 8)
    secrets[#secrets + 1] = s
  end

  -- The text with every secret's first 8 characters masked (for failure messages).
  local function masked(text)
    for i, s in ipairs(secrets) do
      local p = s:sub(1, 8):gsub("%p", "%%%0")
      text = text:gsub(p, "<secret " .. i .. ">")
    end
    return text:sub(1, 300)
  end

  local function assert_clean()
    assert.is_true(#texts > 20, "too little was collected to judge")
    for _, text in ipairs(texts) do
      for _, s in ipairs(secrets) do
        assert.is_nil(text:find(s, 1, true), "a secret leaked into: " .. masked(text))
        -- nor a recognisable part of one (a message cut short must not keep half of it)
        assert.is_nil(text:find(s:sub(1, 8), 1, true), "part of a secret leaked into: "
          .. masked(text))
      end
    end
  end

  before_each(function()
    h.reset()
    texts, secrets, clients = {}, {}, {}
    secret(h.password)
  end)

  after_each(function()
    for _, c in ipairs(clients) do c:close() end
  end)

  it("keeps secrets out of log events and errors through a run of calls", function()
    local c = new()
    secret((c:authorize()))
    secret((h.login()))
    local res, err
    for _ = 1, 5 do
      res, err = c:perform { path = { "message", "received" }, json = true }
      assert.are.equal(200, res.status, tostring(err))
      res, err = c:perform { path = { "station" }, json = true }
      assert.are.equal(200, res.status, tostring(err))
    end
    -- 404s
    for i = 1, 3 do
      res, err = c:perform { path = { "message", "received", "<nope" .. i .. "@x>" } }
      assert.is_nil(res)
      assert.are.equal("notfound", err.kind)
      note(err)
    end
    -- a forced 401 and the re-authentication
    h.control("POST", "faults", { path = "/station", status = 401 })
    res, err = c:perform { path = { "station" } }
    assert.are.equal(200, res.status, tostring(err))
    assert.are.equal(1, c:stats().reauthentications)
    -- two forced 401s: an auth error
    h.control("POST", "faults", { path = "/station", status = 401, count = 2 })
    res, err = c:perform { path = { "station" } }
    assert.is_nil(res)
    note(err)
    secret((c:authorize()))
    -- a 429 that is waited out, and one that is not
    h.control("POST", "faults", { path = "/partner", status = 429, retry_after = 1 })
    res, err = c:perform { path = { "partner" }, json = true }
    assert.are.equal(200, res.status, tostring(err))
    local c0 = new { retries = 0 }
    h.control("POST", "faults", { path = "/partner", status = 429, retry_after = 1 })
    res, err = c0:perform { path = { "partner" } }
    assert.is_nil(res)
    assert.are.equal("ratelimited", err.kind)
    note(err)
    secret((c0:authorize()))
    -- a 503 given up on, a dropped answer to a send
    h.control("POST", "faults", { path = "/partner", status = 503 })
    res, err = c0:perform { path = { "partner" } }
    assert.is_nil(res)
    assert.are.equal("http", err.kind)
    note(err)
    h.control("POST", "faults", { path = "/message/ACME-AS2/AS2G-ECHO", drop_response = true })
    res, err = c:perform { method = "POST", path = { "message", "ACME-AS2", "AS2G-ECHO" },
      headers = { Name = "s.txt" }, body = "secret-free", send = true }
    assert.is_nil(res)
    note(err)
    -- a wrong password, on a call and on authorize()
    local wrong = "Wr0ng-" .. h.password:reverse()
    secret(wrong)
    local bad = new { password = wrong }
    res, err = bad:perform { path = { "station" } }
    assert.is_nil(res)
    assert.are.equal("auth", err.kind)
    note(err)
    res, err = bad:authorize()
    assert.is_nil(res)
    note(err)
    -- a ready token the gateway refuses once the clock has passed its expiry
    local token = h.login()
    secret(token)
    local tc = core.new { url = h.url, token = token, cainfo = h.ca, log = log }
    clients[#clients + 1] = tc
    assert.is_nil(select(2, tc:perform { path = { "station" } }))
    h.advance(86400 + 60)
    res, err = tc:perform { path = { "station" } }
    assert.is_nil(res)
    assert.are.equal("auth", err.kind)
    note(err)
    assert_clean()
  end)

  it("redacts secrets that the gateway echoes back in its messages", function()
    local c = new { retries = 0 }
    local token = c:authorize()
    secret(token)
    local echoes = {
      "token " .. token .. " and password " .. h.password,
      ("x"):rep(280) .. h.password .. h.password, -- long enough to be cut short
      ("y"):rep(290) .. token,
    }
    for i, text in ipairs(echoes) do
      h.control("POST", "faults", { path = "/station", status = 400, message = text })
      local res, err = c:perform { path = { "station" } }
      assert.is_nil(res)
      assert.are.equal("invalid", err.kind)
      if i == 1 then assert.matches("token [redacted] and password", err.message, 1, true) end
      note(err)
    end
    -- and a wrong password echoed back on /authorize
    local wrong = "Wr0ng-" .. h.password:reverse()
    secret(wrong)
    local bad = new { password = wrong }
    h.control("POST", "faults", { path = "/authorize", status = 401,
      message = "no user with password " .. wrong })
    local res, err = bad:perform { path = { "station" } }
    assert.is_nil(res)
    assert.are.equal("auth", err.kind)
    note(err)
    for _ = 1, 12 do assert.is_nil(select(2, c:perform { path = { "station" } })) end
    assert_clean()
  end)
end)
