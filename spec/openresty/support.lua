-- Starts a real nginx with the client (the LuaJIT build of the core) next to the
-- sandbox, for the OpenResty specs.
local h = require "helpers"
local cjson = require "cjson"

local M = {}

local sh = h.sh

local root = sh("pwd"):gsub("%s+$", "")

M.root = root

-- Picks a free port, writes the configuration `conf(dir, port)` gives into dir, and
-- starts nginx with `args` (nginx's own options, `%s` for dir), retrying on another port
-- while the chosen one is taken; waits until it answers `probe`. Returns {url, dir,
-- log(), stop()}.
function M.launch(conf, args, probe)
  local dir = h.mkdtemp()
  os.execute("mkdir -p " .. dir .. "/logs " .. dir .. "/tmp")
  local port
  for _ = 1, 20 do
    port = 20000 + math.random(0, 39999)
    local f = assert(io.open(dir .. "/nginx.conf", "w"))
    f:write(conf(dir, port))
    f:close()
    os.remove(dir .. "/logs/error.log")
    -- with -e, nginx reports a failed start in that log rather than on stderr
    local out = sh("/usr/sbin/nginx " .. args:gsub("%%s", dir) .. " 2>&1")
      .. (h.read_file(dir .. "/logs/error.log") or "")
    if not out:find("Address already in use", 1, true) then
      assert(not out:find("emerg", 1, true), out)
      break
    end
  end
  local url = "http://127.0.0.1:" .. port
  h.wait_until(function()
    return sh("curl -s -m 2 -o /dev/null -w '%{http_code}' " .. url .. probe) ~= "000"
  end, 30, "nginx (OpenResty spec) did not answer")
  return {
    url = url, dir = dir,
    log = function() return h.read_file(dir .. "/logs/error.log") or "" end,
    stop = function()
      local pid = h.read_file(dir .. "/nginx.pid")
      pid = pid and pid:gsub("%s", "")
      if pid then
        os.execute("kill -QUIT " .. pid .. " 2>/dev/null")
        h.wait_until(function() return not os.execute("kill -0 " .. pid .. " 2>/dev/null") end, 15)
      end
      h.rmtree(dir)
    end,
  }
end

--- Starts nginx with `workers` worker processes, and `locations` (nginx text) added
--- to its server; returns {url, dir, log(), stop()}.
function M.start(workers, locations)
  local user = sh("id -u"):match("^0") and "user root root;" or ""
  return M.launch(function(dir, port)
    return ([[
%s
worker_processes %d;
pid %s/nginx.pid;
error_log %s/logs/error.log warn;
load_module /usr/lib/nginx/modules/ndk_http_module.so;
load_module /usr/lib/nginx/modules/ngx_http_lua_module.so;
env AS2G_URL; env AS2G_USERNAME; env AS2G_PASSWORD; env AS2G_CA;
events { worker_connections 256; }
http {
  access_log off;
  client_body_temp_path %s/tmp;
  lua_package_path "%s/lua/?.lua;%s/lua/?/init.lua;%s/spec/openresty/?.lua;%s/spec/quota/?.lua;;";
  lua_package_cpath "%s/build/luajit/?.so;;";
  lua_shared_dict as2gateway 1m;
  lua_check_client_abort on;
  server {
    listen 127.0.0.1:%d;
    location = /send { content_by_lua_block { require("app").send() } }
    location = /received { content_by_lua_block { require("app").received() } }
    location = /stats { content_by_lua_block { require("app").stats() } }
    location = /limits { content_by_lua_block { require("app").limits() } }
    location = /limits_send { content_by_lua_block { require("app").limits_send() } }
    location = /lane_stats { content_by_lua_block { require("app").lane_stats() } }
    location = /killed { content_by_lua_block { require("app").killed() } }
    location = /after_kill { content_by_lua_block { require("app").after_kill() } }
    location = /plain { content_by_lua_block { ngx.say("ok") } }
    location = /access {
      access_by_lua_block { require("app").count_in_phase() }
      content_by_lua_block { require("app").say_count() }
    }
    location = /rewrite {
      rewrite_by_lua_block { require("app").count_in_phase() }
      content_by_lua_block { require("app").say_count() }
    }
    location = /timer { content_by_lua_block { require("app").timer() } }
%s
  }
}
]]):format(user, workers, dir, dir, dir, root, root, root, root, root, port,
      locations or "")
  end, "-p %s -c %s/nginx.conf -e %s/logs/error.log", "/plain")
end

--- GET `url` with curl: the status and the decoded JSON body.
function M.get(url)
  local out = sh("curl -sS -m 30 -w '\\n%{http_code}' " .. h.quote(url))
  local body, code = out:match("^(.-)%s*(%d+)$")
  return tonumber(code), body and body ~= "" and cjson.decode(body) or nil
end

--- The hooks of a describe block whose tests start nginx (the sandbox reset before
--- each, nginx stopped after it), given busted's before_each and after_each (they live
--- in the spec's environment): returns a table whose start(...) is M.start's.
function M.suite(before_each, after_each)
  local s = {}
  before_each(h.reset)
  after_each(function()
    if s.nginx then s.nginx.stop() end
    s.nginx = nil
  end)
  function s.start(...)
    s.nginx = M.start(...)
    return s.nginx
  end
  return s
end

return M
