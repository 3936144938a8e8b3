-- Shared helpers of the workflow specs: file checks and the gateway's view of the inbox
-- (temporary folders and bulk inbound messages are spec/helpers.lua's).
local h = require "helpers"

local M = {}

local lines = h.lines
M.lines = lines

--- Every path under `dir` (files and folders), relative to it, sorted.
function M.tree(dir)
  return lines("cd " .. h.quote(dir) .. " && find . -mindepth 1 | sed 's|^\\./||'")
end

-- The drain's lock file stays in its folder (removing it would race with a second
-- drain): the listings below leave it out.
M.DRAIN_LOCK = ".as2g-drain.lock"

--- Everything under `dir`, one string a path, sorted: "folder|d" for a folder and
--- "folder/file|f|size" for a file (one `find`, however many files); the drain's lock
--- file left out.
function M.tree_sizes(dir)
  return lines("cd " .. h.quote(dir) .. " && find . -mindepth 1 ! -path ./" .. M.DRAIN_LOCK
    .. " -printf '%P|%y|%s\\n' | sed 's/^\\(.*\\)|d|.*$/\\1|d/'")
end

--- The entries of one folder (hidden ones included), sorted.
function M.ls(dir)
  return lines("ls -A " .. h.quote(dir) .. " 2>/dev/null")
end

--- Hidden files or folders anywhere under dir, but for the drain's lock file.
function M.hidden(dir)
  return lines("find " .. h.quote(dir) .. " -mindepth 1 -name '.*' ! -path "
    .. h.quote(dir .. "/" .. M.DRAIN_LOCK))
end

function M.size(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local n = f:seek("end")
  f:close()
  return n
end

function M.exists(path)
  return os.rename(path, path) and true or false
end

-- The partner types a drain reads by default: all of them.
local PARTNER_TYPES = { "production", "test" }

--- Every unread message the gateway shows (of every partner type), by ID, and how many
--- (through curl: read-only).
function M.unread_messages()
  local all, n = {}, 0
  for _, partner_type in ipairs(PARTNER_TYPES) do
    for page = 0, 20 do
      local res = h.api("GET", "/message/received", { query = { unreadOnly = "true",
        pageLength = 100, pageOffset = page, sortCol = "persistedTimestamp", sortDir = "asc",
        partnerType = partner_type } })
      assert(res.status == 200, "listing failed: " .. tostring(res.status))
      for _, m in ipairs(res.json.records) do
        if not all[m.as2MessageId] then n = n + 1 end
        all[m.as2MessageId] = m
      end
      if #res.json.records < 100 then break end
    end
  end
  return all, n
end

--- Unread received messages of every partner type, as the gateway counts them (through
--- curl, so it does not touch a client's counters; it does count in the sandbox's stats).
function M.unread()
  local n = 0
  for _, partner_type in ipairs(PARTNER_TYPES) do
    local res = h.api("GET", "/message/received", { query = { unreadOnly = "true",
      pageLength = 1, partnerType = partner_type } })
    assert(res.status == 200, "listing failed: " .. tostring(res.status))
    n = n + res.json.totalRecords
  end
  return n
end

--- How many keys a table has.
function M.count(t)
  local n = 0
  for _ in pairs(t) do n = n + 1 end
  return n
end

--- Marks every unread received message read (through curl), so that a spec starts
--- with an inbox of its own messages only.
function M.clear_unread()
  for id in pairs((M.unread_messages())) do
    local res = h.api("GET", "/message/received/" .. h.escape(id),
      { query = { markAsRead = "true" } })
    assert(res.status == 200, "markAsRead failed: " .. tostring(res.status))
  end
end

--- The sandbox's view of one message (lists, read flag, attachments).
function M.inspect(id)
  local res, status = h.control("GET", "messages/" .. h.escape(id))
  assert(status == 200, "inspect failed: " .. tostring(status))
  return res
end

--- Requests the sandbox counted for one route ("POST /message/received/batch/...").
function M.route_count(stats, route)
  return (stats.by_endpoint or {})[route] or 0
end

return M
