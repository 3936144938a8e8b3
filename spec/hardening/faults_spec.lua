-- The fault catalogue: every way a network or gateway can misbehave, each with its one right outcome.
local h = require "helpers"
local core = require "as2gateway.core"
local as2gateway = require "as2gateway"

local LIST = "GET /message/:kind"
local ONE = "GET /message/:kind/:id/attachments/:index"
local SEND = "POST /message/:station/:partner"
local BATCH = "POST /message/received/batch/attachments"
local BATCH_PATH = "/message/received/batch/attachments"

local fake_time = h.fake_time

-- Client options against the sandbox with the fake clock, short timeouts and few retries.
local function fast(extra)
  local t = fake_time()
  local o = { clock = t.clock, sleep = t.sleep, connect_timeout = 2, low_speed_limit = 100,
    low_speed_time = 2, retries = 2, backoff_base = 0.05, backoff_cap = 0.2 }
  for k, v in pairs(extra or {}) do o[k] = v end
  return h.core_options(o), t
end

local fault = h.fault

local now = h.now

local mkdtemp = h.mkdtemp

local rmtree = h.rmtree

-- Everything under dir, hidden names included, sorted.
local function tree(dir)
  local p = io.popen("cd " .. h.quote(dir) .. " && find . -mindepth 1 | sort")
  local out = {}
  for line in p:lines() do out[#out + 1] = line end
  p:close()
  return out
end

local function count(by_endpoint, route)
  return (by_endpoint or {})[route] or 0
end

local function att_path(id, index)
  return "/message/received/" .. h.escape(id) .. "/attachments/" .. (index or 0)
end

local function one_of(value, list)
  for _, v in ipairs(list) do if v == value then return true end end
  return false
end

-- Background processes this file started and has not stopped yet, by pid.
local children = {}

-- Starts a background command (its output to files) and returns its pid.
local function spawn(cmd)
  local p = assert(io.popen(cmd .. " & echo $!"))
  local pid = tonumber(p:read("l"))
  p:close()
  assert(pid, "could not start: " .. cmd)
  children[pid] = true
  return pid
end

local function stop(pid)
  if pid and children[pid] then
    os.execute(("kill %d 2>/dev/null"):format(pid))
    children[pid] = nil
  end
end

-- Marks what the listener holds now; `captured` gives what came after.
local function mark(l)
  l.marks = { #(h.read_file(l.files.out) or ""), #(h.read_file(l.files.err) or "") }
end

-- An HTTPS server of our own on another port of 127.0.0.1: openssl s_server with the
-- sandbox's certificate (valid for 127.0.0.1 and localhost, from the CA the client
-- trusts), so a client that followed a redirect there would complete TLS and hand
-- over its headers; they land in `out` as received. A plain-HTTP connection fails the
-- handshake and shows in `err`. Proven to capture before use: a probe request's
-- Authorization header must show up.
local function tls_listener()
  local self = { dir = mkdtemp() }
  local files = { out = self.dir .. "/out", err = self.dir .. "/err", fifo = self.dir .. "/in" }
  for _ = 1, 10 do
    local port = math.random(20000, 60999)
    os.remove(files.out)
    os.remove(files.err)
    os.remove(files.fifo)
    assert(os.execute("mkfifo " .. h.quote(files.fifo)))
    local server = spawn(("timeout 300 openssl s_server -quiet -accept 127.0.0.1:%d -cert %s"
      .. " -key %s <%s >%s 2>%s"):format(port, h.quote(h.dir .. "/server.pem"),
      h.quote(h.dir .. "/server.key"), h.quote(files.fifo), h.quote(files.out),
      h.quote(files.err)))
    -- s_server ends at the end of its input: a writer that stays keeps it serving
    local feeder = spawn(("timeout 300 sleep 300 >%s 2>/dev/null </dev/null"):format(
      h.quote(files.fifo)))
    -- s_server may need seconds to start on a fresh machine: wait for it with a deadline
    -- (or for its exit, when the port was taken), then for a probe to be captured
    local function exited() return not os.execute("kill -0 " .. server .. " 2>/dev/null") end
    h.wait_until(function() return h.port_open(port) or exited() end, 30)
    local captured_probe = not exited() and h.wait_until(function()
      os.execute(("curl -s -m 1 --cacert %s -H 'Authorization: probe-%d' "
        .. "https://127.0.0.1:%d/probe >/dev/null 2>&1"):format(h.quote(h.ca), port, port))
      return (h.read_file(files.out) or ""):find("Authorization: probe-" .. port, 1, true)
    end, 20, nil, 0.1)
    if captured_probe then
      self.port, self.pids, self.files = port, { server, feeder }, files
      mark(self)
      return self
    end
    stop(server)
    stop(feeder)
  end
  error("could not start an openssl s_server listener")
end

-- What reached the listener since the mark: received bytes and handshake errors.
local function captured(l)
  local out, err = h.read_file(l.files.out) or "", h.read_file(l.files.err) or ""
  return out:sub(l.marks[1] + 1), err:sub(l.marks[2] + 1)
end

local function close_listener(l)
  if not l then return end
  for _, pid in ipairs(l.pids) do stop(pid) end
  rmtree(l.dir)
end

-- A TCP port that accepts connections (the kernel completes them) and never says a
-- word: a perl one-liner (perl-base is part of every Debian system).
local function silent_listener()
  local dir = mkdtemp()
  local portfile = dir .. "/port"
  local pid = spawn(("timeout 120 perl -MIO::Socket::INET -e '$s = IO::Socket::INET->new("
    .. "LocalAddr => \"127.0.0.1\", LocalPort => 0, Listen => 16) or die; $| = 1; "
    .. "print $s->sockport, \"\\n\"; sleep 120' >%s 2>/dev/null </dev/null"):format(
    h.quote(portfile)))
  local port = h.wait_until(function() return tonumber(h.read_file(portfile) or "") end, 30,
    "the silent listener did not start")
  return { port = port, pid = pid, dir = dir }
end

describe("fault catalogue", function()
  local c, dir

  lazy_teardown(function()
    for pid in pairs(children) do stop(pid) end
  end)

  before_each(function()
    h.reset()
  end)

  after_each(function()
    if c then c:close() end
    c = nil
    rmtree(dir)
    dir = nil
  end)

  it("gives up on a host name that does not resolve (DNS failure) with kind network", function()
    -- in a network namespace of its own, with no network at all: not a packet leaves
    local unshare
    for _, cmd in ipairs { "unshare -rn", "unshare -n" } do
      if os.execute(cmd .. " true >/dev/null 2>&1") then unshare = cmd break end
    end
    if not unshare then
      pending("unshare cannot create a network namespace here (needs user namespaces or root)")
      return
    end
    local code = [[
      package.path = "./lua/?.lua;" .. package.path -- the core's perform runs as2gateway.driver
      package.cpath = "./build/lua54/?.so;" .. package.cpath
      local core = require "as2gateway.core"
      local t = 0
      local c = core.new { url = "https://gateway.invalid/v1", username = "u", password = "p",
        retries = 2, connect_timeout = 2, clock = function() return t end,
        sleep = function(s) t = t + s end }
      local res, err = c:perform { path = { "station" } }
      local s = c:stats()
      io.write(tostring(res), "|", err and err.kind or "-", "|", s.requests, "|", s.retries,
        "|", t > 0 and "slept" or "-", "|", err and err.message or "", "\n")
    ]]
    local started = now()
    local p = io.popen("timeout 60 " .. unshare .. " lua5.4 -e " .. h.quote(code) .. " 2>&1")
    local out = p:read("a")
    p:close()
    local res, kind, requests, retries, slept, message =
      out:match("^(.-)|(.-)|(%d+)|(%d+)|(.-)|(.-)\n")
    assert.are.equal("nil", res, out)
    assert.are.equal("network", kind, out)
    assert.matches("resolve", message)
    assert.are.equal("3", requests)   -- the first attempt and its 2 retries: then it gave up
    assert.are.equal("2", retries)
    assert.are.equal("slept", slept)  -- with a backoff between them
    assert.is_true(now() - started < 30, "took too long to give up")
  end)

  it("fails with kind network when the connection is refused, after its retries", function()
    local t = fake_time()
    c = core.new { url = "https://127.0.0.1:1/v1", username = h.username, password = h.password,
      cainfo = h.ca, retries = 3, clock = t.clock, sleep = t.sleep, connect_timeout = 2 }
    local started = now()
    local res, err = c:perform { path = { "station" }, json = true }
    assert.is_nil(res)
    assert.are.equal("network", err.kind)
    assert.is_nil(err.status)
    assert.are.equal(3, c:stats().retries)
    assert.are.equal(4, c:stats().requests)
    assert.is_true(t.total > 0, "no backoff between the attempts")
    assert.is_true(now() - started < 5)
  end)

  it("times out on a server that accepts the connection and never answers", function()
    local l = silent_listener()
    local t = fake_time()
    c = core.new { url = ("https://127.0.0.1:%d/v1"):format(l.port), username = h.username,
      password = h.password, cainfo = h.ca, retries = 1, connect_timeout = 1,
      clock = t.clock, sleep = t.sleep }
    local started = now()
    local res, err = c:perform { path = { "station" }, json = true }
    stop(l.pid)
    rmtree(l.dir)
    assert.is_nil(res)
    assert.are.equal("timeout", err.kind)
    assert.are.equal(1, c:stats().retries)
    assert.are.equal(2, c:stats().requests)
    assert.is_true(now() - started < 6, "not bounded by connect_timeout")
  end)

  it("times out on a gateway that takes a request and never answers it", function()
    local opts = fast { retries = 1, low_speed_time = 1 }
    c = core.new(opts)
    assert(c:authorize())
    fault { path = "/message/received", delay_ms = 60000, status = 503, count = 2 }
    local started = now()
    local res, err = c:perform { path = { "message", "received" }, json = true }
    assert.is_nil(res)
    assert.are.equal("timeout", err.kind)
    assert.are.equal(1, c:stats().retries)
    assert.are.equal(2, count(h.stats().by_endpoint, LIST))
    assert.is_true(now() - started < 8, "not bounded by the low-speed limit")
  end)

  it("times out on a download trickled at 1 byte/s and writes nothing", function()
    local id = h.inbound { attachments = { { name = "slow.bin", size = 4000 } } }
    dir = mkdtemp()
    c = as2gateway.new((fast { retries = 1, low_speed_time = 1 }))
    fault { path = att_path(id), trickle_bytes_per_s = 1, count = 2 }
    local started = now()
    local path, err = c:download("received", id, { index = 0, to = dir })
    assert.is_nil(path)
    assert.are.equal("timeout", err.kind)
    assert.are.equal(1, c:stats().retries)
    assert.are.equal(2, count(h.stats().by_endpoint, ONE))
    assert.are.same({}, tree(dir))
    assert.is_true(now() - started < 8, "not bounded by the low-speed limit")
  end)

  it("retries a listing page whose connection is reset, and sees every message once", function()
    for i = 1, 5 do h.inbound { subject = "reset " .. i } end
    c = as2gateway.new((fast()))
    local seen, n = {}, 0
    local it = c:messages("received", { pageLength = 2 })
    for m in it do
      n = n + 1
      assert.is_nil(seen[m.as2MessageId], "seen twice: " .. m.as2MessageId)
      seen[m.as2MessageId] = true
      -- the next page's answer is cut after 20 bytes of its body
      if n == 3 then fault { path = "/message/received", close_after_bytes = 20 } end
    end
    assert.is_nil(it.err)
    assert.are.equal(7, n) -- 2 seed messages and 5 new ones
    assert.are.equal(1, c:stats().retries)
    -- pages 0, 1, 2 (cut, then again) and 3
    assert.are.equal(5, count(h.stats().by_endpoint, LIST))
  end)

  describe("a send whose connection is lost after its body went out", function()
    local function queued(subject)
      local res = h.api("GET", "/message/queued", { query = { subject = subject } })
      assert.are.equal(200, res.status)
      return res.json.totalRecords
    end

    for _, case in ipairs {
      { what = "no answer at all", fault = { drop_response = true } },
      { what = "an answer cut mid-body", fault = { close_after_bytes = 5 } },
    } do
      it("fails with unknown_outcome and is never resent (" .. case.what .. ")", function()
        h.control("POST", "config", { queue_delay = 600 }) -- hold the queue still
        c = as2gateway.new((fast { retries = 5 }))
        local f = { path = "/message/ACME-AS2/AS2G-ECHO", method = "POST" }
        for k, v in pairs(case.fault) do f[k] = v end
        fault(f)
        local subject = "lost " .. case.what
        local res, err = c:send("ACME-AS2", "AS2G-ECHO", { { name = "a.txt", data = "payload" } },
          { subject = subject })
        assert.is_nil(res)
        assert.are.equal("unknown_outcome", err.kind)
        assert.are.equal(1, count(h.stats().by_endpoint, SEND))
        assert.are.equal(0, c:stats().retries)
        assert.are.equal(1, queued(subject)) -- it did go through, once
      end)
    end
  end)

  describe("a body shorter than its Content-Length", function()
    it("is retried on a JSON endpoint, and succeeds once a whole answer comes", function()
      c = core.new((fast()))
      fault { path = "/station", close_after_bytes = 10 }
      local res, err = c:perform { path = { "station" }, json = true }
      assert.is_nil(err)
      assert.are.equal("ACME-AS2", res.json[1].as2Identifier)
      assert.are.equal(1, c:stats().retries)
      assert.are.equal(2, count(h.stats().by_endpoint, "GET /station"))
    end)

    it("fails a download with kind network after its retries, writing nothing", function()
      local id = h.inbound { attachments = { { name = "cut.bin", size = 100000 } } }
      dir = mkdtemp()
      c = as2gateway.new((fast { retries = 2 }))
      fault { path = att_path(id), close_after_bytes = 5000, count = 3 }
      local path, err = c:download("received", id, { index = 0, to = dir })
      assert.is_nil(path)
      assert.are.equal("network", err.kind)
      assert.are.equal(2, c:stats().retries)
      assert.are.equal(3, count(h.stats().by_endpoint, ONE))
      assert.are.same({}, tree(dir))
    end)
  end)

  it("fails malformed or truncated JSON with kind protocol, without retrying", function()
    c = core.new((fast()))
    assert(c:authorize())
    local bodies = { '{"totalRecords": 1, "records": [{"as2MessageId": "<x@y>", "subj',
      '{"records": [', "not json at all", "", '{"a": 1} trailing', "\0\1\2\255" }
    for _, body in ipairs(bodies) do
      fault { path = "/message/received", status = 200, body = body }
      local res, err = c:perform { path = { "message", "received" }, json = true }
      assert.is_nil(res, body)
      assert.are.equal("protocol", err.kind, body)
      assert.are.equal(200, err.status)
    end
    assert.are.equal(#bodies, count(h.stats().by_endpoint, LIST))
    assert.are.equal(0, c:stats().retries)
  end)

  describe("an HTML page instead of JSON", function()
    local html = "<html><head><title>502 Bad Gateway</title></head><body><h1>Bad Gateway</h1>"
      .. string.rep("<p>filler</p>", 500) .. "</body></html>"

    it("is an http error with its status, a 5xx one after the retries", function()
      c = core.new((fast { retries = 2 }))
      fault { path = "/message/received", status = 502, body = html, content_type = "text/html",
        count = 3 }
      local res, err = c:perform { path = { "message", "received" }, json = true }
      assert.is_nil(res)
      assert.are.equal("http", err.kind)
      assert.are.equal(502, err.status)
      assert.is_nil(err.message:find("<html>", 1, true), "the page leaks into the message")
      assert.are.equal(2, c:stats().retries)
      assert.are.equal(3, count(h.stats().by_endpoint, LIST))
      fault { path = "/message/received", status = 404, body = html, content_type = "text/html" }
      res, err = c:perform { path = { "message", "received" }, json = true }
      assert.is_nil(res)
      assert.are.equal("notfound", err.kind)
      assert.are.equal(404, err.status)
    end)

    it("is a protocol error when it comes with 200", function()
      c = core.new((fast()))
      fault { path = "/message/received", status = 200, body = html, content_type = "text/html" }
      local res, err = c:perform { path = { "message", "received" }, json = true }
      assert.is_nil(res)
      assert.are.equal("protocol", err.kind)
      assert.are.equal(0, c:stats().retries)
    end)
  end)

  it("stops an endless body on a JSON endpoint at max_json, and stays usable", function()
    c = core.new((fast { max_json = 1024 * 1024 }))
    fault { path = "/message/received", endless = true }
    local started = now()
    local res, err = c:perform { path = { "message", "received" }, json = true }
    assert.is_nil(res)
    assert.are.equal("protocol", err.kind)
    assert.matches("max_json", err.message)
    assert.are.equal(0, c:stats().retries)
    assert.are.equal(1, count(h.stats().by_endpoint, LIST))
    assert.is_true(now() - started < 10)
    res, err = c:perform { path = { "message", "received" }, json = true }
    assert.is_nil(err)
    assert.are.equal(200, res.status)
  end)

  it("stops an endless body at the default max_json too", function()
    c = core.new((fast()))
    fault { path = "/station", endless = true }
    local res, err = c:perform { path = { "station" }, json = true }
    assert.is_nil(res)
    assert.are.equal("protocol", err.kind)
    assert.are.equal(1, count(h.stats().by_endpoint, "GET /station"))
  end)

  it("stops an endless download at max_download and leaves no file", function()
    c = core.new((fast { max_download = 2 * 1024 * 1024 }))
    local id = h.inbound { attachments = { { name = "a.bin", size = 1000 } } }
    fault { path = att_path(id, 0), endless = true }
    local folder = mkdtemp()
    local res, err = c:perform { path = { "message", "received", id, "attachments", "0" },
      to_dir = folder }
    assert.is_nil(res)
    assert.are.equal("protocol", err.kind)
    assert.matches("max_download", err.message)
    assert.same({}, tree(folder))
    rmtree(folder)
  end)

  it("fails on huge response headers without crashing, and stays usable", function()
    c = core.new((fast { retries = 2 }))
    fault { path = "/station", headers = { ["X-Huge"] = string.rep("a", 200000) }, count = 3 }
    local res, err = c:perform { path = { "station" }, json = true }
    assert.is_nil(res)
    assert.is_true(one_of(err.kind, { "network", "protocol" }), err.kind)
    assert.is_true(c:stats().retries <= 2)
    assert.is_true(count(h.stats().by_endpoint, "GET /station") <= 3)
    h.control("DELETE", "faults")
    res, err = c:perform { path = { "station" }, json = true }
    assert.is_nil(err)
    assert.are.equal("ACME-AS2", res.json[1].as2Identifier)
  end)

  describe("429 with Retry-After", function()
    -- one 429 with this Retry-After value: the call's result, error and fake time
    local function one_429(value, extra)
      if c then c:close() end
      h.reset()
      local opts, t = fast(extra)
      c = core.new(opts)
      assert(c:authorize())
      fault { path = "/station", status = 429, headers = { ["Retry-After"] = value } }
      local res, err = c:perform { path = { "station" }, json = true }
      return res, err, t
    end

    -- the time the client waited before its retry
    local function wait_after(value, extra)
      local res, err, t = one_429(value, extra)
      assert.is_nil(err, value)
      assert.are.equal(200, res.status)
      assert.are.equal(1, c:stats().retries)
      assert.are.equal(1, c:stats().ratelimited)
      assert.are.equal(2, count(h.stats().by_endpoint, "GET /station"))
      return t.total
    end

    it("waits that many seconds when it is a number", function()
      assert.are.equal(7, wait_after("7"))
      assert.are.equal(0, wait_after("0"))
    end)

    it("waits until the moment an HTTP date names", function()
      local date = os.date("!%a, %d %b %Y %H:%M:%S GMT", os.time() + 30)
      local waited = wait_after(date)
      assert.is_true(waited >= 25 and waited <= 31, "waited " .. waited)
      -- a date in the past: no wait
      assert.are.equal(0, wait_after("Sun, 06 Nov 1994 08:49:37 GMT"))
    end)

    it("waits a full rate-limit window when it is garbage", function()
      for _, value in ipairs { "soon", "-5", "1.5", "12abc", "Mon, 99 Foo 2020 25:61:61 GMT" } do
        assert.are.equal(10, wait_after(value), value)
      end
      assert.are.equal(4, wait_after("whenever", { rate_limit = { requests = 50, window = 4 } }))
    end)

    -- one 429 with this Retry-After value, over the cap: the call ends at once, without
    -- a retry or a wait; returns err.retry_after
    local function refused_after(value, extra)
      local res, err, t = one_429(value, extra)
      assert.is_nil(res, value)
      assert.are.equal("ratelimited", err.kind)
      assert.are.equal(429, err.status)
      assert.are.equal(0, t.total)
      assert.are.equal(0, c:stats().retries)
      assert.are.equal(1, count(h.stats().by_endpoint, "GET /station"))
      return err.retry_after
    end

    it("ends the call at once with err.retry_after when it is over retry_after_cap", function()
      assert.are.equal(10 * 366 * 86400, refused_after("99999999999999999999999999"))
      assert.are.equal(86400, refused_after("86400"))
      assert.are.equal(121, refused_after("121"))
      assert.are.equal(120, wait_after("120"))
      assert.are.equal(46, refused_after("46", { retry_after_cap = 45 }))
      assert.are.equal(45, wait_after("45", { retry_after_cap = 45 }))
      local far = os.date("!%a, %d %b %Y %H:%M:%S GMT", os.time() + 10 * 365 * 86400)
      assert.is_true(refused_after(far) > 10 * 365 * 86400 - 60)
    end)

    it("fails with kind ratelimited and status 429 once the retries run out", function()
      local opts, t = fast { retries = 3 }
      c = core.new(opts)
      assert(c:authorize())
      fault { path = "/station", status = 429, retry_after = 2, count = 10 }
      local res, err = c:perform { path = { "station" }, json = true }
      assert.is_nil(res)
      assert.are.equal("ratelimited", err.kind)
      assert.are.equal(429, err.status)
      assert.are.equal(3, c:stats().retries)
      assert.are.equal(4, count(h.stats().by_endpoint, "GET /station"))
      assert.are.equal(6, t.total)
    end)
  end)

  describe("a burst of 503s", function()
    it("is retried through, with a backoff that grows and stays under its cap", function()
      local delays = {}
      local opts, t = fast { retries = 5, backoff_base = 0.5, backoff_cap = 1,
        log = function(ev) if ev.event == "retry" then delays[#delays + 1] = ev.delay end end }
      c = core.new(opts)
      assert(c:authorize())
      fault { path = "/message/received", status = 503, count = 4 }
      local res, err = c:perform { path = { "message", "received" }, json = true }
      assert.is_nil(err)
      assert.are.equal(200, res.status)
      assert.are.equal(4, c:stats().retries)
      assert.are.equal(5, count(h.stats().by_endpoint, LIST))
      assert.are.equal(4, #delays)
      -- equal jitter: between half and all of base * 2^(n-1), capped
      local limits = { 0.5, 1, 1, 1 }
      local sum = 0
      for i, d in ipairs(delays) do
        assert.is_true(d >= limits[i] / 2 and d <= limits[i], ("delay %d: %s"):format(i, d))
        sum = sum + d
      end
      assert.is_true(t.total >= sum - 0.01, "the client did not wait its delays")
    end)

    it("ends as kind http with status 503 when it outlasts the retries", function()
      c = core.new((fast { retries = 3 }))
      assert(c:authorize())
      fault { path = "/message/received", status = 503, count = 20 }
      local res, err = c:perform { path = { "message", "received" }, json = true }
      assert.is_nil(res)
      assert.are.equal("http", err.kind)
      assert.are.equal(503, err.status)
      assert.are.equal(3, c:stats().retries)
      assert.are.equal(4, count(h.stats().by_endpoint, LIST))
    end)

    it("is never retried for a send: unknown_outcome after one request", function()
      c = as2gateway.new((fast { retries = 5 }))
      fault { path = "/message/ACME-AS2/AS2G-ECHO", method = "POST", status = 503, count = 5 }
      local res, err = c:send("ACME-AS2", "AS2G-ECHO", { { name = "a.txt", data = "x" } })
      assert.is_nil(res)
      assert.are.equal("unknown_outcome", err.kind)
      assert.are.equal(503, err.status)
      assert.are.equal(1, count(h.stats().by_endpoint, SEND))
      assert.are.equal(0, c:stats().retries)
    end)
  end)

  describe("a 401 in the middle of an iteration", function()
    before_each(function()
      for i = 1, 5 do h.inbound { subject = "401 " .. i } end
    end)

    it("logs in again, once, and carries on where it was", function()
      c = as2gateway.new((fast()))
      local seen, n = {}, 0
      local it = c:messages("received", { pageLength = 2 })
      for m in it do
        n = n + 1
        assert.is_nil(seen[m.as2MessageId])
        seen[m.as2MessageId] = true
        if n == 3 then fault { path = "/message/received", status = 401 } end
      end
      assert.is_nil(it.err)
      assert.are.equal(7, n)
      local s = c:stats()
      assert.are.equal(1, s.reauthentications)
      assert.are.equal(2, s.authorizations)
      local by = h.stats().by_endpoint
      assert.are.equal(5, count(by, LIST))
      assert.are.equal(2, count(by, "POST /authorize"))
    end)

    it("ends the iteration with kind auth when the new token is refused too", function()
      c = as2gateway.new((fast()))
      local n = 0
      local it = c:messages("received", { pageLength = 2 })
      for _ in it do
        n = n + 1
        if n == 1 then fault { path = "/message/received", status = 401, count = 2 } end
      end
      assert.are.equal(2, n)
      assert.is_table(it.err)
      assert.are.equal("auth", it.err.kind)
      assert.are.equal(401, it.err.status)
      assert.are.equal(1, c:stats().reauthentications)
      assert.are.equal(3, count(h.stats().by_endpoint, LIST)) -- no loop of logins
      assert.are.equal(2, count(h.stats().by_endpoint, "POST /authorize"))
    end)
  end)

  describe("a redirect to another origin", function()
    local l

    lazy_setup(function()
      l = tls_listener()
    end)

    lazy_teardown(function()
      close_listener(l)
    end)

    before_each(function()
      mark(l)
    end)

    -- Nothing reached the listener during this test: no bytes, no failed handshake.
    local function nothing_reached(secrets)
      local out, err = captured(l)
      assert.are.equal("", out, "the other origin received a request")
      assert.are.equal("", err, "the other origin saw a connection")
      for _, s in ipairs(secrets) do
        assert.is_nil((h.read_file(l.files.out) or ""):find(s, 1, true), "a secret reached it")
      end
    end

    local function redirected(location, path)
      if c then c:close() end
      h.reset()
      c = core.new((fast { timeout = 5 }))
      local token = assert(c:authorize())
      fault { path = path or "/station", status = 307, headers = { Location = location } }
      local res, err = c:perform { path = { "station" }, json = true }
      assert.is_nil(res, location)
      assert.are.equal("redirect", err.kind, location)
      assert.are.equal(307, err.status)
      assert.are.equal(1, count(h.stats().by_endpoint, "GET /station"))
      nothing_reached { token, h.password }
    end

    it("is refused for another port over https, and the token never goes there", function()
      redirected(("https://127.0.0.1:%d/v1/station"):format(l.port))
    end)

    it("is refused for another host name, and the token never goes there", function()
      redirected(("https://localhost:%d/v1/station"):format(l.port))
      redirected((h.url:gsub("^https://127%.0%.0%.1", "https://localhost")) .. "/station")
    end)

    it("is refused for http:// on the same host, and the token never goes there", function()
      redirected(("http://127.0.0.1:%d/v1/station"):format(l.port))
      redirected((h.url:gsub("^https://", "http://")) .. "/station")
      redirected(h.http_url .. "/station")
    end)

    it("is refused for /authorize, and the password never goes there", function()
      c = core.new((fast { timeout = 5 }))
      fault { path = "/authorize", status = 307,
        headers = { Location = ("https://127.0.0.1:%d/v1/authorize"):format(l.port) } }
      local res, err = c:perform { path = { "station" }, json = true }
      assert.is_nil(res)
      assert.are.equal("redirect", err.kind)
      assert.are.equal(1, count(h.stats().by_endpoint, "POST /authorize"))
      assert.are.equal(0, count(h.stats().by_endpoint, "GET /station"))
      nothing_reached { h.password, h.username }
    end)
  end)

  describe("TLS", function()
    it("fails with kind tls, never retried, on a certificate for another name", function()
      local wrong = os.getenv("AS2G_WRONG_NAME_URL")
      if not wrong or wrong == "" then
        pending("AS2G_WRONG_NAME_URL is not set (a sandbox older than its wrong-name port)")
        return
      end
      c = core.new((fast { url = wrong, retries = 3 }))
      local res, err = c:perform { path = { "station" }, json = true }
      assert.is_nil(res)
      assert.are.equal("tls", err.kind)
      assert.are.equal(1, c:stats().requests)
      assert.are.equal(0, c:stats().retries)
      assert.are.equal(0, h.stats().requests) -- not even /authorize got through
    end)

    it("fails with kind tls, never retried, on a certificate from an unknown CA", function()
      local opts = fast { retries = 3 }
      opts.cainfo = nil
      c = core.new(opts)
      local res, err = c:perform { path = { "station" }, json = true }
      assert.is_nil(res)
      assert.are.equal("tls", err.kind)
      assert.are.equal(1, c:stats().requests)
      assert.are.equal(0, c:stats().retries)
      assert.are.equal(0, h.stats().requests)
    end)
  end)

  describe("a 206 batch answer", function()
    local ids

    before_each(function()
      ids = {
        h.inbound { attachments = { { name = "a1.txt", size = 10 },
          { name = "a2.txt", size = 20 } } },
        h.inbound { attachments = { { name = "b1.txt", size = 30 } } },
      }
      dir = mkdtemp()
    end)

    for _, case in ipairs {
      { what = "without X-Batch-Truncation-Index", index = false },
      { what = "with a garbage index", index = "garbage" },
      { what = "with an index beyond the IDs asked for", index = "(5,0)" },
      { what = "with a negative index", index = "(0,-1)" },
      { what = "with an empty index", index = "()" },
    } do
      it("is an error for every ID, written nowhere, never a loop (" .. case.what .. ")", function()
        c = as2gateway.new((fast()))
        fault { path = BATCH_PATH, override_status = 206, count = 50,
          headers = { ["X-Batch-Truncation-Index"] = case.index } }
        local results, report = c:download_batch(ids, { to = dir })
        assert.is_table(results)
        assert.is_table(report)
        for _, id in ipairs(ids) do
          assert.is_table(results[id].err, id)
          assert.are.equal("protocol", results[id].err.kind)
          assert.are.same({}, results[id].paths)
        end
        local by = h.stats().by_endpoint
        assert.are.equal(1, count(by, BATCH))
        assert.are.equal(0, count(by, ONE))
        assert.are.same({}, tree(dir))
      end)
    end

    it("that never advances (0,0) on every answer ends in a bounded number of requests",
      function()
        c = as2gateway.new((fast()))
        fault { path = BATCH_PATH, override_status = 206, count = 50,
          headers = { ["X-Batch-Truncation-Index"] = "(0,0)" } }
        local results = assert(c:download_batch(ids, { to = dir }))
        local by = h.stats().by_endpoint
        -- one batch per message, the rest of the first one attachment by attachment
        assert.is_true(count(by, BATCH) <= #ids, "batch requests: " .. count(by, BATCH))
        assert.is_true(h.stats().requests <= 8, "requests: " .. h.stats().requests)
        for _, id in ipairs(ids) do
          local r = results[id]
          assert.is_true(r.err ~= nil or #r.paths > 0, id)
        end
        for _, p in ipairs(tree(dir)) do
          assert.is_nil(p:match("^%./%."), "hidden file left: " .. p)
        end
      end)
  end)
end)
