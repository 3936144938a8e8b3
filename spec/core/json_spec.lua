-- The core's own JSON reader (the /authorize answer, Generic Responses) takes every
-- text RFC 8259 allows: whitespace anywhere between tokens, escaped member names, long
-- numbers. (csrc/fuzz/fuzz_json.c checks it against lua-cjson, `make fuzz`.)
local hostile = require "hostile_server"
local core = require "as2gateway.core"

describe("the core's JSON reader", function()
  local srv, c

  after_each(function()
    if c then c:close() end
    if srv then srv:stop() end
    c, srv = nil, nil
  end)

  -- A gateway whose /authorize answer and error pages are the texts given.
  local function gateway(login_text, error_text)
    srv = hostile.start(([[
      local login_text, error_text = %q, %q
      function handle(req, n)
        local json = { ["Content-Type"] = "application/json" }
        if req.path == "/v1/authorize" then return 200, json, login_text end
        return 404, json, error_text
      end
    ]]):format(login_text, error_text))
    c = core.new { url = srv.url, username = "u", password = "p", retries = 0 }
  end

  local function logs_in_and_reads(token, message)
    local res, err = c:perform { path = { "station" }, json = true }
    assert.is_nil(res)
    assert.equal("notfound", err.kind)
    assert.equal(message, err.message) -- the gateway's own text (what failed: err.context)
    assert.equal(token, (c:token()))
    assert.equal(1, srv:count("/v1/authorize"))
    assert.equal(token, srv:requests()[2].headers.authorization)
  end

  it("reads a pretty-printed /authorize answer and Generic Response", function()
    gateway('{\n  "token": "tok.en.x",\n  "expiry": 1\n}\n',
      '{ "message" : "No such station" ,\r\n\t"code": 404 }')
    logs_in_and_reads("tok.en.x", "No such station")
  end)

  it("reads escaped member names, any member order, and the last of duplicate names", function()
    gateway('{"expiry" : 1, "\\u0074oken": "first", "token" : "second"}',
      '{"\\u006dessage": "Esc\\u00e9ped \\"name\\"", "nested": {"message": "not this"}}')
    logs_in_and_reads("second", 'Esc\195\169ped "name"')
  end)

  it("reads numbers of any length and form, and skips every kind of value", function()
    local long = "0." .. ("0"):rep(80) .. "1e+90"
    gateway('{"skip": [true, false, null, -0.5E-3, {"a": [[], {}]}], "expiry": ' .. long
      .. ', "token": "t"}', '{"message": "\\ud83d\\ude00 and a lone \\udc00"}')
    logs_in_and_reads("t", "\240\159\152\128 and a lone \239\191\189")
  end)
end)
