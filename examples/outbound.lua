-- The outbound workflow: send a folder exactly once (a journal in the folder, sent files
-- moved to sent/), run it again as cron would (nothing is sent twice, not even a file
-- written again), settle what is unknown, and wait for each message's end, MDN included.
--   eval "$(bin/as2g-sandbox start)"; lua5.4 examples/outbound.lua [DIR]
local as2gateway = require "as2gateway"

local client = as2gateway.new {
  url = os.getenv("AS2G_URL"), cainfo = os.getenv("AS2G_CA"),
  username = os.getenv("AS2G_USERNAME"), password = os.getenv("AS2G_PASSWORD"),
}

local dir = arg[1]
if not dir then -- make one, so that the example runs as it is
  dir = os.tmpname()
  os.remove(dir)
  assert(as2gateway.core.mkdir(dir))
  for i = 1, 3 do
    local f = assert(io.open(("%s/invoice-%d.xml"):format(dir, i), "wb"))
    f:write(('<invoice number="%d"/>\n'):format(i))
    f:close()
  end
end

-- 1. every file once; each is journalled before it goes and after
local report, err = client:send_dir("ACME-AS2", "GLOBEX-AS2", dir,
  { subject = "Invoices", move_to = true })
if not report then error(tostring(err)) end
for _, entry in ipairs(report) do
  print(("%-8s %-44s %s"):format(entry.state, entry.as2MessageId or "-",
    entry.files[1]:match("[^/]+$")))
end

-- 2. the exporter writes one of them again, and the job runs again (cron): a file
-- already sent (same name, same bytes) is not sent twice, only moved away
local first = report[1] and report[1].moved and report[1].moved[1]
if first then
  local src, copy = assert(io.open(first, "rb")), assert(io.open(dir .. "/"
    .. first:match("[^/]+$"), "wb"))
  copy:write(src:read("a"))
  src:close()
  copy:close()
end
local again = assert(client:send_dir("ACME-AS2", "GLOBEX-AS2", dir,
  { subject = "Invoices", move_to = true }))
print(("rerun: %d sent now, %d already sent"):format(#again, again.settled))

-- 3. sends whose outcome is unknown (a lost answer, a crash) are settled from the
-- gateway's listings: found, or proved absent and sent again by the next run
local settled = assert(client:settle(dir))
print(("settle: %d unknown send(s) looked at"):format(#settled))

-- 4. each message's end: sent, mdn_error, stopped, gone, ... (a report entry is a
-- valid target: wait knows its partner type from the journal record)
local failures = 0
for _, entry in ipairs(report) do
  if entry.as2MessageId then
    local message, state, mdn = client:wait(entry, { mdn = true, initial = 1, timeout = 120 })
    if not message then
      failures = failures + 1
      print(entry.as2MessageId, tostring(state))
    else
      if state ~= "sent" then failures = failures + 1 end
      print(("%-44s %s, MDN %s"):format(message.as2MessageId, state,
        mdn and (mdn.error or mdn.disposition) or message.mdnStatus))
    end
  end
end
client:close()
os.exit(failures == 0)
