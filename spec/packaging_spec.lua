-- The rockspec builds and installs offline with LuaRocks, for Lua 5.4 and for
-- LuaRocks' default Lua on Debian, and the installed module loads from its tree.
local h = require "helpers"

local function sh(cmd)
  local p = io.popen(cmd .. " 2>&1; echo \"exit=$?\"")
  local out = p:read("a")
  p:close()
  return out, tonumber(out:match("exit=(%d+)%s*$"))
end

describe("rockspec/as2gateway-scm-1.rockspec", function()
  for _, lua in ipairs { { flag = "--lua-version=5.4", bin = "lua5.4" },
                         { flag = "", bin = "lua5.1" } } do
    it("installs with `luarocks make` into a tree where require 'as2gateway' works ("
       .. lua.bin .. ")", function()
      local tree = h.tmpname()
      local out, code = sh(("luarocks %s make rockspec/as2gateway-scm-1.rockspec --tree %s")
        :format(lua.flag, h.quote(tree)))
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
      if lua.bin == "lua5.4" then
        out, code = sh(("eval \"$(luarocks %s path --tree %s)\" && %s --help")
          :format(lua.flag, h.quote(tree), h.quote(tree .. "/bin/as2g")))
        assert.are.equal(0, code, out)
        assert.truthy(out:find("Exit codes", 1, true), out)
      end
      sh("rm -rf " .. h.quote(tree))
    end)
  end

  describe("make install", function()
    it("honours PREFIX and DESTDIR and installs both Lua ABIs and the tools", function()
      local dest = h.tmpname()
      local out, code = sh("make -s install PREFIX=/opt/a2g DESTDIR=" .. h.quote(dest))
      assert.are.equal(0, code, out)
      local root = dest .. "/opt/a2g"
      for _, f in ipairs { "/bin/as2g-sandbox", "/bin/as2g", "/lib/lua/5.4/as2gateway/core.so",
                           "/share/lua/5.4/as2gateway/cli.lua",
                           "/lib/lua/5.1/as2gateway/core.so",
                           "/share/lua/5.4/as2gateway/init.lua",
                           "/share/lua/5.1/as2gateway/sandbox/server.lua" } do
        assert.is_truthy(io.open(root .. f), f)
      end
      for _, v in ipairs { { "5.4", "lua5.4" }, { "5.1", "luajit" } } do
        out, code = sh(("LUA_CPATH=%s LUA_PATH=%s %s -e 'print(require(\"as2gateway\")._VERSION)'")
          :format(h.quote(root .. "/lib/lua/" .. v[1] .. "/?.so;;"),
                  h.quote(root .. "/share/lua/" .. v[1] .. "/?.lua;" .. root .. "/share/lua/"
                          .. v[1] .. "/?/init.lua;;"), v[2]))
        assert.are.equal(0, code, out)
      end
      sh("rm -rf " .. h.quote(dest))
    end)
  end)
end)
