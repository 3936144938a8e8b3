-- Shared helpers of the workflow specs: bulk inbound messages, temp folders, file checks.
local h = require "helpers"

local M = {}

--- Injects `n` inbound messages with the same body through ONE curl process (its
--- `--next` blocks reuse one connection): much faster than n h.inbound calls. The
--- control surface is not rate limited. Returns the new AS2 message IDs, in order.
function M.inject(n, msg)
  msg = msg or {}
  msg.station = msg.station or "ACME-AS2"
  msg.partner = msg.partner or "GLOBEX-AS2"
  msg.attachments = msg.attachments or { { name = "inbound.txt", size = 100 } }
  local body, config = h.tmpname(), h.tmpname()
  h.write_file(body, h.json_encode(msg))
  local block = table.concat({
    'url = "' .. h.base .. '/_sandbox/inbound"',
    'request = "POST"',
    'cacert = "' .. h.ca .. '"',
    'header = "X-Sandbox-Secret: ' .. h.secret .. '"',
    'header = "Content-Type: application/json"',
    'data-binary = "@' .. body .. '"',
    'write-out = "\\n"',
  }, "\n")
  local blocks = {}
  for i = 1, n do blocks[i] = block end
  h.write_file(config, table.concat(blocks, "\nnext\n") .. "\n")
  local p = assert(io.popen("curl -sS -K " .. h.quote(config)))
  local out = p:read("a")
  p:close()
  os.remove(body)
  os.remove(config)
  local ids = {}
  for id in out:gmatch('"as2MessageId"%s*:%s*"(.-)"') do ids[#ids + 1] = id end
  assert(#ids == n, ("injected %d of %d messages: %s"):format(#ids, n, out:sub(1, 300)))
  return ids
end

--- A new empty folder under /tmp.
function M.tmpdir()
  local d = h.tmpname()
  assert(os.execute("mkdir -p " .. h.quote(d)))
  return d
end

function M.rmrf(path)
  if path and path:match("^/tmp/.") then os.execute("rm -rf " .. h.quote(path)) end
end

local function lines(cmd)
  local p = assert(io.popen(cmd))
  local out = {}
  for line in p:lines() do out[#out + 1] = line end
  p:close()
  table.sort(out)
  return out
end
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
