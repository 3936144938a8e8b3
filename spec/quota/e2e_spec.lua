-- The shared quota end to end: as2gateway clients in processes of their own, against
-- the sandbox's strict 50 / 10 s sliding window (/authorize included), with the
-- `quota` option: the file backend for the processes of one host, a Redis started here
-- for "hosts" (groups of processes, each with its own state folder and clock). What
-- counts is the sandbox's own tally: not one 429, exactly one login in all. The times
-- are printed and bounded generously (a loaded machine); docs/quota.md has the
-- figures measured.
local h = require "helpers"
local core = require "as2gateway.core"
local support = require "quota.support"

local WINDOW, LIMIT = 10, 50

describe("the shared quota, end to end #e2e", function()
  local dir, redis, workers

  before_each(function()
    h.reset()
    dir, workers = h.mkdtemp(), {}
  end)
  after_each(function()
    for _, w in ipairs(workers) do
      if support.pid_alive(w.pid) then w.kill("KILL") end
    end
    if redis then redis.stop() end
    redis = nil
    h.rmtree(dir)
  end)

  local function start(name, cfg)
    local c = { url = h.url, username = h.username, password = h.password, cainfo = h.ca }
    for k, v in pairs(cfg) do c[k] = v end
    local w = support.worker(dir, name, c, "spec/quota/client_worker.lua")
    workers[#workers + 1] = w
    return w
  end

  -- n requests in all over the workers `configs` gives (index -> cfg), started together.
  local function run(count, n, config)
    local at = core.now() + 2 -- every process started and loaded by then
    local per = math.floor(n / count)
    for i = 1, count do
      local cfg = config(i)
      cfg.n, cfg.start_at = i == count and n - per * (count - 1) or per, at
      start("w" .. i, cfg)
    end
  end

  -- Waits for every worker and checks the sandbox's tally: `requests` in all, not one
  -- 429, one login, no request failed. Returns the span (first start to last end),
  -- the events seen ({name = count}) and the workers' stats.
  local function finish(timeout, requests)
    local first, last, events, stats, failures = math.huge, 0, {}, {}, {}
    for _, w in ipairs(workers) do
      w.wait_done(timeout)
      local t = "\n" .. w.text()
      first = math.min(first, tonumber(t:match("\nstart (%S+)")))
      last = math.max(last, tonumber(t:match("\nend (%S+)")))
      for name in t:gmatch("\nev (%S+)") do events[name] = (events[name] or 0) + 1 end
      stats[#stats + 1] = h.json_decode(t:match("\nstats (%b{})"))
      for f in t:gmatch("\nfail ([^\n]*)") do failures[#failures + 1] = f end
    end
    assert.same({}, failures)
    local tally = h.stats()
    assert.equal(requests, tally.requests)
    assert.equal(0, tally.rate_limited)
    assert.equal(1, tally.authorizations)
    return last - first, events, stats
  end

  local function report(what, span, ideal)
    io.stderr:write(("\n[quota e2e] %s: %.2f s for an ideal of %.2f s (%.1f %%)\n")
      :format(what, span, ideal, 100 * ideal / span))
  end

  it("6 processes on one host, file backend: 300 requests, no 429, one login", function()
    local folder = dir .. "/state"
    run(6, 299, function() return { quota = "file:" .. folder } end) -- + 1 login = 300
    local span, events, stats = finish(180, 300)
    local shared = 0
    for _, st in ipairs(stats) do
      assert.equal("file", st.quota.backend)
      assert.equal(0, st.ratelimited)
      shared = shared + st.tokens_shared
    end
    assert.equal(5, shared) -- the other five took the one login's token
    assert.is_nil(events.reauth)
    local ideal = 300 / LIMIT * WINDOW - WINDOW
    report("6 processes, file", span, ideal)
    assert.is_true(span >= ideal, "faster than the window allows: " .. span)
    assert.is_true(span <= ideal * 1.25, "far slower than ideal: " .. span)
    -- the token file: the owner's alone
    assert.equal("600", h.sh("stat -c %a " .. h.quote(folder .. "/token")):match("%d+"))
    assert.equal("700", h.sh("stat -c %a " .. h.quote(folder)):match("%d+"))
  end)

  it("3 hosts of 3 processes, clocks -2 s, 0, +2 s, one Redis: no 429, one login",
    function()
      redis = support.redis()
      run(9, 299, function(i)
        local g = (i - 1) // 3 + 1
        return { clock_offset = (g - 2) * 2, quota = { redis = redis.url,
          expected_hosts = 3, fallback_dir = dir .. "/host" .. g, clock_offset = (g - 2) * 2 } }
      end)
      local span, events, stats = finish(180, 300)
      for _, st in ipairs(stats) do
        assert.equal("redis", st.quota.backend)
        assert.equal("redis", st.quota.mode)
        assert.equal(0, st.quota.fallbacks)
      end
      assert.is_nil(events.quota_fallback)
      local ideal = 300 / LIMIT * WINDOW - WINDOW
      report("3 x 3 processes, Redis", span, ideal)
      assert.is_true(span >= ideal, "faster than the window allows: " .. span)
      assert.is_true(ideal / span >= 0.8, "far below the ideal throughput: " .. span)
    end)

  it("Redis killed mid-run and restarted: no 429, the fallback logged, Redis used again",
    function()
      redis = support.redis()
      local opts = { lease = 5 } -- the hold after a failure is lease + window
      run(3, 199, function(g)
        return { quota = { redis = redis.url, expected_hosts = 3, lease = opts.lease,
          fallback_dir = dir .. "/host" .. g } }
      end)
      -- the first window is used up, then Redis dies; it comes back 5 s later
      h.wait_until(function() return h.stats().requests > 55 end, 60, "the first window")
      redis.kill()
      local killed = core.now()
      core.sleep(5)
      assert.is_true(redis.start())
      local back = core.now()
      local span, events, stats = finish(240, 200)
      -- every host still at work when Redis died logs its fallback and Redis's return,
      -- and counts them (a host may be done before: the one that logged in takes the
      -- whole first window while the others wait for its token)
      local seen, running = {}, 0
      for i, w in ipairs(workers) do
        local t = "\n" .. w.text()
        local lines = {}
        for l in t:gmatch("\nev (quota_[^\n]*)") do lines[#lines + 1] = l end
        seen[i] = ("host %d: ended %.1f s after the kill, fallbacks %d, returns %d, mode %s;"
          .. " %s"):format(i, tonumber(t:match("\nend (%S+)")) - killed,
          stats[i].quota.fallbacks, stats[i].quota.returns, stats[i].quota.mode,
          table.concat(lines, " | "))
      end
      seen = table.concat(seen, "\n")
      for i, w in ipairs(workers) do
        local t = "\n" .. w.text()
        if tonumber(t:match("\nend (%S+)")) > killed then
          running = running + 1
          assert.matches("\nev quota_fallback ", t, 1, false, seen)
          assert.matches("\nev quota_redis ", t, 1, false, seen)
          assert.is_true(stats[i].quota.fallbacks >= 1, seen)
          assert.is_true(stats[i].quota.returns >= 1, seen)
          assert.not_equal("fallback", stats[i].quota.mode, seen) -- "redis", or "dual" just after
        end
      end
      assert.is_true(running >= 2, "too few hosts outlived the kill\n" .. seen)
      assert.is_true(events.quota_fallback >= 2 and events.quota_redis >= 2, seen)
      -- Redis holds the window again: the requests after its return are in it
      assert.is_true(tonumber(redis.cli("DBSIZE"):match("%d+")) > 0)
      io.stderr:write(("\n[quota e2e] Redis down %.1f s: 200 requests in %.2f s\n")
        :format(back - killed, span))
    end)

  local function held_slot(quota, engine, bound)
    -- one request, then one whose answer the sandbox holds back: killed in between
    assert.equal(200, select(2, h.control("POST", "faults",
      { path = "/station*", method = "GET", delay_ms = 30000 })))
    local w = start("holder", { n = 1, hold = true, quota = quota })
    h.wait_until(function() return w.text():find("\nholding\n") end, 30, "the held request")
    h.wait_until(function()
      local st = engine:state()
      return st.leases == 1 and st.entries >= 2
    end, 30, "the held slot")
    w.kill("KILL")
    local killed = core.now()
    h.wait_until(function()
      local st = engine:state()
      return st.leases == 0 and st.entries == 0
    end, bound + 10, "the slot back")
    local took = core.now() - killed
    io.stderr:write(("\n[quota e2e] a SIGKILLed holder's slot back %.2f s after its death\n")
      :format(took))
    return took
  end

  it("a process SIGKILLed holding a slot: the slot comes back within its lease (file)",
    function()
      local folder = dir .. "/state"
      local engine = assert(core.quota_file { dir = folder })
      local took = held_slot("file:" .. folder, engine, 60)
      assert.is_true(took <= 60, "not within the lease: " .. took) -- seen dead: a window
      engine:close()
    end)

  it("a process SIGKILLed holding a slot: the slot comes back within its lease (Redis)",
    function()
      redis = support.redis()
      local engine = assert(core.quota_redis { url = redis.url, account = "held", lease = 5 })
      local took = held_slot({ redis = redis.url, account = "held", lease = 5 }, engine, 5 + 10)
      assert.is_true(took <= 5 + WINDOW + 1, "not within lease and window: " .. took)
      engine:close()
    end)
end)
