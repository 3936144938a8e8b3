-- A process of the end-to-end quota specs: one as2gateway client against the sandbox,
-- with the `quota` option of its config, making `n` requests (GET /partner), writing a
-- line per event to its out file. Times are core.now() (CLOCK_MONOTONIC: one clock
-- for every process of the host).
--   client_worker.lua CONFIG OUT
-- CONFIG: {url, username, password, cainfo, quota, n, start_at, clock_offset, hold}
--   hold: after the first request, one more request whose answer is delayed by the
--   sandbox (a fault the spec set): the process is SIGKILLed while it holds that slot.
local as2g = require "as2gateway"
local core = require "as2gateway.core"
local cjson = require "cjson"

local cfg = cjson.decode(assert(io.open(arg[1])):read("a"))
local out = assert(io.open(arg[2], "a"))
out:setvbuf("line")

local offset = cfg.clock_offset or 0
local client = as2g.new {
  url = cfg.url, username = cfg.username, password = cfg.password, cainfo = cfg.cainfo,
  quota = cfg.quota ~= cjson.null and cfg.quota or nil,
  clock = function() return core.now() + offset end,
  log = function(ev)
    if ev.event ~= "request" and ev.event ~= "response" then
      out:write("ev ", ev.event, " ", tostring(ev.reason or ""), "\n")
    elseif ev.event == "response" then
      out:write(("resp %.3f %s %s\n"):format(core.now(), tostring(ev.status), ev.path))
    end
  end,
}

if cfg.start_at then -- all start together
  while core.now() < cfg.start_at do core.sleep(0.001) end
end
out:write("start ", ("%.3f"):format(core.now()), "\n")
for i = 1, cfg.n do
  local res, err = client:partners()
  if not res then
    out:write("fail ", tostring(err.kind), " ", tostring(err.message), "\n")
  end
  if i == 1 and cfg.hold then
    out:write("holding\n")
    client:stations()
  end
end
out:write("end ", ("%.3f"):format(core.now()), "\n")
out:write("stats ", cjson.encode(client:stats()), "\n")
client:close()
out:write("done\n")
