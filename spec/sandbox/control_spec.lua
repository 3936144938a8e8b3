-- Pins down the sandbox's control surface: secret, reset, stats, faults, config, messages.
local h = require "helpers"

local now_s = h.now

local function timed(f)
  local t0 = now_s()
  local r = f()
  return r, now_s() - t0
end

local fault = h.fault

local function received_count()
  return h.api("GET", "/message/received").json.totalRecords
end

-- `n` GET requests for `path` in one curl process (one connection); the statuses.
local function one_process(n, path, token)
  local args = { "curl -sS --cacert", h.quote(h.ca), "-H",
    h.quote("Authorization: " .. token), "-w", h.quote("%{http_code}\n") }
  for _ = 1, n do args[#args + 1] = "-o /dev/null " .. h.quote(h.url .. path) end
  local p = io.popen(table.concat(args, " ") .. " 2>/dev/null")
  local out = {}
  for line in p:lines() do out[#out + 1] = tonumber(line) end
  p:close()
  return out
end

local function control_raw(method, name, headers)
  return h.curl { method = method, url = h.base .. "/_sandbox/" .. name, headers = headers }
end

describe("the control surface", function()
  before_each(h.reset)

  describe("secret", function()
    for _, call in ipairs { { "GET", "health" }, { "POST", "reset" }, { "GET", "stats" },
                            { "POST", "clock" }, { "GET", "faults" }, { "GET", "config" } } do
      it("answers 403 to " .. call[1] .. " " .. call[2] .. " without X-Sandbox-Secret",
        function()
          local res = control_raw(call[1], call[2])
          assert.are.equal(403, res.status)
          assert.is_string(res.json.message)
        end)
    end

    it("answers 403 to a wrong X-Sandbox-Secret and does not act on it", function()
      h.inbound {}
      local res = control_raw("POST", "reset", { ["X-Sandbox-Secret"] = h.secret .. "0" })
      assert.are.equal(403, res.status)
      assert.is_string(res.json.message)
      if h.secret:upper() ~= h.secret then -- the secret is compared exactly
        res = control_raw("POST", "reset", { ["X-Sandbox-Secret"] = h.secret:upper() })
        assert.are.equal(403, res.status)
      end
      assert.are.equal(403, control_raw("POST", "faults",
        { ["X-Sandbox-Secret"] = "" }).status)
      assert.are.equal(3, received_count())
    end)

    it("answers 200 with the right secret", function()
      local res, status = h.control("GET", "health")
      assert.are.equal(200, status)
      assert.is_true(res.ok)
    end)
  end)

  it("answers 404 to an unknown control endpoint", function()
    local res, status = h.control("GET", "nonsense")
    assert.are.equal(404, status)
    assert.is_string(res.message)
    assert.are.equal(404, select(2, h.control("DELETE", "stats")))
    assert.are.equal(404, select(2, h.control("POST", "health")))
  end)

  describe("reset", function()
    it("restores the seed data", function()
      assert.are.equal(2, received_count())
      h.inbound { subject = "extra" }
      local id = h.api("GET", "/message/received").json.records[2].as2MessageId
      assert.are.equal(200, h.api("DELETE", "/message/received/" .. h.escape(id)).status)
      assert.are.equal(200, h.api("DELETE", "/message/sent/" .. h.escape(
        h.api("GET", "/message/sent").json.records[1].as2MessageId)).status)
      assert.are.equal(2, received_count())
      assert.are.equal(0, h.api("GET", "/message/sent").json.totalRecords)
      h.reset()
      local rec = h.api("GET", "/message/received")
      assert.are.equal(2, rec.json.totalRecords)
      local subjects = { rec.json.records[1].subject, rec.json.records[2].subject }
      table.sort(subjects)
      assert.are.same({ "Invoice 1001", "Invoice 1002" }, subjects)
      assert.are.equal(1, h.api("GET", "/message/received",
        { query = { partnerType = "test" } }).json.totalRecords)
      assert.are.equal(1, h.api("GET", "/message/sent").json.totalRecords)
    end)

    it("clears read flags, queued messages, partner behaviour and the clock", function()
      local id = h.api("GET", "/message/received").json.records[1].as2MessageId
      h.api("GET", "/message/received/" .. h.escape(id), { query = { markAsRead = "true" } })
      h.control("POST", "partner/GLOBEX-AS2", { behaviour = "pause" })
      assert.are.equal(202, h.api("POST", "/message/ACME-AS2/GLOBEX-AS2",
        { headers = { Name = "held.txt" }, body = "held" }).status)
      local before = h.advance(3600)
      assert.are.equal(1, h.api("GET", "/message/queued").json.totalRecords)
      h.reset()
      local clock = h.control("GET", "clock").now
      assert.is_true(clock < before - 3500 * 1000, "the clock was not put back")
      assert.are.equal(2, h.api("GET", "/message/received",
        { query = { unreadOnly = "true" } }).json.totalRecords)
      assert.are.equal(0, h.api("GET", "/message/queued").json.totalRecords)
      local p = h.api("GET", "/partner", { query = { query = "GLOBEX" } }).json[1]
      assert.is_false(p.pauseOutgoing)
    end)

    it("clears faults and stats", function()
      fault { path = "/message/received", status = 503, count = 5 }
      h.api("GET", "/partner")
      assert.are.equal(1, #h.control("GET", "faults"))
      assert.is_true(h.stats().requests > 0)
      h.reset()
      assert.are.same({}, h.control("GET", "faults"))
      local st = h.stats()
      assert.are.equal(0, st.requests)
      assert.are.equal(0, st.connections)
      assert.are.equal(0, st.authorizations)
      assert.are.equal(0, st.rate_limited)
      assert.are.same({}, st.by_endpoint)
      assert.are.equal(200, h.api("GET", "/message/received").status)
    end)

    it("restores the settings as started", function()
      local start = h.control("GET", "config")
      local changed = h.control("POST", "config", { queue_delay = 30, rate_limit = "off" })
      assert.are.equal(30, changed.queue_delay)
      h.reset()
      assert.are.same(start, h.control("GET", "config"))
    end)
  end)

  describe("stats", function()
    it("counts API requests by endpoint label", function()
      local token = h.login()
      h.token = token
      h.api("GET", "/message/received")
      h.api("GET", "/message/sent")
      local id = h.api("GET", "/message/received").json.records[1].as2MessageId
      h.api("GET", "/message/received/" .. h.escape(id))
      h.api("POST", "/message/ACME-AS2/AS2G-ECHO", { headers = { Name = "a.txt" }, body = "a" })
      h.api("GET", "/partner")
      h.curl { path = "/no/such/endpoint", token = token }
      local st = h.stats()
      assert.are.equal(8, st.requests)
      assert.are.equal(1, st.by_endpoint["POST /authorize"])
      assert.are.equal(3, st.by_endpoint["GET /message/:kind"])
      assert.are.equal(1, st.by_endpoint["GET /message/:kind/:id"])
      assert.are.equal(1, st.by_endpoint["POST /message/:station/:partner"])
      assert.are.equal(1, st.by_endpoint["GET /partner"])
      assert.are.equal(1, st.authorizations)
    end)

    it("counts one connection for 5 requests made by one curl process", function()
      local token = h.login()
      local before = h.stats()
      assert.are.same({ 200, 200, 200, 200, 200 }, one_process(5, "/station", token))
      local after = h.stats()
      assert.are.equal(before.requests + 5, after.requests)
      assert.are.equal(before.connections + 1, after.connections)
    end)

    it("counts 3 connections for 3 curl processes", function()
      local token = h.login()
      local before = h.stats()
      for _ = 1, 3 do assert.are.equal(200, h.curl { path = "/station", token = token }.status) end
      local after = h.stats()
      assert.are.equal(before.requests + 3, after.requests)
      assert.are.equal(before.connections + 3, after.connections)
    end)

    it("counts issued tokens in authorizations, not failed logins", function()
      h.login()
      h.login(h.other_username, h.other_password)
      h.curl { method = "POST", path = "/authorize",
        json = { username = h.username, password = "nope" } }
      local st = h.stats()
      assert.are.equal(2, st.authorizations)
      assert.are.equal(3, st.requests)
      assert.are.equal(3, st.by_endpoint["POST /authorize"])
    end)

    it("counts no control calls and never rate-limits them", function()
      local _, status = h.control("POST", "config", { rate_limit = "2/10" })
      assert.are.equal(200, status)
      local token = h.login()
      assert.are.equal(200, h.curl { path = "/station", token = token }.status)
      local limited = h.curl { path = "/station", token = token }
      assert.are.equal(429, limited.status)
      for _ = 1, 8 do
        assert.are.equal(200, select(2, h.control("GET", "health")))
        assert.are.equal(200, select(2, h.control("GET", "clock")))
      end
      h.inbound {}
      local st = h.stats()
      assert.are.equal(3, st.requests)
      assert.are.equal(1, st.rate_limited)
      for label in pairs(st.by_endpoint) do
        assert.is_falsy(label:find("_sandbox", 1, true), label)
      end
      assert.are.equal(429, h.curl { path = "/station", token = token }.status)
    end)
  end)

  describe("faults", function()
    it("answers the next `count` matching requests with the status, then normally", function()
      fault { path = "/message/received", status = 503, count = 2 }
      local token = h.login()
      for _ = 1, 2 do
        local res = h.curl { path = "/message/received", token = token }
        assert.are.equal(503, res.status)
        assert.is_string(res.json.message)
      end
      local res = h.curl { path = "/message/received", token = token }
      assert.are.equal(200, res.status)
      assert.are.equal(2, res.json.totalRecords)
      assert.are.same({}, h.control("GET", "faults"))
    end)

    it("uses the fault's message in the Generic Response", function()
      fault { path = "/partner", status = 500, message = "Injected meltdown" }
      local res = h.api("GET", "/partner")
      assert.are.equal(500, res.status)
      assert.are.same({ message = "Injected meltdown" }, res.json)
    end)

    it("passes retry_after through as a Retry-After header", function()
      fault { path = "/message/sent", status = 503, retry_after = 7 }
      local res = h.api("GET", "/message/sent")
      assert.are.equal(503, res.status)
      assert.are.equal("7", res.headers["retry-after"])
      assert.is_nil(h.api("GET", "/message/sent").headers["retry-after"])
    end)

    it("matches only the given method", function()
      fault { path = "/message/received", method = "POST", status = 500 }
      assert.are.equal(200, h.api("GET", "/message/received").status)
      assert.are.equal(1, #h.control("GET", "faults"))
      local res = h.api("POST", "/message/received")
      assert.are.equal(500, res.status)
      assert.are.same({}, h.control("GET", "faults"))
    end)

    it("matches a path prefix ending in '*'", function()
      fault { path = "/message/*", status = 502, count = 3 }
      local token = h.login()
      assert.are.equal(200, h.curl { path = "/partner", token = token }.status)
      assert.are.equal(502, h.curl { path = "/message/sent", token = token }.status)
      assert.are.equal(502, h.curl { path = "/message/received/" .. h.escape("<a@b>")
        .. "/attachments/0", token = token }.status)
      assert.are.equal(502, h.curl { method = "POST", path = "/message/ACME-AS2/AS2G-ECHO",
        token = token, headers = { Name = "f.txt" }, body = "f" }.status)
      assert.are.equal(200, h.curl { path = "/message/sent", token = token }.status)
      -- the faulted send was not processed
      assert.are.equal(0, h.curl { path = "/message/queued", token = token }.json.totalRecords)
    end)

    it("matches a path given with the /v1 prefix and a percent-encoded ID", function()
      local id = h.api("GET", "/message/received").json.records[1].as2MessageId
      fault { path = "/v1/message/received/" .. h.escape(id), status = 504 }
      assert.are.equal(200, h.api("GET", "/message/received").status)
      assert.are.equal(504, h.api("GET", "/message/received/" .. h.escape(id)).status)
      assert.are.equal(200, h.api("GET", "/message/received/" .. h.escape(id)).status)
    end)

    it("matches every request with '*' alone, /authorize included", function()
      fault { path = "*", status = 503, count = 2 }
      local res = h.curl { method = "POST", path = "/authorize",
        json = { username = h.username, password = h.password } }
      assert.are.equal(503, res.status)
      assert.are.equal(503, h.curl { path = "/station" }.status)
      assert.are.equal(200, h.curl { method = "POST", path = "/authorize",
        json = { username = h.username, password = h.password } }.status)
    end)

    it("delays the answer by delay_ms and then processes the request", function()
      local token = h.login()
      fault { path = "/station", delay_ms = 1500 }
      local res, elapsed = timed(function() return h.curl { path = "/station", token = token } end)
      assert.are.equal(200, res.status)
      assert.are.equal(2, #res.json)
      assert.is_true(elapsed >= 1.4, ("answered after %.2f s"):format(elapsed))
      local _, again = timed(function() return h.curl { path = "/station", token = token } end)
      assert.is_true(again < 1.4, ("the delay stayed: %.2f s"):format(again))
    end)

    it("delays an injected status too", function()
      local token = h.login()
      fault { path = "/station", delay_ms = 1200, status = 503 }
      local res, elapsed = timed(function() return h.curl { path = "/station", token = token } end)
      assert.are.equal(503, res.status)
      assert.is_true(elapsed >= 1.1, ("answered after %.2f s"):format(elapsed))
    end)

    it("cuts the connection after close_after_bytes body bytes", function()
      local token = h.login()
      local full = h.curl { path = "/message/received", token = token }
      assert.are.equal(200, full.status)
      assert.is_true(#full.body > 40)
      fault { path = "/message/received", close_after_bytes = 20 }
      local res = h.curl { path = "/message/received", token = token }
      assert.are.equal(18, res.exit, "curl exit code (18: partial file)")
      assert.are.equal(200, res.status)
      assert.are.equal(full.body:sub(1, 20), res.body)
      assert.are.equal(tostring(#full.body), res.headers["content-length"])
    end)

    it("cuts a download after close_after_bytes, with close_after_bytes 0 too", function()
      local token = h.login()
      local id = h.escape(h.curl { path = "/message/received", token = token }
        .json.records[1].as2MessageId)
      fault { path = "/message/received/" .. id .. "/attachments/0", close_after_bytes = 0 }
      local res = h.curl { path = "/message/received/" .. id .. "/attachments/0", token = token }
      assert.are.equal(18, res.exit)
      assert.are.equal("", res.body)
    end)

    it("drops the response of a send after enqueuing it", function()
      local token = h.login()
      h.control("POST", "partner/GLOBEX-AS2", { behaviour = "pause" })
      fault { path = "/message/ACME-AS2/GLOBEX-AS2", method = "POST", drop_response = true }
      local res = h.curl { method = "POST", path = "/message/ACME-AS2/GLOBEX-AS2",
        token = token, headers = { Name = "dropped.xml", "Content-Type:" },
        body = "<dropped/>" }
      assert.are.equal(52, res.exit, "curl exit code (52: empty reply)")
      assert.are.equal("", res.body)
      local q = h.curl { path = "/message/queued", token = token }
      assert.are.equal(1, q.json.totalRecords)
      local id = q.json.records[1].as2MessageId
      local inside = h.control("GET", "messages/" .. h.escape(id))
      assert.are.equal(1, #inside.queued)
      assert.are.equal("queued", inside.queued[1].state)
      local digest = h.sh("printf %s '<dropped/>' | sha256sum"):match("^(%x+)")
      assert.are.same({ { name = "dropped.xml", size = 10, contentType = "application/xml",
        sha256 = digest } }, inside.queued[1].attachments)
      -- once the partner takes messages again it is sent like any other
      h.control("POST", "partner/GLOBEX-AS2", { behaviour = "deliver" })
      h.advance(5)
      assert.are.equal(200, h.curl { path = "/message/sent/" .. h.escape(id),
        token = token }.status)
    end)

    it("drops the response of a listing too", function()
      local token = h.login()
      fault { path = "/message/sent", drop_response = true }
      local res = h.curl { path = "/message/sent", token = token }
      assert.are.equal(52, res.exit)
      assert.are.equal(200, h.curl { path = "/message/sent", token = token }.status)
    end)

    it("trickles the body at trickle_bytes_per_s, slow but complete", function()
      local token = h.login()
      local rec = h.curl { path = "/message/received", token = token,
        query = { subject = "Invoice 1002" } }
      local path = "/message/received/" .. h.escape(rec.json.records[1].as2MessageId)
        .. "/attachments/1"
      local plain = h.curl { path = path, token = token }
      assert.are.equal(200, plain.status)
      assert.are.equal(31, #plain.body)
      fault { path = path, trickle_bytes_per_s = 20 }
      local res, elapsed = timed(function() return h.curl { path = path, token = token } end)
      assert.are.equal(0, res.exit)
      assert.are.equal(200, res.status)
      assert.are.equal(plain.body, res.body)
      assert.are.equal(plain.headers["content-disposition"], res.headers["content-disposition"])
      assert.is_true(elapsed >= 1.0, ("31 bytes at 20 B/s took %.2f s"):format(elapsed))
    end)

    it("answers with an overridden body and content type: an HTML error page", function()
      local html = "<html><body><h1>502 Bad Gateway</h1></body></html>\n"
      fault { path = "/partner", status = 502, body = html, content_type = "text/html" }
      local res = h.api("GET", "/partner")
      assert.are.equal(502, res.status)
      assert.are.equal("text/html", res.headers["content-type"])
      assert.are.equal(html, res.body)
      assert.is_nil(res.json)
    end)

    it("adds and replaces answer headers", function()
      fault { path = "/partner", headers = { ["X-Injected"] = "yes",
        ["Content-Type"] = "text/plain" } }
      local res = h.api("GET", "/partner")
      assert.are.equal(200, res.status)
      assert.are.equal("yes", res.headers["x-injected"])
      assert.are.equal("text/plain", res.headers["content-type"])
      assert.are.equal(5, #res.json)
      local again = h.api("GET", "/partner")
      assert.is_nil(again.headers["x-injected"])
      assert.are.equal("application/json", again.headers["content-type"])
    end)

    it("lists pending faults and clears them with DELETE", function()
      local id1 = fault { path = "/partner", status = 500, count = 3 }
      local id2 = fault { path = "/station", method = "GET", status = 502 }
      assert.are_not.equal(id1, id2)
      local list = h.control("GET", "faults")
      assert.are.equal(2, #list)
      assert.are.equal("/partner", list[1].path)
      assert.are.equal(3, list[1].count)
      assert.are.equal(id2, list[2].id)
      assert.are.equal(500, h.api("GET", "/partner").status)
      assert.are.equal(2, h.control("GET", "faults")[1].count)
      local _, status = h.control("DELETE", "faults")
      assert.are.equal(200, status)
      assert.are.same({}, h.control("GET", "faults"))
      assert.are.equal(200, h.api("GET", "/partner").status)
      assert.are.equal(200, h.api("GET", "/station").status)
    end)

    it("rejects unknown or bad fault fields with 400", function()
      for _, bad in ipairs { { path = "/partner", status = 500, colour = "red" },
                             { status = 500 }, { path = "/partner", count = 0 },
                             { path = "/partner", delay_ms = -5 },
                             { path = "/partner", trickle_bytes_per_s = 0 } } do
        local res, status = h.control("POST", "faults", bad)
        assert.are.equal(400, status, h.json_encode(bad))
        assert.is_string(res.message)
      end
      assert.are.same({}, h.control("GET", "faults"))
    end)
  end)

  describe("input", function()
    it("refuses numbers that are not finite or out of range, and keeps serving", function()
      local inbound = '{"station": "ACME-AS2", "partner": "GLOBEX-AS2", '
        .. '"attachments": [{"name": "a.txt", "size": %s}]}'
      for _, case in ipairs {
        { "clock", '{"advance": 1e308}' }, { "clock", '{"advance": 1e999}' },
        { "clock", '{"advance": -1}' }, { "clock", '{"advance": "10"}' },
        { "config", '{"token_lifetime": 1e308}' }, { "config", '{"queue_delay": 1e999}' },
        { "config", '{"rate_limit": "100000000000000000000/1"}' },
        { "faults", '{"path": "*", "count": 1e308}' },
        { "faults", '{"path": "*", "delay_ms": 1e300}' },
        { "faults", '{"path": "*", "status": 99999}' },
        { "faults", '{"path": "*", "retry_after": 1e308}' },
        { "inbound", inbound:format("1e308") }, { "inbound", inbound:format("-5") },
      } do
        local res, status = h.control("POST", case[1], case[2])
        assert.are.equal(400, status, case[1] .. " " .. case[2])
        assert.is_string(res.message)
      end
      -- nothing of it took: the gateway answers, its clock is today's
      h.login()
      assert.are.equal(200, h.api("GET", "/station").status)
      assert.is_true(math.abs(h.control("GET", "clock").now - os.time() * 1000) < 60 * 1000)
      assert.are.same({}, h.control("GET", "faults"))
    end)
  end)

  describe("config", function()
    it("answers the settings in force, changed by POST", function()
      local cfg, status = h.control("POST", "config", { queue_delay = 3, batch_limit = 1000 })
      assert.are.equal(200, status)
      assert.are.equal(3, cfg.queue_delay)
      assert.are.equal(1000, cfg.batch_limit)
      assert.are.same(cfg, h.control("GET", "config"))
    end)

    it("rejects unknown settings with 400 and changes nothing", function()
      local before = h.control("GET", "config")
      local res, status = h.control("POST", "config", { queue_delay = 7, colour = "red" })
      assert.are.equal(400, status)
      assert.is_string(res.message)
      assert.are.equal(400, select(2, h.control("POST", "config", { rate_limit = "fast" })))
      assert.are.equal(400, select(2, h.control("POST", "config", { queue_delay = -1 })))
      assert.are.same(before, h.control("GET", "config"))
    end)

    it("moves the queue by the configured queue_delay", function()
      h.control("POST", "config", { queue_delay = 30 })
      local res = h.api("POST", "/message/ACME-AS2/GLOBEX-AS2",
        { headers = { Name = "slow.txt" }, body = "slow" })
      assert.are.equal(202, res.status)
      h.advance(10)
      assert.are.equal(1, h.api("GET", "/message/queued").json.totalRecords)
      h.advance(25)
      assert.are.equal(0, h.api("GET", "/message/queued").json.totalRecords)
      assert.are.equal(2, h.api("GET", "/message/sent").json.totalRecords)
    end)
  end)

  describe("messages/<id>", function()
    local function send(name, ctype, body)
      local headers = { Name = name, ctype and ("Content-Type: " .. ctype) or "Content-Type:" }
      local res = h.api("POST", "/message/ACME-AS2/GLOBEX-AS2", { headers = headers,
        body = body, query = { profile = "edi-headers" } })
      assert.are.equal(202, res.status)
      local enc = res.headers["link"]:match("/message/sent/([^/]+)$")
      return enc
    end

    it("shows the detected or given contentType, profile, state and read flag", function()
      local detected = send("invoice.xml", nil, "<invoice/>")
      local given = send("invoice2.xml", "text/xml", "<invoice/>")
      local x12 = send("order.edi", nil, "ISA*00*          *00*~")
      local inside, status = h.control("GET", "messages/" .. detected)
      assert.are.equal(200, status)
      assert.are.equal(1, #inside.queued)
      assert.are.same({}, inside.sent)
      assert.are.equal("application/xml", inside.queued[1].attachments[1].contentType)
      assert.are.equal("edi-headers", inside.queued[1].profile)
      assert.are.equal("queued", inside.queued[1].state)
      assert.are.equal(0, inside.queued[1].attempts)
      assert.is_false(inside.read)
      assert.are.equal("text/xml",
        h.control("GET", "messages/" .. given).queued[1].attachments[1].contentType)
      assert.are.equal("application/edi-x12",
        h.control("GET", "messages/" .. x12).queued[1].attachments[1].contentType)
      h.advance(5)
      inside = h.control("GET", "messages/" .. detected)
      assert.are.same({}, inside.queued)
      assert.are.equal(1, #inside.sent)
      assert.are.equal("application/xml", inside.sent[1].attachments[1].contentType)
    end)

    it("shows the read flag per account", function()
      local rec = h.api("GET", "/message/received").json.records[1].as2MessageId
      local id = h.escape(rec)
      assert.is_false(h.control("GET", "messages/" .. id).read)
      h.api("GET", "/message/received/" .. id, { query = { markAsRead = "true" } })
      local inside = h.control("GET", "messages/" .. id)
      assert.is_true(inside.read)
      assert.are.equal(1, #inside.received)
      assert.are.equal(rec, inside.received[1].as2MessageId)
      local other = h.control("GET", "messages/" .. id .. "?account="
        .. h.escape(h.other_username))
      assert.is_false(other.read)
      assert.are.same({}, other.received)
    end)
  end)
end)
