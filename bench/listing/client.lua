-- The benchmark's runner for this project's client, under Lua 5.4 or LuaJIT (the
-- paths to lua/ and to the core built for that interpreter come from LUA_PATH and
-- LUA_CPATH). One client, one connection, the rate limit off (the bench's own nginx,
-- not the gateway).
--   client.lua list BASE N [CA]           N client:list("received", {pageLength = 100})
--   client.lua decode FILE N              N core.decode_json of FILE's text
--   client.lua decode-old FILE N          the same with lua-cjson and the walk it needed
--   client.lua upload BASE FILE N [CA]    N client:send of FILE (one raw body)
--   client.lua download BASE N [CA]       N client:download into a sink
-- Prints seconds per operation (warm-up excluded); for transfers also the growth of
-- peak RSS (VmHWM) over the warmed-up client, in KB.
local as2gateway = require "as2gateway"
local core = require "as2gateway.core"

local mode = arg[1]
local now = core.now

local status_kb = require "proc_status"
local function peak_kb() return status_kb("VmHWM") end

local function new_client(base, ca)
  return as2gateway.new { url = base, token = "bench-token", rate_limit = false,
    cainfo = ca, retries = 0 }
end

local function read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("*a")
  f:close()
  return s
end

local function timed(n, op)
  op()
  collectgarbage("collect")
  local hwm = peak_kb()
  local t0 = now()
  for _ = 1, n do op() end
  local t1 = now()
  return (t1 - t0) / n, peak_kb() - hwm
end

local per, grown
if mode == "list" then
  local client = new_client(arg[2], arg[4])
  per = timed(tonumber(arg[3]), function()
    assert(client:list("received", { pageLength = 100 }))
  end)
elseif mode == "decode" or mode == "decode-old" then
  local text, decode = read(arg[2]), core.decode_json
  if mode == "decode-old" then -- lua-cjson, then the walk init.lua ran before ljson.c
    local cjson, normalize = require "cjson", require "old_walk"
    decode = function(s) return normalize(cjson.decode(s)) end
  end
  per = timed(tonumber(arg[3]), function() assert(decode(text)) end)
elseif mode == "upload" then
  local client = new_client(arg[2], arg[5])
  per, grown = timed(tonumber(arg[4]), function()
    assert(client:send("ACME-AS2", "GLOBEX-AS2", arg[3]))
  end)
elseif mode == "download" then
  local client = new_client(arg[2], arg[4])
  local got = 0
  local function sink(chunk) got = got + #chunk end
  per, grown = timed(tonumber(arg[3]), function()
    assert(client:download("received", "bench-1", { sink = sink }))
  end)
else
  error("usage: client.lua list|decode|decode-old|upload|download ...")
end
print(("%.9f"):format(per) .. (grown and (" " .. grown) or ""))
