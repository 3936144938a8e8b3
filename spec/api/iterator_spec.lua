-- Pins down client:messages: every page, unreadOnly while marking, arrivals, failures, closing.
local h = require "helpers"
local as2gateway = require "as2gateway"

local LIST = "GET /message/:kind"

local config = h.config

local fault = h.fault

local function listings()
  return h.stats().by_endpoint[LIST] or 0
end

local function config_quote(s)
  return '"' .. s:gsub('[\\"]', "\\%0") .. '"'
end

-- Injects n received production messages, in order, with one curl process (h.inbound
-- starts one per message); returns their IDs.
local function inject(n, prefix)
  local cfg, lines = h.tmpname(), {}
  for i = 1, n do
    local body = h.json_encode { station = "ACME-AS2", partner = "GLOBEX-AS2",
      subject = ("%s %d"):format(prefix or "Injected", i),
      attachments = { { name = "i.txt", size = 1 } } }
    lines[#lines + 1] = table.concat({
      "url = " .. config_quote(h.base .. "/_sandbox/inbound"),
      "cacert = " .. config_quote(h.ca),
      "header = " .. config_quote("X-Sandbox-Secret: " .. h.secret),
      "header = \"Content-Type: application/json\"",
      "data-binary = " .. config_quote(body),
      "write-out = \"\\n\"",
      "silent",
    }, "\n")
  end
  h.write_file(cfg, table.concat(lines, "\nnext\n") .. "\n")
  local p = io.popen("curl -K " .. h.quote(cfg))
  local out = p:read("a")
  p:close()
  os.remove(cfg)
  local ids = {}
  for line in out:gmatch("[^\n]+") do
    local res = h.json_decode(line)
    assert(res and res.as2MessageId, "inbound failed: " .. line)
    ids[#ids + 1] = res.as2MessageId
  end
  assert.equal(n, #ids)
  return ids
end

-- The IDs of every received production message, read with curl.
local function all_received(query)
  local ids, offset = {}, 0
  while true do
    local q = { pageLength = 100, pageOffset = offset }
    for k, v in pairs(query or {}) do q[k] = v end
    local res = h.api("GET", "/message/received", { query = q })
    assert.equal(200, res.status, res.body)
    for _, m in ipairs(res.json.records) do ids[#ids + 1] = m.as2MessageId end
    if #res.json.records < 100 then return ids end
    offset = offset + 1
  end
end

local fake_time = h.fake_time

describe("client:messages", function()
  local client, paths

  before_each(function()
    h.reset()
    config { rate_limit = "off" }
    paths = {}
    client = as2gateway.new(h.core_options { rate_limit = false, log = function(e)
      if e.event == "request" then paths[#paths + 1] = e.path end
    end })
  end)

  after_each(function()
    client:close()
  end)

  it("visits every message of every page once, 100 a page", function()
    inject(230)
    local expected = all_received()
    assert.equal(232, #expected) -- with the 2 seed messages
    local before = listings()
    local seen, order = {}, {}
    for m in client:messages("received") do
      assert.is_nil(seen[m.as2MessageId], "visited twice")
      seen[m.as2MessageId] = true
      order[#order + 1] = m.as2MessageId
      assert.equal("integer", math.type(m.persistedTimestamp))
    end
    assert.same(expected, order) -- in the listing's order
    assert.equal(3, listings() - before) -- 100 + 100 + 32
    local pages = 0
    for _, p in ipairs(paths) do
      if p:match("^/message/received%?") then
        pages = pages + 1
        assert.truthy(p:find("pageLength=100", 1, true), p)
        assert.truthy(p:find("pageOffset=" .. (pages - 1), 1, true), p)
      end
    end
    assert.equal(3, pages)
  end)

  it("reads one more page when the last one is full", function()
    inject(98) -- 100 with the seed messages
    local before, n = listings(), 0
    for _ in client:messages("received") do n = n + 1 end
    assert.equal(100, n)
    assert.equal(2, listings() - before)
  end)

  it("passes the query parameters on and keeps the caller's table as it was", function()
    inject(5, "Special")
    local params = { subject = "special", sortDir = "asc", pageLength = 2 }
    local subjects = {}
    for m in client:messages("received", params) do subjects[#subjects + 1] = m.subject end
    assert.same({ "Special 1", "Special 2", "Special 3", "Special 4", "Special 5" }, subjects)
    assert.same({ subject = "special", sortDir = "asc", pageLength = 2 }, params)
    for _, p in ipairs(paths) do
      if p:match("^/message/received%?") then
        assert.truthy(p:find("pageLength=2", 1, true), p)
      end
    end
  end)

  it("iterates the other kinds", function()
    local sent = {}
    for m in client:messages("sent") do sent[#sent + 1] = m.subject end
    assert.same({ "Order 5001" }, sent)
    local n = 0
    for _ in client:messages("queued") do n = n + 1 end
    assert.equal(0, n)
  end)

  it("ends cleanly: nil after the end, and nil again", function()
    local it = client:messages("received")
    assert.is_table(it())
    assert.is_table(it())
    local last, err = it()
    assert.is_nil(last)
    assert.is_nil(err)
    assert.is_nil(it())
    assert.is_nil(it.err)
    assert.is_true(it.done)
  end)

  it("visits 250 unread messages exactly once while marking each one read", function()
    local injected = inject(250)
    local before = listings()
    local visits, n = {}, 0
    for m in client:messages("received", { unreadOnly = true }) do
      visits[m.as2MessageId] = (visits[m.as2MessageId] or 0) + 1
      n = n + 1
      assert(client:get("received", m.as2MessageId, { markAsRead = true }))
    end
    assert.equal(252, n) -- with the 2 unread seed messages
    assert.equal(4, listings() - before) -- page 0 while it shows unread ones, then empty
    for _, id in ipairs(injected) do assert.equal(1, visits[id], id) end
    for id, count in pairs(visits) do assert.equal(1, count, id) end
    assert.same({}, all_received { unreadOnly = true })
  end)

  it("visits unread messages once when the reader marks none, in as many requests as a plain "
    .. "listing", function()
    inject(250)
    local before = listings()
    local visits, n = {}, 0
    for m in client:messages("received", { unreadOnly = true }) do
      assert.is_nil(visits[m.as2MessageId], "visited twice")
      visits[m.as2MessageId] = true
      n = n + 1
    end
    assert.equal(252, n)
    -- 100 + 100 + 52: a page is read again only after the reader marked messages read
    assert.equal(3, listings() - before)
    before = listings()
    for _ in client:messages("received") do end
    assert.equal(3, listings() - before)
  end)

  it("visits each original message once while new ones arrive newest-first", function()
    local originals = {}
    for _, id in ipairs(all_received()) do originals[id] = true end
    for _, id in ipairs(inject(230, "Original")) do originals[id] = true end
    local visits, n, arrived = {}, 0, {}
    for m in client:messages("received") do
      local id = m.as2MessageId
      assert.is_nil(visits[id], "visited twice: " .. id)
      visits[id] = true
      n = n + 1
      if n % 20 == 0 and #arrived < 30 then
        for _, new in ipairs(inject(3, "Arrival")) do arrived[#arrived + 1] = new end
      end
    end
    assert.equal(30, #arrived)
    local count = 0
    for id in pairs(originals) do
      count = count + 1
      assert.is_true(visits[id], "original not visited: " .. id)
    end
    assert.equal(232, count)
    assert.equal(262, #all_received())
  end)

  it("visits every message once while the reader deletes each one", function()
    local injected = inject(248)
    local visits, n = {}, 0
    for m in client:messages("received") do
      assert.is_nil(visits[m.as2MessageId], "visited twice")
      visits[m.as2MessageId] = true
      n = n + 1
      assert.equal(1, client:delete("received", m.as2MessageId))
    end
    assert.equal(250, n)
    for _, id in ipairs(injected) do assert.is_true(visits[id], id) end
    assert.same({}, all_received())
  end)

  it("visits every failed attempt, though they share the AS2 ID", function()
    local _, status = h.control("POST", "partner/GLOBEX-AS2", { behaviour = "fail" })
    assert.equal(200, status)
    local id = assert(client:send("ACME-AS2", "GLOBEX-AS2",
      { { name = "f.txt", data = "fails" } })).as2MessageId
    for _ = 1, 4 do h.advance(40) end -- attempts after 2, 4, 8, 16 s ...
    local page = assert(client:list("failed", { as2MessageId = id }))
    assert.truthy(page.totalRecords >= 3, page.totalRecords)
    local stamps = {}
    for m in client:messages("failed", { as2MessageId = id }) do
      assert.equal(id, m.as2MessageId)
      assert.is_nil(stamps[m.persistedTimestamp], "attempt visited twice")
      stamps[m.persistedTimestamp] = true
    end
    local n = 0
    for _ in pairs(stamps) do n = n + 1 end
    assert.equal(page.totalRecords, n)
  end)

  it("ends the loop without raising when a page fails, keeping the error", function()
    inject(150)
    local c = as2gateway.new(h.core_options { rate_limit = false, retries = 0 })
    local it = c:messages("received")
    local n = 0
    for _ in it do
      n = n + 1
      if n == 1 then
        fault { path = "/message/received", method = "GET", status = 500 }
      end
    end
    c:close()
    assert.equal(100, n) -- the first page, then the failure
    assert.is_table(it.err)
    assert.equal("http", it.err.kind)
    assert.equal(500, it.err.status)
    assert.is_true(it.done)
    assert.is_nil(it())
  end)

  it("returns nil, err from the call that fails, after the retries", function()
    inject(150)
    local t = fake_time()
    local c = as2gateway.new(h.core_options { rate_limit = false, clock = t.clock,
      sleep = t.sleep })
    local it = c:messages("received")
    for _ = 1, 100 do assert.is_table(it()) end
    fault { path = "/message/received", method = "GET", status = 503, count = 6 }
    local before = listings()
    local m, err = it()
    c:close()
    assert.is_nil(m)
    assert.equal("http", err.kind)
    assert.equal(503, err.status)
    assert.equal(err, it.err)
    assert.equal(6, listings() - before) -- the first attempt and 5 retries
  end)

  it("stops after break, and a new iterator starts from the beginning", function()
    inject(150)
    local before, n = listings(), 0
    local first
    for m in client:messages("received") do
      n = n + 1
      first = first or m.as2MessageId
      if n == 5 then break end
    end
    assert.equal(5, n)
    assert.equal(1, listings() - before)
    local again = client:messages("received")()
    assert.equal(first, again.as2MessageId)
  end)

  it("raises when given pageOffset, a bad kind or an unknown parameter", function()
    assert.has_error(function() client:messages("received", { pageOffset = 0 }) end)
    assert.has_error(function() client:messages("stopped") end)
    assert.has_error(function()
      for _ in client:messages("received", { colour = "blue" }) do end
    end)
    assert.equal(0, h.stats().requests)
  end)

  it("is closed by the generic for on break (its 4th value)", function()
    local kept
    local function keep(it, state, control, closing)
      kept = it
      return it, state, control, closing
    end
    local a, b, c, d = client:messages("received")
    assert.equal(a, d)
    assert.is_nil(b)
    assert.is_nil(c)
    for m in keep(client:messages("received", { pageLength = 1 })) do
      if m then break end
    end
    assert.is_true(kept.done)
    assert.is_nil(kept())
  end)

  it("is to-be-closed in a block", function()
    local it = client:messages("received", { pageLength = 1 })
    do
      local i <close> = it
      assert.is_table(i())
      assert.is_falsy(it.done)
    end
    assert.is_true(it.done)
    assert.is_nil(it())
  end)
end)
