-- The request state machine (csrc/client.c) on its own: a C program drives it against a
-- scripted transport (csrc/test/fake_transport.c) and a clock that moves only when the
-- machine asks to sleep, no network at all: logins, re-authentication, Retry-After,
-- backoff, sends never repeated, redirects, the quota, requests left in flight, Ctrl-C.
local h = require "helpers"

local PROGRAM = "build/test/client_test"

describe("the request state machine against a fake transport", function()
  it("passes every check of csrc/test/client_test.c", function()
    -- `make build` makes it; a run without it (another build directory) makes it here
    if not h.read_file(PROGRAM) then
      local out = h.sh("make -s " .. PROGRAM)
      assert(h.read_file(PROGRAM), "cannot build " .. PROGRAM .. ": " .. out)
    end
    local p = io.popen("timeout 60 " .. PROGRAM .. " 2>&1; echo \"exit=$?\"")
    local out = p:read("a")
    p:close()
    local checks, failed = out:match("(%d+) checks, (%d+) failed\nexit=%d+\n$")
    assert.is_truthy(checks, out)
    assert.is_true(tonumber(checks) >= 60, out)
    assert.are.equal("0", failed, out)
    assert.matches("\nexit=0\n$", out)
  end)
end)
