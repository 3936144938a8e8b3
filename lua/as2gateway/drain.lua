--- as2gateway.drain: client:drain{...}, the inbox drained exactly once into a folder
-- (pure Lua over the client's listing and batch download).
local core = require "as2gateway.core"
local cjson = require "cjson.safe"
local batch = require "as2gateway.batch"
local util = require "as2gateway.util"

local ipairs, pairs, type, pcall, tostring = ipairs, pairs, type, pcall, tostring
local min = math.min
local err, check_opts = util.err, util.check_opts

local W = {}

-- Drain ----------------------------------------------------------------------------------

-- The journal: one line per step of a message, appended and flushed to disk before
-- the step it announces can be lost. "fetch <json>" goes down before a batch that
-- marks the message read on the server; "stored <id>" once its files are on disk;
-- "done <id>" once the handler succeeded. A rerun finishes what the journal shows
-- unfinished, so a crash anywhere loses nothing.
local JOURNAL = ".as2g-drain.journal"
local remove_leftovers

local function read_journal(path)
  local state, order = {}, {}
  local f = io.open(path, "rb")
  if not f then return state, order end
  for line in f:lines() do
    local step, rest = line:match("^(%a+) (.+)$")
    if step == "fetch" then
      local msg = cjson.decode(rest)
      if type(msg) == "table" and type(msg.as2MessageId) == "string" then
        local id = msg.as2MessageId
        if not state[id] then order[#order + 1] = id end
        state[id] = { msg = msg, stage = "fetch" }
      end
    elseif (step == "stored" or step == "done") and state[rest] then
      state[rest].stage = step
    end
  end
  f:close()
  return state, order
end

local function append(path, lines)
  local f, e = io.open(path, "a+b")
  if not f then return nil, err("io", "cannot write the journal %s: %s", path, tostring(e)) end
  -- a drain killed mid-write leaves a torn last line: end it before adding more, or
  -- the next line would be glued to it and lost
  local size = f:seek("end")
  if size > 0 then
    f:seek("set", size - 1)
    local last = f:read(1)
    f:seek("end")
    if last ~= "\n" then f:write("\n") end
  end
  f:write(table.concat(lines, "\n"), "\n")
  f:close()
  return core.fsync(path)
end

-- A drain killed mid-download leaves its temporary files behind (hidden, so no one
-- mistakes them for attachments); the rerun removes them.
local function is_leftover(name)
  return name:match("^%..+%.part$") or name:match("^%.as2g%-batch%-%x+%.zip$")
    or name:match("^%.as2g%-error%-%x+$")
end

remove_leftovers = function(dir, depth)
  for _, n in ipairs(core.listdir(dir) or {}) do
    local path = dir .. "/" .. n
    if is_leftover(n) then
      os.remove(path)
    elseif (depth or 0) == 0 and n:sub(1, 1) ~= "." and core.stat(path) == "dir" then
      remove_leftovers(path, 1)
    end
  end
end

local function files_of(folder)
  local names = core.listdir(folder) or {}
  local paths = {}
  for _, n in ipairs(names) do
    if n:sub(1, 1) ~= "." then paths[#paths + 1] = folder .. "/" .. n end
  end
  return paths
end

--- Drains the inbox exactly once into a folder: every unread received message gets
--- its attachments in `to/<message folder>/` (on disk, flushed) and then the
--- handler is called with (message, paths). A message is done only when its files
--- are durable and the handler returned without error; a crash, a dropped
--- connection or a failing handler loses nothing: the next drain into the same
--- folder finishes it (the journal `.as2g-drain.journal` keeps track). Handlers run
--- at least once per message: make them idempotent.
---
--- Requests: one listing page per 100 unread messages and one batch download per
--- 100 messages (which also marks them read), plus the login.
---@param opts table {to = folder, handler = function(message, paths), partnerType =, filters = table}
---@return table|nil summary {messages, done, failed, errors = {[id] = err}}
---@return as2gateway.Error|nil err
function W.drain(self, opts)
  check_opts(opts, { to = true, handler = true, partnerType = true, filters = true }, "drain")
  if type(opts.to) ~= "string" then error("drain: opts.to (a folder) is required", 2) end
  if opts.handler ~= nil and type(opts.handler) ~= "function" then
    error("drain: opts.handler must be a function", 2)
  end
  local ok, e = core.mkdir(opts.to)
  if not ok then return nil, e end
  local journal = opts.to .. "/" .. JOURNAL
  local state, order = read_journal(journal)
  remove_leftovers(opts.to)
  local summary = { messages = 0, done = 0, failed = 0, errors = {} }

  -- 1. what the server still shows unread (oldest first, so that new arrivals land at
  -- the end and do not shift the pages being read)
  local query = { unreadOnly = true, sortCol = "persistedTimestamp", sortDir = "asc",
    pageLength = 100, partnerType = opts.partnerType }
  for k, v in pairs(opts.filters or {}) do query[k] = v end
  local offset = 0
  while true do
    query.pageOffset = offset
    local page
    page, e = self:list("received", query)
    if not page then return nil, e end
    for _, msg in ipairs(page.records or {}) do
      local id = msg.as2MessageId
      if type(id) == "string" and not id:find("[%c]") and not state[id] then
        state[id] = { msg = msg, stage = "new" }
        order[#order + 1] = id
      end
    end
    if #(page.records or {}) < 100 then break end
    offset = offset + 1
  end

  -- 2. download what is not on disk yet, 100 a request, announced in the journal first
  local to_fetch = {}
  for _, id in ipairs(order) do
    if state[id].stage == "new" or state[id].stage == "fetch" then to_fetch[#to_fetch + 1] = id end
  end
  for first = 1, #to_fetch, batch.MAX_IDS do
    local chunk, lines = {}, {}
    for i = first, min(first + batch.MAX_IDS - 1, #to_fetch) do
      local id = to_fetch[i]
      chunk[#chunk + 1] = id
      if state[id].stage == "new" then
        lines[#lines + 1] = "fetch " .. cjson.encode(state[id].msg)
        state[id].stage = "fetch"
      end
    end
    if #lines > 0 then
      ok, e = append(journal, lines)
      if not ok then return nil, e end
    end
    -- each batch answer's complete messages are journalled as soon as they are on
    -- disk, so that a kill in a long run of 206 answers still keeps what was done
    local journal_err
    local function record(ids, results)
      if journal_err then return end
      local done = {}
      for _, id in ipairs(ids) do
        local r = results[id]
        if state[id].stage == "fetch" and r and not r.err then
          done[#done + 1] = "stored " .. id
          state[id].stage = "stored"
        elseif state[id].stage == "fetch" and r and r.err.kind == "notfound" then
          -- gone from the gateway (deleted meanwhile): nothing left to fetch
          done[#done + 1] = "done " .. id
          state[id].stage = "done"
          summary.errors[id] = r.err
        end
      end
      if #done > 0 then
        local written, werr = append(journal, done)
        if not written then journal_err = werr end
      end
    end
    local results
    results, e = self:download_batch(chunk, { to = opts.to, markAsRead = true, overwrite = true,
      on_done = record })
    if not results then return nil, e end
    if journal_err then return nil, journal_err end
    for _, id in ipairs(chunk) do
      if state[id].stage == "fetch" then
        summary.errors[id] = results[id] and results[id].err
          or err("protocol", "no result for %s", id)
      end
    end
  end

  -- 3. hand each stored message to the handler
  for _, id in ipairs(order) do
    local s = state[id]
    if s.stage == "stored" then
      summary.messages = summary.messages + 1
      local paths = files_of(opts.to .. "/" .. batch.folder_of(id))
      local handled, herr = true, nil
      if opts.handler then handled, herr = pcall(opts.handler, s.msg, paths) end
      if handled and herr ~= false then
        ok, e = append(journal, { "done " .. id })
        if not ok then return nil, e end
        s.stage = "done"
        summary.done = summary.done + 1
      else
        summary.failed = summary.failed + 1
        summary.errors[id] = herr == false and err("callback", "the handler returned false")
          or err("callback", "the handler failed: %s", tostring(herr))
      end
    end
  end

  -- 4. a journal with nothing unfinished is no longer needed
  local unfinished = false
  for _, id in ipairs(order) do
    if state[id].stage ~= "done" then unfinished = true end
  end
  if not unfinished then os.remove(journal) end
  return summary
end

return W
