-- The decoder of answers (csrc/lua/ljson.c), under both Lua ABIs: the values the Lua
-- layer had from lua-cjson plus its normalising walk, the stricter grammar, the
-- bounds; and that perform{json = true} is that decoder.
local h = require "helpers"
local core = require "as2gateway.core"
local cjson = require "cjson.safe"

local decode = core.decode_json
local INTEGERS = math.type ~= nil -- Lua 5.4; LuaJIT has doubles only

local function refused(text, why)
  local v, err = decode(text)
  assert.is_nil(v, ("%q was accepted"):format(text))
  assert.are.equal("protocol", err.kind)
  assert.matches("^not valid JSON: ", err.message)
  if why then assert.matches(why, err.message, 1, true) end
  return err
end

local function number(text)
  local v = decode(text)
  return v, INTEGERS and math.type(v) or "float"
end

describe("core.decode_json", function()
  it("builds plain tables, with null as lua-cjson's null", function()
    local v = decode('{"a":[1,"x",true,false,null],"b":{},"c":[]}')
    assert.are.same({ 1, "x", true, false, cjson.null }, v.a)
    assert.are.equal(cjson.null, v.a[5])
    assert.are.equal("userdata", type(v.a[5]))
    assert.is_nil(next(v.b))
    assert.is_nil(next(v.c))           -- an empty list is an empty table ...
    assert.is_nil(getmetatable(v.c))   -- ... with nothing attached
    assert.is_nil(v.subject)           -- an absent field stays absent
    assert.are.equal(cjson.null, decode("null"))
    assert.are.equal("x", decode('"x"'))
  end)

  it("keeps the last of duplicate keys", function()
    assert.are.same({ a = 3, b = 2 }, decode('{"a":1,"b":2,"a":3}'))
  end)

  it("accepts whitespace wherever RFC 8259 does", function()
    assert.are.same({ a = { true, false } }, decode(' \t\r\n{ "a" :\n[ true ,false ] }\n '))
  end)

  it("decodes every escape, surrogate pairs included", function()
    assert.are.equal('"\\/\b\f\n\r\t', decode('"\\"\\\\\\/\\b\\f\\n\\r\\t"'))
    assert.are.equal("\195\169", decode('"\\u00e9"'))                 -- é
    assert.are.equal("\226\130\172", decode('"\\u20AC"'))             -- €
    assert.are.equal("\240\159\152\128", decode('"\\ud83d\\ude00"'))  -- U+1F600
    assert.are.equal("\244\143\191\191", decode('"\\udbff\\udfff"'))  -- U+10FFFF
    assert.are.equal("a\0b", decode('"a\\u0000b"'))
    assert.are.same({ ["k\n"] = "v" }, decode('{"k\\n":"v"}'))
  end)

  it("refuses lone surrogates and bad escapes, as lua-cjson did", function()
    refused('"\\ud800"', "invalid \\u escape")
    refused('"\\udc00"', "invalid \\u escape")           -- a low one first
    refused('"\\ud800\\u0041"', "invalid \\u escape")    -- high, then no low
    refused('"\\ud800x"', "invalid \\u escape")
    refused('"\\u12G4"', "invalid \\u escape")
    refused('"\\u12"', "invalid \\u escape")
    refused('"\\x41"', "invalid escape")
    refused('"\\', "unterminated string")
  end)

  it("passes string bytes through: invalid UTF-8 and raw control characters", function()
    assert.are.equal("\255\254\192\128", decode('"\255\254\192\128"'))
    assert.are.equal("tab\there\1", decode('"tab\there\1"'))
    refused('"a\0b"', "NUL byte in a string")
  end)

  it("gives whole numbers as integers on Lua 5.4 (doubles on LuaJIT)", function()
    for text, want in pairs { ["0"] = 0, ["-0"] = 0, ["1.0"] = 1, ["1e3"] = 1000,
                              ["12.5e1"] = 125, ["-7"] = -7, ["1767225600000"] = 1767225600000,
                              ["1e-400"] = 0 } do
      local v, t = number(text)
      assert.are.equal(want, v)
      assert.are.equal(INTEGERS and "integer" or "float", t, text)
    end
    for text, want in pairs { ["1.5"] = 1.5, ["-1.25e-3"] = -1.25e-3, ["0.1"] = 0.1,
                              ["1E+2"] = 100, ["123.456e-7"] = 123.456e-7,
                              ["2.2250738585072014e-308"] = 2.2250738585072014e-308 } do
      local v = number(text)
      assert.are.equal(want, v, text)
    end
    assert.are.equal("float", select(2, number("1.5")))
    local v = decode("-0")
    if INTEGERS then assert.are.equal("integer", math.type(v))
    else assert.are.equal(-math.huge, 1 / v) end -- LuaJIT: -0 stays -0, as in lua-cjson
  end)

  it("reads integers exactly at the 64-bit boundaries", function()
    if not INTEGERS then
      -- doubles: the correctly rounded value, as strtod gives it
      assert.are.equal(2 ^ 53, decode("9007199254740993"))
      assert.are.equal(2 ^ 63, decode("9223372036854775807"))
      return
    end
    assert.are.equal(math.maxinteger, decode("9223372036854775807"))
    assert.are.equal(math.mininteger, decode("-9223372036854775808"))
    -- exact: lua-cjson went through a double and gave 9007199254740992
    assert.are.equal(9007199254740993, decode("9007199254740993"))
    assert.are.equal("integer", math.type(decode("9007199254740993")))
    -- beyond the range: the double, a float
    assert.are.equal("float", math.type(decode("9223372036854775808")))
    assert.are.equal(2 ^ 63, decode("9223372036854775808"))
    assert.are.equal("float", math.type(decode("18446744073709551616")))
    assert.are.equal(1.2345678901234568e29, decode("123456789012345678901234567890"))
    -- whose double is -2^63, so an integer, as math.tointeger made it before
    assert.are.equal(math.mininteger, decode("-9223372036854775809"))
  end)

  it("gives overflowing exponents as infinities, like strtod", function()
    assert.are.equal(math.huge, decode("1e400"))
    assert.are.equal(-math.huge, decode("-1e400"))
    assert.are.equal(1e308, decode("1e308"))
    assert.are.equal(0.1, decode("0." .. ("0"):rep(1000) .. "1e1000")) -- strtod
    assert.are.equal(25, decode("0.0025e4"))
  end)

  it("refuses numbers outside RFC 8259 (lua-cjson took some)", function()
    refused("01", "leading zero")
    refused("-01", "leading zero")
    refused("1.", "no digit after '.'")
    refused("1.e5", "no digit after '.'")
    refused("1e", "no digit in the exponent")
    refused("1e+", "no digit in the exponent")
    for _, text in ipairs { "+1", "-.5", ".5", "0x10", "-0x1", "NaN", "nan", "inf",
                            "Infinity", "-Infinity", "-", "--1", "1_000" } do
      refused(text)
    end
  end)

  it("bounds nesting at 1000 levels, arrays and objects alike", function()
    assert.is_table(decode(("["):rep(1000) .. ("]"):rep(1000)))
    refused(("["):rep(1001) .. ("]"):rep(1001), "nested too deeply at byte 1000")
    assert.is_table(decode(('{"a":'):rep(999) .. "[]" .. ("}"):rep(999)))
    refused(('{"a":'):rep(1001) .. "1" .. ("}"):rep(1001), "nested too deeply")
    -- far past the bound: refused at once, no stack overflow
    refused(("["):rep(200000), "nested too deeply")
  end)

  it("refuses empty, truncated and trailing text", function()
    refused("", "a value expected at byte 0")
    refused(" \n ", "a value expected")
    refused('{"a":', "a value expected")
    refused("[1,2", "',' or ']' expected")
    refused('{"a":1,}', "a key string expected at byte 7")
    refused("[1,]", "unexpected character at byte 3")
    refused('{"a" 1}', "':' expected")
    refused('{"a":1 "b":2}', "',' or '}' expected")
    refused('{1:2}', "a key string expected")
    refused('"abc', "unterminated string at byte 0")
    refused("tru", "unexpected characters")
    refused("nulls", "characters after the value at byte 4")
    refused("{} x", "characters after the value at byte 3")
    refused("1 2", "characters after the value")
    -- lua-cjson stopped at a NUL byte and ignored the rest
    refused("[1]\0garbage", "characters after the value at byte 3")
  end)

  it("says where, never what: no content of the text in the error", function()
    local err = refused('{"token":"s3cr3t-value', "unterminated string at byte 9")
    assert.is_nil(err.message:find("s3cr3t", 1, true))
  end)

  it("presizes from siblings within a budget: a hostile shape cannot blow memory up", function()
    -- a first object of 1000 keys, then 20,000 empty ones: presizing each like the
    -- first would take some 600 MB
    local keys = {}
    for i = 1, 1000 do keys[i] = ('"k%d":0'):format(i) end
    local text = "[{" .. table.concat(keys, ",") .. "}" .. (",{}"):rep(20000) .. "]"
    collectgarbage("collect")
    local before = collectgarbage("count")
    local v = decode(text)
    local grown = collectgarbage("count") - before
    assert.are.equal(20001, #v)
    assert.is_true(grown < 16 * 1024, ("grew by %.0f KB"):format(grown))
  end)

  it("gives the values lua-cjson plus the old normalising walk gave, on a real listing", function()
    h.reset()
    for i = 1, 30 do
      h.inbound { station = "ACME-AS2", partner = "GLOBEX-AS2",
        subject = i % 3 == 0 and "" or "S" .. i, -- "": no subject, the field absent
        attachments = { { name = "f" .. i .. ".edi", size = 100 + i } } }
    end
    local body = h.api("GET", "/message/received", { query = { pageLength = 100 } }).body
    local normalize = dofile("bench/old_walk.lua") -- the walk json_call ran
    local mine, old = decode(body), normalize(cjson.decode(body))
    assert.are.same(old, mine)
    assert.are.equal(32, #mine.records) -- 30 and the 2 seeded Production ones
    local absent = 0
    for _, m in ipairs(mine.records) do
      if INTEGERS then assert.are.equal("integer", math.type(m.persistedTimestamp)) end
      assert.is_table(m.attachments)
      if m.subject == nil then absent = absent + 1 end
    end
    assert.are.equal(10, absent) -- every third of the 30 has no subject field at all
    h.reset()
  end)
end)

describe("perform{json = true}", function()
  local c
  before_each(function()
    h.reset()
    c = core.new(h.core_options())
  end)
  after_each(function()
    c:close()
    h.reset()
  end)

  local function serve(body)
    h.fault { path = "/message/received", status = 200, body = body,
      content_type = "application/json" }
    return c:perform { path = { "message", "received" }, json = true }
  end

  it("decodes answers with the same decoder", function()
    local text = '{"totalRecords":1,"records":[{"size":9007199254740993,"x":null,"e":[]}]}'
    local res = assert(serve(text))
    assert.are.same(decode(text), res.json)
    if INTEGERS then assert.are.equal(9007199254740993, res.json.records[1].size) end
  end)

  it("refuses a malformed or too deep answer as a protocol error", function()
    local res, err = serve(("["):rep(1001) .. ("]"):rep(1001))
    assert.is_nil(res)
    assert.are.equal("protocol", err.kind)
    assert.are.equal(200, err.status)
    assert.matches("the answer is not valid JSON: nested too deeply", err.message, 1, true)
    res, err = serve('{"records":[0x10]}')
    assert.is_nil(res)
    assert.are.equal("protocol", err.kind)
  end)

  it("still refuses answers over max_json", function()
    c:close()
    c = core.new(h.core_options { max_json = 1024 })
    local res, err = serve('["' .. ("x"):rep(2000) .. '"]')
    assert.is_nil(res)
    assert.are.equal("protocol", err.kind)
  end)
end)
