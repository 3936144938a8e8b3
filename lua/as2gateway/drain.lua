--- as2gateway.drain: client:drain{...}, the inbox drained exactly once into a folder
-- (pure Lua over the client's listings and batch downloads).
--
-- The rule it is built around: a received message is recorded as done only when every
-- attachment its record lists is on disk in its folder (batch.stored_paths, the one
-- place that decides "complete") and the handler succeeded. Everything else is a
-- failure, counted and named in the summary, and the message stays re-fetchable: its
-- journal entry is left unfinished (the next drain fetches it again) and, when the
-- gateway may have marked it read, it is marked unread again.
local core = require "as2gateway.core"
local json = require "as2gateway.json"
local batch = require "as2gateway.batch"
local util = require "as2gateway.util"
local journal = require "as2gateway.journal"

local ipairs, pairs, type, pcall, tostring, error = ipairs, pairs, type, pcall, tostring, error
local err, check_opts = util.err, util.check_opts

local W = {}

-- The journal -----------------------------------------------------------------------------
-- One line per step of a message, appended and synced to disk (core.append) before the
-- step it announces can be lost. "fetch <record>" goes down before the batch request
-- that marks the message read on the server; "stored <ID>" once its files are complete
-- on disk; "done <ID>" once the handler succeeded; "gone <ID>" when the gateway no
-- longer has it. Records and IDs are JSON, so a line torn by a kill never parses as
-- another (a torn "done" never passes for a shorter ID). A rerun finishes what the
-- journal shows unfinished, so a crash anywhere loses nothing.
local JOURNAL = ".as2g-drain.journal"
local FINAL = { done = true, gone = true }

local function read_journal(path)
  local state, order = {}, {}
  for _, line in ipairs(journal.lines(path) or {}) do
    local step, rest = line:match("^(%a+) (.+)$")
    if step == "fetch" then
      local msg = core.decode_json(rest)
      if type(msg) == "table" and type(msg.as2MessageId) == "string" then
        local id = msg.as2MessageId
        if not state[id] then order[#order + 1] = id end
        state[id] = { msg = msg, stage = "fetch" }
      end
    elseif step == "stored" or FINAL[step] then
      -- journals of earlier versions wrote the ID bare
      local id = rest:sub(1, 1) == '"' and core.decode_json(rest) or rest
      if type(id) == "string" and state[id] then state[id].stage = step end
    end
  end
  return state, order
end

local function step_line(step, id)
  return step .. " " .. json.encode(id)
end

local function append(path, lines)
  local ok, e = journal.append(path, lines)
  if not ok then
    return nil, err("io", "nothing more is fetched: %s", e.message)
  end
  return true
end

-- A drain killed mid-download leaves its temporary files behind (hidden, so no one
-- mistakes them for attachments); the rerun removes them, under the folder's lock.
-- Which names those are is the core's to say (core.is_leftover), as it names them.
local function remove_leftovers(dir, depth)
  for _, n in ipairs(core.listdir(dir) or {}) do
    local path = dir .. "/" .. n
    if core.is_leftover(n) then
      os.remove(path)
    elseif (depth or 0) == 0 and n:sub(1, 1) ~= "." and core.stat(path) == "dir" then
      remove_leftovers(path, 1)
    end
  end
end

-- The lock -----------------------------------------------------------------------------
-- One drain per folder: an exclusive flock on `to/.as2g-drain.lock`, for the whole
-- drain. It ends with the drain, or with its process however that dies; a drain that
-- finds it taken waits up to opts.lock_wait seconds (tried again with the client's
-- clock and sleep, so that nothing blocks an event loop), then ends with an error of
-- kind "locked".
local LOCK = ".as2g-drain.lock"

local function take_lock(self, dir, wait)
  local deadline = self:now() + wait
  while true do
    local lock, e = core.lock(dir .. "/" .. LOCK, { timeout = 0 })
    if lock then return lock end
    if core.interrupted() then return nil, err("interrupted", "interrupted") end
    local now = self:now()
    if e.kind ~= "locked" or now >= deadline then
      if e.kind == "locked" then
        e = err("locked", "another drain is running in %s%s", dir,
          wait > 0 and (" (waited %g s)"):format(wait) or "")
      end
      return nil, e
    end
    self:sleep(math.min(0.1, deadline - now))
  end
end

-- Listing -------------------------------------------------------------------------------

local PARTNER_TYPES = { production = { "production" }, test = { "test" },
  all = { "production", "test" } }

-- Pages of unread messages of one partner type, oldest first, so that new arrivals
-- land at the end and do not shift the pages being read. It stops when the pages seen
-- cover totalRecords (no empty last page) or at a short page; it ends with a
-- `protocol` error when the server makes no progress (the listing guard of
-- as2gateway.util, the same bound as every listing's) or goes past the pages its first
-- answer announced plus two. (client:list checks each page's shape.)
local function list_unread(self, query, found, summary)
  local offset, limit = 0, nil
  local guard = util.listing_guard("the unread received listing")
  while true do
    query.pageOffset = offset
    local page, e = self:list("received", query)
    if not page then return nil, e end
    local records, total = page.records, page.totalRecords
    local fresh = 0
    for i, msg in ipairs(records) do
      local id = msg.as2MessageId
      if type(id) ~= "string" or id == "" then
        summary.failed = summary.failed + 1
        summary.errors[("record %d of page %d"):format(i, offset)] =
          err("protocol", "a listed message without an AS2 message ID")
      elseif not found[id] then
        found[id] = msg
        fresh = fresh + 1
        found[#found + 1] = id
      end
    end
    if #records < 100 or (type(total) == "number" and (offset + 1) * 100 >= total) then
      return true
    end
    local ok, gerr = guard:page(fresh)
    if not ok then return nil, gerr end
    limit = limit or (type(total) == "number" and math.floor((total + 99) / 100) + 2)
    offset = offset + 1
    if limit and offset >= limit then
      return nil, err("protocol", "the received listing goes on past the %d messages it "
        .. "announced", total)
    end
  end
end

-- Drain ---------------------------------------------------------------------------------

local function fail(summary, id, e)
  if not summary.errors[id] then summary.failed = summary.failed + 1 end
  summary.errors[id] = e
end

-- What the drain knows of one message: its record (from the listing or the journal),
-- its stage (new, fetch, stored, done, gone) and, once decided, its paths.
local function drain_locked(self, opts, summary)
  local to = opts.to
  local jpath = to .. "/" .. JOURNAL
  local state, order = read_journal(jpath)
  remove_leftovers(to)

  -- 1. what the server still shows unread, every partner type asked for
  local found = {}
  for _, partner_type in ipairs(PARTNER_TYPES[opts.partnerType or "all"]) do
    local query = { unreadOnly = true, sortCol = "persistedTimestamp", sortDir = "asc",
      pageLength = 100, partnerType = partner_type }
    for k, v in pairs(opts.filters or {}) do query[k] = v end
    local ok, e = list_unread(self, query, found, summary)
    if not ok then return nil, e end
  end
  for _, id in ipairs(found) do
    if not state[id] then
      state[id] = { msg = found[id], stage = "new" }
      order[#order + 1] = id
    end
  end

  -- a record without a list of attachments cannot tell when the message is complete:
  -- ask for the message itself (rare; a gateway that leaves them out of listings)
  for _, id in ipairs(order) do
    local s = state[id]
    if not FINAL[s.stage] and type(s.msg.attachments) ~= "table" then
      local msg = self:get("received", id)
      if msg and type(msg.attachments) == "table" then s.msg = msg end
    end
  end

  -- 2. download what is not complete on disk yet, up to 100 a request; every ID is in
  -- the journal before the request that may mark it read
  local to_fetch, records = {}, {}
  for _, id in ipairs(order) do
    local s = state[id]
    if s.stage == "stored" and not batch.stored_paths(to, s.msg) then
      s.stage = "fetch" -- a file went missing since: fetch it again
    end
    if s.stage == "new" or s.stage == "fetch" then
      to_fetch[#to_fetch + 1] = id
      records[id] = s.msg
    end
  end
  local refused_by_id = {}
  local function before_fetch(ids)
    local lines = {}
    for _, id in ipairs(ids) do
      if state[id].stage == "new" then
        lines[#lines + 1] = "fetch " .. json.encode(state[id].msg)
      end
    end
    if #lines == 0 then return true end
    local ok, e = append(jpath, lines)
    if not ok then return nil, e end
    for _, id in ipairs(ids) do
      if state[id].stage == "new" then state[id].stage = "fetch" end
    end
    return true
  end
  -- each batch answer's complete messages are journalled as soon as they are on disk,
  -- so that a kill in a long run of 206 answers still keeps what was done
  local function on_done(ids)
    local lines = {}
    for _, id in ipairs(ids) do
      local s = state[id]
      if s.stage == "fetch" and batch.stored_paths(to, s.msg) then
        lines[#lines + 1] = step_line("stored", id)
        s.stage = "stored"
      end
    end
    if #lines == 0 then return true end
    local ok, e = append(jpath, lines)
    if not ok then -- the files are there, but the journal does not say so: fetch again
      for _, id in ipairs(ids) do
        if state[id].stage == "stored" then state[id].stage = "fetch" end
      end
      return nil, e
    end
    return true
  end
  local stopped
  if #to_fetch > 0 then
    local results, report = self:download_batch(to_fetch, { to = to, markAsRead = true,
      overwrite = true, records = records, before_fetch = before_fetch, on_done = on_done,
      max_entry_bytes = opts.max_entry_bytes })
    if not results then return nil, report end
    stopped = report.err
    for _, r in ipairs(report.refused) do
      if r.id then
        refused_by_id[r.id] = refused_by_id[r.id] or {}
        local list = refused_by_id[r.id]
        list[#list + 1] = ("%s (%s)"):format(r.entry, r.reason)
      end
    end
    -- 3. the verdict on each message fetched: complete on disk, or a failure
    local unread_again = {}
    for _, id in ipairs(to_fetch) do
      local s, r = state[id], results[id]
      if s.stage ~= "stored" then
        local why
        if r and r.err then
          why = r.err
        else
          local _, missing = batch.stored_paths(to, s.msg)
          local refused = refused_by_id[id]
          why = err("protocol", "%s is incomplete: %s%s", id, missing or "not all on disk",
            refused and ("; refused: " .. table.concat(refused, ", ")) or "")
        end
        fail(summary, id, why)
        -- the gateway answered for it, so it may have marked it read: a failure of the
        -- message's own (refused, missing, the wrong size, an error marker)
        if s.stage == "fetch" and r and r.answered then
          unread_again[#unread_again + 1] = id
        end
      end
    end
    for _, id in ipairs(unread_again) do
      local ok, e = self:mark_unread(id)
      if not ok and e.kind == "notfound" then
        -- the gateway has no such message (deleted meanwhile): nothing left to fetch
        local written = append(jpath, { step_line("gone", id) })
        if written then state[id].stage = "gone" end
        summary.errors[id] = err("notfound", "%s is no longer on the gateway: %s", id,
          summary.errors[id].message)
      end
    end
  end

  -- 4. hand each complete message to the handler, with exactly its record's files
  for _, id in ipairs(order) do
    local s = state[id]
    if s.stage == "stored" then
      summary.messages = summary.messages + 1
      local paths, missing = batch.stored_paths(to, s.msg)
      local handled, herr = false, nil
      if not paths then
        herr = err("protocol", "%s is incomplete: %s", id, missing)
      elseif opts.handler then
        handled, herr = pcall(opts.handler, s.msg, paths)
        if handled and herr == false then
          handled, herr = false, err("callback", "the handler returned false")
        elseif not handled then
          herr = err("callback", "the handler failed: %s", tostring(herr))
        end
      else
        handled = true
      end
      if handled then
        local ok, e = append(jpath, { step_line("done", id) })
        if not ok then return nil, e end
        s.stage = "done"
        summary.done = summary.done + 1
      else
        fail(summary, id, herr)
      end
    elseif s.stage ~= "done" and s.stage ~= "gone" then
      summary.messages = summary.messages + 1
    end
  end

  -- 5. a journal with nothing unfinished is no longer needed
  local unfinished = false
  for _, id in ipairs(order) do
    if not FINAL[state[id].stage] then unfinished = true end
  end
  if not unfinished then os.remove(jpath) end
  if stopped then return nil, stopped, summary end
  return summary
end

--- Drains the inbox exactly once into a folder: every unread received message gets
--- its attachments in `to/<message folder>/` (on disk, synced) and then the handler
--- is called with (message, paths). A message is done only when every attachment its
--- record lists is on disk with the record's size and the handler returned without
--- error (and not false); a crash, a full disk, a dropped connection, a refused
--- attachment or a failing handler loses nothing: the next drain into the same folder
--- finishes it (the journal `.as2g-drain.journal` keeps track). Handlers run at least
--- once per message: make them idempotent. One drain at a time per folder (a lock).
---
--- Requests: per partner type one listing page per 100 unread messages; one batch
--- download per 100 messages (which also marks them read, 10 MB of attachments at
--- most); plus the login, and one markUnread per failed message.
---@param opts table {to = folder, handler = function(message, paths), partnerType =
--- "production"|"test"|"all" (default), filters = table, lock_wait = seconds (0),
--- max_entry_bytes = integer}
---@return table|nil summary {messages, done, failed, errors = {[id] = err}}
---@return as2gateway.Error|nil err
function W.drain(self, opts)
  check_opts(opts, { to = true, handler = true, partnerType = true, filters = true,
    lock_wait = true, max_entry_bytes = true }, "drain")
  if type(opts.to) ~= "string" or opts.to == "" then
    error("drain: opts.to (a folder) is required", 2)
  end
  if opts.handler ~= nil and type(opts.handler) ~= "function" then
    error("drain: opts.handler must be a function", 2)
  end
  local pt = opts.partnerType
  if pt ~= nil and (type(pt) ~= "string" or not PARTNER_TYPES[pt:lower()]) then
    error("drain: partnerType must be \"production\", \"test\" or \"all\" (the default)", 2)
  end
  local lock_wait = opts.lock_wait or 0
  if type(lock_wait) ~= "number" or lock_wait < 0 or lock_wait ~= lock_wait then
    error("drain: lock_wait must be a number of seconds", 2)
  end
  if opts.filters ~= nil and type(opts.filters) ~= "table" then
    error("drain: filters must be a table", 2)
  end
  local o = {}
  for k, v in pairs(opts) do o[k] = v end
  o.partnerType = pt and pt:lower()
  local ok, e = core.mkdir(opts.to)
  if not ok then return nil, e end
  local lock
  lock, e = take_lock(self, opts.to, lock_wait)
  if not lock then return nil, e end
  local summary = { messages = 0, done = 0, failed = 0, errors = {} }
  local ran, res, rerr, partial = pcall(drain_locked, self, o, summary)
  lock:close()
  if not ran then error(res, 0) end
  return res, rerr, partial
end

return W
