-- Every call ends in bounded time with the truth: a file that shrinks while it is
-- sent, a clock hook gone wrong, an endless answer trickled slowly; and what the core
-- returns counts in integers. (A Retry-After past the cap: ratelimit_spec.lua.)
local h = require "helpers"
local hostile = require "hostile_server"
local core = require "as2gateway.core"

local SEND = "POST /message/:station/:partner"

local STATIONS = { path = { "station" }, json = true }

local function is_integer(v)
  if math.type then return math.type(v) == "integer" end
  return type(v) == "number" and v % 1 == 0 -- LuaJIT has no integer subtype
end

describe("bounded calls", function()
  local c, dir, srv

  before_each(function()
    h.reset()
    dir = h.mkdtemp()
  end)

  after_each(function()
    if c then c:close() end
    if srv then srv:stop() end
    c, srv = nil, nil
    h.rmtree(dir)
  end)

  describe("a file that changes while it is sent", function()
    -- A 2 MB file and a progress hook that rewrites it once the upload has begun.
    local function send_changing(change, body)
      local path = dir .. "/invoice.edi"
      h.write_file(path, ("x"):rep(2 * 1024 * 1024))
      local changed = false
      c = core.new(h.core_options { low_speed_time = 5, progress = function(ul_now)
        if ul_now > 0 and not changed then
          changed = true
          change(path)
        end
      end })
      local spec = { method = "POST", path = "/message/ACME-AS2/AS2G-ECHO",
        headers = { Name = "invoice.edi" }, send = true, json = true }
      if body == "pieces" then
        spec.body_pieces = { "head\n", { path = path }, "\ntail" }
        spec.headers["Content-Type"] = "text/plain"
      else
        spec.body_file = path
      end
      local res, err = c:perform(spec)
      assert.is_true(changed)
      return res, err
    end

    local function assert_io_and_nothing_enqueued(res, err)
      assert.is_nil(res)
      assert.equal("io", err.kind)
      assert.matches("changed while it was being sent", err.message)
      h.advance(5)
      assert.equal(0, h.api("GET", "/message/queued").json.totalRecords)
      assert.equal(1, h.api("GET", "/message/sent").json.totalRecords) -- the seed's
    end

    it("ends at once with io when it shrinks (not a 30 s stall, not unknown_outcome)", function()
      assert_io_and_nothing_enqueued(send_changing(function(path)
        h.write_file(path, "short now")
      end))
      assert.equal(1, h.stats().by_endpoint[SEND])
    end)

    local function grow(path)
      local f = assert(io.open(path, "ab"))
      f:write(("y"):rep(4 * 1024 * 1024))
      f:close()
    end

    it("ends with io when it grows, rather than send a part of it", function()
      assert_io_and_nothing_enqueued(send_changing(grow))
    end)

    it("ends with io when a file of a body of pieces (multipart) grows or shrinks", function()
      assert_io_and_nothing_enqueued(send_changing(grow, "pieces"))
      c:close()
      assert_io_and_nothing_enqueued(send_changing(function(path)
        h.write_file(path, "short now")
      end, "pieces"))
    end)
  end)

  describe("a clock hook that goes wrong", function()
    for _, bad in ipairs { { "NaN", 0 / 0 }, { "1e300", 1e300 }, { "-inf", -math.huge },
                           { "a string", "soon" } } do
      it("raises a clear error when it returns " .. bad[1], function()
        local calls = 0
        c = core.new(h.core_options { clock = function()
          calls = calls + 1
          return calls > 1 and bad[2] or core.now()
        end })
        local ok, err = pcall(c.perform, c, STATIONS)
        assert.is_false(ok)
        assert.matches("clock must return a finite number of seconds", tostring(err))
      end)
    end

    it("refuses numeric options that are not finite or absurdly large", function()
      for _, o in ipairs { { timeout = 0 / 0 }, { timeout = math.huge },
                           { connect_timeout = 1e300 }, { retries = 1e12 },
                           { rate_limit = { requests = 1e300, window = 1 } },
                           { token_expiry = 1e300 } } do
        assert.has_error(function() core.new(h.core_options(o)) end)
      end
    end)
  end)

  describe("an endless answer trickled slowly", function()
    local function trickler()
      srv = hostile.start [[
        function handle(req, n)
          if req.path == "/v1/authorize" then return login { expiry = now_ms() + 3600000 } end
          if req.path == "/v1/error" then
            return 500, { ["Content-Type"] = "application/json" }, { endless = 300 }
          end
          return 200, { ["Content-Type"] = "application/json" }, { endless = 300 }
        end
      ]]
    end

    it("ends a JSON call with timeout after json_timeout, not retried", function()
      trickler()
      c = core.new { url = srv.url, username = "u", password = "p", json_timeout = 1.5 }
      local started = core.now()
      local res, err = c:perform { path = { "station" }, json = true }
      assert.is_nil(res)
      assert.equal("timeout", err.kind)
      assert.matches("json_timeout", err.message)
      assert.equal(1, srv:count("/v1/station"))
      assert.is_true(core.now() - started < 30)
    end)

    it("bounds an endless error page of a download the same way", function()
      trickler()
      c = core.new { url = srv.url, username = "u", password = "p", json_timeout = 1.5,
        retries = 0 }
      local res, err = c:perform { path = { "error" }, to_file = dir .. "/out" }
      assert.is_nil(res)
      assert.equal("timeout", err.kind)
      assert.same({}, h.entries(dir))
    end)

    it("takes json_timeout = 0 to turn the deadline off, and refuses a negative one", function()
      assert.has_error(function() core.new(h.core_options { json_timeout = -1 }) end)
      c = core.new(h.core_options { json_timeout = 0 })
      assert(c:perform(STATIONS))
    end)
  end)

  describe("numbers", function()
    it("are integers: sizes, counts, statuses and timestamps", function()
      local id = h.inbound { attachments = { { name = "a.bin", size = 1048577 } } }
      c = core.new(h.core_options())
      local res = assert(c:perform { path = { "message", "received", id, "attachments", "0" },
        sink = function() end })
      assert.equal(1048577, res.bytes)
      assert.is_true(is_integer(res.bytes))
      assert.is_true(is_integer(res.status))
      local _, expiry = c:token()
      assert.is_true(is_integer(expiry))
      local token, auth_expiry = c:authorize()
      assert.is_string(token)
      assert.is_true(is_integer(auth_expiry))
      local stats = c:stats()
      for k, v in pairs(stats) do
        if type(v) == "number" and k ~= "waited" then assert.is_true(is_integer(v), k) end
      end
      assert.equal("window", stats.quota.backend) -- strings: what the backend is
      h.write_file(dir .. "/f", ("z"):rep(12345))
      local kind, size = core.stat(dir .. "/f")
      assert.equal("file", kind)
      assert.equal(12345, size)
      assert.is_true(is_integer(size))
    end)
  end)
end)
