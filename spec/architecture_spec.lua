-- The shape of csrc/, read from its #include lines: libcurl in two files (the transport
-- and URL handling), Lua in the binding (csrc/lua/) alone, the binding on the core's
-- public headers only, no circle between rooms, and every header hiding its symbols.
-- (csrc/fuzz/ and csrc/test/ are harnesses: they embed Lua or reach behind the public
-- headers on purpose, and are left out.)
local h = require "helpers"

local FILES = h.lines("ls csrc/*.c csrc/*.h csrc/lua/*.c csrc/lua/*.h")

-- The headers the binding may include of the core: its public face.
local PUBLIC = { ["client.h"] = true, ["connection.h"] = true, ["error.h"] = true,
  ["check.h"] = true, ["clock.h"] = true, ["fs.h"] = true, ["interrupt.h"] = true,
  ["lock.h"] = true, ["names.h"] = true, ["sha256.h"] = true, ["unzip.h"] = true,
  ["version.h"] = true,
  -- the shared quota engines' own interfaces (lquota.c binds them as objects), and the
  -- client's quota interface (the `quota` option hands an engine to the client)
  ["qwindow.h"] = true, ["quota_file.h"] = true, ["quota_redis.h"] = true,
  ["quota.h"] = true }

-- {name, system} for each #include of a file.
local function includes(path)
  local list = {}
  for line in (h.read_file(path) or ""):gmatch("[^\n]+") do
    local sys = line:match('^%s*#%s*include%s*<([^>]+)>')
    local own = line:match('^%s*#%s*include%s*"([^"]+)"')
    if sys or own then list[#list + 1] = { name = sys or own, system = sys ~= nil } end
  end
  return list
end

local function dir_of(path) return path:match("^(.*)/") end
local function module_of(path) return (path:gsub("%.[ch]$", "")) end

-- The file a quoted include names: beside the includer, else in csrc/ (-Icsrc).
local function resolve(from, name)
  for _, dir in ipairs { dir_of(from), "csrc" } do
    local path = dir .. "/" .. name
    if h.read_file(path) then return path end
  end
end

local function who_includes(pred)
  local found = {}
  for _, f in ipairs(FILES) do
    for _, inc in ipairs(includes(f)) do
      if pred(inc, f) then
        found[#found + 1] = f
        break
      end
    end
  end
  return found
end

describe("the C core's rooms", function()
  it("have libcurl in the transport and URL handling only", function()
    assert.are.same({ "csrc/curl_transport.c", "csrc/url.c" }, who_includes(function(inc)
      return inc.system and inc.name:match("^curl/")
    end))
  end)

  it("have Lua in the binding only (csrc/lua/), and the core no header of the binding's",
    function()
      local lua = who_includes(function(inc, f)
        return (inc.system and inc.name:match("^lua")) or (resolve(f, inc.name) or "")
          :match("^csrc/lua/")
      end)
      for _, f in ipairs(lua) do assert.matches("^csrc/lua/", f) end
      assert.is_true(#lua > 10, "the binding was not found")
    end)

  it("see the core from the binding through its public headers alone", function()
    local behind = {}
    for _, f in ipairs(FILES) do
      if f:match("^csrc/lua/") then
        for _, inc in ipairs(includes(f)) do
          local path = not inc.system and resolve(f, inc.name)
          if path and not path:match("^csrc/lua/") and not PUBLIC[inc.name] then
            behind[#behind + 1] = f .. " includes " .. inc.name
          end
        end
      end
    end
    assert.are.same({}, behind)
  end)

  it("include no circle: no room depends on itself through others", function()
    local edges = {}
    for _, f in ipairs(FILES) do
      local from = module_of(f)
      edges[from] = edges[from] or {}
      for _, inc in ipairs(includes(f)) do
        local path = not inc.system and resolve(f, inc.name)
        if path and module_of(path) ~= from then edges[from][module_of(path)] = true end
      end
    end
    local state, cycles = {}, {}
    local function visit(m, trail)
      if state[m] == "done" then return end
      if state[m] == "open" then
        cycles[#cycles + 1] = table.concat(trail, " -> ")
        return
      end
      state[m] = "open"
      local next_ = {}
      for to in pairs(edges[m] or {}) do next_[#next_ + 1] = to end
      table.sort(next_)
      for _, to in ipairs(next_) do
        trail[#trail + 1] = to
        visit(to, trail)
        trail[#trail] = nil
      end
      state[m] = "done"
    end
    local roots = {}
    for m in pairs(edges) do roots[#roots + 1] = m end
    table.sort(roots)
    for _, m in ipairs(roots) do visit(m, { m }) end
    assert.are.same({}, cycles)
    -- and the graph is real: the state machine depends on the transport interface
    assert.is_true(edges["csrc/client"]["csrc/transport"])
  end)

  it("hide every symbol in their headers, so that any build exports luaopen_* alone",
    function()
      local bare = {}
      for _, f in ipairs(FILES) do
        local text = h.read_file(f)
        -- version.h holds macros and compat.h static inline shims: nothing to hide
        if f:match("%.h$") and not f:match("/version%.h$") and not f:match("/compat%.h$")
           and not (text:find("#pragma GCC visibility push(hidden)", 1, true)
                    and text:find("#pragma GCC visibility pop", 1, true)) then
          bare[#bare + 1] = f
        end
      end
      assert.are.same({}, bare)
    end)
end)
