-- The test application of the OpenResty specs: nginx locations that use the client
-- (one per worker, sharing the rate limit and the token through lua_shared_dict).
local openresty = require "as2gateway.openresty"
local cjson = require "cjson.safe"

local M = {}
local client

local function get()
  if not client then
    client = openresty.new {
      url = os.getenv("AS2G_URL"), username = os.getenv("AS2G_USERNAME"),
      password = os.getenv("AS2G_PASSWORD"), cainfo = os.getenv("AS2G_CA"),
      shared_dict = "as2gateway",
    }
  end
  return client
end

local function reply(status, value)
  ngx.status = status
  ngx.header["Content-Type"] = "application/json"
  ngx.say(cjson.encode(value))
end

local function fail(err)
  return reply(502, { kind = err.kind, message = err.message, status = err.status })
end

-- POST /send?name=...: the request body goes to the echo partner as one file.
function M.send()
  ngx.req.read_body()
  local body = ngx.req.get_body_data() or ""
  local res, err = get():send("ACME-AS2", "AS2G-ECHO",
    { { name = ngx.var.arg_name or "order.xml", data = body } }, { subject = "from nginx" })
  if not res then return fail(err) end
  reply(200, res)
end

-- GET /received: the first page of received messages.
function M.received()
  local page, err = get():list("received", { pageLength = tonumber(ngx.var.arg_n) or 10 })
  if not page then return fail(err) end
  reply(200, { worker = ngx.worker.pid(), totalRecords = page.totalRecords,
    ids = (function()
      local ids = {}
      for i, m in ipairs(page.records) do ids[i] = m.as2MessageId end
      return ids
    end)() })
end

-- GET /stats: this worker's client counters.
function M.stats()
  reply(200, get():stats())
end

return M
