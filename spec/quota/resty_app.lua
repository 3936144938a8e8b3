-- The OpenResty quota spec's application: nginx locations that drive
-- as2gateway.quota_resty (one engine per worker and Redis URL, as a real app keeps it).
local quota_resty = require "as2gateway.quota_resty"
local cjson = require "cjson.safe"

local M = {}
local engines = {}

local function engine(args)
  local key = args.url .. "|" .. (args.requests or "")
  if not engines[key] then
    engines[key] = assert(quota_resty.new { url = args.url, account = args.account or "acme",
      requests = tonumber(args.requests) or 10, window = tonumber(args.window) or 1,
      lease = tonumber(args.lease) or 5, retry_interval = 0.1 })
  end
  return engines[key]
end

local function reply(value)
  ngx.header["Content-Type"] = "application/json"
  ngx.say(cjson.encode(value))
end

local function now()
  ngx.update_time()
  return ngx.now()
end

-- GET /quota/cycles?url=&n=&hold=: n admissions, each held `hold` s, waits yielding.
function M.cycles()
  local args = ngx.req.get_uri_args()
  local q = engine(args)
  local out = {}
  for _ = 1, tonumber(args.n) do
    local lease
    while true do
      local wait, l = q:acquire()
      assert(wait, l)
      if wait == 0 then lease = l break end
      ngx.sleep(wait)
    end
    local a = now()
    ngx.sleep(tonumber(args.hold) or 0)
    local r = now()
    assert(q:release(lease))
    out[#out + 1] = { a, r }
  end
  reply { admissions = out, mode = q:state().mode, events = q:events() }
end

-- GET /quota/state?url=
function M.state()
  local q = engine(ngx.req.get_uri_args())
  reply { state = q:state(), events = q:events() }
end

-- GET /quota/token?url=: the login lock, a token set and read back.
function M.token()
  local q = engine(ngx.req.get_uri_args())
  local first = q:login()
  local second = quota_resty.new { url = ngx.req.get_uri_args().url, account = "acme" }
  local other = second:login()
  assert(q:set_token("tok-resty", 4102444800000))
  local token, expiry = second:token()
  q:login_done()
  local after = second:login()
  second:login_done()
  second:close()
  reply { first = first, other = other, after = after, token = token, expiry = expiry }
end

return M
