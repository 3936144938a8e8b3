-- The package as people install it: the rockspec builds and installs offline with
-- LuaRocks, `make build` and `make install` never run apt-get, and what either
-- installs runs from the installed tree alone (as2g --version, a sandbox started and
-- stopped, a listing) with a clean environment, outside the checkout. One version, in
-- csrc/version.h; one list of sources, the rockspec's; every build exports
-- luaopen_as2gateway_core alone; every Lua file goes only where it can be loaded.
local h = require "helpers"

local VERSION = require("as2gateway")._VERSION
local ROCKSPEC = "rockspec/as2gateway-" .. VERSION .. "-1.rockspec"

local function sh(cmd)
  local p = io.popen(cmd .. " 2>&1; echo \"exit=$?\"")
  local out = p:read("a")
  p:close()
  return out, tonumber(out:match("exit=(%d+)%s*$"))
end

-- The dynamic symbols a shared object defines: luaopen_as2gateway_core alone, whatever
-- built it (the pragmas in the headers, not a compiler flag, hide the rest).
local function assert_exports_luaopen_only(so)
  local out, code = sh("nm -D --defined-only " .. h.quote(so))
  assert.are.equal(0, code, out)
  local names = {}
  for name in out:gmatch("%x+ [A-Za-z] ([%w_]+)") do names[#names + 1] = name end
  assert.are.same({ "luaopen_as2gateway_core" }, names, so .. ":\n" .. out)
end

-- Every .lua file under `dir` compiles with `lua` (loadfile: syntax only).
local function assert_loads(dir, lua)
  local out = sh(("find %s -name '*.lua' | sort | while read -r f; do "
    .. "%s -e \"assert(loadfile('$f'))\" || echo \"cannot load $f\"; done")
    :format(h.quote(dir), lua))
  assert.not_matches("cannot load", out, out)
end

-- The fake dpkg-query, apt-get and sudo of a PATH where every package looks missing:
-- each only records that it ran. Returns the folder and the file of the calls.
local function fake_apt()
  local bin = h.mkdtemp()
  local calls = bin .. "/calls"
  for _, tool in ipairs { "dpkg-query", "apt-get", "sudo" } do
    h.write_file(bin .. "/" .. tool, ("#!/bin/sh\necho %s \"$@\" >> %s\nexit 1\n")
      :format(tool, h.quote(calls)))
    assert(os.execute("chmod +x " .. h.quote(bin .. "/" .. tool)))
  end
  return bin, calls
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

  it("lists its sources once, in the rockspec: every C file of the core and its binding, "
     .. "every Lua module", function()
    local rockspec = h.read_file(ROCKSPEC)
    local listed = {}
    for f in rockspec:gmatch('"(csrc/[%w_/]+%.c)"') do listed[#listed + 1] = f end
    table.sort(listed)
    assert.are.same(h.lines("ls csrc/*.c csrc/lua/*.c"), listed)
    -- the Makefile builds what the rockspec lists, nothing of its own
    local make = sh("make -s -p -n build 2>/dev/null | sed -n 's/^CORE_SRC := //p' | head -1")
    local built = {}
    for f in make:gmatch("csrc/[%w_/]+%.c") do built[#built + 1] = f end
    table.sort(built)
    assert.are.same(listed, built)
    local modules = {}
    for m, f in rockspec:gmatch('%["(as2gateway[%w_.]*)"%] = "(lua/[%w_/]+%.lua)"') do
      assert.are.equal(f, "lua/" .. (m == "as2gateway" and "as2gateway/init" or
        m:gsub("%.", "/")) .. ".lua", m)
      modules[#modules + 1] = f
    end
    table.sort(modules)
    assert.are.same(h.lines("find lua -name '*.lua'"), modules)
  end)

  it("exports luaopen_as2gateway_core alone from both builds of make build", function()
    assert_exports_luaopen_only("build/lua54/as2gateway/core.so")
    assert_exports_luaopen_only("build/luajit/as2gateway/core.so")
  end)

  it("builds with make build without running apt-get, even where packages look missing",
    function()
      local bin, calls = fake_apt()
      local out, code = sh(("PATH=%s:$PATH make -s build"):format(h.quote(bin)))
      assert.are.equal(0, code, out)
      assert.is_nil(h.read_file(calls), "make build ran: " .. tostring(h.read_file(calls)))
      h.rmtree(bin)
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
      local v = lua.bin == "lua5.4" and "5.4" or "5.1"
      assert_exports_luaopen_only(tree .. "/lib/lua/" .. v .. "/as2gateway/core.so")
      -- the tools come along; as2g itself needs Lua 5.3 or later, and says so
      assert.is_truthy(io.open(tree .. "/bin/as2g-sandbox"))
      assert.is_truthy(io.open(tree .. "/bin/as2g"))
      if lua.bin == "lua5.4" then
        assert_runs(tree .. "/bin/as2g")
      else
        out, code = sh(tree .. "/bin/as2g --version")
        assert.are.equal(2, code, out)
        assert.matches("as2g: needs Lua 5.3 or later", out)
      end
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
                             "/share/lua/5.1/as2gateway/init.lua",
                             "/share/lua/5.1/as2gateway/mdn.lua",
                             "/share/lua/5.1/as2gateway/sandbox/server.lua",
                             "/share/doc/as2gateway/LICENSE",
                             "/share/doc/as2gateway/CHANGELOG.md" } do
          assert.is_truthy(io.open(root .. f), f)
        end
        -- each Lua file only where its interpreter can load it: as2g's (5.3+) under 5.4,
        -- the sandbox (nginx's LuaJIT) under 5.1
        assert.is_nil(io.open(root .. "/share/lua/5.1/as2gateway/cli.lua"))
        assert.is_nil(io.open(root .. "/share/lua/5.4/as2gateway/sandbox/server.lua"))
        assert_loads(root .. "/share/lua/5.4", "lua5.4")
        assert_loads(root .. "/share/lua/5.1", "luajit")
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
      local bin, calls = fake_apt()
      local dest = h.tmpname()
      local out, code = sh(("PATH=%s:$PATH make -s install DESTDIR=%s PREFIX=/usr")
        :format(h.quote(bin), h.quote(dest)))
      assert.are.equal(0, code, out)
      assert.not_matches("apt%-get", h.read_file(calls) or "")
      h.rmtree(bin)
      sh("rm -rf " .. h.quote(dest))
    end)
  end)
end)
