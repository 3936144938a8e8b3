-- Pins down the sandbox's token authentication: /authorize, and 401 for every bad token.
local h = require "helpers"

local B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

-- base64url without padding (RFC 7515).
local function b64url(s)
  local out = {}
  for i = 1, #s, 3 do
    local a, b, c = s:byte(i, i + 2)
    local n = (a << 16) | ((b or 0) << 8) | (c or 0)
    for j = 1, 2 + (b and 1 or 0) + (c and 1 or 0) do
      local k = (n >> (6 * (4 - j))) & 63
      out[#out + 1] = B64:sub(k + 1, k + 1)
    end
  end
  return table.concat(out)
end

local function b64url_decode(s)
  local bits, nbits, out = 0, 0, {}
  for ch in s:gmatch(".") do
    local v = assert(B64:find(ch, 1, true), "not base64url: " .. s) - 1
    bits, nbits = ((bits << 6) | v) & 0xffffff, nbits + 6
    if nbits >= 8 then
      nbits = nbits - 8
      out[#out + 1] = string.char((bits >> nbits) & 0xff)
    end
  end
  return table.concat(out)
end

-- HMAC-SHA256 computed by the openssl command line (raw bytes).
local function hmac_sha256(key, data)
  local f = h.tmpname()
  h.write_file(f, data)
  local p = io.popen("openssl dgst -sha256 -hmac " .. h.quote(key) .. " -binary < " .. h.quote(f))
  local mac = p:read("a")
  p:close()
  os.remove(f)
  return mac
end

local function parts(token)
  return token:match("^([^.]*)%.([^.]*)%.([^.]*)$")
end

local function get_received(token)
  return h.curl { path = "/message/received", token = token }
end

local assert_generic = h.assert_generic

describe("POST /authorize", function()
  before_each(h.reset)

  it("answers 200 with a three-part JWT and an expiry about a day ahead in ms", function()
    local token, res = h.login()
    assert.are.equal(200, res.status)
    assert.is_truthy(res.headers["content-type"]:find("application/json", 1, true))
    local hd, pl, sig = parts(token)
    assert.is_truthy(hd, "not a three-part token: " .. token)
    for _, part in ipairs { hd, pl, sig } do
      assert.is_truthy(part:match("^[%w%-_]+$"), "not base64url: " .. part)
    end
    local header = h.json_decode(b64url_decode(hd))
    assert.are.equal("HS256", header.alg)
    local claims = h.json_decode(b64url_decode(pl))
    assert.are.equal(h.username, claims.sub)
    assert.are.equal(claims.exp * 1000, res.json.expiry)
    assert.are.equal("number", type(claims.iat))
    local now = h.control("GET", "clock").now
    local ahead = res.json.expiry - now
    assert.is_true(ahead > 86400 * 1000 - 3000 and ahead <= 86400 * 1000,
      "expiry is " .. ahead .. " ms ahead")
    assert.are.equal(200, get_received(token).status)
  end)

  it("issues a token for the second account too", function()
    local token = h.login(h.other_username, h.other_password)
    local res = get_received(token)
    assert.are.equal(200, res.status)
    assert.are.equal(1, res.json.totalRecords)
  end)

  it("answers 401 with a Generic Response to a wrong password", function()
    local res = h.curl { method = "POST", path = "/authorize",
      json = { username = h.username, password = h.password .. "x" } }
    assert_generic(res, 401)
    assert.is_nil(res.json.token)
  end)

  it("answers 401 to the other account's password", function()
    local res = h.curl { method = "POST", path = "/authorize",
      json = { username = h.username, password = h.other_password } }
    assert_generic(res, 401)
  end)

  it("answers 401 with a Generic Response to an unknown user", function()
    local res = h.curl { method = "POST", path = "/authorize",
      json = { username = "nobody@example.com", password = h.password } }
    assert_generic(res, 401)
  end)

  it("answers 400 to a payload that is not JSON", function()
    assert_generic(h.curl { method = "POST", path = "/authorize",
      headers = { ["Content-Type"] = "application/json" },
      body = "username=" .. h.username .. "&password=" .. h.password }, 400)
  end)

  it("answers 400 to a JSON payload without a password", function()
    assert_generic(h.curl { method = "POST", path = "/authorize",
      json = { username = h.username } }, 400)
  end)

  it("answers 400 to non-string credentials", function()
    assert_generic(h.curl { method = "POST", path = "/authorize",
      json = { username = 42, password = h.password } }, 400)
    assert_generic(h.curl { method = "POST", path = "/authorize",
      json = '["' .. h.username .. '","' .. h.password .. '"]' }, 400)
  end)

  it("answers 400 to an empty payload", function()
    assert_generic(h.curl { method = "POST", path = "/authorize",
      headers = { ["Content-Type"] = "application/json" } }, 400)
  end)

  it("does not count a failed login as an authorization", function()
    h.curl { method = "POST", path = "/authorize",
      json = { username = h.username, password = "wrong" } }
    h.login()
    assert.are.equal(1, h.stats().authorizations)
  end)
end)

describe("a request with a bad token", function()
  local token
  before_each(function()
    h.reset()
    token = h.login()
  end)

  it("answers 401 when the Authorization header is missing", function()
    assert_generic(get_received(nil), 401)
  end)

  it("answers 401 to a malformed token", function()
    for _, bad in ipairs { "garbage", "a.b", "a.b.c", token .. ".x", token:sub(1, -2) .. "!",
                           "..." } do
      local res = get_received(bad)
      assert.are.equal(401, res.status, "token " .. bad)
      assert.is_string(res.json and res.json.message)
    end
  end)

  it("answers 401 to 'Bearer <token>'", function()
    assert_generic(get_received("Bearer " .. token), 401)
    assert.are.equal(200, get_received(token).status)
  end)

  it("answers 401 to a token whose payload was altered", function()
    local hd, pl, sig = parts(token)
    local i = #pl // 2
    local c = pl:sub(i, i) == "A" and "B" or "A"
    local altered = hd .. "." .. pl:sub(1, i - 1) .. c .. pl:sub(i + 1) .. "." .. sig
    assert.are_not.equal(token, altered)
    assert_generic(get_received(altered), 401)
  end)

  it("answers 401 to a token whose signature part was altered, in any character", function()
    local hd, pl, sig = parts(token)
    local function with_sig_char(i, c)
      return hd .. "." .. pl .. "." .. sig:sub(1, i - 1) .. c .. sig:sub(i + 1)
    end
    local mid = sig:sub(20, 20) == "A" and "B" or "A"
    assert_generic(get_received(with_sig_char(20, mid)), 401)
    -- 32 bytes make 43 base64url characters; the last one carries 4 signature bits and
    -- 2 unused ones. Changing the unused bits changes the token, not the decoded bytes:
    -- the token is still altered and must be refused like any other alteration.
    local last = B64:find(sig:sub(-1), 1, true) - 1
    for d = 1, 3 do
      local k = (last & ~3) | ((last + d) & 3)
      local altered = with_sig_char(#sig, B64:sub(k + 1, k + 1))
      assert.are_not.equal(token, altered)
      local res = get_received(altered)
      assert.are.equal(401, res.status, "token with signature ending " .. altered:sub(-3)
        .. " instead of " .. sig:sub(-3))
    end
  end)

  it("answers 401 to a token whose claims were re-encoded with a later expiry", function()
    local hd, pl, sig = parts(token)
    local claims = h.json_decode(b64url_decode(pl))
    claims.exp = claims.exp + 3600
    assert_generic(get_received(hd .. "." .. b64url(h.json_encode(claims)) .. "." .. sig), 401)
  end)

  it("answers 401 to a token signed HS256 with another key", function()
    local hd, pl = parts(token)
    -- our base64url and HMAC are right: they round-trip the genuine token's parts and
    -- reproduce RFC 4231 test case 2
    assert.are.equal(hd, b64url(b64url_decode(hd)))
    assert.are.equal(pl, b64url(b64url_decode(pl)))
    local rfc = hmac_sha256("Jefe", "what do ya want for nothing?")
    assert.are.equal("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
      (rfc:gsub(".", function(ch) return ("%02x"):format(ch:byte()) end)))
    local forged = hd .. "." .. pl .. "." .. b64url(hmac_sha256("not-the-sandbox-key", hd
      .. "." .. pl))
    assert.are.equal(43, #select(3, parts(forged)))
    assert_generic(get_received(forged), 401)
    -- a forged token for the other account fares no better
    local claims = h.json_decode(b64url_decode(pl))
    claims.sub = h.other_username
    local p2 = b64url(h.json_encode(claims))
    assert_generic(get_received(hd .. "." .. p2 .. "."
      .. b64url(hmac_sha256("not-the-sandbox-key", hd .. "." .. p2))), 401)
  end)

  it("answers 401 to an alg none token", function()
    local _, pl = parts(token)
    local none = b64url('{"alg":"none","typ":"JWT"}')
    assert_generic(get_received(none .. "." .. pl .. "."), 401)
    -- and with a (meaningless) signature part kept
    local _, _, sig = parts(token)
    assert_generic(get_received(none .. "." .. pl .. "." .. sig), 401)
  end)

  it("answers 401 to a genuine token with its header switched to HS512", function()
    local _, pl, sig = parts(token)
    local hs512 = b64url('{"alg":"HS512","typ":"JWT"}')
    assert_generic(get_received(hs512 .. "." .. pl .. "." .. sig), 401)
  end)

  it("answers 401 to a token expired on the sandbox clock, and a fresh login works", function()
    assert.are.equal(200, get_received(token).status)
    h.advance(86400 - 120)
    assert.are.equal(200, get_received(token).status)
    h.advance(180)
    assert_generic(get_received(token), 401)
    local fresh, res = h.login()
    assert.are_not.equal(token, fresh)
    local now = h.control("GET", "clock").now
    assert.is_true(res.json.expiry > now + 86400 * 1000 - 3000)
    assert.are.equal(200, get_received(fresh).status)
  end)

  it("answers 401 once a token of a shortened lifetime has expired", function()
    local cfg, status = h.control("POST", "config", { token_lifetime = 5 })
    assert.are.equal(200, status)
    assert.are.equal(5, cfg.token_lifetime)
    local short, res = h.login()
    local now = h.control("GET", "clock").now
    local ahead = res.json.expiry - now
    assert.is_true(ahead > 5000 - 3000 and ahead <= 5000, "expiry " .. ahead .. " ms ahead")
    assert.are.equal(200, get_received(short).status)
    h.advance(6)
    assert_generic(get_received(short), 401)
    -- the day-long token of before_each is still good
    assert.are.equal(200, get_received(token).status)
    assert.are.equal(200, get_received((h.login())).status)
  end)

  it("answers 401 for every endpoint, not just listings", function()
    local bad = token:sub(1, -3) .. (token:sub(-2) == "AA" and "BB" or "AA")
    local id = h.escape("<x@y>")
    for _, call in ipairs {
      { "GET", "/partner" }, { "GET", "/station" }, { "GET", "/message/sent/" .. id },
      { "POST", "/message/ACME-AS2/AS2G-ECHO" }, { "DELETE", "/message/received/" .. id },
      { "POST", "/message/received/batch/attachments" },
    } do
      local res = h.curl { method = call[1], path = call[2], token = bad,
        headers = { Name = "a.txt" }, body = "x" }
      assert.are.equal(401, res.status, call[1] .. " " .. call[2])
    end
    -- nothing was enqueued by the refused send
    assert.are.equal(0, h.api("GET", "/message/queued", { token = token }).json.totalRecords)
  end)
end)
