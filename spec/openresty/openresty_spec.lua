-- The client inside nginx (ngx_lua, LuaJIT build of the core): it works, it does not
-- block the worker while it waits on the gateway, and with several workers the
-- account's rate limit and token are shared through a lua_shared_dict.
local h = require "helpers"
local support = require "openresty.support"
local cjson = require "cjson"

local function sh(cmd)
  local p = io.popen(cmd)
  local out = p:read("a")
  p:close()
  return out
end

local get = support.get

describe("as2gateway.openresty", function()
  local suite = support.suite(before_each, after_each)
  local nginx

  it("sends a file and lists received messages from nginx locations", function()
    nginx = suite.start(1)
    local out = sh(("curl -sS -w '\\n%%{http_code}' --data-binary 'hello from nginx' %s")
      :format(h.quote(nginx.url .. "/send?name=hello.txt")))
    local body, code = out:match("^(.*)\n(%d+)$")
    assert.are.equal("200", code, out)
    local sent = cjson.decode(body)
    assert.truthy(sent.as2MessageId:match("^<.+@.+>$"), body)
    assert.truthy(sent.link:find(h.escape(sent.as2MessageId), 1, true), body)
    local status, page = get(nginx.url .. "/received")
    assert.are.equal(200, status)
    assert.are.equal(2, page.totalRecords) -- the seed's unread production messages
    -- the echo partner answers once the sandbox's queue has sent the message
    h.advance(5)
    status, page = get(nginx.url .. "/received")
    assert.are.equal(200, status)
    assert.are.equal(3, page.totalRecords)
    assert.are.equal("", nginx.log():match("%[error%].*") or "")
  end)

  it("works in the rewrite and access phases and in timers", function()
    nginx = suite.start(1)
    for _, path in ipairs { "/rewrite", "/access", "/timer" } do
      local status, body = get(nginx.url .. path)
      assert.are.equal(200, status, path)
      assert.are.equal(2, body.totalRecords, path)
    end
    assert.are.equal("", nginx.log():match("%[error%].*") or "")
  end)

  it("keeps serving a worker's other requests while 5 calls wait 2 s on the gateway",
    function()
      nginx = suite.start(1)
      assert.are.equal(200, (get(nginx.url .. "/received"))) -- login and connection first
      h.control("POST", "faults", { path = "/message/received", method = "GET",
        delay_ms = 2000, count = 5 })
      local marks = h.tmpname()
      local function listings() return (h.stats().by_endpoint or {})["GET /message/:kind"] or 0 end
      local before = listings()
      local bg = {}
      for i = 1, 5 do
        bg[i] = ("curl -s -o /dev/null -w '%%{http_code} %%{time_total}\\n' %s >> %s &")
          :format(h.quote(nginx.url .. "/received"), h.quote(marks))
      end
      os.execute(table.concat(bg, " ") .. " true")
      -- the 5 calls are waiting on the gateway once it has counted them
      h.wait_until(function() return listings() >= before + 5 end, 30,
        "the 5 delayed calls did not reach the sandbox")
      -- 50 plain requests to the same worker while those wait
      local out = sh(("for i in $(seq 50); do curl -s -o /dev/null -w '%%{http_code} "
        .. "%%{time_total}\\n' %s; done"):format(h.quote(nginx.url .. "/plain")))
      local n, slowest = 0, 0
      for code, t in out:gmatch("(%d+) ([%d.]+)") do
        assert.are.equal("200", code)
        n = n + 1
        slowest = math.max(slowest, tonumber(t))
      end
      assert.are.equal(50, n)
      assert.is_true(slowest < 0.1, "slowest plain request took " .. slowest .. " s")
      -- the slow calls were still waiting then, and all end well
      h.wait_until(function()
        local _, lines = (h.read_file(marks) or ""):gsub("\n", "")
        return lines >= 5
      end, 60, "the 5 delayed calls did not end")
      local done = 0
      for code, t in (h.read_file(marks) or ""):gmatch("(%d+) ([%d.]+)") do
        assert.are.equal("200", code)
        assert.is_true(tonumber(t) >= 1.9, "a delayed call took only " .. t .. " s")
        done = done + 1
      end
      assert.are.equal(5, done)
      os.remove(marks)
    end)

  it("shares the rate limit and the token between 4 workers: 200 calls, no 429, one login",
    function()
      nginx = suite.start(4)
      -- one file per call: parallel curls would interleave on a shared pipe; the body
      -- ends with ngx.say's newline and the status follows on its own line
      local dir = h.tmpname()
      os.execute("mkdir -p " .. h.quote(dir))
      sh(("seq 200 | xargs -P 16 -I{} sh -c \"curl -s -w '%%{http_code}\\n' %s > %s/{}\"")
        :format(h.quote(nginx.url .. "/received?n=1"), dir))
      local ok, workers = 0, {}
      for i = 1, 200 do
        local out = h.read_file(dir .. "/" .. i) or ""
        local body, code = out:match("^([^\n]*)\n(%d+)\n$")
        assert.are.equal("200", code, out)
        ok = ok + 1
        workers[cjson.decode(body).worker] = true
      end
      os.execute("rm -rf " .. h.quote(dir))
      assert.are.equal(200, ok)
      local served = 0
      for _ in pairs(workers) do served = served + 1 end
      assert.is_true(served > 1, "the calls were not spread over the workers")
      local stats = h.stats()
      assert.are.equal(0, stats.rate_limited)
      assert.are.equal(1, stats.authorizations)
      assert.are.equal(201, stats.requests)
    end)

  it("shares a 2-minute token (shorter than the old fixed margin) without logging in again",
    function()
      h.config { token_lifetime = 120 }
      nginx = suite.start(2)
      for _ = 1, 6 do
        -- bounded: a worker that logs in endlessly would hold the call for minutes
        local out = sh("curl -sS -m 20 -w '\n%{http_code}' " .. h.quote(nginx.url .. "/received"))
        assert.are.equal("200", out:match("(%d+)$"), out)
      end
      assert.are.equal(1, h.stats().authorizations)
      assert.are.equal("", nginx.log():match("%[error%].*") or "")
    end)
end)
