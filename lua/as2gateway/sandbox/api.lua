-- The gateway's REST API v1 as the sandbox serves it: one handler per endpoint of
-- shared/API.md, each given the account the request's token belongs to.
local state = require "as2gateway.sandbox.state"
local http = require "as2gateway.sandbox.http"
local multipart = require "as2gateway.sandbox.multipart"
local zip = require "as2gateway.sandbox.zip"
-- a private instance: its settings are no other module's business (lua-cjson's are
-- per instance); 14 digits hold 13-digit millisecond timestamps
local cjson = require("cjson").new()
cjson.encode_number_precision(14)

local array, message = http.array, http.message

local M = {}

local MAX_FILES = 10

-- Entities -------------------------------------------------------------------------

local MESSAGE_FIELDS = { "as2MessageId", "persistedTimestamp", "compressed", "encrypted",
  "signed", "subject", "receiverId", "senderId", "transportStatusReceived",
  "deliveryStatus", "mdnStatus", "partnerType", "mdnMessage" }

local function message_entity(m, kind)
  local e = {}
  for _, k in ipairs(MESSAGE_FIELDS) do e[k] = m[k] end
  if kind ~= "sent" and kind ~= "failed" then
    e.transportStatusReceived, e.deliveryStatus = nil, nil
  end
  -- the vendor warns that queued entries may lack attachments; ours always do,
  -- so that clients are written for it
  if kind ~= "queued" then
    local atts = array()
    for i, a in ipairs(m.attachments) do atts[i] = { name = a.name, size = a.size } end
    e.attachments = atts
  end
  return e
end
M.message_entity = message_entity

local function with_arrays(t, fields)
  local c = {}
  for k, v in pairs(t) do c[k] = v end
  for _, f in ipairs(fields) do c[f] = array(c[f]) end
  return c
end

-- Request helpers ----------------------------------------------------------------------

local function escape_segment(s)
  return (s:gsub("[^%w%-%._~]", function(c) return ("%%%02X"):format(c:byte()) end))
end

local function arg(args, name)
  local v = args[name]
  if type(v) == "table" then v = v[#v] end
  if v == true then v = "" end -- "?flag" without a value
  return v
end

local function bool_arg(args, name)
  local v = arg(args, name)
  if v == nil then return false end
  if v == "true" then return true end
  if v == "false" then return false end
  return nil, name .. " must be true or false"
end

local function partner_type_arg(args)
  local v = arg(args, "partnerType")
  if v == nil then return "Production" end
  v = v:lower()
  if v == "production" then return "Production" end
  if v == "test" then return "Test" end
  return nil, "partnerType must be production or test"
end

local SORT_COLS = { persistedTimestamp = true, receiverId = true, senderId = true,
  subject = true }

local function int_arg(args, name, default, lo, hi)
  local v = arg(args, name)
  if v == nil then return default end
  local n = v:match("^%d+$") and tonumber(v)
  if not n or n < lo or (hi and n > hi) then
    return nil, ("%s must be an integer %s"):format(name,
      hi and ("from %d to %d"):format(lo, hi) or (">= %d"):format(lo))
  end
  return n
end

-- Validates the listing parameters of endpoints 4-7.
local function list_query(args, kind)
  local q, err = {}
  q.sortCol = arg(args, "sortCol") or "persistedTimestamp"
  if not SORT_COLS[q.sortCol] then
    return nil, "sortCol must be persistedTimestamp, receiverId, senderId or subject"
  end
  q.sortDir = arg(args, "sortDir") or "desc"
  if q.sortDir ~= "asc" and q.sortDir ~= "desc" then
    return nil, "sortDir must be asc or desc"
  end
  q.partnerType, err = partner_type_arg(args)
  if not q.partnerType then return nil, err end
  q.pageOffset, err = int_arg(args, "pageOffset", 0, 0)
  if not q.pageOffset then return nil, err end
  q.pageLength, err = int_arg(args, "pageLength", 10, 1, 100)
  if not q.pageLength then return nil, err end
  if kind == "received" then
    q.unreadOnly, err = bool_arg(args, "unreadOnly")
    if q.unreadOnly == nil then return nil, err end
  end
  if kind == "queued" then
    q.query = arg(args, "query")
  else
    q.partnerAS2Id = arg(args, "partnerAS2Id")
    q.stationAS2Id = arg(args, "stationAS2Id")
    q.as2MessageId = arg(args, "as2MessageId")
    q.subject = arg(args, "subject")
  end
  return q
end

local LISTABLE = { received = true, sent = true, failed = true, queued = true }
local DOWNLOADABLE = { received = true, sent = true }
local DELETABLE = { received = true, sent = true, queued = true, stopped = true,
  failed = true }

local function mark_read_arg(req, kind)
  if kind ~= "received" then return false end
  return bool_arg(req.args, "markAsRead")
end

-- Handlers ----------------------------------------------------------------------------

function M.list(req, acc)
  local kind = req.params.kind
  if not LISTABLE[kind] then return message(404, "Unknown message type " .. kind) end
  local q, err = list_query(req.args, kind)
  if not q then return message(400, err) end
  local total, page = state.list(acc, kind, q)
  -- cjson (C) writes the records: a message entity never holds an empty array, and
  -- listings of 100 are the sandbox's heaviest answers
  local records = {}
  for i, m in ipairs(page) do records[i] = cjson.encode(message_entity(m, kind)) end
  http.send { status = 200, headers = { ["Content-Type"] = "application/json" },
    body = '{"totalRecords":' .. total .. ',"records":[' .. table.concat(records, ",") .. "]}" }
end

function M.get(req, acc)
  local kind, id = req.params.kind, req.params.id
  if not LISTABLE[kind] then return message(404, "Unknown message type " .. kind) end
  local mark, err = mark_read_arg(req, kind)
  if mark == nil then return message(400, err) end
  local m = state.find(acc, kind, id)
  if not m then return message(404, "No " .. kind .. " message with ID " .. id) end
  if mark then state.set_read(acc, id, true) end
  http.json(200, message_entity(m, kind))
end

function M.mark_unread(req, acc)
  local id = req.params.id
  if not state.find(acc, "received", id) then
    return message(404, "No received message with ID " .. id)
  end
  state.set_read(acc, id, false)
  message(200, "Successfully marked message " .. id .. " as unread")
end

local function downloadable(req, acc)
  local kind, id = req.params.kind, req.params.id
  if not DOWNLOADABLE[kind] then
    return nil, message(404, "No attachments for message type " .. kind)
  end
  local mark, err = mark_read_arg(req, kind)
  if mark == nil then return nil, message(400, err) end
  local m = state.find(acc, kind, id)
  if not m then return nil, message(404, "No " .. kind .. " message with ID " .. id) end
  return m, mark
end

function M.attachment(req, acc)
  local m, mark = downloadable(req, acc)
  if not m then return end
  local index = req.params.index or "0"
  if not index:match("^%d+$") then
    return message(400, "Attachment index must be a non-negative integer")
  end
  local att = m.attachments[tonumber(index) + 1]
  if not att then
    return message(404, ("Message %s has no attachment %s"):format(m.as2MessageId, index))
  end
  if mark then state.set_read(acc, m.as2MessageId, true) end
  http.file(200, att.name, state.read_attachment(att))
end

function M.all_attachments(req, acc)
  local m, mark = downloadable(req, acc)
  if not m then return end
  local z = zip.new()
  for _, a in ipairs(m.attachments) do z:add(a.name, state.read_attachment(a)) end
  if mark then state.set_read(acc, m.as2MessageId, true) end
  http.file(200, "attachments.zip", z:finish())
end

function M.mdn(req, acc)
  local m, mark = downloadable(req, acc)
  if not m then return end
  if not m.mdn_payload then
    return message(404, "No MDN for message " .. m.as2MessageId)
  end
  if mark then state.set_read(acc, m.as2MessageId, true) end
  http.file(200, "mdn.txt", m.mdn_payload)
end

local function id_list(body)
  local ids = http.decode(body or "")
  if type(ids) ~= "table" or (next(ids) ~= nil and #ids == 0) then
    return nil, "the body must be a JSON array of AS2 message IDs"
  end
  if #ids < 1 or #ids > 100 then
    return nil, "the body must list from 1 to 100 AS2 message IDs"
  end
  for _, id in ipairs(ids) do
    if type(id) ~= "string" then return nil, "AS2 message IDs must be strings" end
  end
  return ids
end

-- Endpoint 12: one folder per ID, `.error` for unknown IDs. As the vendor describes
-- it, aggregation stops once the total has exceeded the batch limit: the attachment
-- that crossed it is included and named by the 206's (message, attachment) index.
-- Every answer holds at least one attachment, so a client continuing from the index
-- always advances.
function M.batch(req, acc)
  local mark, err = bool_arg(req.args, "markAsRead")
  if mark == nil then return message(400, err) end
  local ids
  ids, err = id_list(req.body)
  if not ids then return message(400, err) end
  local limit = state.tunables().batch_limit
  local z, total, last, truncated, complete = zip.new(), 0, nil, false, {}
  for mi, id in ipairs(ids) do
    if total > limit then truncated = true; break end
    local m = state.find(acc, "received", id)
    if not m then
      z:add(id .. "/.error", "No received message with ID " .. id)
    else
      for ai, a in ipairs(m.attachments) do
        if total > limit then truncated = true; break end
        z:add(id .. "/" .. a.name, state.read_attachment(a))
        total = total + a.size
        last = { mi - 1, ai - 1 }
      end
      if truncated then break end
      complete[#complete + 1] = id
    end
  end
  if mark then
    for _, id in ipairs(complete) do state.set_read(acc, id, true) end
  end
  if truncated then
    return http.file(206, "attachments.zip", z:finish(),
      { ["X-Batch-Truncation-Index"] = ("(%d,%d)"):format(last[1], last[2]) })
  end
  http.file(200, "attachments.zip", z:finish())
end

-- Endpoints 2 and 3 -------------------------------------------------------------------------

local function files_from_request(req)
  local limit = state.tunables().upload_limit
  local ctype = req.headers["content-type"]
  local boundary = multipart.boundary(ctype)
  if ctype and ctype:lower():match("^%s*multipart/") and not boundary then
    return nil, 400, "multipart payload without a boundary"
  end
  if not boundary then
    local name = req.headers["name"]
    if type(name) ~= "string" or name == "" then
      return nil, 400, "the Name header is required when sending a single file"
    end
    local body = req.body or ""
    if #body == 0 then return nil, 400, "the payload is empty" end
    if #body > limit then return nil, 413, "the payload is over 10 MB" end
    return { { name = name, data = body, content_type = ctype } }
  end
  local parts, err = multipart.parse(req.body or "", boundary)
  if not parts then return nil, 400, err end
  if #parts == 0 or #parts > MAX_FILES then
    return nil, 400, "a message carries from 1 to 10 files"
  end
  local seen, total, files = {}, 0, {}
  for i, p in ipairs(parts) do
    if p.name ~= "file" then return nil, 400, "every part must be named file" end
    if not p.filename or p.filename == "" then
      return nil, 400, "every file part needs a filename"
    end
    if seen[p.filename] then
      return nil, 400, "duplicate filename " .. p.filename
    end
    seen[p.filename] = true
    total = total + #p.data
    files[i] = { name = p.filename, data = p.data, content_type = p.content_type }
  end
  if total > limit then return nil, 413, "the files add up to over 10 MB" end
  return files
end

function M.send(req, acc)
  local ptype, err = partner_type_arg(req.args)
  if not ptype then return message(400, err) end
  local station = state.station_of(acc, req.params.station)
  if not station then return message(404, "Unknown station " .. req.params.station) end
  local partner = state.partner_of(acc, req.params.partner, ptype)
  if not partner then
    return message(404, ("Unknown %s partner %s"):format(ptype:lower(), req.params.partner))
  end
  local profile = arg(req.args, "profile")
  if profile and not acc.profiles[profile] then
    return message(400, "Unknown message submission profile " .. profile)
  end
  local files, status
  files, status, err = files_from_request(req)
  if not files then return message(status, err) end
  local m = state.enqueue(acc, station, partner,
    { subject = arg(req.args, "subject"), profile = profile, attachments = files })
  message(202, "Successfully added a new outbound entry",
    { Link = state.config().base_url .. "/message/sent/" .. escape_segment(m.as2MessageId) })
end

-- Retry control and deletion -------------------------------------------------------------------

function M.stop(req, acc)
  local id = req.params.id
  if not state.stop(acc, id) then return message(404, "No queued message with ID " .. id) end
  message(200, "Successfully stopped retrying AS2 message with ID " .. id)
end

function M.retry(req, acc)
  local id = req.params.id
  if not state.retry(acc, id) then
    return message(404, "No queued or stopped message with ID " .. id)
  end
  message(200, "Successfully started retrying AS2 message with ID " .. id)
end

function M.delete(req, acc)
  local kind, id = req.params.kind, req.params.id
  if not DELETABLE[kind] then return message(400, "Unknown message type " .. kind) end
  if not state.delete(acc, kind, id) then
    return message(404, "No " .. kind .. " message with ID " .. id)
  end
  message(200, "Successfully deleted message " .. id)
end

function M.delete_many(req, acc)
  local kind = req.params.kind
  if not DELETABLE[kind] then return message(400, "Unknown message type " .. kind) end
  local ids, err = id_list(req.body)
  if not ids then return message(400, err) end
  local n = 0
  for _, id in ipairs(ids) do
    if state.delete(acc, kind, id) then n = n + 1 end
  end
  message(200, ("Deleted %d messages"):format(n))
end

-- Partners and stations ------------------------------------------------------------------------

local function search(list, query, arrays)
  local out = array()
  for _, e in ipairs(list) do
    local q = query and query:lower()
    if not q or e.name:lower():find(q, 1, true) or e.as2Identifier:lower():find(q, 1, true) then
      out[#out + 1] = with_arrays(e, arrays)
    end
  end
  return out
end

function M.partners(req, acc)
  http.json(200, search(acc.partners, arg(req.args, "query"), { "customHeaders", "flows" }))
end

function M.stations(req, acc)
  http.json(200, search(acc.stations, arg(req.args, "query"), {}))
end

return M
