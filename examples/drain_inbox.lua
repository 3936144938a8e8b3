-- Drain the inbox into a folder exactly once: run it from cron as often as you like.
-- Each unread message's attachments land in DIR/<message>/ before the handler sees
-- them; a crash or a failing handler is finished by the next run.
--   eval "$(bin/as2g-sandbox start)"; lua5.4 examples/drain_inbox.lua [DIR]
local as2gateway = require "as2gateway"

local client = as2gateway.new {
  url = os.getenv("AS2G_URL"), cainfo = os.getenv("AS2G_CA"),
  username = os.getenv("AS2G_USERNAME"), password = os.getenv("AS2G_PASSWORD"),
}

local summary, err = client:drain {
  to = arg[1] or "./inbox",
  -- runs at least once per message: make it idempotent (e.g. key on the message ID)
  handler = function(message, paths)
    print(("%s from %s: %d file(s)"):format(message.as2MessageId, message.receiverId, #paths))
  end,
}
if not summary then
  -- "locked": another drain is running in this folder (try again later, or lock_wait)
  io.stderr:write("drain failed: ", tostring(err), "\n")
  os.exit(err.kind == "locked" and 8 or 1)
end
-- a failed message is named with its reason, and fetched again by the next run
for id, e in pairs(summary.errors) do io.stderr:write(id, ": ", tostring(e), "\n") end
print(("%d messages, %d done, %d to retry next run"):format(summary.messages, summary.done,
  summary.failed))
client:close()
os.exit(summary.failed == 0 and 0 or 1)
