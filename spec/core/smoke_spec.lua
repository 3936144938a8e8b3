-- The core loads and talks to the sandbox (under both Lua ABIs).
local h = require "helpers"
local core = require "as2gateway.core"

describe("as2gateway.core", function()
  it("lists received messages from the sandbox", function()
    local c = core.new(h.core_options())
    local res, err = c:perform { path = { "message", "received" }, json = true }
    assert.is_nil(err)
    assert.are.equal(200, res.status)
    assert.is_table(res.json.records)
    c:close()
  end)
end)
