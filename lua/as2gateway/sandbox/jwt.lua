-- HS256 JSON Web Tokens for the sandbox's /authorize, verified on every API request.
local cjson = require "cjson.safe"
local crypto = require "as2gateway.sandbox.crypto"

local M = {}

local function b64url_encode(s)
  return (ngx.encode_base64(s):gsub("%+", "-"):gsub("/", "_"):gsub("=+$", ""))
end

local function b64url_decode(s)
  if not s:match("^[%w%-_]*$") then return nil end
  s = s:gsub("%-", "+"):gsub("_", "/")
  return ngx.decode_base64(s .. string.rep("=", (4 - #s % 4) % 4))
end

local HEADER = b64url_encode('{"alg":"HS256","typ":"JWT"}')

function M.sign(claims, key)
  local input = HEADER .. "." .. b64url_encode(cjson.encode(claims))
  return input .. "." .. b64url_encode(crypto.hmac_sha256(key, input))
end

-- Returns the claims of a well-formed token signed with `key` that has not expired
-- at `now_s`; nil and a reason otherwise.
function M.verify(token, key, now_s)
  local h, p, s = token:match("^([%w%-_]+)%.([%w%-_]+)%.([%w%-_]+)$")
  if not h then return nil, "malformed token" end
  local header = cjson.decode(b64url_decode(h) or "")
  if type(header) ~= "table" or header.alg ~= "HS256" then
    return nil, "unsupported token algorithm"
  end
  -- compare the text, not decoded bytes: base64url's last character has unused bits,
  -- and a decoder that ignores them would accept altered tokens
  if s ~= b64url_encode(crypto.hmac_sha256(key, h .. "." .. p)) then
    return nil, "invalid token signature"
  end
  local claims = cjson.decode(b64url_decode(p) or "")
  if type(claims) ~= "table" or type(claims.sub) ~= "string"
     or type(claims.exp) ~= "number" then
    return nil, "malformed token claims"
  end
  if claims.exp <= now_s then return nil, "token expired" end
  return claims
end

return M
