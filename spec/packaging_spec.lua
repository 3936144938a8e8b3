-- The package as people install it: the rockspec builds and installs offline with
-- LuaRocks, `make install` never runs apt-get, and what either installs runs from the
-- installed tree alone (as2g --version, a sandbox started and stopped, a listing) with
-- a clean environment, outside the checkout. One version, in csrc/version.h.
local h = require "helpers"

local VERSION = require("as2gateway")._VERSION
local ROCKSPEC = "rockspec/as2gateway-" .. VERSION .. "-1.rockspec"

local function sh(cmd)
  local p = io.popen(cmd .. " 2>&1; echo \"exit=$?\"")
  local out = p:read("a")
  p:close()
  return out, tonumber(out:match("exit=(%d+)%s*$"))
end

-- Runs a command line in a clean environment (PATH and HOME alone, plus `env`) from
-- `cwd`, a folder outside the checkout.
local function clean(cwd, cmdline, env)
  local words = { "cd", h.quote(cwd), "&&", "env", "-i", "PATH=/usr/bin:/bin",
    "HOME=" .. h.quote(cwd) }
  for k, v in pairs(env or {}) do words[#words + 1] = k .. "=" .. h.quote(v) end
  words[#words + 1] = cmdline
  return sh(table.concat(words, " "))
end

-- From an installed `as2g`: its version, a sandbox it starts, a listing against that
-- sandbox, and the sandbox stopped again, all with a clean environment.
local function assert_runs(as2g)
  local cwd = h.mkdtemp()
  local out, code = clean(cwd, h.quote(as2g) .. " --version")
  assert.are.equal(0, code, out)
  assert.are.equal("as2g " .. VERSION .. "\nexit=0\n", out)
  out, code = clean(cwd, h.quote(as2g) .. " sandbox start")
  assert.are.equal(0, code, out)
  local env = {}
  for k, v in out:gmatch("\n?(AS2G_[%w_]+)=([^\n]*)") do env[k] = v end
  assert.is_truthy(env.AS2G_SANDBOX_DIR, out)
  local listing
  listing, code = clean(cwd, h.quote(as2g) .. " --json ls received", { AS2G_URL = env.AS2G_URL,
    AS2G_USERNAME = env.AS2G_USERNAME, AS2G_PASSWORD = env.AS2G_PASSWORD,
    AS2G_CA = env.AS2G_CA })
  local stopped, stop_code = clean(cwd, h.quote(as2g) .. " sandbox stop --dir "
    .. h.quote(env.AS2G_SANDBOX_DIR))
  assert.are.equal(0, code, listing)
  assert.are.equal(2, h.json_decode(listing:match("^(.-)\nexit=")).totalRecords, listing)
  assert.are.equal(0, stop_code, stopped)
  assert.is_nil(io.open(env.AS2G_SANDBOX_DIR .. "/nginx.conf"), "the sandbox was not removed")
  h.rmtree(cwd)
end

describe("the package", function()
  it("has one version: csrc/version.h's, in the rockspec, the User-Agent and CHANGELOG.md",
    function()
      local header = h.read_file("csrc/version.h")
      assert.are.equal(VERSION, header:match('#define A2G_VERSION "([^"]+)"'))
      local rockspec = assert(h.read_file(ROCKSPEC), ROCKSPEC .. " is missing")
      assert.are.equal(VERSION .. "-1", rockspec:match('\nversion = "([^"]+)"'))
      local others = sh("ls rockspec")
      assert.are.equal(("as2gateway-%s-1.rockspec\nexit=0\n"):format(VERSION), others)
      assert.matches("\n## " .. VERSION:gsub("%.", "%%.") .. " ", h.read_file("CHANGELOG.md"))
      -- the User-Agent the gateway sees
      local c = require("as2gateway").new(h.core_options())
      assert.is_table(c:stations())
      c:close()
      local log = h.dir .. "/logs/access.log"
      assert.is_truthy(h.wait_until(function()
        return (h.read_file(log) or ""):find('"as2gateway-lua/' .. VERSION .. '"', 1, true)
      end, 10), "no request with User-Agent as2gateway-lua/" .. VERSION)
    end)

  it("is MIT licensed, as the rockspec says, with the text in LICENSE", function()
    assert.matches('license = "MIT"', h.read_file(ROCKSPEC), 1, true)
    assert.matches("^MIT License\n", h.read_file("LICENSE"))
  end)

  it("declares its run-time dependencies in the rockspec", function()
    local rockspec = h.read_file(ROCKSPEC)
    local deps = rockspec:match("\ndependencies = (%b{})")
    for _, d in ipairs { '"lua >= 5.1"', '"lua%-cjson', '"argparse' } do
      assert.matches(d, deps)
    end
  end)

  for _, lua in ipairs { { flag = "--lua-version=5.4", bin = "lua5.4" },
                         { flag = "", bin = "lua5.1" } } do
    it("installs with `luarocks make` into a tree where require 'as2gateway' works ("
       .. lua.bin .. ")", function()
      local tree = h.tmpname()
      local out, code = sh(("luarocks %s make %s --tree %s --deps-mode=none")
        :format(lua.flag, ROCKSPEC, h.quote(tree)))
      assert.are.equal(0, code, out)
      local check = ([[eval "$(luarocks %s path --tree %s)" && %s -e '
        local a = require "as2gateway"
        assert(a._VERSION and a.core.sanitize_filename("../x") == "__x")
        for t in package.cpath:gmatch("[^;]+") do
          local f = io.open((t:gsub("%%?", "as2gateway/core")), "rb")
          if f then f:close() print("loaded", (t:gsub("%%?", "as2gateway/core"))) break end
        end']])
        :format(lua.flag, h.quote(tree), lua.bin)
      out, code = sh(check)
      assert.are.equal(0, code, out)
      assert.truthy(out:find("loaded\t" .. tree, 1, true), out)
      -- the tools come along; as2g itself needs Lua 5.3 or later
      assert.is_truthy(io.open(tree .. "/bin/as2g-sandbox"))
      assert.is_truthy(io.open(tree .. "/bin/as2g"))
      if lua.bin == "lua5.4" then assert_runs(tree .. "/bin/as2g") end
      sh("rm -rf " .. h.quote(tree))
    end)
  end

  describe("make install", function()
    it("honours PREFIX and DESTDIR and installs both Lua ABIs, the tools and the docs",
      function()
        local dest = h.tmpname()
        local out, code = sh("make -s install PREFIX=/opt/a2g DESTDIR=" .. h.quote(dest))
        assert.are.equal(0, code, out)
        local root = dest .. "/opt/a2g"
        for _, f in ipairs { "/bin/as2g-sandbox", "/bin/as2g", "/lib/lua/5.4/as2gateway/core.so",
                             "/share/lua/5.4/as2gateway/cli.lua",
                             "/lib/lua/5.1/as2gateway/core.so",
                             "/share/lua/5.4/as2gateway/init.lua",
                             "/share/lua/5.1/as2gateway/sandbox/server.lua",
                             "/share/doc/as2gateway/LICENSE",
                             "/share/doc/as2gateway/CHANGELOG.md" } do
          assert.is_truthy(io.open(root .. f), f)
        end
        for _, v in ipairs { { "5.4", "lua5.4" }, { "5.1", "luajit" } } do
          out, code = sh(("LUA_CPATH=%s LUA_PATH=%s %s -e "
            .. "'print(require(\"as2gateway\")._VERSION)'")
            :format(h.quote(root .. "/lib/lua/" .. v[1] .. "/?.so;;"),
                    h.quote(root .. "/share/lua/" .. v[1] .. "/?.lua;" .. root .. "/share/lua/"
                            .. v[1] .. "/?/init.lua;;"), v[2]))
          assert.are.equal(0, code, out)
        end
        sh("rm -rf " .. h.quote(dest))
      end)

    it("gives an as2g that runs from PREFIX alone, outside the checkout", function()
      local prefix = h.tmpname()
      local out, code = sh("make -s install PREFIX=" .. h.quote(prefix))
      assert.are.equal(0, code, out)
      assert_runs(prefix .. "/bin/as2g")
      -- and through a link to it, as from /usr/local/bin
      local link = h.mkdtemp()
      assert(os.execute(("ln -s %s %s"):format(h.quote(prefix .. "/bin/as2g"),
        h.quote(link .. "/as2g"))))
      out, code = clean(link, h.quote(link .. "/as2g") .. " --version")
      assert.are.equal(0, code, out)
      h.rmtree(link)
      sh("rm -rf " .. h.quote(prefix))
    end)

    it("never runs apt-get, even where the build's packages look missing", function()
      -- dpkg-query says nothing is installed; apt-get and sudo only record that they ran
      local bin, dest = h.mkdtemp(), h.tmpname()
      local calls = bin .. "/calls"
      for _, tool in ipairs { "dpkg-query", "apt-get", "sudo" } do
        h.write_file(bin .. "/" .. tool, ("#!/bin/sh\necho %s \"$@\" >> %s\nexit 1\n")
          :format(tool, h.quote(calls)))
        assert(os.execute("chmod +x " .. h.quote(bin .. "/" .. tool)))
      end
      local out, code = sh(("PATH=%s:$PATH make -s install DESTDIR=%s PREFIX=/usr")
        :format(h.quote(bin), h.quote(dest)))
      assert.are.equal(0, code, out)
      assert.not_matches("apt%-get", h.read_file(calls) or "")
      h.rmtree(bin)
      sh("rm -rf " .. h.quote(dest))
    end)
  end)
end)
