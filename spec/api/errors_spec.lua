-- Error values as documented: err.message is exactly the gateway's own message, what
-- failed goes in err.context and tostring(err); response log events carry a duration.
local h = require "helpers"
local as2gateway = require "as2gateway"

describe("as2gateway errors", function()
  local client

  before_each(function()
    h.reset()
    client = as2gateway.new(h.core_options { retries = 0 })
  end)

  after_each(function()
    client:close()
  end)

  it("keep the gateway's message as it is in err.message, what failed in err.context",
    function()
      -- the oracle: what the gateway answers, through curl
      local res = h.api("POST", "/message/NO-SUCH-STATION/GLOBEX-AS2",
        { headers = { Name = "x.txt" }, body = "x" })
      h.assert_generic(res, 404)
      local ok, err = client:send("NO-SUCH-STATION", "GLOBEX-AS2",
        { { name = "x.txt", data = "x" } })
      assert.is_nil(ok)
      assert.equal("notfound", err.kind)
      assert.equal(404, err.status)
      assert.equal(res.json.message, err.message)
      assert.equal("not found", err.context)
      assert.equal("as2gateway: notfound: not found: " .. res.json.message .. " (HTTP 404)",
        tostring(err))
    end)

  it("keep a 5xx's message as it is, and say what failed only in tostring", function()
    h.fault { path = "/message/received", status = 503, message = "down for maintenance" }
    local page, err = client:list("received")
    assert.is_nil(page)
    assert.equal("http", err.kind)
    assert.equal("down for maintenance", err.message)
    assert.equal("as2gateway: http: the gateway failed: down for maintenance (HTTP 503)",
      tostring(err))
  end)

  it("have no context when the gateway sent no message of its own", function()
    h.fault { path = "/message/received", status = 502, body = "<html>bad gateway</html>",
      content_type = "text/html" }
    local _, err = client:list("received")
    assert.equal("http", err.kind)
    assert.is_nil(err.context)
    assert.matches("HTTP 502", err.message, 1, true)
  end)

  it("give every response log event a duration, 0 included (under 1 ms)", function()
    local events = {}
    local c = as2gateway.new(h.core_options {
      clock = function() return 1000 end, -- time stands still: every duration is 0
      log = function(e) events[#events + 1] = e end })
    assert.is_table(c:stations())
    c:close()
    local responses = 0
    for _, e in ipairs(events) do
      if e.event == "response" then
        responses = responses + 1
        assert.equal(0, e.duration)
      end
    end
    assert.equal(2, responses) -- /authorize and /station
  end)
end)
