-- Inside nginx: several gateway calls of one worker in flight at once over its pool of
-- kept-alive connections, deadlines and fail-fast, and calls dropped when their
-- downstream client goes away.
local h = require "helpers"
local support = require "openresty.support"
local cjson = require "cjson"

local get = support.get

-- Runs `n` curls of `url` at once; their "code seconds" lines, and the wall time.
local function parallel(n, url, extra)
  local marks = h.tmpname()
  local cmds = {}
  for i = 1, n do
    cmds[i] = ("curl -s %s -o /dev/null -w '%%{http_code} %%{time_total}\\n' %s >> %s &")
      :format(extra or "", h.quote(url), h.quote(marks))
  end
  local t0 = h.now()
  os.execute(table.concat(cmds, " ") .. " wait")
  local wall = h.now() - t0
  local lines = {}
  for code, t in (h.read_file(marks) or ""):gmatch("(%d+) ([%d.]+)") do
    lines[#lines + 1] = { code = tonumber(code), time = tonumber(t) }
  end
  os.remove(marks)
  return lines, wall
end

describe("as2gateway.openresty limits", function()
  local suite = support.suite(before_each, after_each)
  local nginx

  it("runs 8 calls of one worker at once, each delayed 1 s: all in 1.5 s, connections kept",
    function()
      nginx = suite.start(1)
      assert.are.equal(200, (get(nginx.url .. "/received"))) -- login, first connection
      h.fault { path = "/message/received", method = "GET", delay_ms = 1000, count = 8 }
      local lines, wall = parallel(8, nginx.url .. "/received")
      assert.are.equal(8, #lines)
      local slowest = 0
      for _, l in ipairs(lines) do
        assert.are.equal(200, l.code)
        slowest = math.max(slowest, l.time)
      end
      print(("\n  8 calls delayed 1 s: slowest %.3f s, all %.3f s"):format(slowest, wall))
      assert.is_true(slowest >= 0.95, "a delayed call took only " .. slowest .. " s")
      assert.is_true(slowest <= 1.5, "the slowest call took " .. slowest .. " s")
      -- at most one connection per call in flight, and the next 8 calls reuse them
      local conns = h.stats().connections
      assert.is_true(conns <= 9, conns .. " connections for 9 calls")
      lines = parallel(8, nginx.url .. "/received")
      for _, l in ipairs(lines) do assert.are.equal(200, l.code) end
      local stats = h.stats()
      assert.are.equal(conns, stats.connections)
      assert.are.equal(18, stats.requests) -- the login, 1 + 8 + 8 listings
      assert.are.equal(1, stats.authorizations)
      local _, mine = get(nginx.url .. "/stats")
      assert.are.equal(8, mine.pool.size)
      assert.is_true(mine.pool.open >= 2 and mine.pool.open <= 8, cjson.encode(mine.pool))
      assert.are.equal("", nginx.log():match("%[error%].*") or "")
    end)

  it("ends a call at its deadline, whatever holds it, and fails fast on the rate limit",
    function()
      nginx = suite.start(1)
      -- the slow lane's login takes its one slot in 8 s: the call would wait ~8 s
      local t0 = h.now()
      local code, res = get(nginx.url .. "/limits?lane=slow&deadline=2")
      local wall = h.now() - t0
      assert.are.equal(200, code)
      assert.are.equal("ratelimited", res.kind, cjson.encode(res))
      assert.is_true(res.retry_after >= 6 and res.retry_after <= 9, cjson.encode(res))
      print(("\n  deadline 2 s, rate limit 8 s away: %s after %.3f s (curl %.3f s)")
        :format(res.kind, res.took, wall))
      assert.is_true(res.took <= 2.1, cjson.encode(res))
      -- fail-fast: at once
      code, res = get(nginx.url .. "/limits?lane=slow&fail_fast=1")
      assert.are.equal(200, code)
      assert.are.equal("ratelimited", res.kind, cjson.encode(res))
      print(("  fail_fast: %s after %.3f s"):format(res.kind, res.took))
      assert.is_true(res.took < 0.5, cjson.encode(res))
      -- a transfer the gateway holds 5 s: stopped at the deadline
      assert.are.equal(200, (get(nginx.url .. "/received"))) -- login first
      h.fault { path = "/message/received", method = "GET", delay_ms = 5000 }
      code, res = get(nginx.url .. "/limits?deadline=2")
      assert.are.equal(200, code)
      assert.are.equal("timeout", res.kind, cjson.encode(res))
      print(("  deadline 2 s, answer 5 s away: %s after %.3f s"):format(res.kind, res.took))
      assert.is_true(res.took >= 1.9 and res.took <= 2.1 + 0.4, cjson.encode(res))
      -- a send stopped in flight says its outcome is unknown
      h.fault { path = "/message/ACME-AS2/AS2G-ECHO", method = "POST", delay_ms = 5000 }
      code, res = get(nginx.url .. "/limits_send?deadline=2")
      assert.are.equal(200, code)
      assert.are.equal("unknown_outcome", res.kind, cjson.encode(res))
      assert.truthy(res.message:find("deadline", 1, true), res.message)
      print(("  deadline 2 s on a send held 5 s: %s after %.3f s"):format(res.kind, res.took))
      assert.is_true(res.took <= 2.5, cjson.encode(res))
      -- with time enough, the same call goes through
      code, res = get(nginx.url .. "/limits?deadline=10")
      assert.are.equal(200, code)
      assert.is_true(res.ok, cjson.encode(res))
      assert.are.equal("", nginx.log():match("%[error%].*") or "")
    end)

  it("drops 10 queued calls whose downstream clients went away: they never reach the gateway",
    function()
      nginx = suite.start(1)
      -- the slow lane logs in (its one slot in 8 s), the call fails fast
      local _, res = get(nginx.url .. "/limits?lane=slow&fail_fast=1")
      assert.are.equal("ratelimited", res.kind, cjson.encode(res))
      local before = h.stats().requests
      -- 10 calls wait for the rate limit; their clients give up after 1 s
      local lines = parallel(10, nginx.url .. "/limits?lane=slow", "-m 1")
      assert.are.equal(10, #lines)
      for _, l in ipairs(lines) do assert.are.equal(0, l.code) end -- curl gave up
      -- once the window lets a call go, a fresh one does: only it reaches the gateway
      h.wait_until(function()
        local _, r = get(nginx.url .. "/limits?lane=slow&fail_fast=1")
        return r.ok
      end, 20, "the slow lane's window did not open", 0.5)
      assert.are.equal(before + 1, h.stats().requests)
      local _, lane = get(nginx.url .. "/lane_stats")
      assert.are.equal(2, lane.requests) -- its login and the one call
      assert.are.equal("", nginx.log():match("%[error%].*") or "")
    end)

  it("gets a connection back from a call whose thread was killed in flight", function()
    nginx = suite.start(1)
    assert.are.equal(200, (get(nginx.url .. "/after_kill"))) -- login, the connection
    h.fault { path = "/message/received", method = "GET", delay_ms = 1000 }
    local before = h.stats().requests
    assert.are.equal(200, (get(nginx.url .. "/killed")))
    h.wait_until(function() return h.stats().requests > before end, 10,
      "the killed call did not reach the sandbox")
    local code, res = get(nginx.url .. "/after_kill")
    assert.are.equal(200, code)
    assert.is_true(res.ok, cjson.encode(res))
    local log = nginx.log()
    assert.truthy(log:find("a call's thread ended before the call did", 1, true), log)
    assert.is_nil(log:find("runtime error", 1, true), log)
  end)
end)
