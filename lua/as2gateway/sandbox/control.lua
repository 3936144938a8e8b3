-- The sandbox's control surface for tests and demos (under /_sandbox/, behind the
-- X-Sandbox-Secret header, outside the rate limit). Documented in docs/sandbox.md.
local state = require "as2gateway.sandbox.state"
local http = require "as2gateway.sandbox.http"
local api = require "as2gateway.sandbox.api"

local message, array = http.message, http.array

local M = {}

local function body_object(req)
  if not req.body or req.body == "" then return {} end
  local v = http.decode(req.body)
  if type(v) ~= "table" then return nil, "expected a JSON object" end
  return v
end

local function account_of(body)
  if body.account == nil then return state.accounts()[1] end
  return state.account(body.account)
end

local function check_keys(body, allowed)
  for k in pairs(body) do
    if not allowed[k] then return nil, "unknown field " .. tostring(k) end
  end
  return true
end

-- Control input is checked whole: a number must be finite and within what the
-- sandbox can hold (a clock moved by 1e308 s broke every later answer, /authorize
-- included, until reset). NaN fails every comparison.
local MAX_INT = 2 ^ 53

local function is_number(v, lo, hi)
  return type(v) == "number" and v >= lo and v <= hi
end

local function is_int(v, lo, hi)
  return is_number(v, lo or 0, hi or MAX_INT) and v == math.floor(v)
end

local MAX_ADVANCE = 10 * 366 * 24 * 3600 -- seconds: ten years
local MAX_GENERATED = 256 * 1024 * 1024 -- bytes of one attachment made from a size
local MAX_TUNABLE = 1e9                 -- seconds, bytes or counts of a setting

local handlers = {}

handlers["POST reset"] = function()
  state.reset()
  message(200, "Sandbox reset to seed data")
end

handlers["GET health"] = function()
  http.json(200, { ok = true })
end

handlers["POST inbound"] = function(_, body)
  local ok, err = check_keys(body, { account = true, station = true, partner = true,
    subject = true, partnerType = true, attachments = true, as2MessageId = true })
  if not ok then return message(400, err) end
  local acc = account_of(body)
  if not acc then return message(404, "Unknown account") end
  if type(body.station) ~= "string" or not state.station_of(acc, body.station) then
    return message(404, "Unknown station " .. tostring(body.station))
  end
  local partner = type(body.partner) == "string" and state.partner_of(acc, body.partner)
  if not partner then return message(404, "Unknown partner " .. tostring(body.partner)) end
  local ptype = partner.partnerType
  if body.partnerType ~= nil then
    local p = tostring(body.partnerType):lower()
    if p ~= "production" and p ~= "test" then
      return message(400, "partnerType must be production or test")
    end
    ptype = p == "test" and "Test" or "Production"
  end
  if type(body.attachments) ~= "table" or #body.attachments == 0 then
    return message(400, "attachments must be a non-empty array")
  end
  local atts = {}
  for i, a in ipairs(body.attachments) do
    if type(a) ~= "table" or type(a.name) ~= "string" then
      return message(400, "every attachment needs a name")
    end
    local data
    if a.data ~= nil then
      data = type(a.data) == "string" and ngx.decode_base64(a.data)
      if not data then return message(400, "attachment data must be base64") end
    elseif not is_int(a.size, 0, MAX_GENERATED) then
      return message(400, "every attachment needs data (base64) or a size (at most "
        .. MAX_GENERATED .. " bytes)")
    end
    atts[i] = { name = a.name, data = data, size = a.size }
  end
  local m = state.add_received(acc, { partner = body.partner, station = body.station,
    subject = body.subject, partnerType = ptype, attachments = atts,
    as2MessageId = body.as2MessageId })
  http.json(200, { as2MessageId = m.as2MessageId })
end

handlers["POST clock"] = function(_, body)
  if not is_number(body.advance, 0, MAX_ADVANCE) then
    return message(400, "advance must be a number of seconds from 0 to " .. MAX_ADVANCE)
  end
  state.advance(body.advance)
  state.tick()
  http.json(200, { now = state.now_ms() })
end

handlers["GET clock"] = function()
  http.json(200, { now = state.now_ms() })
end

local BEHAVIOURS = { deliver = true, fail = true, pause = true }
local DELIVERY_STATUSES = { Delivered = true, ["Not Delivered"] = true, ["No Status"] = true }

handlers["POST partner"] = function(_, body, arg)
  local ok, err = check_keys(body, { account = true, behaviour = true, fail_status = true,
    requestMdn = true, requestAsyncMdn = true, mdnError = true, mdnLost = true,
    deliveryStatus = true })
  if not ok then return message(400, err) end
  for _, k in ipairs { "requestMdn", "requestAsyncMdn", "mdnError", "mdnLost" } do
    if body[k] ~= nil and type(body[k]) ~= "boolean" then
      return message(400, k .. " must be true or false")
    end
  end
  if body.deliveryStatus ~= nil and not DELIVERY_STATUSES[body.deliveryStatus] then
    return message(400, "deliveryStatus must be Delivered, Not Delivered or No Status")
  end
  local acc = account_of(body)
  if not acc then return message(404, "Unknown account") end
  local found = false
  for _, p in ipairs(acc.partners) do
    if p.as2Identifier == arg then
      found = true
      if body.behaviour ~= nil then
        if not BEHAVIOURS[body.behaviour] then
          return message(400, "behaviour must be deliver, fail or pause")
        end
        p.pauseOutgoing = body.behaviour == "pause"
        state.set_behaviour(acc, arg, { behaviour = body.behaviour })
      end
      if body.fail_status ~= nil then
        state.set_behaviour(acc, arg, { fail_status = body.fail_status })
      end
      if body.requestMdn ~= nil then p.requestMdn = body.requestMdn end
      if body.requestAsyncMdn ~= nil then p.requestAsyncMdn = body.requestAsyncMdn end
      for _, k in ipairs { "mdnError", "mdnLost", "deliveryStatus" } do
        if body[k] ~= nil then state.set_behaviour(acc, arg, { [k] = body[k] }) end
      end
    end
  end
  if not found then return message(404, "Unknown partner " .. tostring(arg)) end
  state.tick()
  message(200, "Partner " .. arg .. " updated")
end

local FAULT_KEYS = { path = true, method = true, count = true, status = true,
  retry_after = true, delay_ms = true, close_after_bytes = true,
  trickle_bytes_per_s = true, drop_response = true, body = true, body_base64 = true,
  content_type = true, headers = true, message = true, override_status = true,
  endless = true }

handlers["POST faults"] = function(_, body)
  local ok, err = check_keys(body, FAULT_KEYS)
  if not ok then return message(400, err) end
  if type(body.path) ~= "string" then return message(400, "path is required") end
  body.count = body.count or 1
  if body.body_base64 ~= nil then
    body.body = type(body.body_base64) == "string" and ngx.decode_base64(body.body_base64)
    if not body.body then return message(400, "body_base64 must be base64") end
    body.body_base64 = nil
  end
  for _, k in ipairs { "count", "delay_ms", "close_after_bytes", "trickle_bytes_per_s" } do
    if body[k] ~= nil and not is_int(body[k], k == "count" and 1 or 0,
        k == "delay_ms" and 3600 * 1000 or nil) then
      return message(400, k .. " must be a non-negative integer (delay_ms: at most an hour)")
    end
  end
  for _, k in ipairs { "status", "override_status" } do
    if body[k] ~= nil and not is_int(body[k], 100, 599) then
      return message(400, k .. " must be an HTTP status (100 to 599)")
    end
  end
  if body.retry_after ~= nil and type(body.retry_after) ~= "string"
      and not is_int(body.retry_after, 0, MAX_TUNABLE) then
    return message(400, "retry_after must be a string or a non-negative integer")
  end
  if body.trickle_bytes_per_s == 0 then
    return message(400, "trickle_bytes_per_s must be at least 1")
  end
  if body.headers ~= nil and type(body.headers) ~= "table" then
    return message(400, "headers must be an object")
  end
  -- paths may be given with the /v1 prefix or without, with or without the leading
  -- slash; methods in any case
  body.path = body.path:gsub("^/v1/", "/")
  if body.path ~= "*" and body.path:sub(1, 1) ~= "/" then body.path = "/" .. body.path end
  if body.method ~= nil then
    if type(body.method) ~= "string" then return message(400, "method must be a string") end
    body.method = body.method:upper()
  end
  http.json(200, { id = state.add_fault(body) })
end

handlers["GET faults"] = function()
  local list = array()
  for i, f in ipairs(state.faults()) do list[i] = f end
  http.json(200, list)
end

handlers["DELETE faults"] = function()
  state.clear_faults()
  message(200, "Faults cleared")
end

handlers["GET stats"] = function()
  local st = state.stats()
  local by = {}
  for k, v in pairs(st.by_endpoint) do by[k] = v end
  http.json(200, { requests = st.requests, by_endpoint = by, connections = st.connections,
    rate_limited = st.rate_limited, authorizations = st.authorizations })
end

local TUNABLES = { batch_limit = true, token_lifetime = true, queue_delay = true,
  processing_time = true, retry_base = true, retry_cap = true, max_attempts = true,
  async_mdn_delay = true, upload_limit = true }

local function parse_rate_limit(v)
  if v == "off" or v == false then return false end
  local n, s = tostring(v):match("^(%d+)/(%d+%.?%d*)$")
  if not n or tonumber(n) < 1 or tonumber(n) > 1e6 or tonumber(s) <= 0 or tonumber(s) > 1e6 then
    return nil
  end
  return { requests = tonumber(n), window = tonumber(s) }
end

handlers["POST config"] = function(_, body)
  local t = {}
  for k, v in pairs(body) do
    if k == "rate_limit" then
      local rl = parse_rate_limit(v)
      if rl == nil then return message(400, 'rate_limit must be "N/S" or "off"') end
      t.rate_limit = rl
    elseif TUNABLES[k] then
      if not is_number(v, 0, MAX_TUNABLE) then
        return message(400, k .. " must be a number from 0 to " .. MAX_TUNABLE)
      end
      t[k] = v
    else
      return message(400, "unknown setting " .. tostring(k))
    end
  end
  state.set_tunables(t)
  http.json(200, state.tunables())
end

handlers["GET config"] = function()
  http.json(200, state.tunables())
end

local function attachment_view(m)
  local atts = array()
  for i, a in ipairs(m.attachments) do
    atts[i] = { name = a.name, size = a.size, contentType = a.contentType,
      sha256 = (a.sha256:gsub(".", function(c) return ("%02x"):format(c:byte()) end)) }
  end
  return atts
end

-- Every outbound message once (queued, being sent, sent or stopped; failed attempts
-- are not messages of their own): what the API cannot show in one place, e.g. that
-- a file was sent exactly once.
local function outbound(acc)
  local list, seen = array(), {}
  local function add(m, st)
    if seen[m.as2MessageId] then return end
    seen[m.as2MessageId] = true
    list[#list + 1] = { as2MessageId = m.as2MessageId, state = st, receiverId = m.receiverId,
      senderId = m.senderId, subject = m.subject, partnerType = m.partnerType,
      persistedTimestamp = m.persistedTimestamp, attachments = attachment_view(m) }
  end
  for _, e in ipairs(acc.queue) do add(e.msg, e.state) end
  for _, e in ipairs(acc.stopped) do add(e.msg, "stopped") end
  for _, m in ipairs(acc.sent) do add(m, "sent") end
  return list
end

-- Internal view of one message in every list, with what the API does not show
-- (detected content types and digests, profile, read flag); without an ID, every
-- outbound message.
handlers["GET messages"] = function(req, _, arg)
  local acc = account_of({ account = req.args.account })
  if not acc then return message(404, "Unknown account") end
  if not arg then return http.json(200, { outbound = outbound(acc) }) end
  local out = { read = state.is_read(acc, arg) }
  for _, kind in ipairs { "received", "sent", "failed", "queued", "stopped" } do
    local list = array()
    local source = acc[kind == "queued" and "queue" or kind]
    for _, item in ipairs(source) do
      local m = item.msg or item
      if m.as2MessageId == arg then
        local e = api.message_entity(m, kind == "stopped" and "sent" or kind == "queued"
          and "sent" or kind)
        e.attachments = attachment_view(m)
        e.profile = m.profile
        if item.msg then e.state, e.attempts = item.state, item.attempts end
        list[#list + 1] = e
      end
    end
    out[kind] = list
  end
  http.json(200, out)
end

function M.handle(req, rest)
  local name, arg = rest:match("^([^/]+)/?(.*)$")
  local h = handlers[req.method .. " " .. (name or "")]
  if not h then return message(404, "No such sandbox control endpoint") end
  if arg == "" then arg = nil end
  if arg then arg = arg:gsub("%%(%x%x)", function(x) return string.char(tonumber(x, 16)) end) end
  local body, err = body_object(req)
  if not body then return message(400, err) end
  h(req, body, arg)
end

return M
