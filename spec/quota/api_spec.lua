-- The quota engines' one API (core.quota_local, core.quota_file, core.quota_redis), in
-- one process, under both ABIs (this file is in the `jit` run too): admission and
-- waits, cancel, renew, block, state, the token, the login lock, close.
local h = require "helpers"
local core = require "as2gateway.core"
local support = require "quota.support"

describe("the quota engines' API", function()
  local dir, redis

  setup(function()
    dir = h.mkdtemp()
    redis = support.redis()
  end)
  teardown(function()
    redis.stop()
    h.rmtree(dir)
  end)

  local engines = {
    ["local"] = function(o) return core.quota_local(o) end,
    file = function(o, name) o.dir = dir .. "/" .. name return core.quota_file(o) end,
    redis = function(o, name) o.url, o.account = redis.url, name return core.quota_redis(o) end,
  }

  for _, kind in ipairs { "local", "file", "redis" } do
    describe(kind, function()
      it("admits `requests` in a window, and says how long to wait for the next", function()
        local q = assert(engines[kind]({ requests = 3, window = 0.5, lease = 10 }, kind .. "1"))
        local leases = {}
        for i = 1, 3 do
          local wait, lease = q:acquire()
          assert.are.equal(0, wait)
          assert.truthy(lease:match("^%x+$") and #lease == 16, lease)
          leases[i] = lease
        end
        -- all three in flight: none frees before a window after its release
        local wait = q:acquire()
        assert.is_true(wait > 0.5 and wait <= 0.526, tostring(wait))
        assert.is_true(q:cancel(leases[3])) -- sent nothing: its slot is back at once
        local w2, l2 = q:acquire()
        assert.are.equal(0, w2)
        for _, l in ipairs { leases[1], leases[2], l2 } do assert.is_true(q:release(l)) end
        local st = q:state()
        assert.are.equal(kind, st.backend)
        assert.are.equal(3, st.entries)
        assert.are.equal(0, st.leases)
        assert.are.equal(3, st.limit)
        assert.is_true(st.wait > 0.45 and st.wait <= 0.526, tostring(st.wait))
        -- a window (and the margin) after the releases, a slot again
        core.sleep(st.wait)
        local w3, l3 = q:acquire()
        assert.are.equal(0, w3)
        assert.is_true(q:renew(l3))
        q:release(l3)
        q:close()
      end)

      it("blocks every admission for a while (a 429's Retry-After)", function()
        local q = assert(engines[kind]({ requests = 5 }, kind .. "2"))
        assert.is_true(q:block(0.3))
        local wait = q:acquire()
        assert.is_true(wait > 0.2 and wait <= 0.3, tostring(wait))
        core.sleep(wait)
        assert.are.equal(0, (q:acquire()))
        q:close()
      end)

      it("shares a token and a login lock (nothing to share in one process)", function()
        local a = assert(engines[kind]({}, kind .. "3"))
        local b = assert(engines[kind]({}, kind .. "3"))
        assert.is_nil(a:token())
        assert.is_true(a:login())
        assert.are.equal(kind == "local", b:login())
        assert.is_true(a:set_token("eyJ.x.y", 1893456000000))
        if kind == "local" then
          assert.is_nil(b:token())
        else
          assert.are.same({ "eyJ.x.y", 1893456000000 }, { b:token() })
        end
        a:login_done()
        if kind ~= "local" then assert.is_true(b:login()) end
        b:login_done()
        a:close()
        b:close()
        assert.are.equal("as2gateway.core.quota (closed)", tostring(a))
        assert.has_error(function() a:token() end, "the quota engine is closed")
      end)
    end)
  end

  it("refuses what is not a lease", function()
    local q = core.quota_local {}
    assert.has_error(function() q:release("xyz") end)
    assert.has_error(function() q:release(42) end)
    assert.has_error(function() core.quota_local { requests = -1 } end)
    assert.has_error(function() core.quota_local { window = "10" } end)
    q:close()
  end)
end)
