-- The core under failures: retries of reads, never a duplicate send, clean downloads, error kinds.
local h = require "helpers"
local core = require "as2gateway.core"

local LIST = "GET /message/:kind"
local SEND = "POST /message/:station/:partner"
local SEND_PATH = "/message/ACME-AS2/AS2G-ECHO"

local fake_time = h.fake_time

local fault = h.fault

local function fast(extra)
  local t = fake_time()
  local o = { clock = t.clock, sleep = t.sleep }
  for k, v in pairs(extra or {}) do o[k] = v end
  return h.core_options(o), t
end

local function send(c, subject)
  return c:perform { method = "POST", path = SEND_PATH, query = { subject = subject },
    headers = { Name = "fault.txt" }, body = "payload of " .. subject, send = true }
end

-- Queued messages with this subject (the queue is held still by the caller).
local function queued(subject)
  local res = h.api("GET", "/message/queued", { query = { subject = subject } })
  assert.are.equal(200, res.status)
  return res.json.totalRecords, res.json.records
end

local mkdtemp = h.mkdtemp

local entries = h.entries

local rmtree = h.rmtree

describe("core faults", function()
  local c, dir

  before_each(function()
    h.reset()
  end)

  after_each(function()
    if c then c:close() end
    c = nil
    if dir then rmtree(dir) end
    dir = nil
  end)

  it("retries a GET through two 503s and succeeds", function()
    local events = {}
    local opts, t = fast { log = function(ev) events[#events + 1] = ev end }
    c = core.new(opts)
    fault { path = "/message/received", status = 503, count = 2 }
    local res, err = c:perform { path = { "message", "received" }, json = true }
    assert.is_nil(err)
    assert.are.equal(200, res.status)
    assert.are.equal(2, c:stats().retries)
    assert.are.equal(3, h.stats().by_endpoint[LIST])
    assert.is_true(t.total > 0, "no backoff between the attempts")
    local retries = 0
    for _, ev in ipairs(events) do
      if ev.event == "retry" then
        retries = retries + 1
        assert.are.equal(503, ev.status)
        assert.are.equal("http", ev.reason)
      end
    end
    assert.are.equal(2, retries)
  end)

  it("retries a GET whose answer was dropped", function()
    c = core.new((fast()))
    fault { path = "/message/received", drop_response = true }
    local res, err = c:perform { path = { "message", "received" }, json = true }
    assert.is_nil(err)
    assert.are.equal(200, res.status)
    -- retried by the core, or by libcurl itself on a fresh connection (a GET may be)
    assert.are.equal(2, h.stats().by_endpoint[LIST])
  end)

  it("fails a send answered 500 with unknown_outcome, without resending it", function()
    c = core.new((fast()))
    fault { path = SEND_PATH, method = "POST", status = 500 }
    local res, err = send(c, "five hundred")
    assert.is_nil(res)
    assert.are.equal("unknown_outcome", err.kind)
    assert.are.equal(500, err.status)
    assert.are.equal(1, h.stats().by_endpoint[SEND])
    assert.are.equal(0, c:stats().retries)
  end)

  it("fails a send whose answer was dropped with unknown_outcome; it was queued once", function()
    h.control("POST", "config", { queue_delay = 600 }) -- hold the queue still
    c = core.new((fast()))
    fault { path = SEND_PATH, method = "POST", drop_response = true }
    local res, err = send(c, "dropped answer")
    assert.is_nil(res)
    assert.are.equal("unknown_outcome", err.kind)
    assert.matches("queued", err.message)
    assert.are.equal(1, h.stats().by_endpoint[SEND])
    assert.are.equal(0, c:stats().retries)
    assert.are.equal(1, (queued("dropped answer")))
  end)

  it("retries a send answered 429 and enqueues it exactly once", function()
    h.control("POST", "config", { queue_delay = 600 })
    local opts, t = fast()
    c = core.new(opts)
    fault { path = SEND_PATH, method = "POST", status = 429, retry_after = 1 }
    local res, err = send(c, "rate limited send")
    assert.is_nil(err)
    assert.are.equal(202, res.status)
    assert.is_string(res.link)
    assert.are.equal(2, h.stats().by_endpoint[SEND])
    assert.are.equal(1, c:stats().retries)
    assert.is_true(t.total >= 1)
    assert.are.equal(1, (queued("rate limited send")))
  end)

  it("retries a send whose connection was refused (nothing went out)", function()
    local t = fake_time()
    c = core.new { url = "https://127.0.0.1:1/v1", token = "t.t.t", retries = 2,
      clock = t.clock, sleep = t.sleep, cainfo = h.ca }
    local res, err = send(c, "refused")
    assert.is_nil(res)
    assert.are.equal("network", err.kind)
    assert.are.equal(2, c:stats().retries)
    assert.are.equal(3, c:stats().requests)
  end)

  describe("a download cut off mid-body", function()
    local id, size, path

    before_each(function()
      size = 256 * 1024
      id = h.inbound { attachments = { { name = "big.bin", size = size } } }
      dir = mkdtemp()
      path = dir .. "/big.bin"
    end)

    local function cut(count)
      fault { path = "/message/received/" .. h.escape(id) .. "/attachments/0",
        close_after_bytes = 1000, count = count }
    end

    local function download()
      return c:perform { path = { "message", "received", id, "attachments", "0" },
        to_file = path }
    end

    it("leaves no file and no temporary file when the retries run out", function()
      c = core.new((fast { retries = 2 }))
      cut(10)
      local res, err = download()
      assert.is_nil(res)
      assert.are.equal("network", err.kind)
      assert.are.equal(2, c:stats().retries)
      assert.is_nil(io.open(path, "rb"))
      assert.are.same({}, entries(dir))
    end)

    it("leaves no file and no temporary file with retries = 0", function()
      c = core.new((fast { retries = 0 }))
      cut(1)
      local res, err = download()
      assert.is_nil(res)
      assert.is_table(err)
      assert.are.equal(0, c:stats().retries)
      assert.are.same({}, entries(dir))
    end)

    it("writes the whole file, once, when a retry succeeds", function()
      c = core.new((fast()))
      cut(1)
      local res, err = download()
      assert.is_nil(err)
      assert.are.equal(path, res.path)
      assert.are.equal(size, res.bytes)
      local got = h.read_file(path)
      assert.are.equal(size, #got)
      local want = h.api("GET", "/message/received/" .. h.escape(id) .. "/attachments/0").body
      assert.is_true(got == want, "the downloaded bytes differ")
      assert.are.same({ "big.bin" }, entries(dir))
    end)
  end)

  it("fails with kind http and the status on a 503 with retries = 0", function()
    c = core.new((fast { retries = 0 }))
    fault { path = "/message/received", status = 503, message = "down for maintenance" }
    local res, err = c:perform { path = { "message", "received" } }
    assert.is_nil(res)
    assert.are.equal("http", err.kind)
    assert.are.equal(503, err.status)
    assert.matches("down for maintenance", err.message)
    assert.matches("HTTP 503", tostring(err))
    assert.are.equal(1, h.stats().by_endpoint[LIST])
  end)

  it("fails with kind network when the connection is refused", function()
    c = core.new(h.core_options { url = "https://127.0.0.1:1/v1", retries = 1,
      backoff_base = 0.01, backoff_cap = 0.02 })
    local started = os.time()
    local res, err = c:perform { path = { "station" } }
    assert.is_nil(res)
    assert.are.equal("network", err.kind)
    assert.is_nil(err.status)
    assert.are.equal(1, c:stats().retries)
    assert.are.equal(2, c:stats().requests)
    assert.is_true(os.time() - started <= 2)
  end)

  it("fails with kind timeout on a slow answer", function()
    c = core.new(h.core_options { timeout = 0.3, retries = 0 })
    assert.is_nil(select(2, c:perform { path = { "station" } }))
    -- answered late and without being processed: nothing reaches a later test's window
    fault { path = "/station", delay_ms = 1000, status = 503 }
    local res, err = c:perform { path = { "station" } }
    assert.is_nil(res)
    assert.are.equal("timeout", err.kind)
  end)

  it("fails with kind tls, never retried, when the gateway's CA is unknown", function()
    local o = h.core_options { retries = 3 }
    o.cainfo = nil
    c = core.new(o)
    local res, err = c:perform { path = { "station" } }
    assert.is_nil(res)
    assert.are.equal("tls", err.kind)
    assert.are.equal(1, c:stats().requests)
    assert.are.equal(0, c:stats().retries)
    assert.are.equal(0, h.stats().requests)
  end)
end)
