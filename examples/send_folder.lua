-- Send every file of a folder, one message each, and report what went where.
--   eval "$(bin/as2g-sandbox start)"; lua5.4 examples/send_folder.lua [DIR]
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
    local f = assert(io.open(("%s/order-%d.csv"):format(dir, i), "wb"))
    f:write("sku,qty\n10344,", i, "\n")
    f:close()
  end
end

local report = assert(client:send_dir("ACME-AS2", "GLOBEX-AS2", dir, { subject = "Orders" }))
local failed = 0
for _, entry in ipairs(report) do
  local names = {}
  for _, path in ipairs(entry.files) do names[#names + 1] = path:match("[^/]+$") end
  if entry.err then failed = failed + 1 end
  print(("%-30s %s"):format(table.concat(names, ", "),
    entry.as2MessageId or ("NOT SENT: " .. tostring(entry.err))))
end
client:close()
os.exit(failed == 0)
