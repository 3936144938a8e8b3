-- All of the sandbox's gateway state: accounts, messages, the outbound queue and its
-- simulation, the sandbox clock, rate windows and request statistics. One nginx
-- worker owns it; attachment bytes live as files under the state directory.
local seed = require "as2gateway.sandbox.seed"
local crypto = require "as2gateway.sandbox.crypto"

local floor, max, min = math.floor, math.max, math.min
local insert, remove, sort = table.insert, table.remove, table.sort

local M = {}

local cfg        -- the configuration, as loaded from config.json (see server.lua)
local live       -- the tunables in force: cfg's defaults, changed by /_sandbox/config
local S          -- everything that /_sandbox/reset throws away

-- Clock ------------------------------------------------------------------------

function M.now_ms()
  return floor((ngx.now() + S.clock_offset) * 1000)
end

function M.advance(seconds)
  S.clock_offset = S.clock_offset + seconds
end

-- Files ------------------------------------------------------------------------

local function write_file(path, data)
  local f = assert(io.open(path, "wb"))
  assert(f:write(data))
  assert(f:close())
end

function M.read_attachment(att)
  local f = assert(io.open(att.file, "rb"))
  local data = f:read("*a")
  f:close()
  return data
end

local function store(data)
  S.file_seq = S.file_seq + 1
  local path = cfg.dir .. "/data/" .. S.file_seq
  write_file(path, data)
  return path
end

-- Sizes are exact and the bytes are recognisable: "[n]" counters, cut to size.
function M.generated_bytes(size)
  local unit = "as2gateway-sandbox-payload-0123456789abcdefghijklmnopqrstuvwxyz\n"
  return string.rep(unit, floor(size / #unit) + 1):sub(1, size)
end

-- Content types -----------------------------------------------------------------

local BY_EXTENSION = {
  xml = "application/xml", txt = "text/plain", csv = "text/csv",
  json = "application/json", pdf = "application/pdf", zip = "application/zip",
  x12 = "application/edi-x12", edifact = "application/edifact",
  htm = "text/html", html = "text/html",
}

-- What the gateway does when a send carries no Content-Type: by extension, and for
-- ".edi" by content (X12 interchanges open with ISA, EDIFACT with UNA or UNB).
function M.detect_content_type(name, data)
  local ext = (name:match("%.([^./\\]+)$") or ""):lower()
  if ext == "edi" then
    local head = data:sub(1, 64):gsub("^\239\187\191", ""):gsub("^%s+", "")
    if head:sub(1, 3) == "ISA" then return "application/edi-x12" end
    local h3 = head:sub(1, 3)
    if h3 == "UNA" or h3 == "UNB" then return "application/edifact" end
    return "application/edi-consent"
  end
  return BY_EXTENSION[ext] or "application/octet-stream"
end

-- Every change to a message list bumps the version, which keys the sorted-listing
-- cache: listings are the sandbox's hot path, and sorting on each request made a
-- few hundred messages cost more than TLS.
local function changed()
  S.version = S.version + 1
end

-- Records ------------------------------------------------------------------------

local function new_id(domain)
  S.seq = S.seq + 1
  return string.format("<%d.%d.%d@%s>", 10000000 + floor(math.random() * 89999999),
    S.seq, M.now_ms(), domain)
end

local function attachments_from(list)
  local out = {}
  for i, a in ipairs(list) do
    local data = a.data or M.generated_bytes(a.size or 0)
    out[i] = {
      name = a.name, size = #data, file = a.file or store(data),
      contentType = a.content_type or M.detect_content_type(a.name, data),
      sha256 = a.sha256 or crypto.sha256(data),
    }
  end
  return out
end

local function record(fields)
  S.seq = S.seq + 1
  fields.seq = S.seq
  fields.persistedTimestamp = fields.persistedTimestamp or M.now_ms()
  fields.compressed = fields.compressed or false
  fields.encrypted = fields.encrypted == nil and true or fields.encrypted
  fields.signed = fields.signed == nil and true or fields.signed
  return fields
end

local function copy(t)
  local c = {}
  for k, v in pairs(t) do c[k] = v end
  return c
end

-- The MDN a gateway keeps for a message: a multipart/report (RFC 6522) with a
-- human-readable part and a message/disposition-notification part (RFC 8098, as AS2
-- uses it, RFC 4130 section 7.4). `reporter` received the message: our station for a
-- received message, the partner for a sent one. The MIC is the SHA-256 of the
-- attachments' bytes in order (a real gateway takes it over the MIME entity it
-- signed), present when the message was signed. An error MDN reports a decryption
-- failure.
local MDN_TEXT = {
  ok = "The AS2 message has been received. Thank you for exchanging AS2 messages with "
    .. "AS2 Gateway.",
  error = "The AS2 message could not be processed: it could not be decrypted. The "
    .. "sender should check the certificate it encrypted with.",
}

local function mic(msg)
  local atts = msg.attachments
  if #atts == 1 then return atts[1].sha256 end
  local data = {}
  for i, a in ipairs(atts) do data[i] = M.read_attachment(a) end
  return crypto.sha256(table.concat(data))
end

local function mdn_payload(msg, reporter, failed)
  local boundary = ("----=_Part_%d_sandbox_mdn"):format(msg.seq)
  local fields = {
    "Reporting-UA: AS2 Gateway sandbox",
    "Original-Recipient: rfc822; " .. reporter,
    "Final-Recipient: rfc822; " .. reporter,
    "Original-Message-ID: " .. msg.as2MessageId,
  }
  if msg.signed then
    fields[#fields + 1] = "Received-Content-MIC: " .. ngx.encode_base64(mic(msg)) .. ", sha-256"
  end
  fields[#fields + 1] = "Disposition: automatic-action/MDN-sent-automatically; "
    .. (failed and "processed/error: decryption-failed" or "processed")
  return table.concat({
    "Content-Type: multipart/report; report-type=disposition-notification;",
    '\tboundary="' .. boundary .. '"',
    "",
    "--" .. boundary,
    "Content-Type: text/plain; charset=us-ascii",
    "Content-Transfer-Encoding: 7bit",
    "",
    failed and MDN_TEXT.error or MDN_TEXT.ok,
    "",
    "--" .. boundary,
    "Content-Type: message/disposition-notification",
    "Content-Transfer-Encoding: 7bit",
    "",
    table.concat(fields, "\r\n"),
    "",
    "--" .. boundary .. "--",
    "",
  }, "\r\n")
end

local function attach_mdn(msg, at, reporter, failed)
  msg.mdnStatus = "Received"
  msg.mdnMessage = { persistedTimestamp = at, mdnError = failed == true,
    content = failed and MDN_TEXT.error or MDN_TEXT.ok }
  msg.mdn_payload = mdn_payload(msg, reporter, failed)
end

-- Accounts -------------------------------------------------------------------------

local function partner_of(acc, as2, ptype)
  for _, p in ipairs(acc.partners) do
    if p.as2Identifier == as2 and (not ptype or p.partnerType == ptype) then return p end
  end
end
M.partner_of = partner_of

function M.station_of(acc, as2)
  for _, s in ipairs(acc.stations) do
    if s.as2Identifier == as2 then return s end
  end
end

function M.account(username)
  return S.accounts[username]
end

function M.accounts()
  return S.account_list
end

function M.add_received(acc, opts)
  local partner = assert(partner_of(acc, opts.partner))
  local msg = record {
    as2MessageId = opts.as2MessageId or new_id(opts.partner:lower() .. ".example.com"),
    persistedTimestamp = opts.at,
    subject = (opts.subject ~= "" and opts.subject) or nil,
    receiverId = opts.partner, senderId = opts.station,
    partnerType = opts.partnerType or partner.partnerType,
    attachments = attachments_from(opts.attachments),
  }
  attach_mdn(msg, msg.persistedTimestamp, opts.station)
  insert(acc.received, msg)
  changed()
  return msg
end

-- A partner's sandbox-only settings (POST /_sandbox/partner/<id>) shape what a
-- delivery looks like: deliveryStatus "No Status" (then no MDN either), an error
-- MDN, or an MDN that never arrives (mdnStatus stays Pending).
local function add_sent(acc, entry, at)
  local msg = copy(entry.msg)
  msg.persistedTimestamp = at
  S.seq = S.seq + 1
  msg.seq = S.seq
  msg.transportStatusReceived = 200
  local p = entry.partner
  local b = acc.behaviour[p.as2Identifier] or {}
  msg.deliveryStatus = b.deliveryStatus or "Delivered"
  if not p.requestMdn then
    msg.mdnStatus = "Not Requested"
  elseif msg.deliveryStatus == "No Status" then
    msg.mdnStatus = "No MDN"
  elseif b.mdnLost then
    msg.mdnStatus = "Pending"
  elseif p.requestAsyncMdn then
    msg.mdnStatus = "Pending"
    msg.mdn_due = at + floor(live.async_mdn_delay * 1000)
    msg.mdn_error = b.mdnError
  else
    attach_mdn(msg, at, p.as2Identifier, b.mdnError)
  end
  insert(acc.sent, msg)
  changed()
  if acc.echo[p.as2Identifier] then
    local atts = {}
    for i, a in ipairs(msg.attachments) do atts[i] = copy(a) end
    M.add_received(acc, { partner = p.as2Identifier, station = msg.senderId, at = at,
      subject = msg.subject, partnerType = msg.partnerType, attachments = atts })
  end
end

local function seed_account(spec)
  local acc = {
    username = spec.username, password = spec.password,
    stations = spec.stations, partners = spec.partners, echo = spec.echo,
    profiles = spec.profiles, behaviour = {},
    received = {}, sent = {}, failed = {}, queue = {}, stopped = {}, read = {},
    window = {},
  }
  local t = M.now_ms() - 3600 * 1000
  for _, m in ipairs(spec.received) do
    t = t + 60000
    m.at = t
    M.add_received(acc, m)
  end
  for _, m in ipairs(spec.sent) do
    t = t + 60000
    local partner = partner_of(acc, m.partner)
    local msg = record { as2MessageId = new_id("as2gateway.com"), persistedTimestamp = t,
      subject = m.subject, receiverId = m.partner, senderId = m.station,
      partnerType = partner.partnerType, attachments = attachments_from(m.attachments) }
    add_sent(acc, { msg = msg, partner = partner }, t)
  end
  return acc
end

-- Reset ----------------------------------------------------------------------------

local function clear_data_dir()
  -- the files are named by a counter, so walking the counter finds them all
  if S then
    for i = 1, S.file_seq do os.remove(cfg.dir .. "/data/" .. i) end
  end
end

function M.reset()
  clear_data_dir()
  live = copy(cfg.tunables)
  S = {
    clock_offset = 0, seq = 0, file_seq = 0, version = 0, sorted = {},
    accounts = {}, account_list = {},
    faults = {}, fault_seq = 0,
    stats = { requests = 0, by_endpoint = {}, connections = 0, rate_limited = 0,
      authorizations = 0, redirects = 0 },
    seen_connections = {},
  }
  for _, spec in ipairs(seed.accounts(cfg)) do
    local acc = seed_account(spec)
    S.accounts[acc.username] = acc
    insert(S.account_list, acc)
  end
end

function M.init(config)
  cfg = config
  math.randomseed(tonumber(("%02x%02x%02x%02x"):format(crypto.random_bytes(4):byte(1, 4)), 16))
  M.reset()
end

function M.config() return cfg end
function M.tunables() return live end

function M.set_tunables(t)
  for k, v in pairs(t) do live[k] = v end
end

-- Stats ----------------------------------------------------------------------------

function M.stats() return S.stats end

function M.count_request(label, connection)
  local st = S.stats
  st.requests = st.requests + 1
  st.by_endpoint[label] = (st.by_endpoint[label] or 0) + 1
  if not S.seen_connections[connection] then
    S.seen_connections[connection] = true
    st.connections = st.connections + 1
  end
end

function M.count(what)
  S.stats[what] = S.stats[what] + 1
end

-- Rate limit: an exact sliding window per account ------------------------------------

-- Admits a request (and records it) or returns the seconds until one would be
-- admitted. Refused requests are not recorded, so a client that backs off is
-- never locked out by its own retries.
function M.admit(acc)
  local rl = live.rate_limit
  if not rl then return true end
  local now = M.now_ms()
  local w, span = acc.window, rl.window * 1000
  while w[1] and w[1] <= now - span do remove(w, 1) end
  if #w >= rl.requests then
    S.stats.rate_limited = S.stats.rate_limited + 1
    return false, max(1, math.ceil((w[#w - rl.requests + 1] + span - now) / 1000))
  end
  w[#w + 1] = now
  return true
end

-- Faults -----------------------------------------------------------------------------

function M.add_fault(f)
  S.fault_seq = S.fault_seq + 1
  f.id = S.fault_seq
  insert(S.faults, f)
  return f.id
end

function M.clear_faults() S.faults = {} end
function M.faults() return S.faults end

-- Takes one use of the first fault matching this request, if any.
function M.take_fault(method, path)
  for i, f in ipairs(S.faults) do
    local p = f.path
    local path_ok = p == "*" or p == path
      or (p:sub(-1) == "*" and path:sub(1, #p - 1) == p:sub(1, -2))
    if path_ok and (not f.method or f.method == method) then
      f.count = f.count - 1
      if f.count <= 0 then remove(S.faults, i) end
      return f
    end
  end
end

-- The outbound queue -------------------------------------------------------------------

function M.enqueue(acc, station, partner, opts)
  local subject = opts.subject
  if subject == nil or subject == "" then subject = partner.messageSubject end
  local msg = record {
    as2MessageId = new_id("as2gateway.com"),
    subject = (subject ~= "" and subject) or nil,
    receiverId = partner.as2Identifier, senderId = station.as2Identifier,
    partnerType = partner.partnerType, mdnStatus = "Pending",
    encrypted = partner.encryptMessages, signed = partner.signMessage,
    compressed = partner.compressBefore or partner.compressAfter,
    attachments = attachments_from(opts.attachments),
    profile = opts.profile,
  }
  insert(acc.queue, { msg = msg, partner = partner, state = "queued", attempts = 0,
    due = msg.persistedTimestamp + floor(live.queue_delay * 1000) })
  changed()
  return msg
end

local function backoff_ms(attempts)
  return floor(min(live.retry_base * 2 ^ (attempts - 1), live.retry_cap) * 1000)
end

local function fail_attempt(acc, entry, at)
  local f = copy(entry.msg)
  S.seq = S.seq + 1
  f.seq = S.seq
  f.persistedTimestamp = at
  f.transportStatusReceived = (acc.behaviour[entry.partner.as2Identifier] or {}).fail_status
    or 503
  f.deliveryStatus = "Not Delivered"
  f.mdnStatus = "No MDN"
  insert(acc.failed, f)
  entry.attempts = entry.attempts + 1
  changed()
end

-- Moves one queue entry forward to `now`; returns true when it left the queue.
local function advance_entry(acc, entry, now)
  while true do
    local p = entry.partner
    if entry.state == "queued" then
      if p.pauseOutgoing then entry.due = max(entry.due, now); return false end
      if entry.due > now then return false end
      changed()
      entry.state = "processing"
      entry.done = entry.due + floor(live.processing_time * 1000)
    else
      if entry.done > now then return false end
      local behaviour = acc.behaviour[p.as2Identifier]
      if behaviour and behaviour.behaviour == "fail" then
        fail_attempt(acc, entry, entry.done)
        if entry.attempts >= live.max_attempts then
          entry.state = "stopped"
          insert(acc.stopped, entry)
          return true
        end
        entry.state = "queued"
        entry.due = entry.done + backoff_ms(entry.attempts)
        changed()
      else
        add_sent(acc, entry, entry.done)
        return true
      end
    end
  end
end

-- Brings every account's simulation up to the sandbox clock. Called at the start of
-- every request, so the queue moves by real time and by /_sandbox/clock alike.
function M.tick()
  local now = M.now_ms()
  for _, acc in ipairs(S.account_list) do
    local i = 1
    while i <= #acc.queue do
      if advance_entry(acc, acc.queue[i], now) then remove(acc.queue, i) else i = i + 1 end
    end
    for _, m in ipairs(acc.sent) do
      if m.mdn_due and m.mdn_due <= now then
        attach_mdn(m, m.mdn_due, m.receiverId, m.mdn_error)
        m.mdn_due, m.mdn_error = nil, nil
      end
    end
  end
end

-- Endpoint 14: a queued entry (waiting or being sent) moves to the Stopped list.
function M.stop(acc, id)
  local e, i = M.find_entry(acc, "queue", id)
  if not e then return false end
  remove(acc.queue, i)
  e.state = "stopped"
  insert(acc.stopped, e)
  changed()
  return true
end

-- Endpoint 15: a stopped entry goes back to the queue with a fresh count of
-- attempts; a waiting queued entry becomes due now.
function M.retry(acc, id)
  local e, i = M.find_entry(acc, "stopped", id)
  if e then
    remove(acc.stopped, i)
    insert(acc.queue, e)
  else
    e = M.find_entry(acc, "queue", id)
    if not e then return false end
  end
  if e.state ~= "processing" then
    e.state, e.attempts, e.due = "queued", 0, M.now_ms()
  end
  changed()
  return true
end

function M.set_behaviour(acc, as2, b)
  local cur = acc.behaviour[as2] or {}
  for k, v in pairs(b) do cur[k] = v end
  acc.behaviour[as2] = cur
end

-- Finding, listing, deleting -----------------------------------------------------------

-- The records of `kind` with this ID (failed may hold several: one per attempt).
local function records_of(acc, kind)
  if kind == "queued" or kind == "stopped" then
    local list = {}
    for i, e in ipairs(acc[kind == "queued" and "queue" or "stopped"]) do
      list[i] = e.msg
    end
    return list
  end
  return acc[kind]
end

function M.find(acc, kind, id)
  local found
  for _, m in ipairs(records_of(acc, kind)) do
    if m.as2MessageId == id and (not found or m.seq > found.seq) then found = m end
  end
  return found
end

function M.find_entry(acc, list, id)
  for i, e in ipairs(acc[list]) do
    if e.msg.as2MessageId == id then return e, i end
  end
end

local function contains(hay, needle)
  return hay ~= nil and hay:lower():find(needle:lower(), 1, true) ~= nil
end

-- `q` is validated by the caller: {sortCol, sortDir, partnerType ("Production" |
-- "Test"), pageOffset, pageLength, unreadOnly, partnerAS2Id, stationAS2Id,
-- as2MessageId, subject, query}.
local function sorted(acc, kind, col, dir)
  local key = acc.username .. "\0" .. kind .. "\0" .. col .. "\0" .. dir
  local c = S.sorted[key]
  if c and c.version == S.version then return c.list end
  local list = {}
  if kind == "queued" then
    for _, e in ipairs(acc.queue) do
      if e.state == "queued" then list[#list + 1] = e.msg end
    end
  else
    for i, m in ipairs(acc[kind]) do list[i] = m end
  end
  local desc = dir == "desc"
  sort(list, function(a, b)
    local x, y = a[col], b[col]
    if col == "subject" then x, y = x or "", y or "" end
    if x == y then x, y = a.seq, b.seq end
    if desc then return x > y end
    return x < y
  end)
  S.sorted[key] = { version = S.version, list = list }
  return list
end

-- `q` is validated by the caller: {sortCol, sortDir, partnerType ("Production" |
-- "Test"), pageOffset, pageLength, unreadOnly, partnerAS2Id, stationAS2Id,
-- as2MessageId, subject, query}. Returns the total and the page.
function M.list(acc, kind, q)
  local first, last = q.pageOffset * q.pageLength + 1, (q.pageOffset + 1) * q.pageLength
  local total, page = 0, {}
  for _, m in ipairs(sorted(acc, kind, q.sortCol, q.sortDir)) do
    local ok = m.partnerType == q.partnerType
      and not (q.unreadOnly and acc.read[m.as2MessageId])
      and (not q.partnerAS2Id or m.receiverId == q.partnerAS2Id)
      and (not q.stationAS2Id or m.senderId == q.stationAS2Id)
      and (not q.as2MessageId or m.as2MessageId == q.as2MessageId)
      and (not q.subject or contains(m.subject, q.subject))
      and (not q.query or m.receiverId == q.query or m.senderId == q.query
        or m.as2MessageId == q.query or contains(m.subject, q.query))
    if ok then
      total = total + 1
      if total >= first and total <= last then page[#page + 1] = m end
    end
  end
  return total, page
end

local LISTS = { received = "received", sent = "sent", failed = "failed",
  queued = "queue", stopped = "stopped" }

-- Deletes every record of `kind` with this ID; returns whether there was one.
function M.delete(acc, kind, id)
  local list = acc[LISTS[kind]]
  local deleted = false
  for i = #list, 1, -1 do
    local m = list[i].msg or list[i]
    if m.as2MessageId == id then
      remove(list, i)
      deleted = true
    end
  end
  if deleted then
    changed()
    if kind == "received" then acc.read[id] = nil end
  end
  return deleted
end

function M.set_read(acc, id, read)
  acc.read[id] = read or nil
end

function M.is_read(acc, id)
  return acc.read[id] == true
end

return M
