-- A scriptable HTTP/1.1 server on 127.0.0.1 for the answers the sandbox cannot give
-- (a token in seconds, a listing that ignores pageOffset, a 202 without a body...).
-- Plain HTTP: the client accepts http:// for loopback hosts. Each server is a child
-- process of the spec (lua5.4 with LuaSocket), bounded by `timeout`, and stopped by
-- the spec; it serves one request at a time on any number of connections.
--
-- Scripting it: hostile.start(script) takes a Lua chunk that defines
--   function handle(req, n) ... end
-- called for every request: req = {method, path (without the query), query (decoded,
-- name -> value), headers (names lower-cased), body}, n = 1 for the first request the
-- server got, 2 for the next... It returns
--   status, headers, body                 -- an answer (Content-Length is added)
--   status, headers, {trickle = bytes_per_s, body = "..."}   -- the body sent slowly
--   status, headers, {endless = bytes_per_s}   -- blanks without end, no length
--   "close"                               -- the connection dropped, no answer
-- Helpers in the chunk: json(value) (lua-cjson), jwt(claims) (an unsigned JWT-shaped
-- token with those claims), login{expiry =, token =, claims =} (a 200 /authorize
-- answer), page(records, total) (a Pagination), page_of(all, req, total) (the page
-- of the list `all` that req asks for), messages(n, prefix) (n AS2 message entities),
-- now_ms(), and `state`, a table kept between requests.
--
--   local hostile = require "hostile_server"
--   local srv = hostile.start [[
--     function handle(req, n)
--       if req.path == "/v1/authorize" then return login { expiry = 120 } end
--       return 200, { ["Content-Type"] = "application/json" }, json { records = 42 }
--     end
--   ]]
--   local client = as2gateway.new { url = srv.url, username = "u", password = "p" }
--   ... srv:requests() -- what it received so far: {method, path, query, headers, body}
--   srv:stop()
local M = {}

local SELF = debug.getinfo(1, "S").source:sub(2)

-- The server: `lua5.4 hostile_server.lua SCRIPT PORTFILE LOGFILE` ---------------------

local function serve(script_path, port_path, log_path)
  local socket = require "socket"
  local cjson = require "cjson"

  local env = setmetatable({ state = {} }, { __index = _G })
  env.json = cjson.encode
  function env.now_ms() return math.floor(socket.gettime() * 1000) end
  local function b64url(s)
    local alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    local out = {}
    for i = 1, #s, 3 do
      local a, b, c = s:byte(i, i + 2)
      local v = a * 65536 + (b or 0) * 256 + (c or 0)
      for k = 0, (b and (c and 3 or 2) or 1) do
        local x = math.floor(v / 2 ^ (18 - 6 * k)) % 64
        out[#out + 1] = alphabet:sub(x + 1, x + 1)
      end
    end
    return table.concat(out)
  end
  function env.jwt(claims)
    return b64url(cjson.encode { alg = "HS256", typ = "JWT" }) .. "."
      .. b64url(cjson.encode(claims)) .. "." .. b64url("not-a-signature")
  end
  function env.login(o)
    o = o or {}
    local now = math.floor(socket.gettime())
    local token = o.token or env.jwt(o.claims or { sub = "u", iat = now, exp = now + 86400 })
    return 200, { ["Content-Type"] = "application/json" },
      cjson.encode { token = token, expiry = o.expiry }
  end
  function env.page(records, total)
    return 200, { ["Content-Type"] = "application/json" },
      cjson.encode { totalRecords = total or #records, records = records }
  end
  -- the page of `all` that req asks for (pageOffset, pageLength), as a Pagination
  function env.page_of(all, req, total)
    local len = tonumber(req.query.pageLength) or 10
    local first = (tonumber(req.query.pageOffset) or 0) * len
    local records = {}
    for i = first + 1, math.min(first + len, #all) do records[#records + 1] = all[i] end
    return env.page(records, total or #all)
  end
  function env.messages(n, prefix)
    local list = {}
    for i = 1, n do
      list[i] = { as2MessageId = ("<%s-%d@hostile>"):format(prefix or "m", i),
        persistedTimestamp = 1700000000000 + i, receiverId = "P", senderId = "S",
        mdnStatus = "Pending", partnerType = "Production", compressed = false,
        encrypted = false, signed = false, attachments = { { name = "a.txt", size = 1 } } }
    end
    return list
  end
  assert(load(assert(io.open(script_path)):read("a"), "=hostile script", "t", env))()
  local handle = assert(env.handle, "the script must define handle(req, n)")

  local server = assert(socket.bind("127.0.0.1", 0))
  local _, port = server:getsockname()
  local f = assert(io.open(port_path .. ".part", "w"))
  f:write(port, "\n")
  f:close()
  os.rename(port_path .. ".part", port_path) -- readiness: the port file appears whole
  local log = assert(io.open(log_path, "a"))

  local function unescape(s)
    s = s:gsub("+", " ")
    return (s:gsub("%%(%x%x)", function(x) return string.char(tonumber(x, 16)) end))
  end

  local function read_request(c)
    local line, err = c:receive("*l")
    if not line then return nil, err end
    local method, target = line:match("^(%u+) (%S+) HTTP/1%.%d$")
    if not method then return nil, "bad request line" end
    local headers = {}
    while true do
      local h = c:receive("*l")
      if not h then return nil, "closed in the head" end
      if h == "" then break end
      local k, v = h:match("^([^:]+):%s*(.-)%s*$")
      if k then headers[k:lower()] = v end
    end
    local body = ""
    if headers["transfer-encoding"] and headers["transfer-encoding"]:lower():find("chunked") then
      local parts = {}
      while true do
        local size = tonumber((c:receive("*l") or ""):match("^%x+"), 16)
        if not size then return nil, "bad chunk" end
        if size == 0 then c:receive("*l") break end
        local data = c:receive(size)
        if not data then return nil, "closed in a chunk" end
        parts[#parts + 1] = data
        c:receive("*l")
      end
      body = table.concat(parts)
    elseif tonumber(headers["content-length"] or "") then
      local n = tonumber(headers["content-length"])
      if n > 0 then
        local data = c:receive(n)
        if not data then return nil, "closed in the body" end
        body = data
      end
    end
    local path, q = target:match("^([^?]*)%??(.*)$")
    local query = {}
    for k, v in q:gmatch("([^&=]+)=?([^&]*)") do query[unescape(k)] = unescape(v) end
    return { method = method, path = path, query = query, headers = headers, body = body,
      target = target }
  end

  local REASONS = { [200] = "OK", [202] = "Accepted", [204] = "No Content",
    [206] = "Partial Content", [401] = "Unauthorized", [404] = "Not Found",
    [429] = "Too Many Requests", [500] = "Internal Server Error" }

  local function answer(c, status, headers, body)
    local head = { ("HTTP/1.1 %d %s"):format(status, REASONS[status] or "Status") }
    headers = headers or {}
    local streamed = type(body) == "table"
    if streamed and body.endless then
      head[#head + 1] = "Connection: close"
    elseif streamed then
      head[#head + 1] = "Content-Length: " .. #body.body
    else
      body = body or ""
      head[#head + 1] = "Content-Length: " .. #body
    end
    for k, v in pairs(headers) do head[#head + 1] = k .. ": " .. v end
    c:send(table.concat(head, "\r\n") .. "\r\n\r\n")
    if not streamed then
      c:send(body)
      return true
    end
    local rate = body.endless or body.trickle
    local data = body.body
    local i = 1
    while body.endless or i <= #data do
      local chunk = body.endless and (" "):rep(math.max(1, math.floor(rate / 10)))
        or data:sub(i, i + math.max(1, math.floor(rate / 10)) - 1)
      i = i + #chunk
      if not c:send(chunk) then return false end
      socket.sleep(0.1)
    end
    return not body.endless
  end

  local conns, n = {}, 0
  while true do
    local ready = socket.select({ server, table.unpack(conns) }, nil, 1)
    for _, s in ipairs(ready) do
      if s == server then
        local c = server:accept()
        if c then
          c:settimeout(30)
          conns[#conns + 1] = c
        end
      else
        local req = read_request(s)
        local keep = false
        if req then
          n = n + 1
          req.n = n
          -- the log keeps the head of a large body (and its length)
          local logged = {}
          for k, v in pairs(req) do logged[k] = v end
          logged.body, logged.body_length = req.body:sub(1, 65536), #req.body
          log:write(cjson.encode(logged), "\n")
          log:flush()
          local ok, status, headers, body = pcall(handle, req, n)
          if not ok then
            io.stderr:write("hostile script: ", tostring(status), "\n")
            status, headers, body = 500, {}, '{"message": "the hostile script failed"}'
          end
          if status ~= "close" then keep = answer(s, status, headers, body) end
        end
        if not keep then
          s:close()
          for i, c in ipairs(conns) do
            if c == s then table.remove(conns, i) break end
          end
        end
      end
    end
  end
end

if arg and arg[0] and arg[0]:match("hostile_server%.lua$") and arg[3] then
  serve(arg[1], arg[2], arg[3])
  return
end

-- The spec side -------------------------------------------------------------------

-- the spec helpers, loaded here only: the server process runs without a sandbox
local h = require "helpers"
local shell_quote, read = h.quote, h.read_file

local Server = {}
Server.__index = Server

--- Starts a server running `script` (see above), up to `seconds` (default 120) of
--- life; returns it once it accepts connections (or raises after 10 s).
function M.start(script, seconds)
  local dir = h.mkdtemp()
  local self = setmetatable({ dir = dir, script = dir .. "/script.lua",
    portfile = dir .. "/port", logfile = dir .. "/log", errfile = dir .. "/err" }, Server)
  local f = assert(io.open(self.script, "w"))
  f:write(script)
  f:close()
  assert(io.open(self.logfile, "w")):close()
  local p
  local cmd = ("timeout %d lua5.4 %s %s %s %s </dev/null >/dev/null 2>%s & echo $!"):format(
    seconds or 120, shell_quote(SELF), shell_quote(self.script), shell_quote(self.portfile),
    shell_quote(self.logfile), shell_quote(self.errfile))
  p = assert(io.popen(cmd))
  self.pid = tonumber(p:read("l"))
  p:close()
  assert(self.pid, "could not start the hostile server")
  -- ready when the port file is there: poll it, with a deadline
  local deadline = os.time() + 10
  while not self.port do
    self.port = tonumber(read(self.portfile) or "")
    if not self.port then
      if os.time() > deadline then
        self:stop()
        error("the hostile server did not start: " .. (read(self.errfile) or ""))
      end
      os.execute("sleep 0.02")
    end
  end
  self.url = ("http://127.0.0.1:%d/v1"):format(self.port)
  return self
end

--- Every request the server received so far, in order.
function Server:requests()
  local cjson = require "cjson"
  local list = {}
  for line in (read(self.logfile) or ""):gmatch("[^\n]+") do
    list[#list + 1] = cjson.decode(line)
  end
  return list
end

--- How many requests it received so far (with `path`: to that path only).
function Server:count(path)
  local n = 0
  for _, r in ipairs(self:requests()) do
    if not path or r.path == path then n = n + 1 end
  end
  return n
end

--- What the script wrote on stderr (its errors).
function Server:errors()
  return read(self.errfile) or ""
end

function Server:stop()
  if self.pid then
    os.execute(("kill %d 2>/dev/null"):format(self.pid))
    self.pid = nil
  end
  h.rmtree(self.dir)
  self.dir = nil
end

return M
