-- The annotation checker of spec/annotations_spec.lua: reads the LuaLS annotations
-- (---@class, ---@field, ---@alias, ---@param, ---@return) of the library's sources and
-- holds them against the code and against live values. Every check returns a list of
-- problems (strings); none means the annotations tell the truth. No type checker from
-- Debian or npm reads LuaLS annotations, so this one does the part that matters to an
-- editor's user: names, fields, parameters and types of what the library hands out.
local A = {}

local BUILTIN = { ["nil"] = true, any = true, boolean = true, string = true, number = true,
  integer = true, table = true, ["function"] = true, userdata = true, thread = true,
  ["true"] = true, ["false"] = true, self = true }

-- Types -----------------------------------------------------------------------------------
-- A type is {kind = "name", name =} | {kind = "literal", value =} | {kind = "array", of =}
-- | {kind = "union", of = {...}} | {kind = "fun", params = {{name, type, optional}},
-- returns = {...}} | {kind = "generic", name =, args = {...}}.

local function parser(text)
  local p = { s = text, i = 1 }
  function p.space() p.i = p.s:find("[^ \t]", p.i) or #p.s + 1 end
  function p.peek(pat) p.space() return p.s:match("^" .. pat, p.i) end
  function p.take(pat)
    local m = p.peek(pat)
    if m then p.i = p.i + #m end
    return m
  end
  return p
end

local parse_type

local function parse_list(p, close)
  local list = {}
  repeat
    local name, optional
    local save = p.i
    name = p.take("[%w_]+")
    optional = name and p.take("%?")
    if not (name and p.take(":")) then p.i, name, optional = save, nil, nil end
    local t = parse_type(p)
    if not t then return nil end
    list[#list + 1] = { name = name, type = t, optional = optional ~= nil }
  until not p.take(",")
  if close and not p.take(close) then return nil end
  return list
end

local function parse_primary(p)
  local t
  local lit = p.take('"[^"]*"')
  if lit then
    t = { kind = "literal", value = lit:sub(2, -2) }
  elseif p.take("fun%(") then
    local params = {}
    if not p.take("%)") then params = parse_list(p, "%)") end
    if not params then return nil end
    local returns = {}
    if p.take(":") then
      -- a return list: types separated by commas, as long as a type follows
      repeat
        local r = parse_type(p)
        if not r then return nil end
        returns[#returns + 1] = r
        local save = p.i
        local more = p.take(",") and p.peek("[%w_\"]")
        if not more then p.i = save end
      until not more
    end
    t = { kind = "fun", params = params, returns = returns }
  elseif p.take("%(") then
    t = parse_type(p)
    if not (t and p.take("%)")) then return nil end
  else
    local name = p.take("[%a_][%w_.]*")
    if not name then return nil end
    t = { kind = "name", name = name }
    if p.s:sub(p.i, p.i) == "<" then
      p.i = p.i + 1
      local args = parse_list(p, ">")
      if not args then return nil end
      local types = {}
      for k, a in ipairs(args) do types[k] = a.type end
      t = { kind = "generic", name = name, args = types }
    end
  end
  while p.s:sub(p.i, p.i + 1) == "[]" do
    p.i = p.i + 2
    t = { kind = "array", of = t }
  end
  return t
end

function parse_type(p)
  local first = parse_primary(p)
  if not first then return nil end
  local alts = { first }
  while p.s:sub(p.i, p.i) == "|" do
    p.i = p.i + 1
    local nxt = parse_primary(p)
    if not nxt then return nil end
    alts[#alts + 1] = nxt
  end
  if #alts == 1 then return first end
  return { kind = "union", of = alts }
end

--- Parses the type at the start of `text`; returns it and the rest (a description).
function A.parse_type(text)
  local p = parser(text)
  local t = parse_type(p)
  return t, p.s:sub(p.i)
end

local function each_name(t, fn)
  if not t then return end
  if t.kind == "name" then fn(t.name)
  elseif t.kind == "generic" then fn(t.name) for _, a in ipairs(t.args) do each_name(a, fn) end
  elseif t.kind == "array" then each_name(t.of, fn)
  elseif t.kind == "union" then for _, a in ipairs(t.of) do each_name(a, fn) end
  elseif t.kind == "fun" then
    for _, a in ipairs(t.params) do each_name(a.type, fn) end
    for _, r in ipairs(t.returns) do each_name(r, fn) end
  end
end

-- Reading the sources ---------------------------------------------------------------------

--- The annotations of some sources ({[file name] = text}): {classes = {[name] = {fields =
--- {[name] = {type, optional, where}}}}, aliases = {[name] = type}, functions =
--- {[qualified name] = {params = {...}, returns = {...}, args = {...}, where}},
--- problems = {...} (annotations that do not parse)}.
function A.read(sources)
  local m = { classes = {}, aliases = {}, functions = {}, problems = {} }
  local names = {}
  for file in pairs(sources) do names[#names + 1] = file end
  table.sort(names)
  for _, file in ipairs(names) do
    local class, doc = nil, { params = {}, returns = {} }
    local n = 0
    for line in (sources[file] .. "\n"):gmatch("([^\n]*)\n") do
      n = n + 1
      local where = file .. ":" .. n
      local tag, rest = line:match("^%s*%-%-%-@(%w+)%s*(.*)$")
      local function bad(what) m.problems[#m.problems + 1] = where .. ": " .. what end
      if tag == "class" then
        local name = rest:match("^([%w_.]+)")
        m.classes[name] = m.classes[name] or { fields = {}, where = where }
        class = m.classes[name]
      elseif tag == "field" and class then
        local name, opt, t = rest:match("^([%w_]+)(%??)%s+(.*)$")
        local ty = name and A.parse_type(t)
        if not ty then bad("a field that does not parse: " .. rest) else
          class.fields[name] = { type = ty, optional = opt == "?", where = where }
        end
      elseif tag == "alias" then
        local name, t = rest:match("^([%w_.]+)%s+(.*)$")
        local ty = name and A.parse_type(t)
        if not ty then bad("an alias that does not parse: " .. rest) else m.aliases[name] = ty end
      elseif tag == "param" then
        local name, opt, t = rest:match("^([%w_.]+)(%??)%s+(.*)$")
        local ty = name and A.parse_type(t)
        if not ty then bad("a @param that does not parse: " .. rest) else
          doc.params[#doc.params + 1] = { name = name, type = ty, optional = opt == "?" }
        end
      elseif tag == "return" then
        local ty = A.parse_type(rest)
        if not ty then bad("a @return that does not parse: " .. rest) else
          doc.returns[#doc.returns + 1] = ty
        end
      elseif tag == nil and not line:match("^%s*%-%-") then
        class = nil
        local fname, args = line:match("^%s*function%s+([%w_.:]+)%s*%(([^)]*)%)")
        if not fname then
          fname, args = line:match("^%s*local%s+function%s+([%w_]+)%s*%(([^)]*)%)")
        end
        if fname then
          local list = {}
          for a in args:gmatch("[%w_.]+") do list[#list + 1] = a end
          m.functions[fname] = { params = doc.params, returns = doc.returns, args = list,
            where = where, documented = #doc.params + #doc.returns > 0 }
        end
        if line:match("%S") then doc = { params = {}, returns = {} } end
      end
    end
  end
  return m
end

-- Checks ------------------------------------------------------------------------------------

--- Every type named anywhere is a builtin, a declared class or an alias.
function A.check_names(m)
  local problems = {}
  local function known(name)
    return BUILTIN[name] or m.classes[name] or m.aliases[name]
  end
  local function check(t, where)
    each_name(t, function(name)
      if not known(name) then problems[#problems + 1] = where .. ": unknown type " .. name end
    end)
  end
  for cname, c in pairs(m.classes) do
    for fname, f in pairs(c.fields) do
      check(f.type, f.where .. " (" .. cname .. "." .. fname .. ")")
    end
  end
  for _, t in pairs(m.aliases) do check(t, "an alias") end
  for fname, f in pairs(m.functions) do
    for _, p in ipairs(f.params) do check(p.type, f.where .. " (" .. fname .. ")") end
    for _, r in ipairs(f.returns) do check(r, f.where .. " (" .. fname .. ")") end
  end
  return problems
end

--- A function's @param lines name exactly its parameters, in order (self aside).
function A.check_function(m, qualified, required)
  local f = m.functions[qualified]
  if not f then return { qualified .. ": no such function in the sources" } end
  if not f.documented then
    if required then return { f.where .. ": " .. qualified .. " has no @param or @return" } end
    return {}
  end
  local problems = {}
  local args = {}
  for _, a in ipairs(f.args) do if a ~= "self" then args[#args + 1] = a end end
  for i = 1, math.max(#args, #f.params) do
    local want, got = args[i], f.params[i] and f.params[i].name
    if want ~= got then
      problems[#problems + 1] = ("%s: %s: parameter %d is %s, its @param says %s"):format(
        f.where, qualified, i, tostring(want), tostring(got))
    end
  end
  return problems
end

--- A class's field holding a method (fun(self, ...)) names the parameters of the
--- function that implements it.
function A.check_method_field(m, class, field, impl)
  local c = m.classes[class]
  local f = c and c.fields[field]
  if not f or f.type.kind ~= "fun" then return { class .. "." .. field .. ": no fun field" } end
  local fn = m.functions[impl]
  if not fn then return { impl .. ": no such function" } end
  local problems = {}
  for i = 1, math.max(#fn.args, #f.type.params) do
    local want, got = fn.args[i], f.type.params[i] and f.type.params[i].name
    if want ~= got then
      problems[#problems + 1] = ("%s: %s.%s: parameter %d is %s in %s, %s in the field"):format(
        f.where, class, field, i, tostring(want), impl, tostring(got))
    end
  end
  return problems
end

--- A class's fields are exactly `names` (a set).
function A.check_fields(m, class, names)
  local c = m.classes[class]
  if not c then return { "no class " .. class } end
  local problems = {}
  for n in pairs(names) do
    if not c.fields[n] then problems[#problems + 1] = class .. ": " .. n .. " is not declared" end
  end
  for n, f in pairs(c.fields) do
    if not names[n] then
      problems[#problems + 1] = f.where .. ": " .. class .. "." .. n .. " is no such option"
    end
  end
  table.sort(problems)
  return problems
end

local function resolve(m, t)
  while t.kind == "name" and m.aliases[t.name] do t = m.aliases[t.name] end
  return t
end

--- Whether `v` is of type `t`; problems go to the list, named by `path`. Tables of a
--- class hold only its fields, and every field that is not optional.
function A.check_value(m, v, t, path, problems)
  problems = problems or {}
  t = resolve(m, t)
  local function bad(what) problems[#problems + 1] = path .. ": " .. what end
  if t.kind == "union" then
    for _, alt in ipairs(t.of) do
      local p = A.check_value(m, v, alt, path, {})
      if #p == 0 then return problems end
    end
    bad(("%s fits none of its types"):format(type(v)))
  elseif t.kind == "literal" then
    if v ~= t.value then bad(("%q is not %q"):format(tostring(v), t.value)) end
  elseif t.kind == "array" then
    if type(v) ~= "table" then return bad("a " .. type(v) .. ", not a list"), problems end
    for k, x in pairs(v) do
      if math.type(k) ~= "integer" then bad("a list with key " .. tostring(k)) break end
      A.check_value(m, x, t.of, path .. "[" .. k .. "]", problems)
    end
  elseif t.kind == "generic" then
    if type(v) ~= "table" then return bad("a " .. type(v) .. ", not a table"), problems end
    for k, x in pairs(v) do
      A.check_value(m, k, t.args[1], path .. " key", problems)
      if t.args[2] then A.check_value(m, x, t.args[2], path .. "." .. tostring(k), problems) end
    end
  elseif t.kind == "fun" then
    if type(v) ~= "function" then bad("a " .. type(v) .. ", not a function") end
  else
    local name = t.name
    if name == "any" then return problems end
    if name == "integer" then
      if math.type(v) ~= "integer" then bad(tostring(v) .. " is not an integer") end
    elseif name == "true" or name == "false" then
      if v ~= (name == "true") then bad(tostring(v) .. " is not " .. name) end
    elseif BUILTIN[name] then
      if type(v) ~= name then bad(("a %s, not a %s"):format(type(v), name)) end
    else
      local c = m.classes[name]
      if not c then return bad("unknown type " .. name), problems end
      if type(v) ~= "table" then return bad(("a %s, not a %s"):format(type(v), name)), problems end
      for k, x in pairs(v) do
        local f = c.fields[k]
        if not f then bad(("field %s is not declared in %s"):format(tostring(k), name))
        else A.check_value(m, x, f.type, path .. "." .. k, problems) end
      end
      for k, f in pairs(c.fields) do
        if not f.optional and v[k] == nil then
          bad(("%s's field %s is not optional, but missing"):format(name, k))
        end
      end
    end
  end
  return problems
end

--- The keys of a Lua table constructor's text ("{ a = true, b = true }").
function A.keys(text)
  local set = {}
  for k in text:gmatch("([%a_][%w_]*)%s*=[^=]") do set[k] = true end
  return set
end

return A
