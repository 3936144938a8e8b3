-- Send one invoice to a partner and wait until it is delivered (or gives up).
--   eval "$(bin/as2g-sandbox start)"; lua5.4 examples/send_invoice.lua [FILE]
local as2gateway = require "as2gateway"

local client = as2gateway.new {
  url = os.getenv("AS2G_URL"), cainfo = os.getenv("AS2G_CA"),
  username = os.getenv("AS2G_USERNAME"), password = os.getenv("AS2G_PASSWORD"),
}

local path = arg[1]
if not path then -- make one, so that the example runs as it is
  path = os.tmpname()
  local f = assert(io.open(path, "wb"))
  f:write('<?xml version="1.0"?><invoice number="1001" total="250.00"/>\n')
  f:close()
end

-- nil, err for what can go wrong at run time; err.kind says what
local result, err = client:send("ACME-AS2", "AS2G-ECHO",
  { { path = path, name = "invoice-1001.xml", content_type = "application/xml" } },
  { subject = "Invoice 1001" })
if not result then
  if err.kind == "unknown_outcome" then
    -- it may have gone out: look at the queued and sent lists before sending again
    io.stderr:write("send outcome unknown: ", tostring(err), "\n")
  else
    io.stderr:write("not sent: ", tostring(err), "\n")
  end
  os.exit(1)
end
print("queued", result.as2MessageId)

local message, state = client:wait(result.link, { timeout = 120, initial = 1 })
if not message then
  io.stderr:write("no final state: ", tostring(state), "\n")
  os.exit(1)
end
print(state, message.deliveryStatus, "MDN " .. message.mdnStatus)
client:close()
