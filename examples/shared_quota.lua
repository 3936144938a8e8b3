-- Two clients of one account sharing one quota and one token through a state folder,
-- as separate processes (cron jobs, a drain, an as2g typed by hand) do: the second
-- takes the first's token instead of logging in, and neither can push the account
-- past 50 requests per 10 s. Give the folder; without one, a temporary one is used.
--   eval "$(bin/as2g-sandbox start)"; lua5.4 examples/shared_quota.lua [FOLDER]
local as2gateway = require "as2gateway"

local folder, made = arg[1], nil
if not folder then
  local p = assert(io.popen("mktemp -d"))
  made = p:read("l")
  p:close()
  folder = made .. "/as2g-acme"
end

local function client()
  return as2gateway.new {
    url = os.getenv("AS2G_URL"), cainfo = os.getenv("AS2G_CA"),
    username = os.getenv("AS2G_USERNAME"), password = os.getenv("AS2G_PASSWORD"),
    quota = "file:" .. folder, -- or "redis://127.0.0.1:6379" across hosts
  }
end

local first, second = client(), client()
assert(first:stations())
assert(second:partners())
for name, c in pairs { first = first, second = second } do
  local s = c:stats()
  print(("%s: %d request(s), %d login(s), %d token(s) shared, backend %s")
    :format(name, s.requests, s.authorizations, s.tokens_shared, s.quota.backend))
end
first:close()
second:close()
if made then os.execute("rm -rf '" .. made .. "'") end -- the folder mktemp made here
