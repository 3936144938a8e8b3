-- The README's nginx.conf, extracted and run as written next to the sandbox: with
-- Debian's own module loading (/etc/nginx/modules-enabled, nginx's default prefix) and
-- under `nginx -p DIR` with the module paths spelled out (the README's commented
-- lines). Only the paths, the port, the gateway's URL, username and CA, and the
-- stations are put in; the rest is the README's text, so a snippet that stops working
-- as copied fails here.
local h = require "helpers"
local support = require "openresty.support"

local function readme_conf()
  local text = assert(h.read_file(support.root .. "/README.md"))
  local section = assert(text:match("\n## OpenResty %(nginx%)\n(.-)\n## "), "no OpenResty section")
  return assert(section:match("```nginx\n(.-)```"), "no nginx.conf in the OpenResty section")
end

-- Replaces `from` (plain text) by `to`, which must appear exactly once.
local function put(conf, from, to)
  local i, j = conf:find(from, 1, true)
  assert(i, "the README's nginx.conf no longer holds: " .. from)
  assert(not conf:find(from, j + 1, true), "the README's nginx.conf holds twice: " .. from)
  return conf:sub(1, i - 1) .. to .. conf:sub(j + 1)
end

local root = support.root

-- The README's conf for this machine: `layout` "debian" keeps its include line,
-- "prefix" swaps it for the load_module lines of its comment.
local function conf_for(layout)
  return function(dir, port)
    local c = readme_conf()
    c = put(c, "/usr/local/share/lua/5.1/?.lua;/usr/local/share/lua/5.1/?/init.lua;;",
      root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;;")
    c = put(c, "/usr/local/lib/lua/5.1/?.so;;", root .. "/build/luajit/?.so;;")
    c = put(c, "listen 8080;", ("listen 127.0.0.1:%d;"):format(port))
    c = put(c, '"https://api.as2gateway.com/v1"', ("%q"):format(h.url))
    c = put(c, '"edi@example.com"', ("%q"):format(h.username))
    c = put(c, '-- cainfo = "/path/to/extra-ca.pem",', ("cainfo = %q,"):format(h.ca))
    c = put(c, '"MY-STATION", "PARTNER-AS2"', '"ACME-AS2", "AS2G-ECHO"')
    if layout == "prefix" then
      local include = c:match("(include /etc/nginx/modules%-enabled/%*%.conf;[^\n]*\n)")
      assert(include, "no modules-enabled include line")
      c = put(c, include, "")
      local n
      c, n = c:gsub("\n#%s+(load_module /[^\n]+)", "\n%1")
      assert(n == 2, "the README spells out " .. n .. " load_module lines, not 2")
    end
    -- where this nginx keeps its files: the build's defaults are the system's
    local user = h.sh("id -u"):match("^0") and "user root root;\n" or ""
    return user .. ("pid %s/nginx.pid;\n"):format(dir)
      .. put(c, "http {", ("http {\n  client_body_temp_path %s/tmp;\n"
        .. "  access_log %s/logs/access.log;"):format(dir, dir))
  end
end

local ARGS = {
  debian = "-c %s/nginx.conf -e %s/logs/error.log",
  prefix = "-p %s -c nginx.conf -e logs/error.log",
}

local function curl(args)
  local out = h.sh("curl -sS -m 30 -w '\\n%{http_code}' " .. args)
  local body, code = out:match("^(.-)%s*(%d+)$")
  return tonumber(code), body or out
end

describe("the README's nginx.conf", function()
  local nginx, dir

  before_each(function()
    h.reset()
    dir = h.mkdtemp()
  end)

  after_each(function()
    if nginx then nginx.stop() end
    nginx = nil
    h.rmtree(dir)
  end)

  for _, layout in ipairs { "debian", "prefix" } do
    it(("runs as copied (%s layout): a 40 KB order buffered to a file, the inbox, "
      .. "errors as status and message"):format(layout), function()
      nginx = support.launch(conf_for(layout), ARGS[layout], "/inbox")
      local log = nginx.log()
      assert.is_nil(log:find("[emerg]", 1, true), log)
      -- an order over client_body_buffer_size (16 KB): nginx keeps it in a file
      local order = dir .. "/order.xml"
      local body = "<order>" .. ("x"):rep(40 * 1024) .. "</order>"
      h.write_file(order, body)
      local code, out = curl("--data-binary @" .. h.quote(order) .. " "
        .. h.quote(nginx.url .. "/orders"))
      assert.are.equal(200, code, out)
      local id = out:match("^<.+@.+>$")
      assert.truthy(id, out)
      -- the whole body reached the gateway as the message's one file
      h.advance(5)
      local file = h.api("GET", "/message/sent/" .. h.escape(id) .. "/attachments/0")
      assert.are.equal(200, file.status)
      assert.are.equal(#body, #file.body)
      local code2, inbox = curl(h.quote(nginx.url .. "/inbox"))
      assert.are.equal(200, code2, inbox)
      assert.truthy(inbox:match("^%d+ unread$"), inbox)
      -- a refusal is a status and the gateway's message, logged; never a Lua error
      h.fault { path = "/message/ACME-AS2/AS2G-ECHO", method = "POST", status = 400,
        message = "Order rejected by the test" }
      code, out = curl("--data-binary @" .. h.quote(order) .. " "
        .. h.quote(nginx.url .. "/orders"))
      assert.are.equal(400, code, out)
      assert.are.equal("invalid: Order rejected by the test", out)
      -- no body at all: the handler says so
      code, out = curl("-X POST " .. h.quote(nginx.url .. "/orders"))
      assert.are.equal(400, code, out)
      log = nginx.log()
      assert.truthy(log:find("order not sent: as2gateway: invalid", 1, true), log)
      assert.is_nil(log:find("runtime error", 1, true), log)
      assert.is_nil(log:find("[alert]", 1, true), log)
    end)
  end
end)
