-- Parses multipart/form-data request bodies. Accepts CRLF and bare LF line ends,
-- because the vendor's own curl example builds its body in a shell string.
local M = {}

local function find_plain(s, needle, init)
  return s:find(needle, init, true)
end

function M.boundary(content_type)
  if not content_type then return nil end
  local ct = content_type:lower()
  if not ct:match("^%s*multipart/form%-data") then return nil end
  local b = content_type:match('[Bb][Oo][Uu][Nn][Dd][Aa][Rr][Yy]="([^"]+)"')
    or content_type:match("[Bb][Oo][Uu][Nn][Dd][Aa][Rr][Yy]=([^;%s]+)")
  return b
end

local function param(value, name)
  -- name="quoted \"value\"" or name=token; name is matched case-insensitively
  local _, e = value:lower():find(";%s*" .. name .. "%s*=%s*")
  if not e then return nil end
  local rest = value:sub(e + 1)
  if rest:sub(1, 1) ~= '"' then return rest:match("^([^;%s]*)") end
  local out, j = {}, 2
  while j <= #rest do
    local c = rest:sub(j, j)
    if c == "\\" then
      out[#out + 1] = rest:sub(j + 1, j + 1); j = j + 2
    elseif c == '"' then
      return table.concat(out)
    else
      out[#out + 1] = c; j = j + 1
    end
  end
  return nil
end

-- Returns a list of parts {name, filename, content_type, data} or nil, reason.
function M.parse(body, boundary)
  local delim = "--" .. boundary
  local parts = {}
  local pos = find_plain(body, delim, 1)
  if not pos then return nil, "multipart body has no boundary line" end
  pos = pos + #delim
  while true do
    if body:sub(pos, pos + 1) == "--" then return parts end
    local eol = body:match("^[ \t]*\r?\n()", pos)
    if not eol then return nil, "malformed multipart boundary line" end
    pos = eol
    -- headers up to the first empty line
    local headers = {}
    while true do
      local line, nxt = body:match("^([^\n]-)\r?\n()", pos)
      if not line then return nil, "truncated multipart headers" end
      pos = nxt
      if line == "" then break end
      local k, v = line:match("^([^:]+):%s*(.-)%s*$")
      if not k then return nil, "malformed multipart header" end
      headers[k:lower()] = v
    end
    local s = find_plain(body, delim, pos)
    if not s then return nil, "multipart body is not terminated" end
    local data_end = s - 1
    if body:sub(data_end, data_end) == "\n" then data_end = data_end - 1 end
    if body:sub(data_end, data_end) == "\r" then data_end = data_end - 1 end
    local cd = headers["content-disposition"]
    if not cd or not cd:lower():match("^%s*form%-data") then
      return nil, "multipart part without form-data Content-Disposition"
    end
    parts[#parts + 1] = {
      name = param(cd, "name"),
      filename = param(cd, "filename"),
      content_type = headers["content-type"],
      data = body:sub(pos, data_end),
    }
    pos = s + #delim
  end
end

return M
