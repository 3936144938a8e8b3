-- Writes the listing benchmark's fixed page to stdout: 100 received messages, made
-- the way the sandbox makes them (its record fields, its entity and its encoder:
-- lua/as2gateway/sandbox/api.lua), from a fixed seed. Runs under LuaJIT, as the
-- sandbox does (its crypto module needs ffi).
--   luajit bench/listing/page.lua > page.json
package.path = "./lua/?.lua;./lua/?/init.lua;" .. package.path
local api = require "as2gateway.sandbox.api"
local cjson = require "cjson"

math.randomseed(14)
local random, floor = math.random, math.floor

local PARTNERS = { "GLOBEX-AS2", "INITECH-AS2", "AS2G-ECHO", "HOOLI-TEST" }
local STATIONS = { "ACME-AS2", "ACME-EU-AS2" }
local EXT = { "xml", "edi", "csv", "pdf", "x12" }
local MDN = "The AS2 message has been received. Thank you for exchanging AS2 "
  .. "messages with AS2 Gateway."

-- The sandbox's entity, its fields in the order of the API's table (the sandbox's
-- own encoder writes them in hash order, which differs from run to run).
local ORDER = { "as2MessageId", "persistedTimestamp", "compressed", "encrypted", "signed",
  "subject", "receiverId", "senderId", "mdnStatus", "partnerType", "mdnMessage",
  "attachments", "content", "mdnError", "name", "size" }
local function encode(v)
  if type(v) ~= "table" then return cjson.encode(v) end
  local out = {}
  if v[1] then
    for i, x in ipairs(v) do out[i] = encode(x) end
    return "[" .. table.concat(out, ",") .. "]"
  end
  for _, k in ipairs(ORDER) do
    if v[k] ~= nil then out[#out + 1] = cjson.encode(k) .. ":" .. encode(v[k]) end
  end
  local n = 0
  for _ in pairs(v) do n = n + 1 end
  assert(n == #out, "a field missing from ORDER")
  return "{" .. table.concat(out, ",") .. "}"
end

local t = 1767225600000 -- 2026-01-01T00:00:00Z, in ms
local records = {}
for i = 1, 100 do
  t = t + floor(random() * 600000)
  local partner = PARTNERS[(i % #PARTNERS) + 1]
  local atts = {}
  for k = 1, 1 + (i % 5 == 0 and 1 or 0) do
    atts[k] = { name = ("%s%d-%d.%s"):format(i % 2 == 0 and "inv" or "po",
      1000 + i, k, EXT[(i + k) % #EXT + 1]), size = 200 + floor(random() * 2000000) }
  end
  local m = {
    as2MessageId = ("<%d.%d.%d@%s.example.com>"):format(10000000 + floor(random() * 89999999),
      i, t, partner:lower()),
    persistedTimestamp = t, compressed = i % 5 == 0, encrypted = true, signed = true,
    -- one in ten without a subject: the field is absent then, as the API has it
    subject = i % 10 ~= 0 and ("%s %d"):format(i % 2 == 0 and "Invoice" or "Order", 1000 + i)
      or nil,
    receiverId = partner, senderId = STATIONS[(i % 2) + 1],
    partnerType = partner:match("TEST$") and "Test" or "Production",
    mdnStatus = "Received",
    mdnMessage = { persistedTimestamp = t + 850, mdnError = false, content = MDN },
    attachments = atts,
  }
  records[i] = encode(api.message_entity(m, "received"))
end
io.write('{"totalRecords":252,"records":[', table.concat(records, ","), "]}")
