-- Benchmark (not a test): peak memory of streaming. A 10 MB upload from a file and a
-- 10 MB download to a file must raise the process's peak RSS (VmHWM in
-- /proc/self/status) by less than 2 MB over a warmed-up client; the same upload from
-- an in-memory string runs last, side by side, as the baseline that shows what
-- holding the file whole would cost.
--   bin/as2g-sandbox run -- lua5.4 bench/memory.lua
package.path = "./bench/?.lua;./lua/?.lua;./lua/?/init.lua;" .. package.path
package.cpath = "./build/lua54/?.so;" .. package.cpath
local core = require "as2gateway.core"

local SIZE = 10 * 1024 * 1024

local status_kb = require "proc_status"
local function peak_kb() return status_kb("VmHWM") end

local control = require "sandbox_control"

control("POST", "reset")
local dir = os.tmpname()
os.remove(dir)
os.execute("mkdir -p " .. dir)
local upload = dir .. "/upload.bin"
os.execute(("head -c %d /dev/urandom > %s"):format(SIZE, upload))
local id = control("POST", "inbound", { station = "ACME-AS2", partner = "GLOBEX-AS2",
  attachments = { { name = "big.bin", size = SIZE } } }).as2MessageId

local client = core.new { url = os.getenv("AS2G_URL"), username = os.getenv("AS2G_USERNAME"),
  password = os.getenv("AS2G_PASSWORD"), cainfo = os.getenv("AS2G_CA") }
-- warm up: login, TLS, the first listing
assert(client:perform { path = { "message", "received" }, json = true })
collectgarbage("collect")
local base = peak_kb()

local function send(spec)
  spec.method, spec.path, spec.send = "POST", { "message", "ACME-AS2", "GLOBEX-AS2" }, true
  spec.headers = { Name = "big.bin", ["Content-Type"] = "application/octet-stream" }
  return assert(client:perform(spec))
end

send { body_file = upload }
local after_upload = peak_kb()
assert(client:perform { path = { "message", "received", id, "attachments", "0" },
  to_file = dir .. "/download.bin" })
local after_download = peak_kb()
local f = io.open(upload, "rb")
local whole = f:read("a")
f:close()
send { body = whole }
whole = nil -- luacheck: ignore
local after_memory = peak_kb()

local function mb(kb) return kb / 1024 end
print(("peak RSS (VmHWM) over a warmed-up client of %.1f MB:"):format(mb(base)))
print(("  10 MB upload from a file     +%5.2f MB"):format(mb(after_upload - base)))
print(("  10 MB download to a file     +%5.2f MB"):format(mb(after_download - base)))
print(("  baseline: 10 MB upload from a string +%5.2f MB")
  :format(mb(after_memory - after_download)))
client:close()
os.execute("rm -rf " .. dir)
os.exit(after_download - base < 2048)
