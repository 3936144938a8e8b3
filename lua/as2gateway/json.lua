--- as2gateway.json: the one writer of JSON, for the client (request bodies, journals,
-- as2g's --json) and the sandbox (inside nginx), telling empty lists from empty
-- objects: Debian's lua-cjson 2.1.0 writes every empty table as {}; a table marked
-- with json.array(), or held under one of the `array_keys` names, is written as a
-- list even when empty. Reading is the core's: core.decode_json (csrc/lua/ljson.c)
-- on the client's side; the sandbox reads with its own lua-cjson.
local cjson = require "cjson.safe"

local type, pairs, tostring, getmetatable, setmetatable, next =
  type, pairs, tostring, getmetatable, setmetatable, next
local floor, huge, concat = math.floor, math.huge, table.concat

local M = { null = cjson.null } -- the null core.decode_json gives too

local ARRAY = {}

--- Marks `t` (default: a new table) as a JSON list.
function M.array(t)
  return setmetatable(t or {}, ARRAY)
end

local ESCAPES = { ['"'] = '\\"', ["\\"] = "\\\\", ["\b"] = "\\b", ["\f"] = "\\f",
  ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t" }

local function encode_string(s)
  return '"' .. s:gsub('[%c"\\]', function(c)
    return ESCAPES[c] or ("\\u%04x"):format(c:byte())
  end) .. '"'
end

local function encode(v, out, array_keys, as_list)
  local t = type(v)
  if t == "string" then
    out[#out + 1] = encode_string(v)
  elseif t == "number" then
    if v ~= v or v == huge or v == -huge then error("cannot encode " .. tostring(v)) end
    out[#out + 1] = (v == floor(v) and v < 2 ^ 53 and v > -2 ^ 53) and ("%d"):format(v)
      or ("%.17g"):format(v)
  elseif t == "boolean" then
    out[#out + 1] = tostring(v)
  elseif v == nil or v == cjson.null then
    out[#out + 1] = "null"
  elseif t == "table" then
    local n = #v
    if getmetatable(v) == ARRAY or (n > 0 and next(v, n) == nil)
       or (as_list and next(v) == nil) then
      out[#out + 1] = "["
      for i = 1, n do
        if i > 1 then out[#out + 1] = "," end
        encode(v[i], out, array_keys)
      end
      out[#out + 1] = "]"
    else
      out[#out + 1] = "{"
      local first = true
      for k, x in pairs(v) do
        if not first then out[#out + 1] = "," end
        first = false
        out[#out + 1] = encode_string(tostring(k))
        out[#out + 1] = ":"
        encode(x, out, array_keys, array_keys and array_keys[k])
      end
      out[#out + 1] = "}"
    end
  else
    error("cannot encode a " .. t)
  end
end

--- The JSON text of `v`. `array_keys` (optional) names fields whose tables are lists
--- even when empty, e.g. {records = true, attachments = true}.
function M.encode(v, array_keys)
  local out = {}
  encode(v, out, array_keys)
  return concat(out)
end

return M
