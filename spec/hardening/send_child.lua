-- A send_dir in its own process, for send_crash_spec.lua to SIGKILL at a random moment.
-- Usage (from the checkout, AS2G_* set, the sandbox's rate limit off):
--   lua5.4 spec/hardening/send_child.lua DIR
-- Sends DIR to GLOBEX-AS2, moving each sent file into DIR/sent. Prints "sent N settled
-- M" when it was not killed; "failed <error>" (exit 1) when the run failed.
package.path = "./lua/?.lua;./lua/?/init.lua;" .. package.path
package.cpath = "./build/lua54/?.so;" .. package.cpath
local as2gateway = require "as2gateway"

local dir = arg[1]
assert(dir, "usage: send_child.lua DIR")

local client = as2gateway.new {
  url = os.getenv("AS2G_URL"), username = os.getenv("AS2G_USERNAME"),
  password = os.getenv("AS2G_PASSWORD"), cainfo = os.getenv("AS2G_CA"),
  rate_limit = false,
}
-- the sandbox sends in 0.5 s; a gateway handles a request within the fault's delay
local report, err = client:send_dir("ACME-AS2", "GLOBEX-AS2", dir, { move_to = true,
  resolve = { max_processing = 1 } })
client:close()
if not report then
  io.stdout:write("failed ", tostring(err), "\n")
  os.exit(1)
end
local sent = 0
for _, entry in ipairs(report) do
  if entry.state == "sent" and not entry.resolved then sent = sent + 1 end
end
io.stdout:write(("sent %d settled %d\n"):format(sent, report.settled))
