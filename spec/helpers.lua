-- Spec helpers: talk to the running sandbox with the curl command (independent of our
-- own client) and drive its control surface. The sandbox comes from the environment
-- that `bin/as2g-sandbox start` prints; `make test` provides it.
local cjson = require "cjson.safe"

local M = {}

local function env(name)
  local v = os.getenv(name)
  if not v or v == "" then
    error(name .. " is not set: run the specs with `make test`, "
      .. "or eval \"$(bin/as2g-sandbox start)\" first", 0)
  end
  return v
end

M.url = env("AS2G_URL")                         -- https://127.0.0.1:PORT/v1
M.http_url = env("AS2G_HTTP_URL")
M.base = M.url:gsub("/v1$", "")                 -- https://127.0.0.1:PORT
M.ca = env("AS2G_CA")
M.username = env("AS2G_USERNAME")
M.password = env("AS2G_PASSWORD")
M.other_username = env("AS2G_OTHER_USERNAME")
M.other_password = env("AS2G_OTHER_PASSWORD")
M.secret = env("AS2G_SANDBOX_SECRET")
M.dir = env("AS2G_SANDBOX_DIR")

M.json_decode = cjson.decode
M.json_encode = cjson.encode

function M.quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

--- Runs a shell command; returns its output, stderr included.
function M.sh(cmd)
  local p = io.popen(cmd .. " 2>&1")
  local out = p:read("a")
  p:close()
  return out
end

--- The lines a shell command writes to stdout, sorted.
function M.lines(cmd)
  local p = assert(io.popen(cmd))
  local out = {}
  for line in p:lines() do out[#out + 1] = line end
  p:close()
  table.sort(out)
  return out
end

local function read_file(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local d = f:read("a")
  f:close()
  return d
end
M.read_file = read_file

local function write_file(path, data)
  local f = assert(io.open(path, "wb"))
  f:write(data)
  f:close()
end
M.write_file = write_file

function M.tmpname()
  local p = os.tmpname()
  os.remove(p)
  return p
end

-- Percent-encodes a path segment (AS2 message IDs hold <, >, @).
function M.escape(s)
  return (s:gsub("[^%w%-%._~]", function(c) return ("%%%02X"):format(c:byte()) end))
end

-- Runs curl once. opts:
--   method, url (absolute) or path (relative to AS2G_URL), query (table or string),
--   headers (table name -> value, or list of "Name: value"), token (Authorization),
--   body (string, sent with --data-binary), body_file (path, sent as --data-binary @),
--   json (a value: body = its JSON, Content-Type application/json),
--   args (list of extra curl arguments), output (path to write the body to).
-- Returns {status, headers (lower-cased names; repeated ones joined by ", "),
-- header_lines, body, json (decoded when the body is JSON), exit (curl's code)}.
function M.curl(opts)
  local args = { "curl", "-sS", "--cacert", M.quote(M.ca), "-X", opts.method or "GET" }
  local hfile, bfile = M.tmpname(), opts.output or M.tmpname()
  args[#args + 1] = "-D " .. M.quote(hfile)
  args[#args + 1] = "-o " .. M.quote(bfile)
  args[#args + 1] = "-w '%{http_code}'"
  local headers = opts.headers or {}
  local function header(line) args[#args + 1] = "-H " .. M.quote(line) end
  for k, v in pairs(headers) do
    if type(k) == "number" then header(v) else header(k .. ": " .. v) end
  end
  if opts.token then header("Authorization: " .. opts.token) end
  local datafile
  if opts.json ~= nil then
    opts.body = type(opts.json) == "string" and opts.json or cjson.encode(opts.json)
    if not headers["Content-Type"] then header("Content-Type: application/json") end
  end
  if opts.body then
    datafile = M.tmpname()
    write_file(datafile, opts.body)
    args[#args + 1] = "--data-binary @" .. M.quote(datafile)
  elseif opts.body_file then
    args[#args + 1] = "--data-binary @" .. M.quote(opts.body_file)
  end
  for _, a in ipairs(opts.args or {}) do args[#args + 1] = M.quote(a) end
  local url = opts.url or (M.url .. (opts.path or ""))
  local q = opts.query
  if type(q) == "table" then
    local parts = {}
    for k, v in pairs(q) do parts[#parts + 1] = M.escape(k) .. "=" .. M.escape(tostring(v)) end
    table.sort(parts)
    q = table.concat(parts, "&")
  end
  if q and q ~= "" then url = url .. "?" .. q end
  args[#args + 1] = M.quote(url)
  args[#args + 1] = "2>/dev/null"
  local p = io.popen(table.concat(args, " "))
  local code = p:read("a")
  local _, _, exit = p:close()
  local res = { status = tonumber(code), exit = exit, headers = {}, header_lines = {} }
  -- with redirects followed, -D holds every response's head: keep the last one
  for line in (read_file(hfile) or ""):gmatch("[^\r\n]+") do
    if line:match("^HTTP/") then
      res.headers, res.header_lines = {}, {}
    else
      local k, v = line:match("^([^:]+):%s*(.-)%s*$")
      if k then
        k = k:lower()
        res.header_lines[#res.header_lines + 1] = line
        res.headers[k] = res.headers[k] and (res.headers[k] .. ", " .. v) or v
      end
    end
  end
  if not opts.output then
    res.body = read_file(bfile) or ""
    os.remove(bfile)
    res.json = cjson.decode(res.body)
  end
  os.remove(hfile)
  if datafile then os.remove(datafile) end
  return res
end

-- POST /authorize; returns the token (asserting success) and the whole answer.
function M.login(username, password)
  local res = M.curl { method = "POST", path = "/authorize",
    json = { username = username or M.username, password = password or M.password } }
  assert(res.status == 200, "login failed: " .. tostring(res.status) .. " " .. tostring(res.body))
  return res.json.token, res
end

-- An authorized API call: M.api("GET", "/message/received", {query = ...}).
function M.api(method, path, opts)
  opts = opts or {}
  opts.method, opts.path = method, path
  opts.token = opts.token or M.token or M.login()
  M.token = opts.token
  return M.curl(opts)
end

-- A control-surface call: M.control("POST", "inbound", {...}) -> decoded JSON, status.
function M.control(method, name, body)
  local res = M.curl { method = method, url = M.base .. "/_sandbox/" .. name,
    headers = { ["X-Sandbox-Secret"] = M.secret }, json = body }
  return res.json, res.status, res
end

-- Back to seed data, counters zeroed, start configuration, clock at real time.
function M.reset()
  local _, status = M.control("POST", "reset")
  assert(status == 200, "sandbox reset failed: " .. tostring(status))
  M.token = nil
end

-- A partner sends us a message; returns its AS2 message ID.
function M.inbound(msg)
  msg.station = msg.station or "ACME-AS2"
  msg.partner = msg.partner or "GLOBEX-AS2"
  msg.attachments = msg.attachments or { { name = "inbound.txt", size = 100 } }
  local res, status = M.control("POST", "inbound", msg)
  assert(status == 200, "inbound failed: " .. tostring(status))
  return res.as2MessageId
end

function M.advance(seconds)
  local res, status = M.control("POST", "clock", { advance = seconds })
  assert(status == 200)
  return res.now
end

function M.stats()
  return (M.control("GET", "stats"))
end

function M.b64(data)
  local p = io.popen("base64 -w0 < " .. M.quote((function()
    local f = M.tmpname(); write_file(f, data); return f end)()))
  local out = p:read("a")
  p:close()
  return out
end

-- Lists the entries of a zip file with unzip -Z1 (names, one per line).
function M.zip_entries(path)
  return M.lines("unzip -Z1 " .. M.quote(path) .. " 2>/dev/null")
end

-- The bytes of one zip entry (unzip -p).
function M.zip_read(path, entry)
  local pattern = entry:gsub("([%[%]%*%?])", "[%1]") -- unzip takes wildcards
  local p = io.popen("unzip -p " .. M.quote(path) .. " " .. M.quote(pattern))
  local d = p:read("a")
  p:close()
  return d
end

--- Percent-decoding (the inverse of escape).
function M.unescape(s)
  return (s:gsub("%%(%x%x)", function(x) return string.char(tonumber(x, 16)) end))
end

--- Sets a partner's sandbox behaviour: "deliver", "fail" or "pause".
function M.behaviour(partner, b)
  local _, status = M.control("POST", "partner/" .. partner, { behaviour = b })
  assert(status == 200, "partner behaviour not accepted")
end

--- Changes sandbox settings until the next reset (POST /_sandbox/config).
function M.config(settings)
  local _, status = M.control("POST", "config", settings)
  assert(status == 200, "sandbox config not accepted: " .. cjson.encode(settings))
end

--- Asserts a Generic Response with this status: {"message": "<non-empty text>"} alone.
function M.assert_generic(res, status)
  assert(res.status == status, ("status %s, expected %s: %s"):format(tostring(res.status),
    tostring(status), tostring(res.body)))
  assert(type(res.json) == "table", "not JSON: " .. tostring(res.body))
  assert(type(res.json.message) == "string" and #res.json.message > 0,
    "no message: " .. tostring(res.body))
  for k in pairs(res.json) do
    assert(k == "message", "a Generic Response holds only message: " .. tostring(res.body))
  end
end

--- A new empty folder under /tmp.
function M.mkdtemp()
  local d = M.tmpname()
  assert(os.execute("mkdir " .. M.quote(d)))
  return d
end

--- Removes a folder made by mkdtemp (only ever something under /tmp).
function M.rmtree(dir)
  if dir and dir:match("^/tmp/.") then os.execute("rm -rf " .. M.quote(dir)) end
end

--- The names in a folder, hidden ones included, sorted.
function M.entries(dir)
  return M.lines("ls -A " .. M.quote(dir))
end

--- Injects `n` inbound messages alike (msg as for M.inbound) through ONE curl process
--- (its `--next` blocks reuse one connection): much faster than n M.inbound calls. The
--- control surface is not rate limited. Returns the new AS2 message IDs, in order.
function M.inject(n, msg)
  msg = msg or {}
  msg.station = msg.station or "ACME-AS2"
  msg.partner = msg.partner or "GLOBEX-AS2"
  msg.attachments = msg.attachments or { { name = "inbound.txt", size = 100 } }
  local body, config = M.tmpname(), M.tmpname()
  write_file(body, cjson.encode(msg))
  local block = table.concat({
    'url = "' .. M.base .. '/_sandbox/inbound"',
    'request = "POST"',
    'cacert = "' .. M.ca .. '"',
    'header = "X-Sandbox-Secret: ' .. M.secret .. '"',
    'header = "Content-Type: application/json"',
    'data-binary = "@' .. body .. '"',
    'write-out = "\\n"',
  }, "\n")
  local blocks = {}
  for i = 1, n do blocks[i] = block end
  write_file(config, table.concat(blocks, "\nnext\n") .. "\n")
  local p = assert(io.popen("curl -sS -K " .. M.quote(config)))
  local out = p:read("a")
  p:close()
  os.remove(body)
  os.remove(config)
  local ids = {}
  for id in out:gmatch('"as2MessageId"%s*:%s*"(.-)"') do ids[#ids + 1] = id end
  assert(#ids == n, ("injected %d of %d messages: %s"):format(#ids, n, out:sub(1, 300)))
  return ids
end

--- Registers a sandbox fault (see docs/sandbox.md, POST faults); returns its id.
function M.fault(spec)
  local res, status = M.control("POST", "faults", spec)
  assert(status == 200, "fault not accepted: " .. cjson.encode(spec))
  return res.id
end

-- A sub-second clock and a sleep for the waits below (the core's when it is built,
-- else the shell's).
local has_core, core = pcall(require, "as2gateway.core")
local now = has_core and core.now or os.time
local function sleep(s)
  if has_core then core.sleep(s) else os.execute(("sleep %.3f"):format(s)) end
end
M.now, M.sleep = now, sleep

--- Waits until fn() returns a true value and returns it, polling every `interval`
--- seconds (0.05) until `timeout` seconds (20) have passed; then nil, or with `what`
--- an error naming what did not happen. For every process a spec starts: a fresh,
--- loaded machine may need seconds where a warm one needs milliseconds, so readiness
--- is waited for with a deadline, never probed a fixed number of times.
function M.wait_until(fn, timeout, what, interval)
  local deadline = now() + (timeout or 20)
  while true do
    local v = fn()
    if v then return v end
    if now() >= deadline then
      if what then error(("%s within %s s"):format(what, tostring(timeout or 20)), 2) end
      return nil
    end
    sleep(interval or 0.05)
  end
end

--- Whether a TCP port on 127.0.0.1 accepts connections (bash's /dev/tcp).
function M.port_open(port)
  local ok = os.execute(("bash -c 'exec 3<>/dev/tcp/127.0.0.1/%d' 2>/dev/null"):format(port))
  return ok == true or ok == 0 -- Lua 5.2+ gives true, 5.1 and LuaJIT the status
end

--- The wall clock in milliseconds (the one token expiries are counted in).
function M.now_ms()
  local p = io.popen("date +%s%3N")
  local v = tonumber(p:read("l"))
  p:close()
  return v
end

--- A fake clock for the client's `clock` and `sleep` hooks: sleep(s) moves it on by
--- s and records s (t.sleeps, t.total), so that nothing really waits.
function M.fake_time()
  local t = { now = 1000, sleeps = {}, total = 0 }
  function t.clock() return t.now end
  function t.sleep(s)
    assert(s >= 0, "negative sleep")
    t.sleeps[#t.sleeps + 1] = s
    t.total = t.total + s
    t.now = t.now + s
  end
  return t
end

-- Options for as2gateway.core.new / as2gateway.new against this sandbox.
function M.core_options(extra)
  local o = { url = M.url, username = M.username, password = M.password, cainfo = M.ca }
  for k, v in pairs(extra or {}) do o[k] = v end
  return o
end

return M
