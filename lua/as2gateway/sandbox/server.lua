-- The sandbox's entry point inside nginx: loads the configuration, routes each
-- request to the API (under /v1) or to the test control surface (under /_sandbox),
-- and applies authentication, the rate limit and injected faults on the way.
local cjson = require "cjson.safe"
local state = require "as2gateway.sandbox.state"
local http = require "as2gateway.sandbox.http"
local api = require "as2gateway.sandbox.api"
local jwt = require "as2gateway.sandbox.jwt"
local control = require "as2gateway.sandbox.control"

local message = http.message
local floor = math.floor

local M = {}

local cfg

function M.init(path)
  -- nginx runs with umask 0 (it daemonizes so): the files this worker writes
  -- (attachment data) would be 0666, even in a --dir folder others can read
  local ffi = require "ffi"
  pcall(ffi.cdef, "unsigned int umask(unsigned int mask);")
  ffi.C.umask(tonumber("077", 8))
  local f = assert(io.open(path, "rb"))
  cfg = assert(cjson.decode(f:read("*a")))
  f:close()
  if cfg.tunables.rate_limit == cjson.null then cfg.tunables.rate_limit = false end
  state.init(cfg)
end

local function decode_segment(s)
  return (s:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

-- Authorization ------------------------------------------------------------------------

local function limited(acc)
  local ok, retry_after = state.admit(acc)
  if ok then return false end
  message(429, "Rate limit exceeded: at most " .. state.tunables().rate_limit.requests
    .. " requests per " .. state.tunables().rate_limit.window .. " seconds",
    { ["Retry-After"] = tostring(retry_after) })
  return true
end

local function authorize(req)
  local body = cjson.decode(req.body or "")
  if type(body) ~= "table" or type(body.username) ~= "string"
     or type(body.password) ~= "string" then
    return message(400, "expected a JSON object with username and password")
  end
  local acc = state.account(body.username)
  if not acc then return message(401, "Invalid username or password") end
  if limited(acc) then return end
  if body.password ~= acc.password then
    return message(401, "Invalid username or password")
  end
  state.count("authorizations")
  local exp = floor(state.now_ms() / 1000) + floor(state.tunables().token_lifetime)
  local token = jwt.sign({ sub = acc.username, iat = floor(state.now_ms() / 1000),
    exp = exp }, cfg.jwt_key)
  http.json(200, { token = token, expiry = exp * 1000 })
end

-- Tokens whose signature checked out, so that a client's every request does not
-- pay for base64, JSON and HMAC again; expiry is still checked each time.
local verified, verified_count = {}, 0

local function verify(token)
  local now = state.now_ms() / 1000
  local claims = verified[token]
  if claims then
    if claims.exp <= now then return nil, "token expired" end
    return claims
  end
  local why
  claims, why = jwt.verify(token, cfg.jwt_key, now)
  if claims then
    if verified_count >= 1000 then verified, verified_count = {}, 0 end
    verified[token], verified_count = claims, verified_count + 1
  end
  return claims, why
end

-- The account of the request's token, or nil once a 401 or 429 has been sent.
local function account_of(req)
  local token = req.headers["authorization"]
  if type(token) ~= "string" or token == "" then
    return message(401, "Missing Authorization header")
  end
  local claims, why = verify(token)
  if not claims then return message(401, "Invalid token: " .. why) end
  local acc = state.account(claims.sub)
  if not acc then return message(401, "Invalid token: unknown account") end
  if limited(acc) then return end
  return acc
end

-- Routing --------------------------------------------------------------------------------

local ROUTES = {
  { "POST", "authorize", authorize, public = true },
  { "GET", "partner", api.partners },
  { "GET", "station", api.stations },
  { "GET", "message/:kind", api.list },
  { "DELETE", "message/:kind", api.delete_many },
  { "POST", "message/received/batch/attachments", api.batch },
  { "POST", "message/received/:id/markUnread", api.mark_unread },
  { "POST", "message/queued/:id/stop", api.stop },
  { "POST", "message/queued/:id/retry", api.retry },
  { "POST", "message/:station/:partner", api.send },
  { "GET", "message/:kind/:id", api.get },
  { "DELETE", "message/:kind/:id", api.delete },
  { "GET", "message/:kind/:id/attachments", api.attachment },
  { "GET", "message/:kind/:id/attachments/all", api.all_attachments },
  { "GET", "message/:kind/:id/attachments/:index", api.attachment },
  { "GET", "message/:kind/:id/mdn", api.mdn },
}

for _, r in ipairs(ROUTES) do
  r.segments = {}
  for s in r[2]:gmatch("[^/]+") do r.segments[#r.segments + 1] = s end
  r.label = r[1] .. " /" .. r[2]
end

local function match(route, segs)
  if #route.segments ~= #segs then return nil end
  local params = {}
  for i, s in ipairs(route.segments) do
    if s:sub(1, 1) == ":" then
      params[s:sub(2)] = segs[i]
    elseif s ~= segs[i] then
      return nil
    end
  end
  return params
end

local function route_of(method, segs)
  local path_known = false
  for _, r in ipairs(ROUTES) do
    local params = match(r, segs)
    if params then
      if r[1] == method then return r, params end
      path_known = true
    end
  end
  return nil, path_known
end

-- Requests --------------------------------------------------------------------------------

local function read_request()
  local raw = ngx.var.request_uri
  local path = raw:match("^[^?]*")
  local headers = ngx.req.get_headers(100)
  return {
    method = ngx.req.get_method(),
    path = path,
    headers = headers,
    args = ngx.req.get_uri_args(100),
  }
end

local function read_body(req)
  ngx.req.read_body()
  local body = ngx.req.get_body_data()
  if not body then
    local file = ngx.req.get_body_file()
    if file then
      local f = assert(io.open(file, "rb"))
      body = f:read("*a")
      f:close()
    end
  end
  req.body = body
end

local function apply_fault(fault)
  ngx.ctx.fault = fault
  if fault.delay_ms then ngx.sleep(fault.delay_ms / 1000) end
  if not fault.status then return false end
  local headers = {}
  if fault.retry_after ~= nil then headers["Retry-After"] = tostring(fault.retry_after) end
  if fault.body then
    headers["Content-Type"] = fault.content_type or "application/json"
    if fault.content_type == "" then headers["Content-Type"] = nil end
    http.send { status = fault.status, headers = headers, body = fault.body }
  else
    message(fault.status, fault.message or "Injected fault", headers)
  end
  return true
end

local function handle_api(req)
  local rel = req.path:match("^/v1(/.*)$")
  local segs = {}
  for s in (rel or ""):gmatch("[^/]+") do segs[#segs + 1] = decode_segment(s) end
  local route, params = route_of(req.method, segs)
  state.count_request(route and route.label or "unmatched", ngx.var.connection)
  state.tick()
  local fault = state.take_fault(req.method, rel or req.path)
  read_body(req)
  if fault and apply_fault(fault) then return end
  if not rel or not route then
    if params then return message(405, "Method not allowed") end
    return message(404, "No such endpoint")
  end
  req.params = params
  if route.public then return route[3](req) end
  local acc = account_of(req)
  if acc then route[3](req, acc) end
end

function M.handle()
  ngx.update_time()
  local req = read_request()
  if req.path:sub(1, 10) == "/_sandbox/" then
    if req.headers["x-sandbox-secret"] ~= cfg.secret then
      return message(403, "The sandbox control surface needs X-Sandbox-Secret")
    end
    state.tick()
    read_body(req)
    return control.handle(req, req.path:sub(11))
  end
  -- refuse oversized uploads before reading them
  local length = tonumber(req.headers["content-length"] or "")
  if length and length > state.tunables().upload_limit + 1024 * 1024 then
    state.count_request("oversized", ngx.var.connection)
    return message(413, "the payload is over 10 MB")
  end
  handle_api(req)
end

-- The plain-HTTP port: 307 to the same path on the HTTPS port (method and body are
-- kept by the client), with a Generic Response body like every non-2xx answer.
function M.redirect()
  local host = (ngx.var.host ~= "" and ngx.var.host) or "127.0.0.1"
  local target = "https://" .. host .. ":" .. cfg.https_port .. ngx.var.request_uri
  message(307, "Use HTTPS: " .. target, { Location = target })
end

-- nginx's own 413 (a body past client_max_body_size without Content-Length) in the
-- contract's shape.
function M.too_large()
  message(413, "the payload is over 10 MB")
end

return M
