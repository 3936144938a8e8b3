-- A call's limits in the Lua API, as in as2gateway.openresty: `deadline` (seconds a
-- call may take in all) and `fail_fast` (never wait for the rate limit), on the client
-- (as2gateway.new) or on a view of it (client:with{...}). Each call ends with the
-- truth: `ratelimited` with retry_after at once when the rate limit would hold it past
-- its deadline, `timeout` when the gateway holds it, `unknown_outcome` for a send
-- stopped in flight; nothing that did not start reaches the gateway.
local h = require "helpers"
local as2gateway = require "as2gateway"
local core = require "as2gateway.core"

local function timed(fn)
  local t0 = core.now()
  local a, b = fn()
  return a, b, core.now() - t0
end

describe("a call's limits", function()
  local client

  before_each(h.reset)

  after_each(function()
    if client then client:close() end
    client = nil
  end)

  it("end a call at once with ratelimited when the window would hold it past the deadline",
    function()
      client = as2gateway.new(h.core_options { rate_limit = { requests = 1, window = 8 },
        deadline = 2 })
      assert(client:authorize()) -- the window's one slot
      local page, err, took = timed(function() return client:list("received") end)
      assert.is_nil(page)
      assert.equal("ratelimited", err.kind)
      assert.is_true(err.retry_after >= 7 and err.retry_after <= 9, tostring(err.retry_after))
      assert.is_true(took < 0.5, took)
      assert.equal(1, h.stats().requests) -- the login alone reached the gateway
    end)

  it("fail fast on a view, and leave the client's own calls as they were", function()
    client = as2gateway.new(h.core_options { rate_limit = { requests = 1, window = 8 } })
    assert(client:authorize())
    local fast = client:with { fail_fast = true }
    local page, err, took = timed(function() return fast:list("received") end)
    assert.is_nil(page)
    assert.equal("ratelimited", err.kind)
    assert.truthy(err.message:find("fail_fast", 1, true), err.message)
    assert.is_true(took < 0.5, took)
    assert.is_nil(client.fail_fast)
    assert.is_nil(client.deadline)
    assert.equal(client.core, fast.core) -- the same connection and window
  end)

  it("stop a transfer the gateway holds past the deadline, and go on after", function()
    client = as2gateway.new(h.core_options())
    assert(client:list("received")) -- login and connection first
    h.fault { path = "/message/received", method = "GET", delay_ms = 3000 }
    local page, err, took = timed(function()
      return client:with({ deadline = 1 }):list("received")
    end)
    assert.is_nil(page)
    assert.equal("timeout", err.kind)
    assert.truthy(err.message:find("deadline", 1, true), err.message)
    assert.is_true(took >= 0.95 and took < 2, took)
    assert(client:list("received")) -- the client itself has no deadline
  end)

  it("say that a send stopped in flight may have been enqueued", function()
    client = as2gateway.new(h.core_options { deadline = 1 })
    assert(client:authorize())
    h.fault { path = "/message/ACME-AS2/AS2G-ECHO", method = "POST", delay_ms = 3000 }
    local res, err = client:send("ACME-AS2", "AS2G-ECHO", { { name = "o.txt", data = "order" } })
    assert.is_nil(res)
    assert.equal("unknown_outcome", err.kind)
  end)

  it("are refused when they are not limits, at the caller's line", function()
    for _, bad in ipairs { 0, -1, "2", 0 / 0, 1e10 } do
      local ok, msg = pcall(as2gateway.new, h.core_options { deadline = bad })
      assert.is_false(ok)
      assert.truthy(msg:find("deadline", 1, true), msg)
    end
    client = as2gateway.new(h.core_options())
    local ok, msg = pcall(function()
      local view = client:with { fail_fast = "yes" } -- (not a tail call: its line stays)
      return view
    end)
    assert.is_false(ok)
    assert.truthy(msg:find("limits_spec.lua", 1, true) and msg:find("fail_fast", 1, true), msg)
    ok, msg = pcall(function() return client:with { deadlin = 2 } end)
    assert.is_false(ok)
    assert.truthy(msg:find("unknown option 'deadlin'", 1, true), msg)
  end)
end)
