--- as2gateway.outbound: what happens to the messages we send (pure Lua over the
-- client's methods): client:wait(...) follows one to its end, client:resolve(...)
-- decides whether a send of unknown outcome was enqueued, and client:send_dir(...)
-- sends a folder exactly once, with a journal (see "The outbound journal" below).
local core = require "as2gateway.core"
local json = require "as2gateway.json"
local util = require "as2gateway.util"
local journal = require "as2gateway.journal"

local ipairs, pairs, type, tostring, tointeger = ipairs, pairs, type, tostring, math.tointeger
local min, max = math.min, math.max
local sort, concat = table.sort, table.concat
local err, check_opts = util.err, util.check_opts

local W = {}

-- Wait -------------------------------------------------------------------------------------

-- What a sent message says about its delivery, when that is not plain success.
local function delivery_state(msg)
  if type(msg.mdnMessage) == "table" and msg.mdnMessage.mdnError == true then
    return "mdn_error"
  end
  if msg.deliveryStatus == "Not Delivered" then return "not_delivered" end
  if msg.deliveryStatus == "No Status" then return "no_status" end
end

-- "Test" / "test" -> "test": the listings' partnerType parameter.
local function partner_type(v)
  if type(v) ~= "string" then return nil end
  v = v:lower()
  if v == "test" or v == "production" then return v end
end

local function check_seconds(opts, name)
  local v = opts[name]
  if v ~= nil and (type(v) ~= "number" or v < 0 or v ~= v or v == math.huge) then
    error(("wait: %s must be a number of seconds"):format(name), 3)
  end
end

--- Waits for the final state of a message we sent, polling sparingly (first after
--- opts.initial seconds, then at growing intervals up to opts.interval). Returns the
--- message, its state and (with opts.mdn) the MDN read into a table:
---   "sent"           delivered (with opts.mdn: and its MDN received, no error in it)
---   "mdn_error"      the partner's MDN reports an error or failure
---   "not_delivered", "no_status"  the sent message's deliveryStatus says so
---   "no_mdn"         (opts.mdn) sent, but no MDN will come (mdnStatus "No MDN")
---   "stopped"        it left the queue unsent after failed attempts: the last one
---   "gone"           it left the queue unsent with no failed attempt (stopped before
---                    its first attempt, or deleted): the last entry seen
---   "failed"         (opts.first_failure) the first failed attempt
--- or nil and an error: kind "notfound" when the ID is in no list for opts.grace
--- seconds (unless it is known to have been accepted: then "gone"), "timeout" after
--- opts.timeout seconds (err.last and err.last_state: what was seen last, e.g. a sent
--- message whose MDN never came).
--- The partner's type (which the failed listing needs) comes from opts.partnerType,
--- the target, or the first entry seen.
---@param target string|table a link or AS2 message ID, or a send result / journal record
---@param opts? table {timeout = 300, initial = 2, interval = 30, mdn = false, first_failure = false, grace = 30, settle = 10, partnerType =}
---@return table|nil message
---@return string|as2gateway.Error state, or the error
---@return table|nil mdn with opts.mdn: the parsed MDN
function W.wait(self, target, opts)
  opts = opts or {}
  check_opts(opts, { timeout = true, initial = true, interval = true, mdn = true,
    first_failure = true, grace = true, settle = true, partnerType = true }, "wait")
  for _, k in ipairs { "timeout", "initial", "interval", "grace", "settle" } do
    check_seconds(opts, k)
  end
  local id, accepted, ptype
  if type(target) == "table" then
    id = target.as2MessageId or (type(target.link) == "string"
      and require("as2gateway").id_of(target.link))
    -- a send result, a journal record, or a send_dir report entry (with its record)
    accepted = true
    ptype = partner_type(target.partnerType)
      or (type(target.record) == "table" and partner_type(target.record.partnerType))
    if type(id) ~= "string" or id == "" then
      return nil, err("invalid", "wait: the send result holds no AS2 message ID (the "
        .. "gateway's answer had no usable Link): find the message with resolve()")
    end
  elseif type(target) == "string" and target ~= "" then
    id = require("as2gateway").id_of(target)
  else
    error("wait: a link, an AS2 message ID or a send result expected", 2)
  end
  ptype = partner_type(opts.partnerType) or ptype
  local timeout = opts.timeout or 300
  local grace, settle = opts.grace or 30, opts.settle or 10
  local start = self:now()
  local deadline = start + timeout
  local delay, max_delay = opts.initial or 2, opts.interval or 30
  local seen, last, last_state = false, nil, nil
  local absent, absent_since = 0, nil

  local function learn(entity)
    seen = true
    ptype = ptype or partner_type(entity.partnerType)
  end

  -- the first (or last) failed attempt, from the listing (which needs the type)
  local function attempt(first)
    local page, e = self:list("failed", { as2MessageId = id, pageLength = 1,
      sortCol = "persistedTimestamp", sortDir = first and "asc" or "desc",
      partnerType = ptype })
    if not page then return nil, e end
    return type(page.records) == "table" and page.records[1] or nil
  end

  while true do
    local now = self:now()
    if now >= deadline then break end
    self:sleep(min(delay, deadline - now))
    delay = min(delay * 1.5, max_delay)
    now = self:now()
    local msg, e = self:get("sent", id)
    if msg then
      learn(msg)
      absent = 0
      local bad = delivery_state(msg)
      if bad then
        -- with opts.mdn, the partner's own words on the error come along
        return msg, bad, opts.mdn and bad == "mdn_error" and self:mdn_report("sent", id) or nil
      end
      last, last_state = msg, "sent"
      if not opts.mdn or msg.mdnStatus == "Not Requested" then return msg, "sent" end
      if msg.mdnStatus == "No MDN" then return msg, "no_mdn" end
      if msg.mdnStatus ~= "Pending" then
        local report, re = self:mdn_report("sent", id)
        if report then
          if report.error then return msg, "mdn_error", report end
          return msg, "sent", report
        elseif re.kind ~= "notfound" then
          return nil, re
        end -- listed as Received, MDN not downloadable yet: poll again
      end
    elseif e.kind ~= "notfound" then
      return nil, e
    else
      local queued
      queued, e = self:get("queued", id)
      if not queued and e.kind ~= "notfound" then return nil, e end
      local failed
      if queued then
        learn(queued)
        absent, absent_since = 0, nil
        last, last_state = queued, "queued"
      else
        failed, e = self:get("failed", id)
        if not failed and e.kind ~= "notfound" then return nil, e end
        if failed then learn(failed) end
        absent = absent + 1
        absent_since = absent_since or now
      end
      if opts.first_failure and (failed or queued) then
        local first
        first, e = attempt(true)
        if e then return nil, e end
        if first then return first, "failed" end
      end
      -- out of the queue and not sent, for two polls at least `settle` apart
      local left = absent >= 2 and now - absent_since >= settle
      if failed then
        last, last_state = failed, "failed"
        if left then
          local final
          final, e = attempt(false)
          if e then return nil, e end
          return final or failed, "stopped"
        end
      elseif not queued then
        if left and (seen or accepted) then
          return last or { as2MessageId = id }, "gone"
        end
        if not seen and not accepted and absent >= 2 and now - start >= grace then
          local nf = err("notfound", "message %s is in no list (sent, queued or failed) after "
            .. "%s s: not an ID of this account, deleted, or stopped before its first "
            .. "attempt (the API lists no stopped messages)", id, tostring(grace))
          nf.as2MessageId = id
          return nil, nf
        end
      end
    end
  end
  local te = err("timeout", "message %s reached no final state within %s s%s", id,
    tostring(timeout), last_state == "sent" and " (sent; its MDN is still pending)"
      or last_state and (" (last seen: " .. last_state .. ")") or "")
  te.as2MessageId, te.last, te.last_state = id, last, last_state
  return nil, te
end

-- Resolve -----------------------------------------------------------------------------------

-- How a send of unknown outcome is found, and how its absence is proved, from the
-- listings alone (the API looks messages up by nothing but the ID the lost answer
-- held): a message is, at any moment, waiting in the queue (in the queued listing),
-- being sent (in no listing: the vendor says so), sent (sent listing), or stopped;
-- every failed attempt leaves a failed entry for good. So: the sent listing first (the
-- common case: found, 1 request), then the queued one, at tQ. A message in no list at
-- tQ was being sent, or does not exist (or was stopped before its first attempt, or
-- deleted: then it never went out either). A send lasts at most `max_processing`, so
-- after tQ + max_processing a message that exists is in the sent or the failed
-- listing: 2 more requests prove it absent. Queued entries may lack attachments (the
-- sandbox's always do), so one that could be ours is looked up by its ID until it
-- leaves the queue and shows them; nothing is ever decided on a guess.
local MAX_PAGES = 10
local DEFAULT_MAX_PROCESSING, DEFAULT_SKEW, DEFAULT_RESOLVE_TIMEOUT = 120, 300, 120

-- A message's attachments as an order-free key of names and sizes.
local function content_key(list)
  local parts = {}
  for i, f in ipairs(list) do
    parts[i] = tostring(f.name) .. "\0" .. tostring(tointeger(f.size) or f.size)
  end
  sort(parts)
  return concat(parts, "\1")
end

local function check_record(r, what)
  if type(r) ~= "table" then error(what .. ": a record table expected", 3) end
  for _, k in ipairs { "station", "partner" } do
    if type(r[k]) ~= "string" or r[k] == "" then
      error(("%s: record.%s (an AS2 ID) expected"):format(what, k), 3)
    end
  end
  if type(r.files) ~= "table" or #r.files == 0 then
    error(what .. ": record.files ({{name =, size =}, ...}) expected", 3)
  end
  for _, f in ipairs(r.files) do
    if type(f) ~= "table" or type(f.name) ~= "string" or type(f.size) ~= "number" then
      error(what .. ": each of record.files needs a name and a size", 3)
    end
  end
  if type(r.time) ~= "number" then
    error(what .. ": record.time (ms since the epoch, when the send began) expected", 3)
  end
end

-- Pages of a listing, newest first, as far back as `lower` (ms).
local function recent(self, kind, params, lower)
  local out = {}
  params.sortCol, params.sortDir, params.pageLength = "persistedTimestamp", "desc", 100
  for page = 0, MAX_PAGES - 1 do
    params.pageOffset = page
    local p, e = self:list(kind, params)
    if not p then return nil, e end
    local records = type(p.records) == "table" and p.records or {}
    for _, m in ipairs(records) do
      if type(m) == "table" and type(m.persistedTimestamp) == "number" then out[#out + 1] = m end
    end
    local oldest = records[#records]
    oldest = type(oldest) == "table" and oldest.persistedTimestamp
    if #records < 100 or type(oldest) ~= "number" or oldest < lower then return out end
  end
  return nil, err("unknown_outcome", "more than %d pages of %s messages since the send: "
    .. "too many to search", MAX_PAGES, kind)
end

-- "yes" when `m` is the message of record `g`, "maybe" when it may be (an entry
-- without attachments), nil when it is not.
local function match(m, g, exclude)
  local id = m.as2MessageId
  if type(id) ~= "string" or exclude[id] or m.receiverId ~= g.partner
     or m.senderId ~= g.station or type(m.persistedTimestamp) ~= "number"
     or m.persistedTimestamp < g.lower then
    return nil
  end
  if type(m.partnerType) == "string" and m.partnerType:lower() ~= g.ptype then return nil end
  if g.subject and g.subject ~= "" and m.subject ~= g.subject then return nil end
  if type(m.attachments) ~= "table" then return "maybe" end
  if content_key(m.attachments) == g.key then return "yes" end
end

-- Resolves the records of one (station, partner, type): fills out[g.i] for each.
local function resolve_group(self, group, opts, out)
  local exclude, claimed = opts.exclude or {}, {}
  local lower = math.huge
  for _, g in ipairs(group) do lower = min(lower, g.lower) end
  sort(group, function(a, b) return a.time < b.time end)
  local open_ = {}
  for _, g in ipairs(group) do open_[#open_ + 1] = g end

  local function fail_open(e)
    for _, g in ipairs(open_) do out[g.i] = { err = e } end
    open_ = {}
  end
  -- definite matches in `list`: each message for one record at most, oldest first
  local function take(list, where)
    sort(list, function(a, b) return a.persistedTimestamp < b.persistedTimestamp end)
    local left = {}
    for _, g in ipairs(open_) do
      local found
      for _, m in ipairs(list) do
        if not claimed[m.as2MessageId] and match(m, g, exclude) == "yes" then
          found = m
          break
        end
      end
      if found then
        claimed[found.as2MessageId] = true
        out[g.i] = { message = found, where = where }
      else
        left[#left + 1] = g
      end
    end
    open_ = left
  end
  local function listing(kind)
    local g = group[1]
    local params = kind == "queued" and { query = g.partner, partnerType = g.ptype }
      or { stationAS2Id = g.station, partnerAS2Id = g.partner, partnerType = g.ptype }
    local list, e = recent(self, kind, params, lower)
    if not list then fail_open(e) end
    return list
  end

  local list = listing("sent")
  if not list then return end
  take(list, "sent")
  if #open_ == 0 then return end
  -- each queued entry that may be ours is looked up by its ID until it shows its
  -- attachments: once sent (the common case: one request, after the first pause),
  -- after a failed attempt, or queued where a gateway gives them; one in no list any
  -- more was stopped or deleted before it went out: not a message that reached the
  -- partner (and if it is only being sent, the proof of absence below still sees it)
  local deadline = self:now() + (opts.timeout or DEFAULT_RESOLVE_TIMEOUT)
  local decided = {} -- ID -> {m =, kind =} | false
  local function undecided(g)
    for _, id in ipairs(g.maybe) do
      if decided[id] == nil and not claimed[id] then return true end
    end
    return false
  end
  local function any_undecided()
    for _, g in ipairs(open_) do if undecided(g) then return true end end
    return false
  end
  local function probe(id)
    local m, e = self:get("sent", id)
    if m then return { m = m, kind = "sent" } end
    if e.kind ~= "notfound" then return nil, e end
    m, e = self:get("failed", id) -- an attempt that failed shows them too
    if m then return { m = m, kind = "failed" } end
    if e.kind ~= "notfound" then return nil, e end
    m, e = self:get("queued", id)
    if m then
      if type(m.attachments) == "table" then return { m = m, kind = "queued" } end
      return nil -- still waiting in the queue, never attempted
    end
    if e.kind ~= "notfound" then return nil, e end
    return false
  end
  -- returns false when a request failed (out is filled)
  local function settle_maybes()
    local delay = 2
    while any_undecided() do
      local now = self:now()
      if now >= deadline then
        local rest = {}
        for _, g in ipairs(open_) do
          if undecided(g) then
            local ids = {}
            for _, id in ipairs(g.maybe) do
              if decided[id] == nil then ids[#ids + 1] = id end
            end
            out[g.i] = { err = err("unknown_outcome", "still undecided: queued message(s) "
              .. "%s may be this send; they show their attachments once they leave the "
              .. "queue", concat(ids, ", ")) }
          else
            rest[#rest + 1] = g
          end
        end
        open_ = rest
        return true
      end
      self:sleep(min(delay, deadline - now))
      delay = min(delay * 2, 15)
      for _, g in ipairs(open_) do
        for _, id in ipairs(g.maybe) do
          if decided[id] == nil and not claimed[id] then
            local d, e = probe(id)
            if e then fail_open(e) return false end
            if d ~= nil then decided[id] = d end
          end
        end
      end
      -- a record whose possible messages all turned out to be others' goes on to the
      -- proof of absence
      local left = {}
      for _, g in ipairs(open_) do
        local found
        for _, id in ipairs(g.maybe) do
          local d = decided[id]
          if d and not claimed[id] and match(d.m, g, exclude) == "yes" then
            found = d
            break
          end
        end
        if found then
          claimed[found.m.as2MessageId] = true
          out[g.i] = { message = found.m, where = found.kind }
        else
          left[#left + 1] = g
        end
      end
      open_ = left
    end
    return true
  end

  -- the queue, and what in it may be ours; again once a send that just failed (or a
  -- process killed mid-send) has surely been handled by the gateway (`arrival`): until
  -- then it may not be enqueued yet
  local t_queue
  while true do
    t_queue = self:now()
    local wall = os.time()
    list = listing("queued")
    if not list then return end
    take(list, "queued")
    for _, g in ipairs(open_) do
      g.maybe = {}
      for _, m in ipairs(list) do
        if not claimed[m.as2MessageId] and match(m, g, exclude) == "maybe" then
          g.maybe[#g.maybe + 1] = m.as2MessageId
        end
      end
    end
    if not settle_maybes() or #open_ == 0 then return end
    local latest = 0
    for _, g in ipairs(open_) do latest = max(latest, g.arrival) end
    if wall >= latest then break end
    local wait = latest - os.time()
    if wait > 0 then self:sleep(wait) end
  end

  -- the proof of absence: a send still in progress at t_queue has ended since
  local wait_until = t_queue + (opts.max_processing or DEFAULT_MAX_PROCESSING)
  local now = self:now()
  if now < wait_until then self:sleep(wait_until - now) end
  list = listing("sent")
  if not list then return end
  take(list, "sent")
  if #open_ == 0 then return end
  list = listing("failed")
  if not list then return end
  take(list, "failed")
  for _, g in ipairs(open_) do out[g.i] = { absent = true } end
end

-- Resolves a list of records (see W.resolve), sharing the listings of records to the
-- same partner; returns one result a record: {message =, where =} | {absent = true} |
-- {err =}.
local function resolve_all(self, records, opts)
  local groups, order, out = {}, {}, {}
  local skew = opts.skew or DEFAULT_SKEW
  for i, r in ipairs(records) do
    if type(r.as2MessageId) == "string" and r.as2MessageId ~= "" then
      -- the ID is known: look it up
      for _, kind in ipairs { "sent", "queued", "failed" } do
        local m, e = self:get(kind, r.as2MessageId)
        if m then out[i] = { message = m, where = kind } break end
        if e.kind ~= "notfound" then out[i] = { err = e } break end
      end
    end
    if not out[i] then
      local ptype = partner_type(r.partnerType) or "production"
      local k = r.station .. "\0" .. r.partner .. "\0" .. ptype
      if not groups[k] then groups[k] = {}; order[#order + 1] = k end
      local list = groups[k]
      -- (whole seconds of the wall clock: one more for the rounding)
      local ended = type(r.ended) == "number" and r.ended or r.time
      list[#list + 1] = { i = i, station = r.station, partner = r.partner, ptype = ptype,
        subject = r.subject, key = content_key(r.files), time = r.time,
        lower = r.time - skew * 1000,
        arrival = ended / 1000 + (opts.max_processing or DEFAULT_MAX_PROCESSING) + 1 }
    end
  end
  for _, k in ipairs(order) do resolve_group(self, groups[k], opts, out) end
  return out
end

local RESOLVE_OPTS = { max_processing = true, skew = true, timeout = true, exclude = true }

local function check_resolve_opts(opts, what)
  check_opts(opts, RESOLVE_OPTS, what, 4)
  for _, k in ipairs { "max_processing", "skew", "timeout" } do
    local v = opts[k]
    if v ~= nil and (type(v) ~= "number" or v < 0 or v ~= v or v == math.huge) then
      error(("%s: %s must be a number of seconds"):format(what, k), 4)
    end
  end
  if opts.exclude ~= nil and type(opts.exclude) ~= "table" then
    error(what .. ": exclude must be a set of AS2 message IDs", 4)
  end
end

--- Decides whether a send whose outcome is unknown was enqueued, from the gateway's
--- listings. `record` describes the send: {station, partner, partnerType?, subject?,
--- files = {{name, size}, ...}, time = ms since the epoch when it began, ended? = ms
--- when it failed, as2MessageId? (when known, it is simply looked up)}; a send_dir
--- journal record is one. Returns the message found and where ("sent", "queued", or "failed": a failed
--- attempt of it), or false and "absent" when the gateway provably has no such
--- message (safe to send again), or nil and an error (kind unknown_outcome while it
--- cannot be decided yet: a matching queued entry that shows no attachments until
--- opts.timeout; or the error of a request).
--- Requests: 1 when the message was sent, 3 while it is in the queue (found by its ID
--- once it leaves), 4 to prove it absent: the sent and queued listings, a wait until
--- opts.max_processing seconds have passed since the queue was looked at (how long a
--- send can keep a message out of every listing), the sent and failed listings. The
--- queue must be looked at no sooner than max_processing after the send ended
--- (record.ended, ms) or began (record.time): until then the gateway may still be
--- handling the request; sooner, it is looked at again then (a 5th request).
--- The search window opens opts.skew seconds before record.time (clock differences).
--- IDs in opts.exclude are other sends' and never taken for this one.
---@param opts? table {max_processing = 120, skew = 300, timeout = 120, exclude = {[id] = true}}
---@return table|false|nil message
---@return string|as2gateway.Error where, "absent", or the error
function W.resolve(self, record, opts)
  opts = opts or {}
  check_resolve_opts(opts, "resolve")
  check_record(record, "resolve")
  local r = resolve_all(self, { record }, opts)[1]
  if r.err then return nil, r.err end
  if r.absent then return false, "absent" end
  return r.message, r.where
end

-- The outbound journal -------------------------------------------------------------------

-- `<folder>/.as2g-send.journal`: one JSON object a line, appended and fsynced before
-- the step it announces. The lines with the same `n` make up one record (a message):
--   {"n":1,"op":"send","files":[{"name","size","sha256"}],"station","partner",
--    "partnerType","subject","profile","time"}       before the send
--   {"n":1,"op":"outcome","state":...,"as2MessageId","link","error","ended"}  after it
--   {"n":1,"op":"resolved","state":"sent"|"unsent","found":...}   resolve's answer
--   {"n":1,"op":"moved","moved":{"<name>":"<path>"}}  once moved out of the folder
--   {"n":1,"op":"record",...}                         all of it, after compaction
-- States: pending (no outcome: a crash after "send"), sent (a 202), refused (the
-- client or the gateway refused it as invalid: not enqueued, and not sent again
-- unless retry_refused), unsent (provably not enqueued: sent again next run), unknown
-- (it may have been enqueued). Pending and unknown records are resolved before
-- anything is sent, and their files sent again only when the gateway provably has no
-- such message. A file is known by its name, size and SHA-256: one that changed is a
-- new file. `<folder>/.as2g-send.lock` keeps a second run out.
local JOURNAL, LOCK = ".as2g-send.journal", ".as2g-send.lock"
local SENT_FOLDER = "sent"

local function file_key(name, size, sha256)
  return name .. "\0" .. tostring(tointeger(size) or size) .. "\0" .. sha256
end

-- The journal's records, oldest first (lines folded by n, in order; a torn or foreign
-- line is skipped), and how many lines it has.
local function read_journal(path)
  local lines, e = journal.lines(path)
  if not lines then return nil, e end
  local records, order = {}, {}
  for _, line in ipairs(lines) do
    local v = core.decode_json(line)
    local n = type(v) == "table" and tointeger(v.n)
    if n then
      local r = records[n]
      if not r then
        r = { n = n }
        records[n] = r
        order[#order + 1] = n
      end
      for k, x in pairs(v) do
        if k ~= "op" and k ~= "n" then
          if x == json.null then r[k] = nil else r[k] = x end
        end
      end
    end
  end
  local list = {}
  for _, n in ipairs(order) do
    local r = records[n]
    if type(r.files) == "table" and type(r.station) == "string" and type(r.partner) == "string"
       and type(r.time) == "number" then
      r.state = r.state or "pending"
      list[#list + 1] = r
    end
  end
  return list, #lines
end

-- What a failed send means for its files, and whether the run stops. "refused": not
-- enqueued, and the same file would be refused again; "unsent": not enqueued (nothing
-- of it reached the gateway, or it was turned away for a reason that is not the
-- file's: the next file would meet the same, so the run stops); "unknown": it may
-- have been enqueued. (A 2xx is never an error: client:send reports it as a success,
-- whatever its body.)
local function classify(e)
  local k = e.kind
  if k == "invalid" then return "refused", false end
  if k == "network" or k == "timeout" or k == "tls" or k == "ratelimited" or k == "auth"
     or k == "redirect" or k == "notfound" or k == "http" then
    return "unsent", true
  end
  return "unknown", false -- unknown_outcome, io, protocol, anything new
end

-- The files to send: regular, non-hidden files of `dir` in name order, each with its
-- size, digest and key; and those that cannot be read.
local function scan(dir)
  local names, e = core.listdir(dir)
  if not names then return nil, e end
  local list, unreadable = {}, {}
  for _, n in ipairs(names) do
    local path = dir .. "/" .. n
    if n:sub(1, 1) ~= "." and core.stat(path) == "file" then
      local hex, size = core.sha256_file(path)
      if hex then
        list[#list + 1] = { name = n, path = path, size = size, sha256 = hex,
          key = file_key(n, size, hex) }
      else
        unreadable[#unreadable + 1] = { path = path, err = size }
      end
    end
  end
  return list, unreadable
end

-- One run over a folder whose lock is held: o = {station, partner, dir, params, group,
-- ropts, settle_only}. Returns the report, or nil, err and the report so far.
local function run(self, o)
  local dir, params = o.dir, o.params
  local jpath = dir .. "/" .. JOURNAL
  local records, nlines = read_journal(jpath)
  local report = { settled = 0, refused = {}, journal = jpath }
  if not records then return nil, nlines, report end
  local function append(lines)
    local encoded = {}
    for i, l in ipairs(lines) do encoded[i] = json.encode(l) end
    local done, werr = journal.append(jpath, encoded)
    if done then nlines = nlines + #lines end
    return done, werr
  end
  local move_to = params.move_to == true and dir .. "/" .. SENT_FOLDER or params.move_to or nil

  -- what the journal knows: the latest record of each file, and the IDs taken
  local by_key, claimed, next_n = {}, {}, 1
  for _, r in ipairs(records) do
    next_n = max(next_n, r.n + 1)
    for _, f in ipairs(r.files) do
      if type(f) == "table" and type(f.name) == "string" and type(f.sha256) == "string" then
        by_key[file_key(f.name, f.size, f.sha256)] = r
      end
    end
    if type(r.as2MessageId) == "string" then claimed[r.as2MessageId] = true end
  end

  -- 1. sends of unknown outcome: resolved before anything is sent again
  local open_, entry_of = {}, {}
  for _, r in ipairs(records) do
    if r.state == "pending" or r.state == "unknown" then open_[#open_ + 1] = r end
  end
  if #open_ > 0 then
    local opts = { exclude = claimed }
    for k, v in pairs(o.ropts) do opts[k] = v end
    local results = resolve_all(self, open_, opts)
    local lines = {}
    for i, r in ipairs(open_) do
      local res = results[i]
      local entry = { files = {}, record = r, resolved = true }
      for j, f in ipairs(r.files) do entry.files[j] = dir .. "/" .. tostring(f.name) end
      if res.message then
        r.state, r.as2MessageId = "sent", res.message.as2MessageId
        claimed[r.as2MessageId] = true
        lines[#lines + 1] = { n = r.n, op = "resolved", state = "sent",
          as2MessageId = r.as2MessageId, found = res.where, error = json.null }
      elseif res.absent then
        r.state = "unsent"
        lines[#lines + 1] = { n = r.n, op = "resolved", state = "unsent", found = "absent" }
      else
        r.state, entry.err = "unknown", res.err
      end
      entry.state, entry.as2MessageId = r.state, r.as2MessageId
      report[#report + 1] = entry
      entry_of[r] = entry
    end
    if #lines > 0 then
      local done, werr = append(lines)
      if not done then return nil, werr, report end
    end
  end
  if o.settle_only then return report end

  -- 2. the folder now: new files, and those of sends that provably did not go out
  local list, unreadable = scan(dir)
  if not list then return nil, unreadable, report end
  local to_send, to_move = {}, {}
  for _, f in ipairs(list) do
    local r = by_key[f.key]
    local st = r and r.state
    if not r or st == "unsent" or (st == "refused" and params.retry_refused) then
      to_send[#to_send + 1] = f
    elseif st == "sent" then
      if move_to then to_move[#to_move + 1] = { file = f, record = r } end
      if not entry_of[r] then report.settled = report.settled + 1 end
    elseif st == "refused" then
      report.refused[#report.refused + 1] = f.path
    end -- unknown: still undecided (reported above), not sent again
  end
  for _, u in ipairs(unreadable) do
    report[#report + 1] = { files = { u.path }, state = "refused", err = u.err }
  end

  -- moves a sent file out of the folder, unless it changed since it was hashed (then
  -- it stays: a new file for the next run)
  local function move(f, r, entry)
    local ok, e = core.mkdir(move_to)
    if not ok then return nil, e end
    if core.sha256_file(f.path) ~= f.sha256 then return true end
    local target = util.free_path(move_to, f.name) -- "invoice (2).xml" when taken
    if not target then return nil, err("io", "no free name for %s in %s", f.name, move_to) end
    local moved, merr = os.rename(f.path, target)
    if not moved then
      return nil, err("io", "cannot move %s into %s: %s", f.path, move_to, tostring(merr))
    end
    ok, e = core.fsync(move_to)
    if not ok then return nil, e end
    entry.moved = entry.moved or {}
    entry.moved[#entry.moved + 1] = target
    return append { { n = r.n, op = "moved", moved = { [f.name] = target } } }
  end
  for _, m in ipairs(to_move) do
    local ok, e = move(m.file, m.record, entry_of[m.record] or {})
    if not ok then return nil, e, report end
  end

  -- 3. send what is left, each message announced in the journal first
  local send_params = { partnerType = params.partnerType, subject = params.subject,
    profile = params.profile }
  for first = 1, #to_send, o.group do
    local batch = {}
    for i = first, min(first + o.group - 1, #to_send) do batch[#batch + 1] = to_send[i] end
    local r = { n = next_n, files = {}, station = o.station, partner = o.partner,
      partnerType = partner_type(params.partnerType) or "production",
      subject = params.subject, profile = params.profile, time = os.time() * 1000 }
    next_n = next_n + 1
    local entry = { files = {}, record = r }
    local sendlist = {}
    for i, f in ipairs(batch) do
      r.files[i] = { name = f.name, size = f.size, sha256 = f.sha256 }
      entry.files[i] = f.path
      sendlist[i] = { path = f.path, content_type = params.content_type }
    end
    local line = { op = "send" }
    for k, v in pairs(r) do line[k] = v end
    local done, werr = append { line }
    if not done then return nil, werr, report end -- nothing goes out unrecorded
    report[#report + 1] = entry
    local res, serr = self:send(o.station, o.partner, sendlist, send_params)
    local outcome, stop = { n = r.n, op = "outcome", ended = os.time() * 1000 }, false
    if res then
      outcome.state, outcome.as2MessageId, outcome.link = "sent", res.as2MessageId, res.link
    else
      outcome.state, stop = classify(serr)
      outcome.error = { kind = serr.kind, message = serr.message, status = serr.status }
      if outcome.state == "sent" then entry.warning = serr else entry.err = serr end
    end
    r.state, r.as2MessageId, r.ended = outcome.state, outcome.as2MessageId, outcome.ended
    entry.state, entry.as2MessageId, entry.link = outcome.state, outcome.as2MessageId,
      outcome.link
    done, werr = append { outcome }
    if not done then return nil, werr, report end
    if r.state == "sent" and move_to then
      for _, f in ipairs(batch) do
        local moved, merr = move(f, r, entry)
        if not moved then return nil, merr, report end
      end
    end
    if stop then return nil, serr, report end
  end

  -- 4. one line a record, once the journal has grown well past that (atomically;
  -- failing to compact loses nothing)
  if nlines > 2 * (next_n - 1) + 50 then
    local fresh = read_journal(jpath)
    if fresh then
      local lines = {}
      for i, rec in ipairs(fresh) do
        rec.op = "record"
        lines[i] = json.encode(rec)
      end
      journal.replace(jpath, lines)
    end
  end
  return report
end

local function folder_arg(dir, what)
  if type(dir) ~= "string" or dir == "" then error(what .. ": a folder expected", 3) end
  dir = dir:gsub("(.)/+$", "%1")
  if core.stat(dir) ~= "dir" then return nil, err("io", "%s is not a folder", dir) end
  return dir
end

local function check_timeout(v, what)
  if v ~= nil and (type(v) ~= "number" or v < 0 or v ~= v or v == math.huge) then
    error(what .. ": lock_timeout must be a number of seconds", 3)
  end
end

-- Runs `o` with the folder's lock held (released whatever happens).
local function locked(self, o, lock_timeout)
  local lock, e = core.lock(o.dir .. "/" .. LOCK, { timeout = lock_timeout or 0 })
  if not lock then return nil, e end
  local ok, report, e2, partial = pcall(run, self, o)
  lock:close()
  if not ok then error(report, 0) end
  return report, e2, partial
end

--- Sends every regular, non-hidden file of a folder exactly once: one message per
--- file (or params.group files per message), in name order, each recorded in the
--- journal `<dir>/.as2g-send.journal` before it is sent and after. A rerun sends only
--- what has no record (or whose send provably did not reach the gateway): sends of
--- unknown outcome are resolved first (see resolve; params.resolve is its options)
--- and sent again only when the gateway has no such message. With params.move_to
--- (true: `<dir>/sent`; or a folder) each sent file is moved there, never replacing
--- one; otherwise it stays, marked in the journal. One run per folder at a time
--- (`<dir>/.as2g-send.lock`; params.lock_timeout seconds to wait for it, default 0,
--- then kind locked).
--- Returns a report: one entry per message acted on in this run {files = {paths},
--- state = "sent"|"refused"|"unsent"|"unknown", as2MessageId, link, err, warning,
--- resolved, moved = {paths}, record}, with report.settled (files sent in earlier
--- runs) and report.refused (paths refused in earlier runs, not sent again). A run
--- that has to stop (the journal cannot be written, the gateway refuses the
--- credentials or the partner, the network fails) returns nil, err and the report.
---@param params? table {partnerType =, subject =, profile =, content_type =, group = 1, move_to = true|path,
---  retry_refused = false, lock_timeout = 0, resolve = {max_processing, skew, timeout}}
function W.send_dir(self, station, partner, dir, params)
  params = params or {}
  check_opts(params, { partnerType = true, subject = true, profile = true, group = true,
    content_type = true, move_to = true, retry_refused = true, lock_timeout = true,
    resolve = true }, "send_dir")
  if type(station) ~= "string" or station == "" then error("send_dir: station expected", 2) end
  if type(partner) ~= "string" or partner == "" then error("send_dir: partner expected", 2) end
  local group = params.group or 1
  if type(group) ~= "number" or group < 1 or group > 10 or group % 1 ~= 0 then
    error("send_dir: group must be an integer from 1 to 10", 2)
  end
  local mt = params.move_to
  if mt ~= nil and type(mt) ~= "boolean" and (type(mt) ~= "string" or mt == "") then
    error("send_dir: move_to must be true (<dir>/sent), false or a folder", 2)
  end
  check_timeout(params.lock_timeout, "send_dir")
  local ropts = params.resolve or {}
  check_resolve_opts(ropts, "send_dir: resolve")
  local folder, e = folder_arg(dir, "send_dir")
  if not folder then return nil, e end
  return locked(self, { station = station, partner = partner, dir = folder, params = params,
    group = group, ropts = ropts }, params.lock_timeout)
end

--- The records of a folder's send journal, oldest first: what was sent from it, how it
--- ended, where it went. Each {n, files = {{name, size, sha256}}, station, partner,
--- partnerType, subject, profile, time, ended, state = "pending"|"sent"|"unknown"|
--- "unsent"|"refused", as2MessageId, link, error, found, moved}. No request is made.
---@return table[]|nil records
---@return as2gateway.Error|nil err kind io when the journal cannot be read
function W.send_journal(self, dir) -- luacheck: ignore self
  if type(dir) ~= "string" or dir == "" then error("send_journal: a folder expected", 2) end
  local records, e = read_journal(dir:gsub("(.)/+$", "%1") .. "/" .. JOURNAL)
  if not records then return nil, e end
  return records
end

--- Resolves the sends of unknown outcome in a folder's journal and sends nothing:
--- send_dir's first step alone. Returns a report like send_dir's (the records it
--- looked at), or nil, err.
---@param opts? table {lock_timeout = 0, max_processing, skew, timeout}
function W.settle(self, dir, opts)
  opts = opts or {}
  check_opts(opts, { lock_timeout = true, max_processing = true, skew = true,
    timeout = true }, "settle")
  check_timeout(opts.lock_timeout, "settle")
  local ropts = { max_processing = opts.max_processing, skew = opts.skew,
    timeout = opts.timeout }
  check_resolve_opts(ropts, "settle")
  local folder, e = folder_arg(dir, "settle")
  if not folder then return nil, e end
  return locked(self, { dir = folder, params = {}, ropts = ropts, settle_only = true },
    opts.lock_timeout)
end

return W
