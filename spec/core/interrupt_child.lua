-- A child of spec/core/interrupt_spec.lua: traps SIGINT, then blocks in the core (a
-- slow download, a sleep or a rate-limit wait) and prints what came of it:
-- "trapped <bool>" first, then "<kind or ok> <pending signal or -> <seconds>".
local core = require "as2gateway.core"

local mode, a, b = arg[1], arg[2], arg[3]
io.stdout:write("trapped ", tostring(core.trap_interrupts()), "\n")
io.stdout:flush()
local t0 = core.now()
local kind
if mode == "sleep" then
  core.sleep(tonumber(a))
  kind = "ok"
elseif mode == "send" then -- to a server that takes the connection and reads nothing
  local c = core.new { url = "http://127.0.0.1:" .. a .. "/v1", token = "t" }
  local res, err = c:perform { method = "POST", path = { "message", "ACME-AS2", "X" },
    send = true, body = ("x"):rep(8 * 1024 * 1024) }
  kind = res and "ok" or err.kind
  io.stdout:write("message ", err and err.message or "", "\n")
  c:close()
else
  local c = core.new { url = os.getenv("AS2G_URL"), username = os.getenv("AS2G_USERNAME"),
    password = os.getenv("AS2G_PASSWORD"), cainfo = os.getenv("AS2G_CA"),
    rate_limit = mode == "ratelimit" and { requests = 1, window = 60 } or nil }
  local spec = { path = { "message", "received", a, "attachments", "0" }, to_file = b }
  if mode == "ratelimit" then -- the login takes the one slot: the request waits 60 s
    spec = { path = { "message", "received" }, json = true }
  end
  local res, err = c:perform(spec)
  kind = res and "ok" or err.kind
  c:close()
end
io.stdout:write(kind, " ", tostring(core.interrupted() or "-"), " ",
  ("%.2f"):format(core.now() - t0), "\n")
