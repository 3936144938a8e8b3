-- How the sandbox answers: JSON, files and Generic Responses, with the faults of
-- /_sandbox/faults applied on the way out (cut connections, trickled bodies).
local cjson = require "cjson.safe"
local json = require "as2gateway.json"

local M = {}

local REASONS = {
  [200] = "OK", [202] = "Accepted", [206] = "Partial Content", [307] = "Temporary Redirect",
  [400] = "Bad Request", [401] = "Unauthorized", [403] = "Forbidden", [404] = "Not Found",
  [405] = "Method Not Allowed", [413] = "Payload Too Large", [429] = "Too Many Requests",
  [500] = "Internal Server Error", [502] = "Bad Gateway", [503] = "Service Unavailable",
  [504] = "Gateway Timeout",
}

-- JSON with empty lists written as [] (the contract needs them); see as2gateway.json.
M.array = json.array
M.encode = json.encode
M.decode = cjson.decode

-- Sends the head and the first `n` body bytes over the raw connection, then returns;
-- nginx closes a raw request socket when the handler ends, so the client sees a
-- connection cut mid-body.
local function send_cut(status, headers, body, n)
  local sock = assert(ngx.req.socket(true))
  if n < 0 then return end -- drop_response: not even a status line
  local head = { ("HTTP/1.1 %d %s\r\n"):format(status, REASONS[status] or "Status") }
  for k, v in pairs(headers) do head[#head + 1] = k .. ": " .. v .. "\r\n" end
  head[#head + 1] = "Content-Length: " .. #body .. "\r\nConnection: keep-alive\r\n\r\n"
  sock:send(table.concat(head) .. body:sub(1, n))
end

local function send_trickled(body, rate)
  local chunk = math.max(1, math.floor(rate / 10))
  local pause = chunk / rate
  for i = 1, #body, chunk do
    ngx.print(body:sub(i, i + chunk - 1))
    local ok = ngx.flush(true)
    if not ok then return end -- the client went away
    if i + chunk <= #body then ngx.sleep(pause) end
  end
end

-- res = {status, headers = {}, body = string}
-- An endless answer: the head, the body, then filler until the client gives up (or
-- an hour has passed, so that nothing runs forever).
local function send_endless(body)
  ngx.print(body)
  local filler = string.rep(" ", 64 * 1024)
  local deadline = ngx.now() + 3600
  repeat
    ngx.print(filler)
    local ok = ngx.flush(true)
  until not ok or ngx.now() > deadline
end

function M.send(res)
  local fault = ngx.ctx.fault or {}
  local headers = res.headers or {}
  for k, v in pairs(fault.headers or {}) do
    if v == false or v == "" then headers[k] = nil else headers[k] = v end
  end
  local body = res.body or ""
  if fault.override_status then res.status = fault.override_status end
  if fault.drop_response then return send_cut(res.status, headers, body, -1) end
  if fault.close_after_bytes then
    return send_cut(res.status, headers, body, fault.close_after_bytes)
  end
  ngx.status = res.status
  for k, v in pairs(headers) do ngx.header[k] = v end
  if fault.endless then return send_endless(body) end
  ngx.header["Content-Length"] = #body
  if fault.trickle_bytes_per_s then
    send_trickled(body, fault.trickle_bytes_per_s)
  else
    ngx.print(body)
  end
end

function M.json(status, value, headers)
  headers = headers or {}
  headers["Content-Type"] = "application/json"
  M.send { status = status, headers = headers, body = M.encode(value) }
end

-- A Generic Response: every non-2xx answer and every acknowledgement has this shape.
function M.message(status, text, headers)
  M.json(status, { message = text }, headers)
end

-- Content-Disposition for a server-chosen name: quoted, with an RFC 5987 form
-- when the name is not plain ASCII.
function M.disposition(name)
  local quoted = name:gsub("[\\\"]", "\\%0"):gsub("[%c]", "_")
  local v = 'attachment; filename="' .. quoted .. '"'
  if name:find("[\128-\255]") then
    v = v .. "; filename*=UTF-8''" .. name:gsub("[^%w%.%-_~]", function(c)
      return ("%%%02X"):format(c:byte())
    end)
  end
  return v
end

function M.file(status, name, data, headers)
  headers = headers or {}
  headers["Content-Type"] = "application/octet-stream"
  headers["Content-Disposition"] = M.disposition(name)
  M.send { status = status, headers = headers, body = data }
end

return M
