-- A drain in its own process that SIGKILLs itself, for drain_spec.lua's crash tests.
-- Usage (from the checkout, AS2G_* set):
--   lua5.4 spec/workflows/drain_child.lua TO LOG MODE N [PATTERN]
-- MODE "handler": the N-th handler call kills the process before it returns;
-- MODE "response": the N-th answer to a request whose path holds PATTERN (default
--   "/batch/") kills it, after the transfer and before the file is moved into place;
-- MODE "request": the N-th request whose path holds PATTERN kills it as it starts.
-- LOG gets one line per handler that succeeded: the message's AS2 ID.
package.path = "./lua/?.lua;./lua/?/init.lua;" .. package.path
package.cpath = "./build/lua54/?.so;" .. package.cpath
local as2gateway = require "as2gateway"

local to, log_path, mode, n, pattern = arg[1], arg[2], arg[3], tonumber(arg[4]), arg[5]
assert(to and log_path and n, "usage: drain_child.lua TO LOG MODE N [PATTERN]")
assert(mode == "handler" or mode == "response" or mode == "request", "bad MODE")
pattern = pattern or "/batch/"

local function die()
  local f = assert(io.open("/proc/self/stat", "rb"))
  local pid = f:read("a"):match("^(%d+)")
  f:close()
  os.execute("kill -KILL " .. pid)
  os.execute("sleep 10") -- not reached: the kill is immediate
  error("still alive")
end

local seen, last_path = 0, ""
local client = as2gateway.new {
  url = os.getenv("AS2G_URL"), username = os.getenv("AS2G_USERNAME"),
  password = os.getenv("AS2G_PASSWORD"), cainfo = os.getenv("AS2G_CA"),
  log = function(event)
    if event.event == "request" then last_path = tostring(event.path) end
    if event.event == mode and last_path:find(pattern, 1, true) then
      seen = seen + 1
      if seen == n then die() end
    end
  end,
}

local calls = 0
local summary, err = client:drain {
  to = to,
  handler = function(message)
    calls = calls + 1
    if mode == "handler" and calls == n then die() end
    local f = assert(io.open(log_path, "ab"))
    f:write(message.as2MessageId, "\n")
    f:close()
  end,
}
client:close()
io.stdout:write(summary and ("drained %d"):format(summary.messages) or tostring(err), "\n")
os.exit(summary and 0 or 1)
