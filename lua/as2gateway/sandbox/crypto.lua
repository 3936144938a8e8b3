-- Sandbox helpers over the OpenSSL and zlib that nginx already links: HMAC-SHA256,
-- SHA-256, CRC-32 and random bytes, reached through LuaJIT's FFI (the sandbox runs in
-- ngx_lua).
local ffi = require "ffi"

ffi.cdef [[
typedef struct evp_md_st EVP_MD;
const EVP_MD *EVP_sha256(void);
unsigned char *HMAC(const EVP_MD *evp_md, const void *key, int key_len,
                    const unsigned char *d, size_t n, unsigned char *md,
                    unsigned int *md_len);
int EVP_Digest(const void *data, size_t count, unsigned char *md, unsigned int *size,
               const EVP_MD *type, void *impl);
int RAND_bytes(unsigned char *buf, int num);
unsigned long crc32(unsigned long crc, const unsigned char *buf, unsigned int len);
]]

-- nginx links libcrypto and zlib, so their symbols are normally global already;
-- load the shared objects by soname only when they are not.
local function library(symbol, soname)
  if pcall(function() return ffi.C[symbol] end) then return ffi.C end
  return ffi.load(soname)
end

local crypto = library("HMAC", "libcrypto.so.3")
local zlib = library("crc32", "libz.so.1")

local M = {}

function M.hmac_sha256(key, data)
  local md = ffi.new("unsigned char[32]")
  local len = ffi.new("unsigned int[1]")
  if crypto.HMAC(crypto.EVP_sha256(), key, #key, data, #data, md, len) == nil then
    error("HMAC failed")
  end
  return ffi.string(md, len[0])
end

-- The SHA-256 digest of data (32 raw bytes).
function M.sha256(data)
  local md = ffi.new("unsigned char[32]")
  local len = ffi.new("unsigned int[1]")
  if crypto.EVP_Digest(data, #data, md, len, crypto.EVP_sha256(), nil) ~= 1 then
    error("EVP_Digest failed")
  end
  return ffi.string(md, len[0])
end

function M.random_bytes(n)
  local buf = ffi.new("unsigned char[?]", n)
  if crypto.RAND_bytes(buf, n) ~= 1 then error("RAND_bytes failed") end
  return ffi.string(buf, n)
end

-- Incremental CRC-32 (zip's checksum): pass the previous value to continue.
function M.crc32(data, crc)
  return tonumber(zlib.crc32(crc or 0, data, #data))
end

return M
