--- as2gateway.batch: batch downloads (100 IDs a request, continued after 206 answers)
-- and safe zip extraction. Zip entry names come from the server and, through it,
-- from trading partners: none is ever used as a path. An entry is accepted only as
-- `<requested ID>/<plain name>`; the name is sanitised; links, directories, nested
-- paths and oversized or overcompressed entries are refused; nothing replaces a file
-- that this download did not write itself (unless asked to).
local core = require "as2gateway.core"
local cjson = require "cjson.safe"

local ipairs, pairs, type, tostring = ipairs, pairs, type, tostring
local min = math.min

local M = {
  MAX_IDS = 100,
  MAX_ENTRIES = 2000,                  -- 100 messages x (10 files + .error), with room
  MAX_ENTRY_BYTES = 64 * 1024 * 1024,  -- an attachment is at most 10 MB when sent
  MAX_ZIP_BYTES = 512 * 1024 * 1024,   -- declared total of one answer
  MAX_RATIO = 200,                     -- uncompressed/compressed, past 1 MiB
}

local err = require("as2gateway.util").err

--- The folder of a message: its ID without the angle brackets when that is a plain
--- file name (the usual case); any other ID is spelled out, "%XX" for each byte that
--- is not a letter, digit or one of @_+=,-, after "id..", which a plain name (the
--- sanitiser leaves no "..") never holds. So two IDs never share a folder (short of
--- IDs past 255 bytes once spelled out), and no partner can write into another
--- message's folder.
function M.folder_of(id)
  local bare = id:match("^<(.+)>$")
  if bare and bare:sub(1, 1) ~= "." and core.sanitize_filename(bare) == bare then
    return bare
  end
  local spelled = id:gsub("[^%w@_+=,%-]", function(c) return ("%%%02X"):format(c:byte()) end)
  return ("id.." .. spelled):sub(1, 255)
end

local function split_ext(name)
  local base, ext = name:match("^(.+)(%.[^.]+)$")
  if not base then return name, "" end
  return base, ext
end

-- Longest name an attachment gets on disk: room for a " (99999)" suffix and for the
-- core's temporary file beside it, ".<name>.XXXXXX.part", within the 255 bytes a
-- file name may have.
local NAME_MAX = 255 - #" (99999)" - #"..XXXXXX.part"

-- At most n bytes of s, not cut inside a UTF-8 sequence.
local function cut(s, n)
  if #s <= n then return s end
  local b = s:byte(n + 1)
  while n > 0 and b >= 0x80 and b < 0xC0 do
    b = s:byte(n)
    n = n - 1
  end
  return s:sub(1, n)
end

--- The name an attachment gets on disk: sanitised by the core, never hidden (hidden
--- names are this library's temporary files, which a rerun of drain removes, and
--- folder watchers skip them) and short enough to be written.
function M.local_name(name)
  local safe = core.sanitize_filename(name)
  if #safe > NAME_MAX then -- shortened, keeping a short extension
    local base, ext = split_ext(name)
    ext = (#ext > 1 and #ext <= 32) and "." .. core.sanitize_filename(ext:sub(2)) or ""
    safe = core.sanitize_filename(cut(core.sanitize_filename(base), NAME_MAX - #ext) .. ext)
  end
  return safe
end

-- A path for `name` in `dir` that is neither taken by this extraction nor an existing
-- file this download did not write itself.
local function choose(dir, name, taken, written, overwrite)
  local base, ext = split_ext(name)
  local candidate, n = name, 1
  while true do
    local path = dir .. "/" .. candidate
    if not taken[candidate] and (overwrite or written[path] or not core.stat(path)) then
      taken[candidate] = true
      return path
    end
    n = n + 1
    candidate = ("%s (%d)%s"):format(base, n, ext)
  end
end

local function read_small(zip, entry, scratch)
  local ok, e = zip:extract(entry.index, scratch, 64 * 1024)
  if not ok then return nil, e end
  local f = io.open(scratch, "rb")
  local text = f and f:read("*a") or ""
  if f then f:close() end
  os.remove(scratch)
  return text
end

-- The requested ID an entry belongs to and its name in that ID's folder. An AS2 ID
-- may hold "/" itself: the longest requested ID followed by "/" is the one.
local function split_entry(entry_name, wanted)
  local best, i = nil, 0
  while true do
    i = entry_name:find("/", i + 1, true)
    if not i then break end
    if wanted[entry_name:sub(1, i - 1)] then best = i end
  end
  if best then return entry_name:sub(1, best - 1), entry_name:sub(best + 1) end
end

-- Checks what an entry declares before anything is extracted.
local function suspicious(e, limits)
  if e.link then return "a link" end
  if e.encrypted then return "encrypted" end
  if e.size > limits.max_entry then return "larger than the limit" end
  if e.size > 1024 * 1024 and e.size > M.MAX_RATIO * math.max(e.compressed, 1) then
    return "compressed suspiciously well (a zip bomb?)"
  end
end

--- Extracts a batch zip into `to/<folder of ID>/`. `wanted` maps each requested ID
--- to true. Fills state.results[id] = {folder, paths, err}; refused entries go to
--- state.refused as {entry =, reason =}.
function M.extract(zip_path, wanted, state)
  local zip, e = core.zip_open(zip_path)
  if not zip then return nil, e end
  local entries
  entries, e = zip:entries()
  if not entries then zip:close() return nil, e end
  if #entries > M.MAX_ENTRIES then
    zip:close()
    return nil, err("protocol", "the batch archive holds %d entries, over %d", #entries,
      M.MAX_ENTRIES)
  end
  local declared = 0
  for _, entry in ipairs(entries) do declared = declared + entry.size end
  if declared > M.MAX_ZIP_BYTES then
    zip:close()
    return nil, err("protocol", "the batch archive declares %d bytes", declared)
  end
  -- `<id>/.error` marks a failed ID only when it is all that ID's folder holds: a
  -- partner may well name an attachment ".error"
  local per_id = {}
  for _, entry in ipairs(entries) do
    local id, name = split_entry(entry.name, wanted)
    if id and name ~= "" and not entry.dir then per_id[id] = (per_id[id] or 0) + 1 end
  end
  local taken = {}
  for _, entry in ipairs(entries) do
    local id, name = split_entry(entry.name, wanted)
    local reason
    if not id then
      reason = "not inside the folder of a requested message"
    elseif entry.dir then
      reason = nil -- folders are implied; nothing to do
    elseif name == "" or name:find("/") or name:find("\\", 1, true) then
      reason = "a nested or empty path"
    else
      reason = suspicious(entry, state.limits)
    end
    if reason then
      state.refused[#state.refused + 1] = { entry = entry.name, reason = reason }
    elseif not entry.dir then
      local r = state.results[id]
      local dir = state.to .. "/" .. M.folder_of(id)
      if name == ".error" and per_id[id] == 1 then
        local text = read_small(zip, entry, state.to .. "/.as2g-error-" .. core.random_hex(8))
        r.err = err("notfound", "%s", (text or "the gateway reported an error"):sub(1, 300))
      else
        local ok, mkerr = core.mkdir(dir)
        if ok then
          taken[id] = taken[id] or {}
          local path = choose(dir, M.local_name(name), taken[id], state.written,
            state.overwrite)
          local again = state.written[path] -- asked for again after a 206: same file
          ok, mkerr = zip:extract(entry.index, path, state.limits.max_entry,
            not (state.overwrite or again))
          if ok then
            state.written[path] = true
            r.folder = dir
            if not again then r.paths[#r.paths + 1] = path end
          end
        end
        if not ok then r.err = mkerr end
      end
    end
  end
  zip:close()
  return true
end

local function new_state(client, opts)
  if type(opts) ~= "table" or type(opts.to) ~= "string" then
    error("download_batch: opts.to (a folder) is required", 3)
  end
  for k in pairs(opts) do
    if k ~= "to" and k ~= "markAsRead" and k ~= "overwrite" and k ~= "max_entry_bytes"
       and k ~= "on_done" then
      error(("download_batch: unknown option '%s'"):format(tostring(k)), 3)
    end
  end
  if core.stat(opts.to) ~= "dir" then
    return nil, err("invalid", "%s is not a folder", opts.to)
  end
  return {
    client = client, to = opts.to, mark = opts.markAsRead == true,
    overwrite = opts.overwrite == true, results = {}, refused = {}, written = {},
    on_done = opts.on_done,
    limits = { max_entry = opts.max_entry_bytes or M.MAX_ENTRY_BYTES },
  }
end

-- The first message of a request alone went past the batch limit: asking again would
-- bring the same part. Its remaining attachments come one by one instead.
local function finish_one_by_one(state, id, last_included)
  local client, r = state.client, state.results[id]
  local msg, e = client:get("received", id)
  if not msg then r.err = e return end
  local dir = state.to .. "/" .. M.folder_of(id)
  local ok
  ok, e = core.mkdir(dir)
  if not ok then r.err = e return end
  local atts = msg.attachments or {}
  local taken = {}
  for _, p in ipairs(r.paths) do taken[p:match("[^/]+$")] = true end
  for i = last_included + 1, #atts - 1 do
    local path = choose(dir, M.local_name(atts[i + 1].name or "attachment"),
      taken, state.written, state.overwrite)
    local again = state.written[path]
    local got
    got, e = client:download("received", id, { index = i, to = path,
      markAsRead = state.mark and i == #atts - 1, overwrite = state.overwrite or again })
    if not got then r.err = e return end
    state.written[path] = true
    if not again then r.paths[#r.paths + 1] = path end
  end
  r.folder = dir
end

-- One batch request for `pending` (at most 100 IDs); returns the IDs still to fetch.
local function fetch(state, pending)
  local zip_path = state.to .. "/.as2g-batch-" .. core.random_hex(8) .. ".zip"
  local res, e = state.client:perform {
    method = "POST",
    path = { require("as2gateway").MESSAGE_PREFIX, "received", "batch", "attachments" },
    query = state.mark and { markAsRead = true } or nil,
    headers = { ["Content-Type"] = "application/json" },
    body = cjson.encode(pending), to_file = zip_path, no_clobber = true,
  }
  if not res then return nil, e end
  -- an index past the IDs asked for makes the whole answer suspect: checked before
  -- anything of it is extracted
  local trunc = res.truncation or {}
  local m, a = trunc.message, trunc.attachment
  if res.status == 206 and m >= #pending then
    os.remove(zip_path)
    return nil, err("protocol", "206 with truncation index (%d,%d) past the %d IDs asked for",
      m, a, #pending)
  end
  local wanted = {}
  for _, id in ipairs(pending) do wanted[id] = true end
  local ok
  ok, e = M.extract(zip_path, wanted, state)
  os.remove(zip_path)
  if not ok then return nil, e end
  if res.status ~= 206 then
    if state.on_done then state.on_done(pending, state.results) end
    return {}
  end
  if m == 0 then
    finish_one_by_one(state, pending[1], a)
    m = 1
  end
  if state.on_done then -- what is complete now, so that a caller can record it at once
    local done = {}
    for i = 1, m do done[i] = pending[i] end
    state.on_done(done, state.results)
  end
  -- the partly included message is asked for again, from its first attachment
  local rest = {}
  for i = m + 1, #pending do rest[#rest + 1] = pending[i] end
  return rest
end

--- client:download_batch(ids, {to =, markAsRead =, overwrite =}) -> results by ID,
--- report {refused = {...}}; or nil, err when nothing could be done.
function M.download(client, ids, opts)
  if type(ids) ~= "table" then error("download_batch: a list of IDs expected", 2) end
  local state, e = new_state(client, opts)
  if not state then return nil, e end
  local order, seen = {}, {}
  for _, id in ipairs(ids) do
    if type(id) ~= "string" or id == "" then
      error("download_batch: IDs must be non-empty strings", 2)
    end
    if not seen[id] then
      seen[id] = true
      order[#order + 1] = id
      state.results[id] = { paths = {} }
    end
  end
  for first = 1, #order, M.MAX_IDS do
    local pending = {}
    for i = first, min(first + M.MAX_IDS - 1, #order) do pending[#pending + 1] = order[i] end
    while #pending > 0 do
      local before = #pending
      local rest
      rest, e = fetch(state, pending)
      if not rest then
        for _, id in ipairs(pending) do
          state.results[id].err = state.results[id].err or e
        end
        break
      end
      if #rest >= before then -- cannot happen with the rules above: never loop
        for _, id in ipairs(rest) do
          state.results[id].err = err("protocol", "the batch download did not advance")
        end
        break
      end
      pending = rest
    end
  end
  return state.results, { refused = state.refused }
end

--- Extracts a message's /all zip into `to`, entries named by attachment name.
function M.download_all(client, spec, to)
  local zip_path = to .. "/.as2g-all-" .. core.random_hex(8) .. ".zip"
  spec.to_file, spec.no_clobber = zip_path, true
  local res, e = client:perform(spec)
  if not res then return nil, e end
  local zip
  zip, e = core.zip_open(zip_path)
  if not zip then os.remove(zip_path) return nil, e end
  local entries = zip:entries() or {}
  local paths, taken, refused = {}, {}, {}
  local limits = { max_entry = M.MAX_ENTRY_BYTES }
  for _, entry in ipairs(entries) do
    local reason = (entry.name == "" or entry.name:find("[/\\]")) and "a path, not a name"
      or suspicious(entry, limits)
    if entry.dir then
      reason = reason or "a folder"
    end
    if reason then
      refused[#refused + 1] = { entry = entry.name, reason = reason }
    else
      local path = choose(to, M.local_name(entry.name), taken, {}, false)
      local ok
      ok, e = zip:extract(entry.index, path, limits.max_entry, true)
      if not ok then zip:close() os.remove(zip_path) return nil, e end
      paths[#paths + 1] = path
    end
  end
  zip:close()
  os.remove(zip_path)
  paths.refused = refused
  return paths
end

return M
