-- Crafted zip archives for the specs (Lua 5.4 only: bit operators), for answers the
-- sandbox cannot give, served through a fault's body_base64.
local M = {}

local CRC = {}
for i = 0, 255 do
  local v = i
  for _ = 1, 8 do v = (v & 1 == 1) and (0xEDB88320 ~ (v >> 1)) or (v >> 1) end
  CRC[i] = v
end

local function crc32(s)
  local v = 0xFFFFFFFF
  for i = 1, #s do v = CRC[(v ~ s:byte(i)) & 0xFF] ~ (v >> 8) end
  return v ~ 0xFFFFFFFF
end

local REGULAR = tonumber("100644", 8)
M.SYMLINK, M.DIRECTORY = tonumber("120777", 8), tonumber("40755", 8)

--- A zip archive of stored entries, any name, any Unix mode (M.SYMLINK, M.DIRECTORY),
--- and a declared size that may lie: entries = {{name =, data =, mode =, size =}}.
function M.make(entries)
  local out, cd, offset = {}, {}, 0
  for _, e in ipairs(entries) do
    local data = e.data or ""
    local crc, size = crc32(data), e.size or #data
    local head = string.pack("<I4I2I2I2I2I2I4I4I4I2I2", 0x04034b50, 20, 0, 0, 0, 0x21, crc,
      #data, size, #e.name, 0) .. e.name
    out[#out + 1] = head .. data
    cd[#cd + 1] = string.pack("<I4I2I2I2I2I2I2I4I4I4I2I2I2I2I2I4I4", 0x02014b50, 3 << 8 | 20,
      20, 0, 0, 0, 0x21, crc, #data, size, #e.name, 0, 0, 0, 0, (e.mode or REGULAR) << 16,
      offset) .. e.name
    offset = offset + #head + #data
  end
  local central = table.concat(cd)
  return table.concat(out) .. central .. string.pack("<I4I2I2I2I2I4I4I2", 0x06054b50, 0, 0,
    #entries, #entries, #central, offset, 0)
end

return M
