-- The LuaLS annotations tell the truth (CI runs this with every spec): every public
-- method, its parameters, every option, and every field of what the library hands out,
-- held against the code (the core's option list, the methods' accepted keys) and against
-- live answers of the sandbox. spec/annotations.lua is the checker; the last block shows
-- that it fails on a wrong annotation.
local h = require "helpers"
local A = require "annotations"
local as2gateway = require "as2gateway"
local core = as2gateway.core

local FILES = { "init", "types", "util", "files", "batch", "drain", "outbound", "workflows" }

local function sources(edit)
  local s = {}
  for _, f in ipairs(FILES) do
    local path = "lua/as2gateway/" .. f .. ".lua"
    s[path] = assert(h.read_file(path), path)
  end
  if edit then edit(s) end
  return s
end

-- Replaces `old` by `new` (plain text, once) in one source file.
local function mutate(file, old, new)
  return function(s)
    local path = "lua/as2gateway/" .. file .. ".lua"
    local i, j = s[path]:find(old, 1, true)
    assert(i, "not in " .. path .. ": " .. old)
    s[path] = s[path]:sub(1, i - 1) .. new .. s[path]:sub(j + 1)
  end
end

local function no_problems(list)
  assert.are.same({}, list)
end

-- Asserts that one of the problems says `text`.
local function has(problems, text)
  for _, p in ipairs(problems) do
    if p:find(text, 1, true) then return end
  end
  error(("no problem says %q:\n%s"):format(text, table.concat(problems, "\n")), 2)
end

-- Public methods, and where each is annotated: a `function Client:name` with its doc
-- block, or (mixed in) a fun field of as2gateway.Client and the function implementing it.
local MIXED_IN = {}
for name in pairs(require "as2gateway.workflows") do MIXED_IN[name] = "W." .. name end

local function check_methods(m)
  local problems = {}
  local function add(list) for _, p in ipairs(list) do problems[#problems + 1] = p end end
  for name, fn in pairs(as2gateway.Client) do
    if type(fn) == "function" and not name:match("^_") then
      if MIXED_IN[name] then
        add(A.check_method_field(m, "as2gateway.Client", name, MIXED_IN[name]))
      else
        add(A.check_function(m, "Client:" .. name, true))
      end
    end
  end
  for _, name in ipairs { "_M.new", "_M.id_of" } do add(A.check_function(m, name, true)) end
  table.sort(problems)
  return problems
end

-- The core's own list of option names, from its source.
-- The options as2gateway.new takes itself, the core not (a call's limits); checked
-- below: the core refuses each.
local LUA_LAYER = { deadline = true, fail_fast = true }

local function core_options()
  local c = h.read_file("csrc/lua/lclient.c")
  local list = assert(c:match("CLIENT_OPTIONS%[%]%s*=%s*(%b{})"))
  local set = {}
  for name in list:gmatch('"([%w_]+)"') do set[name] = true end
  for name in pairs(LUA_LAYER) do set[name] = true end
  return set
end

-- A value of annotated type `t` that the core should take, and one it must refuse.
local function samples(t)
  local alts = t.kind == "union" and t.of or { t }
  local good, wrong
  for _, a in ipairs(alts) do
    if a.kind == "fun" then good, wrong = good or function() return 0 end, wrong or 1
    elseif a.kind == "name" and (a.name == "number" or a.name == "integer") then
      good, wrong = good or 2048, wrong or "x"
    elseif a.kind == "name" and a.name == "string" then good, wrong = good or "x", wrong or 1
    elseif a.kind == "name" and a.name == "table" then
      good, wrong = good or { requests = 1, window = 1 }, "x"
    elseif a.kind == "name" and a.name == "boolean" then good, wrong = good or true, "x"
    end
  end
  -- of a union, the wrong value is of none of its types
  local allowed = {}
  for _, a in ipairs(alts) do
    allowed[a.kind == "fun" and "function" or a.name == "integer" and "number" or a.name] = true
  end
  if wrong ~= nil and allowed[type(wrong)] then
    wrong = nil
    for _, v in ipairs { 1, "x", true, {} } do
      if wrong == nil and not allowed[type(v)] then wrong = v end
    end
  end
  return good, wrong
end

-- Each option's annotated type is what core.new takes: a value of it is accepted, a
-- value of another type refused naming the option.
local function check_option_types(m)
  local problems = {}
  local quota_dir = h.mkdtemp()
  for name, f in pairs(m.classes["as2gateway.Options"].fields) do
    local good, wrong = samples(f.type)
    local function opts(v)
      local o = { url = h.url, token = "t", [name] = v }
      if name == "acquire" or name == "release" then -- given together
        o.acquire, o.release = o.acquire or function() return 0 end, o.release or function() end
      end
      if name == "url" then o.url = type(v) == "string" and h.url or v end
      if name == "token" and type(v) ~= "string" then o.username, o.password = "u", "p" end
      -- a quota string names a backend: a folder of this check's own
      if name == "quota" and v == good then o.quota = "file:" .. quota_dir .. "/q" end
      return o
    end
    if good == nil then
      problems[#problems + 1] = f.where .. ": " .. name .. ": a type this check cannot try"
    else
      local new = LUA_LAYER[name] and as2gateway.new or core.new
      local ok, c = pcall(new, opts(good))
      if not ok then
        problems[#problems + 1] = ("%s: %s: a %s as annotated is refused: %s"):format(f.where,
          name, type(good), tostring(c))
      else
        c:close()
      end
      ok, c = pcall(new, opts(wrong))
      if ok then
        c:close()
        problems[#problems + 1] = ("%s: %s: a %s is taken too; the annotation says otherwise")
          :format(f.where, name, type(wrong))
      end
    end
  end
  h.rmtree(quota_dir)
  table.sort(problems)
  return problems
end

-- The keys each method accepts, from the code that checks them, by class.
local function accepted()
  local init = h.read_file("lua/as2gateway/init.lua")
  local found = {}
  for _, text in pairs(sources()) do
    for body, name in text:gmatch("check_params%(%s*[%w_]+%s*,(.-),%s*\"([%w_]+)\"%s*%)") do
      found[name] = found[name] or A.keys(body)
    end
    for body, name in text:gmatch("check_opts%(%s*[%w_]+%s*,%s*(%b{}),%s*\"([%w_]+)\"") do
      found[name] = A.keys(body)
    end
  end
  local list = A.keys(init:match("local LIST_PARAMS = (%b{})"))
  for k in pairs(A.keys(init:match("local QUEUED_PARAMS = (%b{})"))) do list[k] = true end
  list.unreadOnly = true
  found.list = list
  return found
end

local OPTION_CLASSES = { list = "as2gateway.ListParams", get = "as2gateway.GetParams",
  send = "as2gateway.SendParams", download = "as2gateway.DownloadOptions",
  mdn = "as2gateway.MdnOptions", download_batch = "as2gateway.BatchOptions",
  drain = "as2gateway.DrainOptions", wait = "as2gateway.WaitOptions",
  send_dir = "as2gateway.SendDirParams", settle = "as2gateway.SettleOptions" }

local function check_method_options(m)
  local problems, found = {}, accepted()
  for what, class in pairs(OPTION_CLASSES) do
    assert(found[what], "the accepted keys of " .. what .. " were not found in the code")
    for _, p in ipairs(A.check_fields(m, class, found[what])) do problems[#problems + 1] = p end
  end
  table.sort(problems)
  return problems
end

describe("LuaLS annotations", function()
  local m

  before_each(function()
    m = A.read(sources())
  end)

  it("parse, and name no type that is not declared", function()
    no_problems(m.problems)
    no_problems(A.check_names(m))
  end)

  it("declare every public method with exactly its parameters", function()
    no_problems(check_methods(m))
  end)

  it("declare exactly the core's options, each with the type the core takes", function()
    no_problems(A.check_fields(m, "as2gateway.Options", core_options()))
    no_problems(check_option_types(m))
    for name in pairs(LUA_LAYER) do
      local ok = pcall(core.new, { url = h.url, token = "t", [name] = true })
      assert.is_false(ok, name .. " is the core's option too: leave it out of LUA_LAYER")
    end
  end)

  it("declare exactly the keys each method's option table takes", function()
    no_problems(check_method_options(m))
  end)

  it("describe every entity and result the sandbox and the client hand out", function()
    h.reset()
    local c = as2gateway.new(h.core_options())
    local dir = h.mkdtemp()
    local values = {}
    local function add(what, class, v) values[#values + 1] = { what, class, v } end
    local function got(v, err) return assert(v, tostring(err)) end
    -- outbound entries of every kind: delivered, failing, paused
    h.behaviour("INITECH-AS2", "fail")
    h.behaviour("GLOBEX-AS2", "pause")
    local sent = got(c:send("ACME-AS2", "AS2G-ECHO", { { name = "a.txt", data = "a" } },
      { subject = "annotated" }))
    add("send", "as2gateway.SendResult", sent)
    got(c:send("ACME-AS2", "INITECH-AS2", { { name = "f.txt", data = "f" } }))
    local paused = got(c:send("ACME-AS2", "GLOBEX-AS2", { { name = "p.txt", data = "p" } }))
    h.advance(30)
    add("wait", "as2gateway.Message", got(c:wait(sent.link, { initial = 0.05 })))
    for _, kind in ipairs { "received", "sent", "failed", "queued" } do
      local page = got(c:list(kind))
      assert.is_true(#page.records > 0, kind .. " is empty")
      add("list " .. kind, "as2gateway.Page", page)
      add("get " .. kind, "as2gateway.Message", got(c:get(kind, page.records[1].as2MessageId)))
    end
    add("partners", "as2gateway.Partner[]", got(c:partners()))
    add("stations", "as2gateway.Station[]", got(c:stations()))
    local ids = {}
    for _, r in ipairs(got(c:list("received")).records) do ids[#ids + 1] = r.as2MessageId end
    add("mark_unread", "as2gateway.Ack", got(c:mark_unread(ids[1])))
    add("stop", "as2gateway.Ack", got(c:stop(paused.as2MessageId)))
    add("retry", "as2gateway.Ack", got(c:retry(paused.as2MessageId)))
    add("download sink", "as2gateway.SinkResult",
      got(c:download("received", ids[1], { sink = function() end })))
    ids[#ids + 1] = "<no-such@message>"
    local results, report = c:download_batch(ids, { to = dir })
    add("download_batch results", "table<string, as2gateway.BatchResult>", got(results, report))
    add("download_batch report", "as2gateway.BatchReport", report)
    add("drain", "as2gateway.DrainSummary", got(c:drain { to = dir .. "/inbox" }))
    h.write_file(dir .. "/one.txt", "1")
    local sent_dir = got(c:send_dir("ACME-AS2", "GLOBEX-AS2", dir))
    add("send_dir", "as2gateway.SendDirEntry[]", { table.unpack(sent_dir) })
    add("send_dir totals", "as2gateway.SendDirTotals", { settled = sent_dir.settled,
      refused = sent_dir.refused, journal = sent_dir.journal })
    add("stats", "as2gateway.Stats", c:stats())
    local _, err = c:get("received", "<no-such@message>")
    add("an error", "as2gateway.Error", err)
    c:close()
    h.rmtree(dir)
    local problems = {}
    for _, v in ipairs(values) do
      A.check_value(m, v[3], (A.parse_type(v[2])), v[1], problems)
    end
    no_problems(problems)
  end)

  describe("fail on a wrong annotation", function()
    local function model(file, old, new) return A.read(sources(mutate(file, old, new))) end

    it("a misspelt entity field", function()
      local bad = model("types", "---@field subject? string", "---@field subjekt? string")
      local page = { totalRecords = 1, records = { { as2MessageId = "<a@b>",
        persistedTimestamp = 1, compressed = false, encrypted = true, signed = true,
        subject = "x", receiverId = "P", senderId = "S", mdnStatus = "Received",
        partnerType = "Production", attachments = {} } } }
      no_problems(A.check_value(m, page, (A.parse_type("as2gateway.Page")), "page"))
      local problems = A.check_value(bad, page, (A.parse_type("as2gateway.Page")), "page")
      has(problems, "field subject is not declared")
    end)

    it("a field typed wrong", function()
      local bad = model("types", "---@field size integer bytes", "---@field size string bytes")
      local problems = A.check_value(bad, { name = "a", size = 3 },
        (A.parse_type("as2gateway.Attachment")), "attachment")
      has(problems, "a number, not a string")
    end)

    it("an option typed wrong, or missing", function()
      local bad = model("init", "---@field retries? integer", "---@field retries? string")
      has(check_option_types(bad), "retries: a string as annotated is refused")
      bad = model("init", "---@field proxy? string", "---@field proxie? string")
      local problems = A.check_fields(bad, "as2gateway.Options", core_options())
      has(problems, "as2gateway.Options: proxy is not declared")
      has(problems, "as2gateway.Options.proxie is no such option")
    end)

    it("a @param that is not the parameter", function()
      local bad = model("init", "---@param id string the AS2 message ID\n",
        "---@param ident string the AS2 message ID\n")
      has(check_methods(bad), "parameter 2 is id, its @param says ident")
    end)

    it("a mixed-in method whose field names other parameters", function()
      local bad = model("types", "fun(self: as2gateway.Client, target: string|table,",
        "fun(self: as2gateway.Client, link: string|table,")
      has(check_methods(bad), "parameter 2 is target in W.wait, link in the field")
    end)

    it("a type that is not declared", function()
      local bad = model("init", "---@return as2gateway.Page|nil page",
        "---@return as2gateway.Pages|nil page")
      has(A.check_names(bad), "unknown type as2gateway.Pages")
    end)

    it("an option of a method left out", function()
      local bad = model("types", "---@field overwrite? boolean replace an existing file",
        "---@field overwrite_it? boolean replace an existing file")
      local problems = check_method_options(bad)
      has(problems, "as2gateway.DownloadOptions: overwrite is not declared")
      has(problems, "as2gateway.DownloadOptions.overwrite_it is no such option")
    end)
  end)
end)
