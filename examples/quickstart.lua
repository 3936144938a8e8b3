-- Quickstart (what `make demo` runs against a fresh sandbox): send two files to the
-- echo partner, wait until both are delivered, drain the inbox into ./inbox exactly
-- once, and print a summary.
--   eval "$(bin/as2g-sandbox start)"; lua5.4 examples/quickstart.lua; bin/as2g-sandbox stop
local as2gateway = require "as2gateway"

local client = as2gateway.new {
  url = os.getenv("AS2G_URL"),
  username = os.getenv("AS2G_USERNAME"),
  password = os.getenv("AS2G_PASSWORD"),
  cainfo = os.getenv("AS2G_CA"), -- the sandbox's CA; leave out for the real gateway
}

local files = {
  { name = "invoice_20200101.xml",
    data = '<?xml version="1.0"?><invoice number="20200101" total="1000"/>\n' },
  { name = "order_5001.edi", data = "ISA*00*          *00*          *ZZ*ACME*ZZ*ECHO~\n" },
}

local sent = {}
for _, file in ipairs(files) do
  local result = assert(client:send("ACME-AS2", "AS2G-ECHO", { file },
    { subject = "Quickstart " .. file.name }))
  print(("sent      %-22s %s"):format(file.name, result.as2MessageId))
  sent[#sent + 1] = result
end

for _, result in ipairs(sent) do
  local message, state = client:wait(result.link, { timeout = 60, initial = 1 })
  assert(message, state)
  print(("%-9s %-22s MDN %s"):format(state, message.attachments[1].name, message.mdnStatus))
end

local inbox = os.getenv("INBOX") or "./inbox"
local summary = assert(client:drain {
  to = inbox,
  handler = function(message, paths)
    for _, path in ipairs(paths) do
      print(("received  %-22s from %s -> %s"):format(path:match("[^/]+$"),
        message.receiverId, path))
    end
  end,
})
print(("drained %d messages into %s (%d done, %d failed); %d requests in all")
  :format(summary.messages, inbox, summary.done, summary.failed, client:stats().requests))
client:close()
