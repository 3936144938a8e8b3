-- A drain in its own process, for crash_spec.lua to SIGKILL from outside at a random moment.
-- Usage (from the checkout, AS2G_* set, the sandbox's rate limit off):
--   lua5.4 spec/hardening/crash_child.lua TO LOG [LOCK_WAIT [HANDLER_MS]]
-- LOG gets one line per handler call (none fails), appended and flushed before the
-- handler returns: "<AS2 ID> ok" when the paths it was given are the message's
-- attachments, complete on disk, else "<AS2 ID> bad: <why>". Prints "drained N" when it
-- was not killed, or "locked" when another drain held TO for LOCK_WAIT seconds (0).
-- HANDLER_MS: how long each handler call takes (0), as a real import would.
package.path = "./lua/?.lua;./lua/?/init.lua;" .. package.path
package.cpath = "./build/lua54/?.so;" .. package.cpath
local as2gateway = require "as2gateway"

local to, log_path, lock_wait = arg[1], arg[2], tonumber(arg[3] or "0")
local handler_s = tonumber(arg[4] or "0") / 1000
assert(to and log_path, "usage: crash_child.lua TO LOG")

local client = as2gateway.new {
  url = os.getenv("AS2G_URL"), username = os.getenv("AS2G_USERNAME"),
  password = os.getenv("AS2G_PASSWORD"), cainfo = os.getenv("AS2G_CA"),
  rate_limit = false,
}
-- Why the files a handler gets are not the message's attachments, whole; nil when they are.
local function check(message, paths)
  local atts = message.attachments or {}
  if #paths ~= #atts then return ("%d paths for %d attachments"):format(#paths, #atts) end
  local size_of = {}
  for _, p in ipairs(paths) do
    local f = io.open(p, "rb")
    if not f then return "cannot open " .. p end
    size_of[p:match("[^/]+$")] = f:seek("end")
    f:close()
  end
  for _, a in ipairs(atts) do
    if size_of[a.name] ~= a.size then
      return ("%s has %s bytes, not %s"):format(a.name, tostring(size_of[a.name]), a.size)
    end
  end
end

local log = assert(io.open(log_path, "ab"))
local summary, err = client:drain {
  to = to,
  lock_wait = lock_wait,
  handler = function(message, paths)
    local why = check(message, paths)
    if handler_s > 0 then require("as2gateway.core").sleep(handler_s) end
    log:write(message.as2MessageId, why and (" bad: " .. why) or " ok", "\n")
    log:flush()
  end,
}
log:close()
client:close()
if not summary and err.kind == "locked" then
  io.stdout:write("locked\n")
  os.exit(0)
end
io.stdout:write(summary and ("drained %d"):format(summary.messages) or tostring(err), "\n")
os.exit(summary and 0 or 1)
