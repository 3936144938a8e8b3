--- as2gateway.files: what goes into a send. Checks the files before anything is sent
-- (count, total size, safe unique names, readable files) and builds the core request:
-- a raw body for one file, a streamed multipart/form-data body for several.
local core = require "as2gateway.core"

local type, ipairs, pairs, tostring = type, ipairs, pairs, tostring

local M = {
  MAX_FILES = 10,
  MAX_BYTES = 10 * 1024 * 1024, -- the gateway's 10 MB, read as MiB (see docs/sandbox.md)
}

local invalid = require("as2gateway.util").invalid

local function basename(path)
  return (path:gsub("/+$", ""):match("([^/]+)$")) or path
end

--- A name the gateway (and the partner's file system) can take as it is: no path
--- separators, no control characters (CR/LF in a `Name` header would be header
--- injection), not "." or "..", at most 255 bytes.
function M.check_name(name)
  if type(name) ~= "string" or name == "" then return nil, "a file name is required" end
  if #name > 255 then return nil, ("file name %q is longer than 255 bytes"):format(name) end
  if name:find("[/\\]") then return nil, ("file name %q holds a path separator"):format(name) end
  if name:find("[%c\127]") then
    return nil, ("file name %q holds a control character"):format(name)
  end
  if name == "." or name == ".." then
    return nil, ("file name %q is not a file name"):format(name)
  end
  return true
end

-- Turns the accepted shapes of `files` into a list of {name, path | data, content_type}.
local function normalize(files)
  if type(files) == "string" then return { { path = files } } end
  if type(files) == "table" and (files.path or files.data or files.name) then
    files = { files } -- one file table, not a list of them
  end
  if type(files) ~= "table" then
    error("send: files must be a path, a list of paths or a list of file tables", 4)
  end
  local list = {}
  for i, f in ipairs(files) do
    if type(f) == "string" then
      list[i] = { path = f }
    elseif type(f) == "table" then
      for k in pairs(f) do
        if k ~= "name" and k ~= "path" and k ~= "data" and k ~= "content_type" then
          error(("send: unknown file field '%s'"):format(tostring(k)), 4)
        end
      end
      list[i] = f
    else
      error("send: each file must be a path or a table", 4)
    end
  end
  return list
end

--- Checks `files` and returns the core request fields for them (body or
--- body_file or body_pieces, and headers), or nil and an `invalid` error.
function M.request(files)
  local list = normalize(files)
  if #list == 0 then return invalid("a message needs at least one file") end
  if #list > M.MAX_FILES then
    return invalid("a message carries at most %d files, got %d", M.MAX_FILES, #list)
  end
  local names, total = {}, 0
  for i, f in ipairs(list) do
    if (f.path == nil) == (f.data == nil) then
      return invalid("file %d needs exactly one of path and data", i)
    end
    if f.content_type ~= nil and (type(f.content_type) ~= "string"
        or f.content_type:find("[%c\127]") or f.content_type == "") then
      return invalid("file %d has an invalid content_type", i)
    end
    local name = f.name or (f.path and basename(f.path))
    local ok, why = M.check_name(name)
    if not ok then return invalid("%s", why) end
    if names[name] then return invalid("file name %q appears twice", name) end
    names[name] = true
    local size
    if f.path then
      local kind, n = core.stat(f.path)
      if kind ~= "file" then return invalid("%s is not a readable file", f.path) end
      local fh = io.open(f.path, "rb")
      if not fh then return invalid("%s cannot be read", f.path) end
      fh:close()
      size = n
    else
      if type(f.data) ~= "string" then return invalid("file %d: data must be a string", i) end
      size = #f.data
    end
    total = total + size
    list[i] = { name = name, path = f.path, data = f.data, content_type = f.content_type,
      size = size }
  end
  if total > M.MAX_BYTES then
    return invalid("the files add up to %d bytes, over the gateway's 10 MB", total)
  end
  if #list == 1 then
    local f = list[1]
    -- without a Content-Type the gateway detects the type by extension and content
    local headers = { Name = f.name, ["Content-Type"] = f.content_type }
    return { headers = headers, body = f.data, body_file = f.path }
  end
  return M.multipart(list)
end

local function quote(name)
  return '"' .. name:gsub('[\\"]', "\\%0") .. '"'
end

--- The multipart/form-data body of several files as pieces the core streams (files
--- are read as they are sent) with a known length.
function M.multipart(list)
  local boundary = "as2gateway-" .. core.random_hex(16)
  local pieces = {}
  for _, f in ipairs(list) do
    -- a part without Content-Type lets the gateway detect it, as for a raw send
    pieces[#pieces + 1] = ("--%s\r\nContent-Disposition: form-data; name=\"file\"; "
      .. "filename=%s\r\n%s\r\n"):format(boundary, quote(f.name),
      f.content_type and ("Content-Type: " .. f.content_type .. "\r\n") or "")
    pieces[#pieces + 1] = f.path and { path = f.path } or f.data
    pieces[#pieces + 1] = "\r\n"
  end
  pieces[#pieces + 1] = "--" .. boundary .. "--\r\n"
  return {
    headers = { ["Content-Type"] = "multipart/form-data; boundary=" .. boundary },
    body_pieces = pieces,
  }
end

return M
