-- The Redis quota engine (core.quota_redis): one account's window shared exactly by
-- hosts whose clocks disagree (Redis's TIME is the only clock), a crashed holder's
-- slot back when its lease ends, one login in all, and, when Redis fails, a local
-- share that never lets the account be exceeded, left again when Redis answers.
local h = require "helpers"
local core = require "as2gateway.core"
local support = require "quota.support"

describe("core.quota_redis", function()
  local dir, redis

  before_each(function() dir = h.mkdtemp() end)
  after_each(function()
    h.sh("pkill -KILL -f " .. h.quote(dir) .. " ; true") -- workers of this spec only
    if redis then redis.stop() end
    redis = nil
    h.rmtree(dir)
  end)

  -- A worker's config: group g ("host" g) with its own state folder and clock offset.
  local function cfg(g, extra, opts)
    local c = { kind = "redis", opts = { url = redis.url, account = "acme", requests = 20,
      window = 1, lease = 5, expected_hosts = 3, fallback_dir = dir .. "/host" .. g,
      clock_offset = (g - 2) * 2 } }
    for k, v in pairs(opts or {}) do c.opts[k] = v end
    for k, v in pairs(extra or {}) do c[k] = v end
    return c
  end

  local function run_groups(groups, per_group, extra, opts, during)
    local workers, start = {}, core.now() + 1
    for g = 1, groups do
      for i = 1, per_group do
        local e = { job = "cycles", seed = g * 10 + i, start_at = start }
        for k, v in pairs(extra) do e[k] = v end
        workers[#workers + 1] = support.worker(dir, ("g%d-%d"):format(g, i), cfg(g, e, opts))
      end
    end
    if during then during(workers) end
    local all = {}
    for _, w in ipairs(workers) do
      w.wait_done(180)
      for _, x in ipairs(support.admissions(w.text())) do all[#all + 1] = x end
    end
    return all, workers
  end

  local function pace(all, limit, window, margin)
    local first, last, busy = math.huge, 0, 0
    for _, x in ipairs(all) do
      first, last = math.min(first, x.a), math.max(last, x.r)
      busy = busy + (x.r - x.a) + window + margin
    end
    local ideal = busy / limit - (window + margin)
    return ideal / (last - first), last - first, ideal
  end

  it("admits no more than `requests` in any window across 3 hosts whose clocks differ",
    function()
      redis = support.redis()
      local all, workers = run_groups(3, 3, { cycles = 30, hold_min = 0, hold_max = 0.03 })
      assert.are.equal(270, #all)
      local worst = support.worst_window(all, 1)
      assert.is_true(worst <= 20, "a window could hold " .. worst .. " requests")
      local ratio, took, ideal = pace(all, 20, 1, 0.025)
      print(("\n  Redis engine, 3 hosts x 3 processes x 30: %.2f s against an ideal of "
        .. "%.2f s (%.1f %%)"):format(took, ideal, ratio * 100))
      assert.is_true(ratio > 0.8, ("%.2f s for an ideal of %.2f s"):format(took, ideal))
      for _, w in ipairs(workers) do
        assert.truthy(w.text():find("\nmode redis\n"), w.text())
        assert.falsy(w.text():find("\nev "), w.text()) -- never fell back
      end
    end)

  it("is never exceeded when Redis is killed mid-run and restarted, and uses it again",
    function()
      redis = support.redis()
      local opts = { requests = 12, lease = 1, retry_interval = 0.2 }
      local killed_at, back_at
      local all, workers = run_groups(3, 2, { cycles = 40, hold_min = 0, hold_max = 0.02 },
        opts, function(workers)
          h.wait_until(function() -- a few windows of traffic first
            local n = 0
            for _, w in ipairs(workers) do n = n + #support.admissions(w.text()) end
            return n >= 40
          end, 60, "no traffic")
          redis.kill()
          killed_at = core.now()
          core.sleep(4) -- past the hold (a lease and a window): the local shares admit
          assert(redis.start(), "the port was taken meanwhile")
          back_at = core.now()
        end)
      assert.are.equal(240, #all)
      local worst, at = support.worst_window(all, 1)
      assert.is_true(worst <= 12, ("a window could hold %d requests, at %.2f s after the kill")
        :format(worst, (at or 0) - killed_at))
      local during = 0
      for _, x in ipairs(all) do
        if x.a > killed_at and x.a < back_at then during = during + 1 end
      end
      assert.is_true(during > 0, "nothing admitted while Redis was down") -- a share, not a stop
      print(("\n  Redis down for %.1f s: %d admitted meanwhile by the local shares")
        :format(back_at - killed_at, during))
      for _, w in ipairs(workers) do
        local text = w.text()
        assert.truthy(text:find("\nev quota_fallback Redis at 127.0.0.1:%d+: "), text)
        assert.truthy(text:find("\nev quota_redis Redis at 127.0.0.1:%d+ answers again"), text)
        -- one outage, one fallback: the return takes the restarted Redis's new window
        local _, fallbacks = text:gsub("\nev quota_fallback ", "")
        assert.are.equal(1, fallbacks, text)
        assert.truthy(text:find("\nmode redis\n"), text)
      end
      -- Redis holds the window again
      assert.truthy(redis.cli("ZCARD", "as2g:{acme}:done"):match("^%d+") + 0 > 0)
    end)

  it("takes a Redis that lost the window without failing a call for an outage", function()
    redis = support.redis()
    local q = assert(core.quota_redis { url = redis.url, account = "acme", requests = 5,
      window = 0.5, lease = 0.5, retry_interval = 0.1 })
    for _ = 1, 5 do
      local wait, lease = q:acquire()
      assert.are.equal(0, wait)
      q:release(lease)
    end
    -- (a failover to an empty replica, a FLUSHALL): the connection never broke
    assert.truthy(redis.cli("FLUSHALL"):find("OK", 1, true))
    local wait = q:acquire()
    assert.is_true(wait > 0, "admitted into a window Redis forgot")
    local ev = q:events()
    assert.are.equal(1, #ev)
    assert.truthy(ev[1].message:find("no longer holds the window", 1, true), ev[1].message)
    -- after the hold (a lease and a window), the local share, then Redis again
    local modes = {}
    h.wait_until(function()
      local w, lease = q:acquire()
      if w == 0 then q:release(lease) else core.sleep(math.min(w, 0.05)) end
      modes[q:state().mode] = true
      return modes.redis and modes.dual
    end, 20, "Redis was not used again")
    assert.are.equal("quota_redis", q:events()[1].event)
    q:close()
  end)

  it("lets one host log in while the others wait for its token", function()
    redis = support.redis()
    local workers = {}
    for g = 1, 3 do
      for i = 1, 3 do
        workers[#workers + 1] = support.worker(dir, ("l%d-%d"):format(g, i),
          cfg(g, { job = "login", seed = g * 10 + i }))
      end
    end
    local logins, tokens = 0, {}
    for _, w in ipairs(workers) do
      w.wait_done(60)
      if w.text():find("\nlogin\n") then logins = logins + 1 end
      tokens[w.text():match("\ntoken (%S+)")] = true
    end
    assert.are.equal(1, logins)
    local n = 0
    for t in pairs(tokens) do
      n = n + 1
      assert.truthy(t:match("^tok%-%d+$"), t)
    end
    assert.are.equal(1, n)
    -- the login lock is gone, the token has a time to live
    assert.are.equal("0", redis.cli("EXISTS", "as2g:{acme}:login"):match("%d+"))
    assert.is_true(tonumber(redis.cli("PTTL", "as2g:{acme}:token"):match("%-?%d+")) > 0)
  end)

  it("gives a crashed holder's slot back when its lease ends, on Redis's clock", function()
    redis = support.redis()
    local c = cfg(1, { job = "hold" }, { requests = 1, window = 0.5, lease = 1.5 })
    local holder = support.worker(dir, "holder", c)
    local held = tonumber(h.wait_until(function()
      return holder.text():match("held %S+ (%S+)") end, 20, "no slot held"))
    holder.kill("KILL")
    local q = assert(core.quota_redis(cfg(2, nil, { requests = 1, window = 0.5,
      lease = 1.5 }).opts))
    local got
    h.wait_until(function()
      local wait, lease = q:acquire()
      if wait == 0 then got = core.now() assert(q:release(lease)) return true end
      core.sleep(math.min(wait, 0.05))
    end, 15, "the slot did not come back")
    assert.is_true(got >= held + 2, ("back %.2f s after the hold"):format(got - held))
    assert.is_true(got < held + 4, ("back %.2f s after the hold"):format(got - held))
    assert.are.equal("redis", q:state().mode)
    q:close()
  end)

  it("works over a Unix socket and with a password, and never says the password", function()
    redis = support.redis { password = "s3cret-pw" }
    for _, url in ipairs { redis.url, redis.unix_url } do
      local q = assert(core.quota_redis { url = url, account = "acme", requests = 2, window = 1 })
      local wait, lease = q:acquire()
      assert.are.equal(0, wait)
      assert.is_true(q:renew(lease))
      assert.is_true(q:release(lease))
      assert.are.equal("redis", q:state().mode)
      assert.are.same({}, q:events())
      q:close()
    end
    local q = assert(core.quota_redis { url = redis.url:gsub("s3cret%-pw", "wrong-pw"),
      account = "acme", requests = 2, window = 1 })
    assert.is_true(q:acquire() > 0) -- fell back: a hold first, never a guess
    local st = q:state()
    assert.are.equal("fallback", st.mode)
    local ev = q:events()
    assert.are.equal(1, #ev)
    assert.are.equal("quota_fallback", ev[1].event)
    assert.falsy(ev[1].message:find("pw", 1, true), ev[1].message)
    assert.falsy(st.last_error:find("pw", 1, true), st.last_error)
    assert.truthy(st.last_error:find("AUTH", 1, true), st.last_error)
    q:close()
  end)

  it("loads its scripts again when Redis has forgotten them", function()
    redis = support.redis()
    local q = assert(core.quota_redis { url = redis.url, account = "acme", requests = 5 })
    local _, lease = q:acquire()
    assert(q:release(lease))
    redis.cli("SCRIPT", "FLUSH")
    local wait
    wait, lease = q:acquire()
    assert.are.equal(0, wait)
    assert(q:release(lease))
    assert.are.equal("redis", q:state().mode)
    assert.are.equal(2, q:state().entries)
    q:close()
  end)

  it("admits nothing in fallback with a share of none, and Redis again when it is back",
    function()
      redis = support.redis()
      local q = assert(core.quota_redis { url = redis.url, account = "acme", requests = 5,
        window = 0.1, lease = 0.1, fallback_requests = 0, retry_interval = 0.05 })
      local _, lease = q:acquire()
      q:release(lease)
      redis.kill()
      local deadline = core.now() + 0.8
      while core.now() < deadline do
        local wait = q:acquire()
        assert.is_true(wait > 0)
        core.sleep(math.min(wait, 0.05))
      end
      assert.are.equal(0, q:state().limit)
      assert(redis.start(), "the port was taken meanwhile")
      h.wait_until(function()
        local wait, l = q:acquire()
        if wait == 0 then q:release(l) return true end
        core.sleep(math.min(wait, 0.05))
      end, 10, "Redis was not used again")
      q:close()
    end)

  it("raises on misuse and refuses bad URLs without quoting them", function()
    assert.has_error(function()
      core.quota_redis { url = "redis://x", account = "a", window = 1, retry_interval = 1 }
    end)
    assert.has_error(function() core.quota_redis { url = "redis://x", account = "a{b}" } end)
    assert.has_error(function() core.quota_redis { url = "redis://x" } end)
    assert.has_error(function()
      core.quota_redis { url = "redis://x", account = "a", hosts = 2 }
    end, "quota_redis: unknown option 'hosts'")
    for _, url in ipairs { "http://:pw@x", "redis://:pw@x:99999", "unix://:pw@relative" } do
      local q, err = core.quota_redis { url = url, account = "a" }
      assert.is_nil(q)
      assert.are.equal("invalid", err.kind)
      assert.falsy(tostring(err):find("pw", 1, true), tostring(err))
    end
    local q = assert(core.quota_redis { url = "redis://127.0.0.1:1", account = "a" })
    assert.has_error(function() q:release("0123456789abcdef") end)
    q:close()
  end)
end)
