--- as2gateway.mdn: reads an MDN (a disposition notification, RFC 8098, as AS2 uses it,
-- RFC 4130 section 7.4) into a table. Takes the whole MIME entity (headers first, as
-- the gateway's /mdn download gives it), a bare multipart body opening with its
-- boundary line, a multipart/signed wrapper around the report, or the disposition
-- fields alone; CRLF or bare LF line ends. Pure Lua; the payload is bytes from the
-- partner, so nothing in it is trusted: every failure is `nil, err` (kind protocol).
local fail = require("as2gateway.util").fail

local type, ipairs, tonumber = type, ipairs, tonumber
local concat = table.concat
local char = string.char
local floor = math.floor

local M = {
  MAX_BYTES = 1024 * 1024, -- an MDN is a few hundred bytes; bigger is not an MDN
  MAX_DEPTH = 4,           -- signed > report > parts: nesting beyond this is refused
}

local function protocol(fmt, ...)
  return fail("protocol", "MDN: " .. fmt, ...)
end

-- Header blocks ---------------------------------------------------------------------------

-- Splits "headers CRLF CRLF body" (or LF LF) into a list of {name, value} (names
-- lower-cased, folded lines joined) and the body. A text opening with a blank line
-- has no headers ({}); nil when a line of the head is not a header field.
local function split_head(text)
  local head, body
  local s, e = text:find("\r?\n\r?\n")
  if text:match("^\r?\n") then
    head, body = "", (text:gsub("^\r?\n", "", 1))
  elseif s then
    head, body = text:sub(1, s - 1), text:sub(e + 1)
  else
    head, body = text, ""
  end
  local fields = {}
  for line in (head .. "\n"):gmatch("([^\n]*)\n") do
    line = line:gsub("\r$", "")
    if line:match("^[ \t]") and #fields > 0 then -- folded onto the previous field
      local last = fields[#fields]
      last[2] = last[2] .. " " .. line:gsub("^[ \t]+", "")
    elseif line ~= "" then
      local name, value = line:match("^([!-9;-~]+):[ \t]*(.-)[ \t]*$")
      if not name then return nil end
      fields[#fields + 1] = { name:lower(), value }
    end
  end
  return fields, body
end

local function field(fields, name)
  for _, f in ipairs(fields) do
    if f[1] == name then return f[2] end
  end
end

-- "multipart/report; report-type=...; boundary="x"" -> "multipart/report", {params}
local function content_type(value)
  if not value then return nil, {} end
  local mime = value:match("^%s*([^;%s]+)")
  local params = {}
  for k, v in value:gmatch(';%s*([%w%-_.]+)%s*=%s*([^;"%s]+)') do params[k:lower()] = v end
  for k, v in value:gmatch(';%s*([%w%-_.]+)%s*=%s*"([^"]*)"') do params[k:lower()] = v end
  return mime and mime:lower(), params
end

-- Transfer encodings -----------------------------------------------------------------------

local B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
local B64_VALUE = {}
for i = 1, #B64 do B64_VALUE[B64:byte(i)] = i - 1 end

local function unbase64(s)
  s = s:gsub("[%s]", ""):gsub("=+$", "")
  if s:find("[^%w+/]") then return nil end
  local out, n, bits = {}, 0, 0
  for i = 1, #s do
    n = n * 64 + B64_VALUE[s:byte(i)]
    bits = bits + 6
    if bits >= 8 then -- arithmetic, not bit operators: LuaJIT (OpenResty) loads this too
      bits = bits - 8
      local unit = 2 ^ bits
      out[#out + 1] = char(floor(n / unit) % 256)
      n = n % unit
    end
  end
  return concat(out)
end

local function unquote_printable(s)
  s = s:gsub("=\r?\n", "")
  return (s:gsub("=(%x%x)", function(h) return char(tonumber(h, 16)) end))
end

local function decode(body, encoding)
  encoding = (encoding or "7bit"):lower()
  if encoding == "base64" then return unbase64(body) end
  if encoding == "quoted-printable" then return unquote_printable(body) end
  if encoding == "7bit" or encoding == "8bit" or encoding == "binary" then return body end
  return nil
end

-- Multipart bodies ----------------------------------------------------------------------------

-- The parts of a multipart body (RFC 2046 section 5.1: a delimiter is a line of
-- "--" and the boundary, the line end before it belongs to it; text before the first
-- one is a preamble, after the closing one an epilogue), each a string; nil when the
-- closing delimiter is missing.
local function split_parts(body, boundary)
  local text = "\n" .. body
  local delim = "\n--" .. boundary
  local found, pos = {}, 1
  while true do
    local s, e = text:find(delim, pos, true)
    if not s then break end
    local after = text:sub(e + 1, e + 2)
    if after == "--" then
      found[#found + 1] = { s, e, closing = true }
      break
    end
    local c = after:sub(1, 1)
    if c == "\r" or c == "\n" or c == " " or c == "\t" then found[#found + 1] = { s, e } end
    pos = e + 1
  end
  if #found == 0 or not found[#found].closing then return nil end
  local parts = {}
  for i = 1, #found - 1 do
    local line_end = text:find("\n", found[i][2] + 1, true)
    if not line_end or line_end > found[i + 1][1] then return nil end
    parts[#parts + 1] = (text:sub(line_end + 1, found[i + 1][1] - 1):gsub("\r$", ""))
  end
  return parts
end

local parse_entity

-- A multipart entity: the report inside a signed wrapper, or a report's parts.
local function parse_multipart(mime, params, body, depth, out)
  local boundary = params.boundary
  if not boundary or boundary == "" or #boundary > 200 then
    return protocol("%s without a usable boundary", mime)
  end
  local parts = split_parts(body, boundary)
  if not parts or #parts == 0 then
    return protocol("%s body without its closing boundary %q", mime, boundary)
  end
  if mime == "multipart/signed" then
    -- the first part is what was signed (the report); the second the signature
    return parse_entity(parts[1], depth + 1, out)
  end
  for _, part in ipairs(parts) do
    local ok, err = parse_entity(part, depth + 1, out)
    if not ok then return nil, err end
  end
  return true
end

-- Reads one MIME entity into `out`: the disposition fields and the human-readable text.
parse_entity = function(text, depth, out)
  if depth > M.MAX_DEPTH then return protocol("nested deeper than %d levels", M.MAX_DEPTH) end
  local fields, body = split_head(text)
  local ctype = fields and field(fields, "content-type")
  if not ctype and depth == 0 then
    if fields and field(fields, "disposition") then -- the notification fields alone
      out.fields_list = fields
      return true
    end
    local boundary = text:match("^%-%-([^\r\n]-)[ \t]*\r?\n")
    if boundary then -- a bare multipart body
      return parse_multipart("multipart/report", { boundary = boundary }, text, depth, out)
    end
    return protocol("neither a MIME entity nor disposition fields")
  end
  if not fields then return protocol("a body part with a malformed header") end
  -- RFC 2045: a part without Content-Type is text/plain
  local mime, params = content_type(ctype or "text/plain")
  if not mime then return protocol("a Content-Type without a type: %q", ctype) end
  local decoded = decode(body, field(fields, "content-transfer-encoding"))
  if not decoded then
    return protocol("unknown or broken Content-Transfer-Encoding in a %s part", mime)
  end
  if mime:match("^multipart/") then
    return parse_multipart(mime, params, decoded, depth, out)
  elseif mime == "message/disposition-notification" then
    local notification = split_head(decoded)
    if not notification or #notification == 0 then
      return protocol("an empty or malformed disposition-notification part")
    end
    out.fields_list = notification
  elseif mime == "text/plain" and not out.text then
    out.text = decoded:gsub("%s+$", "")
  end
  return true
end

-- The disposition ---------------------------------------------------------------------------

-- "automatic-action/MDN-sent-automatically; processed/error: decryption-failed"
local function read_disposition(value, report)
  local mode, rest = value:match("^%s*([^;]-)%s*;%s*(.-)%s*$")
  if not mode then return protocol("Disposition %q has no disposition mode", value) end
  local action, sending = mode:match("^([^/%s]+)%s*/%s*([^/%s]+)$")
  report.action_mode, report.sending_mode = action, sending
  local dtype, modifiers = rest:match("^([%w%-]+)%s*/%s*(.-)$")
  if not dtype then dtype = rest:match("^([%w%-]+)$") end
  if not dtype then return protocol("Disposition %q has no disposition type", value) end
  report.disposition = dtype:lower()
  if modifiers and modifiers ~= "" then
    -- AS2 writes one modifier with a description, "error: <text>"
    local word, description = modifiers:match("^([%w%-]+)%s*:%s*(.-)$")
    if not word then word = modifiers:match("^([%w%-]+)") end
    report.modifier = word and word:lower()
    report.modifier_text = description ~= "" and description or nil
  end
  local m = report.modifier
  if m == "error" or m == "failure" or report.disposition == "failed" then
    report.error = report.modifier_text or m or "failed"
  elseif m == "warning" then
    report.warning = report.modifier_text or "warning"
  end
  return true
end

-- "rfc822; GLOBEX-AS2" -> "GLOBEX-AS2"
local function address(value)
  if not value then return nil end
  return value:match(";%s*(.-)%s*$") or value
end

--- Parses an MDN payload. Returns a table:
--- `disposition` (the type, lower-case: "processed", "failed", ...), `error` (the
--- error or failure it reports, e.g. "decryption-failed"; nil for a good MDN),
--- `warning`, `modifier`, `action_mode`, `sending_mode`, `original_message_id`,
--- `mic` (the base64 digest) and `mic_algorithm` ("sha-256"), `final_recipient`,
--- `original_recipient`, `reporting_ua`, `text` (the human-readable part) and
--- `fields` (every disposition-notification field by lower-case name). Or nil and
--- an error of kind protocol.
---@param payload string
---@return table|nil report
---@return as2gateway.Error|nil err
function M.parse(payload)
  if type(payload) ~= "string" then error("parse_mdn: the MDN payload (a string) expected", 2) end
  if #payload > M.MAX_BYTES then return protocol("over %d bytes", M.MAX_BYTES) end
  if payload:find("^%s*$") then return protocol("empty") end
  local out = {}
  local ok, err = parse_entity(payload, 0, out)
  if not ok then return nil, err end
  if not out.fields_list then return protocol("no message/disposition-notification part") end
  local fields = {}
  for _, f in ipairs(out.fields_list) do fields[f[1]] = fields[f[1]] or f[2] end
  local disposition = fields["disposition"]
  if not disposition then return protocol("no Disposition field") end
  local report = { fields = fields, text = out.text }
  ok, err = read_disposition(disposition, report)
  if not ok then return nil, err end
  report.original_message_id = fields["original-message-id"]
  report.final_recipient = address(fields["final-recipient"])
  report.original_recipient = address(fields["original-recipient"])
  report.reporting_ua = fields["reporting-ua"]
  local mic = fields["received-content-mic"]
  if mic then
    report.mic, report.mic_algorithm = mic:match("^%s*([^,%s]+)%s*,%s*([^,%s]+)%s*$")
    report.mic = report.mic or mic
    report.mic_algorithm = report.mic_algorithm and report.mic_algorithm:lower()
  end
  return report
end

return M
