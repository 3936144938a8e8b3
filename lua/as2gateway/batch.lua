--- as2gateway.batch: batch downloads (100 IDs a request, continued after 206 answers)
-- and safe zip extraction. Zip entry names come from the server and, through it,
-- from trading partners: none is ever used as a path. An entry is accepted only
-- inside the folder of a requested ID (matched robustly: the gateway may spell the
-- folder without the angle brackets, percent-encoded or in another case) and is
-- stored under a name of this module's making (`names_for`): the partner's name,
-- sanitised, unique within the message, the same on every run. Links, encrypted,
-- oversized and overcompressed entries are refused; archives past the limits are
-- refused whole; nothing replaces a file that this download did not write itself
-- (unless asked to).
local core = require "as2gateway.core"
local json = require "as2gateway.json"
local util = require "as2gateway.util"
local err = util.err

local ipairs, pairs, type, tostring = ipairs, pairs, type, tostring
local min, max = math.min, math.max

local M = {
  MAX_IDS = 100,
  MAX_ENTRIES = 2000,                  -- 100 messages x (10 files + .error), with room
  MAX_ENTRY_BYTES = 64 * 1024 * 1024,  -- an attachment is at most 10 MB when sent
  MAX_ZIP_BYTES = 512 * 1024 * 1024,   -- declared (and written) total of one answer
  MAX_RATIO = 200,                     -- uncompressed/compressed, past 1 MiB
}

-- The batch endpoint, under the message endpoints' prefix (which lives in init alone).
local function batch_path()
  return { require("as2gateway").MESSAGE_PREFIX, "received", "batch", "attachments" }
end

--- The folder of a message: its ID without the angle brackets when that is a plain
--- file name (the usual case); any other ID is spelled out, "%XX" for each byte that
--- is not a letter, digit or one of @_+=,-, after "id..", which a plain name (the
--- sanitiser leaves no "..") never holds. A spelled-out ID past 255 bytes is cut and
--- ends in "~" and 16 hex digits of the whole ID's SHA-256 ("~" is always spelled out
--- otherwise). So
--- two IDs never share a folder, a folder name is the same on every run, and no
--- partner can write into another message's folder.
function M.folder_of(id)
  local bare = id:match("^<(.+)>$")
  if bare and bare:sub(1, 1) ~= "." and #bare <= 255 and core.sanitize_filename(bare) == bare then
    return bare
  end
  local spelled = "id.." .. id:gsub("[^%w@_+=,%-]", function(c)
    return ("%%%02X"):format(c:byte())
  end)
  if #spelled <= 255 then return spelled end
  return spelled:sub(1, 255 - 17):gsub("%%%x?$", "") .. "~" .. core.sha256(id):sub(1, 16)
end

local function split_ext(name)
  local base, ext = name:match("^(.+)(%.[^.]+)$")
  if not base then return name, "" end
  return base, ext
end

-- Longest name an attachment gets on disk: room for a " (99999)" suffix and for the
-- core's temporary file beside it, ".<name>.XXXXXX.part", within the 255 bytes a
-- file name may have. (The core cuts both itself now; the bound stays, since names
-- must be the same on every run.)
local NAME_MAX = core.NAME_MAX - #" (99999)" - #"..XXXXXX.part"

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

--- The name an attachment gets on disk: sanitised by the core (path separators,
--- control bytes and ".." become "_"; never hidden, since hidden names are this
--- library's temporary files), short enough to be written, never empty.
function M.local_name(name)
  local safe = core.sanitize_filename(name)
  if #safe > NAME_MAX then -- shortened, keeping a short extension
    local base, ext = split_ext(name)
    ext = (#ext > 1 and #ext <= 32) and "." .. core.sanitize_filename(ext:sub(2)) or ""
    safe = core.sanitize_filename(cut(core.sanitize_filename(base), NAME_MAX - #ext) .. ext)
  end
  if safe == "" then safe = "attachment" end
  return safe
end

--- The names a message's attachments get in its folder, in the order of `names` (the
--- attachment names as the partner gave them): `local_name` of each, and for a name
--- already given to an earlier attachment, "name (2).ext", "name (3).ext", ... The
--- same list gives the same names on every run, so a message fetched again lands on
--- its own files.
function M.names_for(names)
  local out, taken = {}, {}
  for i, name in ipairs(names) do
    local candidate, n = M.local_name(name), 1
    local first = candidate
    while taken[candidate] do
      n = n + 1
      candidate = core.name_variant(first, n)
    end
    taken[candidate] = true
    out[i] = candidate
  end
  return out
end

local function attachment_names(record)
  local names = {}
  for i, a in ipairs(record.attachments) do names[i] = tostring(a.name or "") end
  return names
end

--- Whether a message's attachments, as its record lists them, are all stored in
--- `to/<folder of ID>/`: each under its name from `names_for`, a regular file, of the
--- size the record gives. The one place that decides "complete": the paths in the
--- record's order, or nil and why not.
function M.stored_paths(to, record)
  local id, atts = record.as2MessageId, record.attachments
  if type(atts) ~= "table" then return nil, "the message record lists no attachments" end
  local dir = to .. "/" .. M.folder_of(id)
  local plan, paths = M.names_for(attachment_names(record)), {}
  for i, a in ipairs(atts) do
    local path = dir .. "/" .. plan[i]
    local kind, size = core.stat(path)
    if kind ~= "file" then
      return nil, ("attachment %d (%q) is not on disk"):format(i, tostring(a.name))
    end
    if type(a.size) == "number" and size ~= a.size then
      return nil, ("attachment %d (%q) has %d bytes on disk, the record says %s"):format(i,
        tostring(a.name), size, tostring(a.size))
    end
    paths[i] = path
  end
  return paths
end

-- Percent-decoded, without angle brackets, lower-cased: how two spellings of one ID
-- are recognised as the same.
local function canonical(s)
  s = s:gsub("%%(%x%x)", function(x) return string.char(tonumber(x, 16)) end)
  return (s:match("^<(.*)>$") or s):lower()
end

--- A function from a zip folder name to the requested ID it stands for: the ID itself,
--- or the one ID whose canonical spelling it has; nil for a folder that matches no
--- requested ID or more than one.
function M.folder_matcher(ids)
  local exact, canon = {}, {}
  for _, id in ipairs(ids) do
    exact[id] = true
    local c = canonical(id)
    if canon[c] == nil then canon[c] = id elseif canon[c] ~= id then canon[c] = false end
  end
  return function(folder)
    if exact[folder] then return folder end
    return canon[canonical(folder)] or nil
  end
end

-- The requested ID an entry belongs to and its name in that ID's folder. An AS2 ID
-- may hold "/" itself: of the splits whose folder matches an ID, one whose name is an
-- attachment of that ID's record wins, else the longest folder.
local function split_entry(entry_name, match, records)
  local best_id, best_name
  local i = 0
  while true do
    i = entry_name:find("/", i + 1, true)
    if not i then break end
    local id = match(entry_name:sub(1, i - 1))
    if id then
      local name = entry_name:sub(i + 1)
      local rec = records[id]
      if rec and type(rec.attachments) == "table" then
        for _, a in ipairs(rec.attachments) do
          if a.name == name then return id, name end
        end
      end
      best_id, best_name = id, name
    end
  end
  return best_id, best_name
end

-- Why an entry must not be extracted, from what it declares; nil when it may be.
local function suspicious(e, limits)
  if e.link then return "a link" end
  if e.encrypted then return "encrypted" end
  if e.size > limits.max_entry then return "larger than the limit" end
  if e.size > 1024 * 1024 and e.size > M.MAX_RATIO * max(e.compressed, 1) then
    return "compressed suspiciously well (a zip bomb?)"
  end
end

-- The archive as a whole, before anything of it is extracted: too many entries or too
-- many bytes declared refuse it.
local function check_archive(entries, limits)
  if #entries > M.MAX_ENTRIES then
    return nil, err("protocol", "the archive holds %d entries, over %d", #entries, M.MAX_ENTRIES)
  end
  local declared = 0
  for _, entry in ipairs(entries) do declared = declared + entry.size end
  if declared > limits.max_total then
    return nil, err("protocol", "the archive declares %d bytes, over %d", declared,
      limits.max_total)
  end
  return true
end

local function open_archive(zip_path, limits)
  local zip, e = core.zip_open(zip_path)
  if not zip then return nil, e end
  local entries, ok
  entries, e = zip:entries()
  if entries then ok, e = check_archive(entries, limits) end
  if not ok then zip:close() return nil, e end
  return zip, entries
end

-- Extracts one entry to `path`, counting its bytes against the answer's total budget.
local function extract_to(zip, entry, path, limits, no_clobber)
  local budget = limits.max_total - limits.written
  local ok, e = zip:extract(entry.index, path, min(limits.max_entry, budget), no_clobber)
  if ok then limits.written = limits.written + entry.size end
  return ok, e
end

-- A path for `name` in `dir` that is neither taken by this extraction nor an existing
-- file this download did not write itself: `name`, else "name (2).ext", ...
local function choose(dir, name, taken, written, overwrite)
  local path, variant = util.free_path(dir, name, function(p, v)
    return not taken[v] and (overwrite or written[p] or not core.stat(p))
  end)
  if not path then return nil, err("io", "no free name for %s in %s", name, dir) end
  taken[variant] = true
  return path
end

-- Extracts `entry` into `dir` under `name` or the first variant `choose` gives: the
-- path, or nil and an error.
local function extract_into(zip, entry, dir, name, taken, written, overwrite, limits)
  local path, e = choose(dir, name, taken, written, overwrite)
  if not path then return nil, e end
  local again = written[path] -- asked for again after a 206: the same file
  local ok
  ok, e = extract_to(zip, entry, path, limits, not (overwrite or again))
  if not ok then return nil, e end
  return path
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

-- For each requested ID, its entries in this answer in order, each with the index of
-- the record's attachment it is (by name, in order; else by the name it gets on disk),
-- and the names on disk: the record's plan, or, without a record, the plan of the
-- entry names themselves. Entries that cannot be placed go to `refused`.
local function place(entries, match, state)
  local per_id, refused = {}, {}
  for _, entry in ipairs(entries) do
    local id, name = split_entry(entry.name, match, state.records)
    local reason
    if not id then
      reason = "not inside the folder of a requested message"
    elseif entry.dir then
      reason = nil -- folders are implied; nothing to do
    elseif name == "" then
      reason = "an empty name"
    else
      reason = suspicious(entry, state.limits)
    end
    if reason then
      refused[#refused + 1] = { entry = entry.name, reason = reason, id = id }
    elseif not entry.dir then
      per_id[id] = per_id[id] or {}
      local list = per_id[id]
      list[#list + 1] = { entry = entry, name = name }
    end
  end
  for id, list in pairs(per_id) do
    local rec = state.records[id]
    if rec and type(rec.attachments) == "table" then
      local names = attachment_names(rec)
      local plan, used = M.names_for(names), {}
      local function assign(item, same)
        for k, n in ipairs(names) do
          if not used[k] and same(n, item.name) then
            used[k], item.index, item.local_name = true, k, plan[k]
            return true
          end
        end
      end
      local kept = {}
      for _, item in ipairs(list) do
        if assign(item, function(a, b) return a == b end)
           or assign(item, function(a, b) return M.local_name(a) == M.local_name(b) end) then
          kept[#kept + 1] = item
        elseif item.name == ".error" and #list == 1 then
          item.marker = true -- the gateway's error marker
          kept[#kept + 1] = item
        else
          refused[#refused + 1] = { entry = item.entry.name, id = id,
            reason = "not an attachment of the message's record" }
        end
      end
      per_id[id] = kept
    elseif #list == 1 and list[1].name == ".error" then
      list[1].marker = true
    else
      local names = {}
      for k, item in ipairs(list) do names[k] = item.name end
      local plan = M.names_for(names)
      for k, item in ipairs(list) do item.index, item.local_name = k, plan[k] end
    end
  end
  return per_id, refused
end

--- Extracts a batch zip into `to/<folder of ID>/`. `state.wanted` lists the requested
--- IDs. Fills state.results[id] = {folder, paths, err}; refused entries go to
--- state.refused as {entry =, reason =, id =}.
function M.extract(zip_path, wanted, state)
  local limits = { max_entry = state.limits.max_entry, max_total = M.MAX_ZIP_BYTES, written = 0 }
  local zip, entries = open_archive(zip_path, limits)
  if not zip then return nil, entries end
  local per_id, refused = place(entries, M.folder_matcher(wanted), state)
  for _, r in ipairs(refused) do state.refused[#state.refused + 1] = r end
  for id, list in pairs(per_id) do
    local r = state.results[id]
    local dir = state.to .. "/" .. M.folder_of(id)
    -- `<id>/.error` alone marks a failed ID; a partner may well name an attachment so
    if list[1].marker then
      local text = read_small(zip, list[1].entry, core.temp_path(state.to, "error"))
      r.err = err("notfound", "%s", (text or "the gateway reported an error"):sub(1, 300))
    else
      local ok, e = core.mkdir(dir)
      if not ok then r.err = e end
      local taken = {}
      for _, item in ipairs(list) do
        if not ok then break end
        local path
        path, e = extract_into(zip, item.entry, dir, item.local_name, taken, state.written,
          state.overwrite, limits)
        ok = path ~= nil
        if ok then
          state.written[path] = true
          r.folder = dir
          r.by_index[item.index] = path
        else
          r.err = e
          if e.kind == "io" then state.fatal = e end
        end
      end
    end
    if state.fatal then break end
  end
  zip:close()
  return true
end

-- The paths of a result in attachment order (holes closed up).
local function paths_of(r)
  local keys = {}
  for k in pairs(r.by_index) do keys[#keys + 1] = k end
  table.sort(keys)
  local paths = {}
  for i, k in ipairs(keys) do paths[i] = r.by_index[k] end
  return paths
end

local function new_state(client, opts)
  if type(opts) ~= "table" or type(opts.to) ~= "string" then
    error("download_batch: opts.to (a folder) is required", 3)
  end
  util.check_opts(opts, { to = true, markAsRead = true, overwrite = true,
    max_entry_bytes = true, on_done = true, before_fetch = true, records = true },
    "download_batch", 4)
  if core.stat(opts.to) ~= "dir" then
    return nil, err("invalid", "%s is not a folder", opts.to)
  end
  return {
    client = client, to = opts.to, mark = opts.markAsRead == true,
    overwrite = opts.overwrite == true, results = {}, refused = {}, written = {},
    on_done = opts.on_done, before_fetch = opts.before_fetch, records = opts.records or {},
    limits = { max_entry = opts.max_entry_bytes or M.MAX_ENTRY_BYTES },
  }
end

-- The first message of a request alone went past the batch limit: asking again would
-- bring the same part. Its remaining attachments come one by one instead (its record
-- says which; without one, it is asked for).
local function finish_one_by_one(state, id, last_included)
  local client, r = state.client, state.results[id]
  local msg = state.records[id]
  local e
  if not (msg and type(msg.attachments) == "table") then
    msg, e = client:get("received", id)
    if not msg then r.err = e return end
    if type(msg.attachments) ~= "table" then
      r.err = err("protocol", "the record of %s lists no attachments", id)
      return
    end
  end
  local dir = state.to .. "/" .. M.folder_of(id)
  local ok
  ok, e = core.mkdir(dir)
  if not ok then r.err = e return end
  local atts = msg.attachments
  local plan = M.names_for(attachment_names(msg))
  local taken = {}
  for _, p in pairs(r.by_index) do taken[p:match("[^/]+$")] = true end
  for i = last_included + 1, #atts - 1 do
    local path, got
    path, e = choose(dir, plan[i + 1], taken, state.written, state.overwrite)
    if path then
      got, e = client:download("received", id, { index = i, to = path,
        markAsRead = state.mark and i == #atts - 1,
        overwrite = state.overwrite or state.written[path] })
    end
    if not got then
      r.err = e
      if e.kind == "io" then state.fatal = e end
      return
    end
    state.written[path] = true
    r.by_index[i + 1] = path
  end
  r.folder = dir
end

-- One batch request for `pending` (at most 100 IDs); returns the IDs still to fetch.
local function fetch(state, pending)
  if state.before_fetch then
    local ok, e = state.before_fetch(pending)
    if not ok then return nil, e, true end
  end
  local zip_path = core.temp_path(state.to, "batch", ".zip")
  local res, e = state.client:perform {
    method = "POST", path = batch_path(),
    query = state.mark and { markAsRead = true } or nil,
    headers = { ["Content-Type"] = "application/json" },
    body = json.encode(pending), to_file = zip_path, no_clobber = true,
  }
  if not res then return nil, e, e.kind == "io" end
  -- an index past the IDs asked for makes the whole answer suspect: checked before
  -- anything of it is extracted
  local trunc = res.truncation or {}
  local m, a = trunc.message, trunc.attachment
  if res.status == 206 and not (m and a) then
    os.remove(zip_path)
    return nil, err("protocol", "206 without a truncation index")
  end
  if res.status == 206 and m >= #pending then
    os.remove(zip_path)
    return nil, err("protocol", "206 with truncation index (%d,%d) past the %d IDs asked for",
      m, a, #pending)
  end
  local ok
  ok, e = M.extract(zip_path, pending, state)
  os.remove(zip_path)
  if not ok then return nil, e, e.kind == "io" end
  if state.fatal then return nil, state.fatal, true end
  -- the gateway answered for these: what is missing now is missing from its answer
  for _, id in ipairs(pending) do state.results[id].answered = true end
  local complete = #pending
  if res.status == 206 then
    if m == 0 then
      finish_one_by_one(state, pending[1], a)
      if state.fatal then return nil, state.fatal, true end
      m = 1
    end
    complete = m
  end
  if state.on_done then -- what is complete now, so that a caller can record it at once
    local done = {}
    for i = 1, complete do done[i] = pending[i] end
    local recorded, rerr = state.on_done(done, state.results)
    if recorded == nil and rerr then return nil, rerr, true end
  end
  -- the partly included message is asked for again, from its first attachment
  local rest = {}
  for i = complete + 1, #pending do rest[#rest + 1] = pending[i] end
  return rest
end

--- client:download_batch(ids, {to =, markAsRead =, overwrite =, records =, ...}) ->
--- results by ID ({folder, paths} or {err}), report {refused = {...}}; or nil, err
--- when nothing could be done. Each request asks for up to 100 IDs: what a 206 answer
--- left out first, topped up with the next IDs. Options for workflows: `records`
--- (ID -> message record: entries are matched to its attachments and named by it),
--- `before_fetch(ids)` and `on_done(ids, results)` (called before each request and
--- after each answer; returning nil, err stops the download with that error).
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
      state.results[id] = { paths = {}, by_index = {} }
    end
  end
  local pending, next_id, stopped = {}, 1, nil
  while not stopped do
    while #pending < M.MAX_IDS and next_id <= #order do
      pending[#pending + 1] = order[next_id]
      next_id = next_id + 1
    end
    if #pending == 0 then break end
    local before = #pending
    local rest, ferr, fatal = fetch(state, pending)
    if not rest then
      for _, id in ipairs(pending) do
        state.results[id].err = state.results[id].err or ferr
      end
      rest = {}
      if fatal then stopped = ferr end
    elseif #rest >= before then -- cannot happen with the rules above: never loop
      for _, id in ipairs(rest) do
        state.results[id].err = err("protocol", "the batch download did not advance")
      end
      rest = {}
    end
    pending = rest
  end
  -- after a fatal error (the disk, the journal) nothing more was asked for
  for i = next_id, #order do
    state.results[order[i]].err = err(stopped.kind, "not fetched: %s", stopped.message)
  end
  for _, r in pairs(state.results) do
    r.paths = paths_of(r)
    r.by_index = nil
  end
  return state.results, { refused = state.refused, err = stopped }
end

--- Extracts a message's /all zip into `to`, entries named by attachment name, with
--- the limits of a batch answer (entries, declared and written bytes, entry size,
--- compression ratio); an existing file is kept ("name (2).ext") unless `overwrite`.
--- All or nothing: an entry it must refuse (a link, a folder, past
--- a limit) fails the download with a `protocol` error, and nothing of it is kept.
function M.download_all(client, spec, to, overwrite)
  local zip_path = core.temp_path(to, "all", ".zip")
  spec.to_file, spec.no_clobber = zip_path, true
  local res, e = client:perform(spec)
  if not res then return nil, e end
  local limits = { max_entry = M.MAX_ENTRY_BYTES, max_total = M.MAX_ZIP_BYTES, written = 0 }
  local zip, entries = open_archive(zip_path, limits)
  if not zip then os.remove(zip_path) return nil, entries end
  local names = {}
  for i, entry in ipairs(entries) do
    local reason = entry.name == "" and "an empty name" or suspicious(entry, limits)
    if entry.dir then reason = reason or "a folder" end
    if reason then
      zip:close()
      os.remove(zip_path)
      return nil, err("protocol", "the archive's entry %q is refused: %s", entry.name, reason)
    end
    names[i] = entry.name
  end
  local plan, paths, taken = M.names_for(names), {}, {}
  for i, entry in ipairs(entries) do
    local path
    path, e = extract_into(zip, entry, to, plan[i], taken, {}, overwrite, limits)
    if not path then
      zip:close()
      os.remove(zip_path)
      for _, p in ipairs(paths) do os.remove(p) end
      return nil, e
    end
    paths[#paths + 1] = path
  end
  zip:close()
  os.remove(zip_path)
  return paths
end

return M
