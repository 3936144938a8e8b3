-- A minimal zip writer (stored entries, no compression) for the /all and batch
-- downloads: the gateway's attachments are what matters, not the compression ratio.
local crypto = require "as2gateway.sandbox.crypto"

local char, floor, concat = string.char, math.floor, table.concat

local function le16(n)
  return char(n % 256, floor(n / 256) % 256)
end

local function le32(n)
  return char(n % 256, floor(n / 256) % 256, floor(n / 65536) % 256,
              floor(n / 16777216) % 256)
end

local M = {}
M.__index = M

function M.new()
  return setmetatable({ parts = {}, central = {}, offset = 0, count = 0 }, M)
end

local DOS_TIME, DOS_DATE = 0, 33 -- 1980-01-01 00:00: entries carry no real time

-- `opts.symlink` writes a Unix symlink entry (its data is the link target); only
-- the sandbox's hostile-archive faults use it.
function M:add(name, data, opts)
  local crc = crypto.crc32(data)
  local flags = name:find("[\128-\255]") and 0x0800 or 0 -- UTF-8 names
  local mode = (opts and opts.symlink) and 0xA1FF or 0x81A4 -- lrwxrwxrwx / rw-r--r--
  local header = concat {
    le32(0x04034b50), le16(20), le16(flags), le16(0), le16(DOS_TIME), le16(DOS_DATE),
    le32(crc), le32(#data), le32(#data), le16(#name), le16(0), name,
  }
  self.parts[#self.parts + 1] = header
  self.parts[#self.parts + 1] = data
  self.central[#self.central + 1] = concat {
    le32(0x02014b50), le16(0x031E), le16(20), le16(flags), le16(0), le16(DOS_TIME),
    le16(DOS_DATE), le32(crc), le32(#data), le32(#data), le16(#name), le16(0), le16(0),
    le16(0), le16(0), le32(mode * 65536), le32(self.offset), name,
  }
  self.offset = self.offset + #header + #data
  self.count = self.count + 1
end

function M:finish()
  local cd = concat(self.central)
  self.parts[#self.parts + 1] = cd
  self.parts[#self.parts + 1] = concat {
    le32(0x06054b50), le16(0), le16(0), le16(self.count), le16(self.count),
    le32(#cd), le32(self.offset), le16(0),
  }
  return concat(self.parts)
end

return M
