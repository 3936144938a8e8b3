--- The walk the Lua layer ran over lua-cjson's values until csrc/lua/ljson.c decoded
-- answers itself: lua-cjson under Lua 5.4 gives every number as a float, the walk gave
-- the whole ones back as integers, in place. Kept as the listing benchmark's baseline
-- (bench/listing/client.lua decode-old) and as spec/core/json_decode_spec.lua's oracle.
local type, pairs, tointeger = type, pairs, math.tointeger

local function integers(v)
  if not tointeger then return v end
  if type(v) == "number" then return tointeger(v) or v end
  if type(v) == "table" then
    for k, x in pairs(v) do
      if type(x) == "number" then
        local i = tointeger(x)
        if i then v[k] = i end
      elseif type(x) == "table" then
        integers(x)
      end
    end
  end
  return v
end

return integers
