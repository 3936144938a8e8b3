-- The benchmarks' one call into the sandbox's control surface (curl, like the specs).
local cjson = require "cjson"

--- control("POST", "config", {rate_limit = "off"}) -> the decoded answer.
return function(method, name, body)
  local cmd = ("curl -sS -X %s --cacert %q -H 'X-Sandbox-Secret: %s' %s %s/_sandbox/%s")
    :format(method, os.getenv("AS2G_CA"), os.getenv("AS2G_SANDBOX_SECRET"),
      body and ("-H 'Content-Type: application/json' --data '" .. cjson.encode(body) .. "'")
        or "", os.getenv("AS2G_URL"):gsub("/v1$", ""), name)
  local p = io.popen(cmd)
  local out = p:read("a")
  p:close()
  return cjson.decode(out)
end
