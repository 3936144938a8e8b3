-- Walk every message of a listing, page by page, without thinking about pages.
--   eval "$(bin/as2g-sandbox start)"; lua5.4 examples/list_messages.lua [KIND]
local as2gateway = require "as2gateway"

local client = as2gateway.new {
  url = os.getenv("AS2G_URL"), cainfo = os.getenv("AS2G_CA"),
  username = os.getenv("AS2G_USERNAME"), password = os.getenv("AS2G_PASSWORD"),
}

local messages = client:messages(arg[1] or "received", { sortDir = "asc" })
local count = 0
for message in messages do
  count = count + 1
  print(("%-50s %-14s %s"):format(message.as2MessageId, message.receiverId,
    message.subject or "(no subject)"))
end
if messages.err then -- the loop ends on a failure; the error stays on the iterator
  io.stderr:write("listing failed: ", tostring(messages.err), "\n")
  os.exit(1)
end
print(count .. " messages")
client:close()
