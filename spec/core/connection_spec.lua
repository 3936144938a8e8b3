-- The transport: one connection, encoded paths, no invented Content-Type, URL policy, misuse.
local h = require "helpers"
local core = require "as2gateway.core"

-- The entry of `id` in the sandbox's own view of its lists (first list it is in).
local function sandbox_entry(id)
  local view, status = h.control("GET", "messages/" .. h.escape(id))
  assert.are.equal(200, status)
  for _, kind in ipairs { "queued", "sent", "received", "failed", "stopped" } do
    if view[kind] and view[kind][1] then return view[kind][1] end
  end
  error("the sandbox knows no message " .. id)
end

-- The AS2 message ID at the end of a send's Link URL.
local function id_of_link(link)
  local enc = assert(link:match("/message/sent/([^/?]+)$"), "unexpected Link " .. tostring(link))
  return (enc:gsub("%%(%x%x)", function(x) return string.char(tonumber(x, 16)) end))
end

local function send_raw(c, name, body, headers)
  headers = headers or {}
  headers.Name = name
  return c:perform { method = "POST", path = { "message", "ACME-AS2", "AS2G-ECHO" },
    headers = headers, body = body, send = true }
end

describe("core transport", function()
  local c

  before_each(function()
    h.reset()
  end)

  after_each(function()
    if c then c:close() end
    c = nil
  end)

  it("makes 300 consecutive calls over one connection", function()
    h.control("POST", "config", { rate_limit = "off" })
    c = core.new(h.core_options { rate_limit = false })
    for i = 1, 300 do
      local res, err = c:perform { path = { "station" }, json = true }
      assert.is_nil(err, "call " .. i)
      assert.are.equal(200, res.status)
    end
    local st = h.stats()
    assert.are.equal(301, st.requests) -- 300 calls and one /authorize
    assert.are.equal(1, st.connections)
    assert.are.equal(301, c:stats().requests)
  end)

  it("percent-encodes message IDs with <, > and @ in paths", function()
    local id = h.inbound { subject = "encoded path" }
    assert.truthy(id:find("<", 1, true) and id:find(">", 1, true) and id:find("@", 1, true))
    c = core.new(h.core_options())
    local res, err = c:perform { path = { "message", "received", id }, json = true }
    assert.is_nil(err)
    assert.are.equal(200, res.status)
    assert.are.equal(id, res.json.as2MessageId)
    assert.are.equal("encoded path", res.json.subject)
    -- and the same ID as an already-encoded string path
    res, err = c:perform { path = "/message/received/" .. h.escape(id), json = true }
    assert.is_nil(err)
    assert.are.equal(id, res.json.as2MessageId)
  end)

  it("sends a raw upload without Content-Type so that the gateway detects it", function()
    c = core.new(h.core_options())
    local res, err = send_raw(c, "order.edi",
      "ISA*00*          *00*          *ZZ*ACME           *ZZ*ECHO           ~")
    assert.is_nil(err)
    assert.are.equal(202, res.status)
    local entry = sandbox_entry(id_of_link(res.link))
    assert.are.equal("order.edi", entry.attachments[1].name)
    assert.are.equal("application/edi-x12", entry.attachments[1].contentType)
  end)

  it("keeps a Content-Type the caller gives", function()
    c = core.new(h.core_options())
    local res, err = send_raw(c, "order.edi", "<order/>", { ["Content-Type"] = "text/xml" })
    assert.is_nil(err)
    assert.are.equal(202, res.status)
    assert.are.equal("text/xml", sandbox_entry(id_of_link(res.link)).attachments[1].contentType)
  end)

  it("refuses an http:// URL of a host that is not loopback", function()
    local ok, msg = pcall(core.new, h.core_options { url = "http://api.as2gateway.com/v1" })
    assert.is_false(ok)
    assert.matches("https", tostring(msg))
    ok = pcall(core.new, h.core_options { url = "http://10.0.0.1:8080/v1" })
    assert.is_false(ok)
    for _, url in ipairs { "ftp://127.0.0.1/v1", "http://127.0.0.1.nip.io/v1",
      "http://localhost.example.com/v1", "http://0127.0.0.1/v1", "http://[::ffff:10.0.0.1]/v1",
      "http://127.0.0.1:80@example.com/v1", "https://user:pw@127.0.0.1/v1" } do
      assert.is_false(pcall(core.new, h.core_options { url = url }), url .. " was taken")
    end
    -- loopback http:// and any https:// are accepted (no request is made yet)
    core.new(h.core_options { url = "http://127.0.0.1:1/v1" }):close()
    core.new(h.core_options { url = "https://api.as2gateway.com/v1" }):close()
  end)

  it("raises on an unknown option", function()
    local ok, msg = pcall(core.new, h.core_options { retires = 3 })
    assert.is_false(ok)
    assert.matches("retires", tostring(msg))
    ok, msg = pcall(core.new, h.core_options { rate_limit = { requests = 5, windows = 1 } })
    assert.is_false(ok)
    assert.matches("windows", tostring(msg))
    c = core.new(h.core_options())
    ok, msg = pcall(c.perform, c, { path = { "station" }, jsn = true })
    assert.is_false(ok)
    assert.matches("jsn", tostring(msg))
  end)

  it("raises on options of the wrong type", function()
    local bad = {
      { url = 42 },
      { retries = "3" },
      { timeout = true },
      { rate_limit = 50 },
      { rate_limit = true },
      { log = "print" },
      { sleep = 1 },
      { cainfo = false },
    }
    for _, extra in ipairs(bad) do
      local k = next(extra)
      local ok = pcall(core.new, h.core_options(extra))
      assert.is_false(ok, "option " .. k .. " of type " .. type(extra[k]) .. " was taken")
    end
    assert.is_false(pcall(core.new, "https://127.0.0.1/v1"))
    assert.is_false(pcall(core.new, { username = h.username, password = h.password }))
    c = core.new(h.core_options())
    assert.is_false(pcall(c.perform, c, { path = 42 }))
    assert.is_false(pcall(c.perform, c, { path = { "station" }, method = "PUT" }))
    assert.is_false(pcall(c.perform, c, { path = { "station" }, json = "yes" }))
    assert.is_false(pcall(c.perform, c, { path = { "station" }, headers = { X = 1 } }))
    assert.is_false(pcall(c.perform, c, { path = { "station" }, headers = { X = "a\r\nB: c" } }))
    assert.is_false(pcall(c.perform, c, { path = { "station" }, query = { n = {} } }))
    assert.is_false(pcall(c.perform, c, { path = { "station" }, query = "n=1" }))
    assert.is_false(pcall(c.perform, c, { path = { "station", "" } }))
    assert.is_false(pcall(c.perform, c, { path = "station" }))
    assert.is_false(pcall(c.perform, c, { method = "POST", path = { "station" }, body = "a",
      body_reader = function() end }))
    assert.is_false(pcall(c.perform, c, { path = { "station" }, to_file = h.tmpname(),
      sink = function() end }))
    -- and the client is none the worse for it
    assert.is_nil(select(2, c:perform { path = { "station" } }))
  end)

  it("raises 'closed' when a closed client is used, and closes idempotently", function()
    c = core.new(h.core_options())
    assert.is_nil(select(2, c:perform { path = { "station" } }))
    c:close()
    c:close()
    for _, call in ipairs {
      function() return c:perform { path = { "station" } } end,
      function() return c:request { path = { "station" } } end,
      function() return c:authorize() end,
      function() return c:stats() end,
    } do
      local ok, msg = pcall(call)
      assert.is_false(ok)
      assert.matches("closed", tostring(msg))
    end
    assert.matches("closed", tostring(c))
  end)

  it("raises 'closed' when a request of a closed client is stepped", function()
    c = core.new(h.core_options())
    local r = c:request { path = { "station" } }
    c:close()
    local ok, msg = pcall(r.step, r)
    assert.is_false(ok)
    assert.matches("closed", tostring(msg))
    r:close()
    r:close()
  end)

  it("works from a loopback http:// base through the 307 to https", function()
    c = core.new(h.core_options { url = h.http_url })
    local res, err = c:perform { path = { "message", "received" }, json = true }
    assert.is_nil(err)
    assert.are.equal(200, res.status)
    assert.is_table(res.json.records)
    -- a POST keeps its method and body through the 307
    res, err = send_raw(c, "hello.txt", "hello over a redirect")
    assert.is_nil(err)
    assert.are.equal(202, res.status)
    local entry = sandbox_entry(id_of_link(res.link))
    assert.are.equal(#"hello over a redirect", entry.attachments[1].size)
  end)

  it("follows a redirect within the origin, and refuses one that leaves it", function()
    c = core.new(h.core_options())
    local function redirect_to(location)
      h.control("POST", "faults", { path = "/station", status = 307,
        headers = { Location = location } })
      return c:perform { path = { "station" }, json = true }
    end
    local res, err = redirect_to(h.url .. "/partner")
    assert.is_nil(err)
    assert.are.equal(200, res.status)
    assert.are.equal(1, h.stats().by_endpoint["GET /partner"])
    for _, location in ipairs { "https://example.invalid/v1/station",
      h.http_url .. "/station", (h.url:gsub("^https://127%.0%.0%.1", "https://localhost")) } do
      res, err = redirect_to(location)
      assert.is_nil(res, location)
      assert.are.equal("redirect", err.kind)
    end
    assert.are.equal(4, h.stats().by_endpoint["GET /station"]) -- never followed
  end)

  it("works from a loopback http:// base with a ready token", function()
    c = core.new { url = h.http_url, token = h.login(), cainfo = h.ca }
    local res, err = c:perform { path = { "station" }, json = true }
    assert.is_nil(err)
    assert.are.equal(200, res.status)
    assert.are.equal("ACME-AS2", res.json[1].as2Identifier)
  end)
end)
