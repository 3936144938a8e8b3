-- Answers of the wrong shape or that never end, from a hostile gateway of our own:
-- a listing that ignores pageOffset or lies in totalRecords ends with `protocol`
-- after a bounded number of requests; JSON of the wrong shape is `nil, err` of kind
-- protocol, never a Lua error; a send the gateway accepted (2xx) is a success
-- whatever its body, with a warning in the log.
local hostile = require "hostile_server"
local as2gateway = require "as2gateway"
local util = require "as2gateway.util"

local LISTING = "/v1/message/received"

-- A gateway whose every answer but the login comes from `answers`, a Lua chunk that
-- is the body of a function (req, n, listings) returning status, headers, body.
local function gateway(answers)
  return hostile.start([[
    local listings = 0
    local answer = function(req, n, listings) ]] .. answers .. [[ end
    function handle(req, n)
      if req.path == "/v1/authorize" then return login { expiry = now_ms() + 3600000 } end
      if req.path == "/v1/message/received" then listings = listings + 1 end
      -- a safety net for the code under test: an endless listing stops here
      if listings > 200 then return page({}, 0) end
      return answer(req, n, listings)
    end
  ]])
end

describe("hostile answers", function()
  local srv, client, events

  after_each(function()
    if client then client:close() end
    if srv then srv:stop() end
    client, srv = nil, nil
  end)

  local function connect(extra)
    events = {}
    local o = { url = srv.url, username = "u", password = "p", retries = 0,
      log = function(e) events[#events + 1] = e end }
    for k, v in pairs(extra or {}) do o[k] = v end
    client = as2gateway.new(o)
    return client
  end

  -- Iterates the received listing to its end; returns the messages and the iterator.
  local function drain_listing(params)
    local it = client:messages("received", params)
    local got = {}
    for m in it do got[#got + 1] = m end
    return got, it
  end

  describe("listings that never end", function()
    local bound = 1 + util.MAX_STALE_PAGES

    it("end with protocol when the gateway ignores pageOffset", function()
      srv = gateway("return page(messages(100), 1000)")
      connect()
      local got, it = drain_listing()
      assert.equal(100, #got)
      assert.equal("protocol", it.err.kind)
      assert.matches("no progress", it.err.message)
      assert.equal(bound, srv:count(LISTING))
    end)

    it("end with protocol when totalRecords alternates", function()
      -- 250 messages in truth; totalRecords says 1000, then 250, then 1000...
      srv = gateway("return page_of(messages(250), req, listings % 2 == 1 and 1000 or 250)")
      connect()
      local _, it = drain_listing()
      assert.equal("protocol", it.err.kind)
      assert.truthy(srv:count(LISTING) <= 2 + util.MAX_STALE_PAGES, srv:count(LISTING))
    end)

    it("end with protocol in an unreadOnly listing whose page never changes", function()
      srv = gateway("return page(messages(100), 100 + listings)")
      connect { rate_limit = false } -- 100 marks and the pages: no need to wait
      local seen = 0
      local it = client:messages("received", { unreadOnly = true })
      for m in it do
        seen = seen + 1
        assert(client:get("received", m.as2MessageId, { markAsRead = true }) or true)
      end
      assert.equal(100, seen)
      assert.equal("protocol", it.err.kind)
      assert.truthy(srv:count(LISTING) <= bound + 1, srv:count(LISTING))
    end)

    it("end normally when a lying totalRecords does not stop the pages", function()
      srv = gateway("return page_of(messages(230), req, 7)")
      connect()
      local got, it = drain_listing()
      assert.is_nil(it.err)
      assert.equal(230, #got)
      assert.equal(3, srv:count(LISTING))
    end)
  end)

  describe("the progress guard", function()
    it("allows MAX_STALE_PAGES - 1 pages in a row with nothing new, and resets on news", function()
      local g = util.listing_guard("the test listing")
      for _ = 1, util.MAX_STALE_PAGES - 1 do assert.is_true(g:page(0)) end
      assert.is_true(g:page(3))
      for _ = 1, util.MAX_STALE_PAGES - 1 do assert.is_true(g:page(0)) end
      local ok, err = g:page(0)
      assert.is_nil(ok)
      assert.equal("protocol", err.kind)
      assert.matches("the test listing", err.message)
    end)
  end)

  describe("JSON of the wrong shape", function()
    local JSON = '{ ["Content-Type"] = "application/json" }'

    local function answering(body, status)
      srv = gateway(("return %d, %s, %q"):format(status or 200, JSON, body))
      return connect()
    end

    local function assert_protocol(...)
      local v, err = ...
      assert.is_nil(v)
      assert.is_table(err)
      assert.equal("protocol", err.kind)
    end

    for _, body in ipairs { '{"totalRecords": 1, "records": {"a": 1}}',
                            '{"totalRecords": 3, "records": [1, 2, 3]}',
                            '{"totalRecords": 1, "records": null}',
                            '{"totalRecords": 1, "records": 42}',
                            '{"totalRecords": "many", "records": []}',
                            '{"totalRecords": 1, "records": [{"subject": "no ID"}]}',
                            '{"records": [["nested"]]}', '42', 'null', '[]', '"page"' } do
      it("is protocol from list and messages(): " .. body, function()
        answering(body)
        assert_protocol(client:list("received"))
        local it = client:messages("received")
        assert_protocol(it())
        assert.equal("protocol", it.err.kind)
      end)
    end

    for _, case in ipairs {
      { "get", '[1, 2]', function(c) return c:get("received", "<x@y>") end },
      { "get", '42', function(c) return c:get("received", "<x@y>") end },
      { "delete", '42', function(c) return c:delete("received", "<x@y>") end },
      { "delete", '[]', function(c) return c:delete("received", { "<x@y>", "<z@y>" }) end },
      { "delete", '{"message": "done"}', function(c) return c:delete("sent", { "<x@y>" }) end },
      { "stop", '"stopped"', function(c) return c:stop("<x@y>") end },
      { "retry", 'null', function(c) return c:retry("<x@y>") end },
      { "mark_unread", '[true]', function(c) return c:mark_unread("<x@y>") end },
      { "partners", '{"partnerId": 1}', function(c) return c:partners() end },
      { "stations", '[1, "two"]', function(c) return c:stations() end },
      { "stations", 'null', function(c) return c:stations() end },
    } do
      it("is protocol from " .. case[1] .. ": " .. case[2], function()
        answering(case[2])
        assert_protocol(case[3](client))
      end)
    end

    it("still takes the right shapes", function()
      answering('{"message": "Deleted 2 messages"}')
      assert.equal(2, client:delete("received", { "<x@y>", "<z@y>" }))
      assert.equal(1, client:delete("received", "<x@y>"))
      assert.same({ message = "Deleted 2 messages" }, client:stop("<x@y>"))
    end)
  end)

  describe("an accepted send", function()
    local LINK = "https://api.example/v1/message/sent/%3Cm-1%40hostile%3E"

    local function accepting(status, body, link)
      srv = gateway(([[
        if req.method ~= "POST" then return 404, {}, "" end
        return %d, { Link = %q }, %q
      ]]):format(status, link or LINK, body))
      return connect()
    end

    local function warnings()
      local list = {}
      for _, e in ipairs(events) do
        if e.event == "warning" then list[#list + 1] = e end
      end
      return list
    end

    for _, case in ipairs { { 202, "" }, { 202, "Accepted, thanks" }, { 202, "null" },
                            { 200, "[1, 2]" }, { 202, '{"message": 5}' } } do
      it(("is a success when the gateway answers %d %q, with a warning"):format(case[1],
        case[2]), function()
        accepting(case[1], case[2])
        local res, err = client:send("ST", "PA", { { name = "a.txt", data = "hello" } })
        assert.is_nil(err)
        assert.equal(LINK, res.link)
        assert.equal("<m-1@hostile>", res.as2MessageId)
        assert.is_nil(res.message)
        local w = warnings()
        assert.equal(1, #w)
        assert.equal(case[1], w[1].status)
        assert.matches("accepted", w[1].message)
      end)
    end

    it("is a success without a Link too, with what is known and a warning", function()
      srv = gateway([[
        if req.method ~= "POST" then return 404, {}, "" end
        return 202, { ["Content-Type"] = "application/json" }, json { message = "Queued" }
      ]])
      connect()
      local res, err = client:send("ST", "PA", { { name = "a.txt", data = "hello" } })
      assert.is_nil(err)
      assert.same({ message = "Queued", station = "ST", partner = "PA",
        partnerType = "production",
        warning = "the gateway accepted the message (HTTP 202) without a Link header: its ID "
          .. "is unknown" }, res)
      assert.equal(1, #warnings())
    end)

    it("gives no warning for the documented answer", function()
      accepting(202, '{"message": "Message queued"}')
      local res = assert(client:send("ST", "PA", { { name = "a.txt", data = "hello" } }))
      assert.equal("Message queued", res.message)
      assert.equal(0, #warnings())
    end)
  end)
end)
