--- as2gateway.journal: a durable append-only journal of text lines, for workflows that
-- must survive a crash at any moment (send_dir's outbound journal). Every append is
-- checked at each step (open, write, close) and fsynced, the folder too when the
-- file is new, so a line that append reported written is on disk; a line torn by a
-- crash mid-write is ended before more are added, and readers skip it. `replace`
-- swaps the whole journal atomically (a temporary file, fsynced, renamed, folder
-- fsynced), for compaction.
local core = require "as2gateway.core"

local tostring, ipairs = tostring, ipairs
local concat = table.concat

local M = {}

local fail = require("as2gateway.util").fail

local function io_error(fmt, ...)
  return fail("io", fmt, ...)
end

local function folder_of(path)
  return path:match("^(.*)/[^/]*$") or "."
end

--- The journal's lines, oldest first (a torn last line included: callers that parse
--- lines must skip what they cannot read). A missing journal has none.
---@return string[]|nil lines
---@return as2gateway.Error|nil err kind io when it exists but cannot be read
function M.lines(path)
  local f, e = io.open(path, "rb")
  if not f then
    if core.stat(path) == nil then return {} end
    return io_error("cannot read the journal %s: %s", path, tostring(e))
  end
  local data = f:read("a")
  f:close()
  if not data then return io_error("cannot read the journal %s", path) end
  local lines = {}
  for line in data:gmatch("[^\n]+") do lines[#lines + 1] = line end
  return lines
end

--- Appends lines (each without "\n") and returns once they are on disk (core.append:
--- every write checked, the file and, when it is new, its folder synced; a torn last
--- line ended first).
---@param lines string[]
---@return true|nil ok
---@return as2gateway.Error|nil err kind io: nothing may be assumed written
function M.append(path, lines)
  for _, l in ipairs(lines) do
    if l:find("\n", 1, true) then error("journal.append: a line holds a line feed", 2) end
  end
  local ok, e = core.append(path, concat(lines, "\n") .. "\n")
  if not ok then return io_error("cannot write the journal %s: %s", path, e.message) end
  return true
end

--- Replaces the journal with `lines`, atomically: a reader (or a crash) sees the old
--- journal or the new one, never a mix.
function M.replace(path, lines)
  local tmp = core.temp_path(folder_of(path), "journal", ".tmp")
  local f, e = io.open(tmp, "wb")
  if not f then return io_error("cannot write %s: %s", tmp, tostring(e)) end
  local ok, werr = true, nil
  if #lines > 0 then ok, werr = f:write(concat(lines, "\n"), "\n") end
  local closed, cerr = f:close()
  if not (ok and closed) then
    os.remove(tmp)
    return io_error("cannot write %s: %s", tmp, tostring(werr or cerr))
  end
  local synced, serr = core.fsync(tmp)
  if not synced then
    os.remove(tmp)
    return nil, serr
  end
  local moved, merr = os.rename(tmp, path)
  if not moved then
    os.remove(tmp)
    return io_error("cannot replace the journal %s: %s", path, tostring(merr))
  end
  return core.fsync(folder_of(path))
end

return M
