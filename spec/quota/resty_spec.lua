-- as2gateway.quota_resty in a real nginx (ngx_lua, the LuaJIT build of the core): the
-- same window as the C engine through the same scripts, waits that never block the
-- worker, the login lock and the token, and the fallback when Redis is gone.
local h = require "helpers"
local core = require "as2gateway.core"
local cjson = require "cjson"
local openresty = require "openresty.support"
local support = require "quota.support"

local LOCATIONS = [[
    location = /quota/cycles { content_by_lua_block { require("resty_app").cycles() } }
    location = /quota/state { content_by_lua_block { require("resty_app").state() } }
    location = /quota/token { content_by_lua_block { require("resty_app").token() } }
]]

describe("as2gateway.quota_resty", function()
  local redis, nginx

  after_each(function()
    if nginx then nginx.stop() end
    if redis then redis.stop() end
    nginx, redis = nil, nil
  end)

  local function get(path, query)
    local parts = {}
    for k, v in pairs(query) do parts[#parts + 1] = k .. "=" .. h.escape(tostring(v)) end
    table.sort(parts)
    local url = nginx.url .. path .. "?" .. table.concat(parts, "&")
    local out = h.sh("curl -sS -m 120 " .. h.quote(url))
    local ok, v = pcall(cjson.decode, out)
    assert(ok, out .. "\n" .. nginx.log())
    return v
  end

  it("shares one exact window across workers and with the C engine", function()
    redis = support.redis()
    nginx = openresty.start(2, LOCATIONS)
    -- the C engine holds 4 of the 10 slots: the workers must count them
    local c = assert(core.quota_redis { url = redis.url, account = "acme", requests = 10,
      window = 1, lease = 5 })
    local held = {}
    for i = 1, 4 do
      local wait, lease = c:acquire()
      assert.are.equal(0, wait)
      held[i] = lease
    end
    local st = get("/quota/state", { url = redis.unix_url })
    assert.are.equal(4, st.state.leases)
    assert.are.equal("redis", st.state.mode)
    for _, l in ipairs(held) do c:release(l) end
    local held_done = core.now()
    c:close()
    -- 4 concurrent requests of 12 cycles on 2 workers: 48 admissions
    local files, pids = {}, {}
    for i = 1, 4 do
      files[i] = h.tmpname()
      local url = nginx.url .. "/quota/cycles?hold=0.01&n=12&url=" .. h.escape(redis.url)
      pids[i] = h.sh(("curl -sS -m 120 -o %s %s & echo $!"):format(h.quote(files[i]),
        h.quote(url))):match("%d+")
    end
    -- meanwhile the workers answer other requests at once
    local t = core.now()
    assert.are.equal("200", h.sh("curl -s -o /dev/null -w '%{http_code}' " .. nginx.url
      .. "/plain"))
    assert.is_true(core.now() - t < 1)
    local all = {}
    for i = 1, 4 do
      h.wait_until(function() return not support.pid_alive(tonumber(pids[i])) end, 120,
        "a cycle request did not finish")
      local v = cjson.decode(h.read_file(files[i]))
      os.remove(files[i])
      assert.are.equal("redis", v.mode)
      for _, x in ipairs(v.admissions) do all[#all + 1] = { a = x[1], r = x[2] } end
    end
    assert.are.equal(48, #all)
    -- with the C engine's 4 released at held_done, as the gateway saw them
    for _ = 1, 4 do all[#all + 1] = { a = held_done - 0.01, r = held_done } end
    local worst = support.worst_window(all, 1)
    assert.is_true(worst <= 10, "a window could hold " .. worst)
    assert.are.equal("", nginx.log():match("%[error%].*") or "")
  end)

  it("takes the login lock once, shares the token, and falls back when Redis is gone",
    function()
      redis = support.redis { password = "pw-resty" }
      nginx = openresty.start(1, LOCATIONS)
      local v = get("/quota/token", { url = redis.url })
      assert.is_true(v.first)
      assert.is_false(v.other)
      assert.is_true(v.after)
      assert.are.equal("tok-resty", v.token)
      assert.are.equal(4102444800000, v.expiry)
      -- the C engine reads the same token
      local c = assert(core.quota_redis { url = redis.unix_url, account = "acme" })
      assert.are.same({ "tok-resty", 4102444800000 }, { c:token() })
      c:close()
      redis.kill()
      local st = get("/quota/state", { url = redis.url, requests = 10 })
      assert.are.equal("fallback", st.state.mode)
      assert.are.equal(1, #st.events)
      assert.are.equal("quota_fallback", st.events[1].event)
      assert.falsy(st.events[1].message:find("pw-resty", 1, true))
      -- ngx_lua logs the refused connection itself (lua_socket_log_errors); nothing else
      local refused = "[^\n]*connect%(%) failed %(111: Connection refused%)[^\n]*\n?"
      local log = nginx.log():gsub(refused, "")
      assert.are.equal("", log:match("%[error%].*") or "")
    end)
end)
