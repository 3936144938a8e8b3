-- Every fenced code block of README.md runs as written against the sandbox, or is
-- exempted below with its reason. Blocks are named by their nearest heading and their
-- index under it ("Quickstart #1"); a block nobody classified fails, and so does a
-- plan entry naming a block the README no longer has, so a README change cannot add
-- an untested snippet silently. The examples/ the README links to: examples_spec.lua.
local h = require "helpers"

local ROOT = os.getenv("PWD") or "."
local LUA_ENV = ("LUA_PATH=%s LUA_CPATH=%s"):format(
  h.quote(ROOT .. "/lua/?.lua;" .. ROOT .. "/lua/?/init.lua;;"),
  h.quote(ROOT .. "/build/lua54/?.so;;"))

--- The fenced code blocks of a Markdown text, in order: {key, heading, index, lang,
--- code, line}. A heading's links count as their text.
local function code_blocks(text)
  local blocks, per_heading = {}, {}
  local heading, fence, block = "(before any heading)", nil, nil
  local n = 0
  for line in (text:gsub("\n?$", "\n")):gmatch("(.-)\n") do
    n = n + 1
    if fence then
      local close = line:match("^%s*([`~]+)%s*$")
      if close and close:sub(1, 1) == fence:sub(1, 1) and #close >= #fence then
        block.code = table.concat(block.lines, "\n") .. "\n"
        block.lines, block.indent, fence = nil, nil, nil
      else -- the fence's own indentation is not the code's
        if line:sub(1, #block.indent) == block.indent then line = line:sub(#block.indent + 1) end
        block.lines[#block.lines + 1] = line
      end
    else
      local indent, open, info = line:match("^(%s*)(```+)%s*([^`]*)$")
      if not open then indent, open, info = line:match("^(%s*)(~~~+)%s*(.*)$") end
      if open then
        per_heading[heading] = (per_heading[heading] or 0) + 1
        fence = open
        block = { heading = heading, index = per_heading[heading], lang = info:match("^%S*"),
          line = n, lines = {}, indent = indent }
        block.key = ("%s #%d"):format(heading, block.index)
        blocks[#blocks + 1] = block
      else
        local title = line:match("^#+%s+(.-)%s*#*%s*$")
        if title then heading = title:gsub("%[(.-)%]%b()", "%1") end
      end
    end
  end
  assert(not fence, ("README.md: the code block of line %d is never closed"):format(
    block and block.line or 0))
  return blocks
end

-- Replaces every occurrence of each key of subst by its value (plain text, not
-- patterns; %DIR% is the block's folder); each key must occur.
local function substitute(code, subst, dir)
  for from, to in pairs(subst or {}) do
    to = to:gsub("%%DIR%%", function() return dir end)
    local parts, at = {}, 1
    while true do
      local i, j = code:find(from, at, true)
      if not i then break end
      parts[#parts + 1] = code:sub(at, i - 1) .. to
      at = j + 1
    end
    assert(#parts > 0, ("the setup substitutes %q, which the block no longer holds"):format(from))
    code = table.concat(parts) .. code:sub(at)
  end
  return code
end

-- Runs a shell command line under a deadline; returns its output (stderr included)
-- and exit status.
local function run(cmd, seconds)
  local p = io.popen(("timeout -k 5 %d sh -c %s 2>&1; echo \"exit=$?\""):format(
    seconds or 60, h.quote(cmd)))
  local out = p:read("a")
  p:close()
  return out:gsub("exit=%d+%s*$", ""), tonumber(out:match("exit=(%d+)%s*$"))
end

-- A client for the fragments that use one (they do not make their own), logging each
-- request and its status to requests.log: "@block" where the block begins, "@after"
-- where it ends (see block_requests).
local CLIENT = [[
local as2gateway = require "as2gateway"
local requests = assert(io.open("requests.log", "w"))
local client = as2gateway.new { url = os.getenv("AS2G_URL"), cainfo = os.getenv("AS2G_CA"),
  username = os.getenv("AS2G_USERNAME"), password = os.getenv("AS2G_PASSWORD"),
  log = function(e)
    if e.event == "request" then requests:write("\n", e.method, " ", e.path) end
    if e.event == "response" then requests:write(" ", e.status):flush() end
  end }
local function _begin_block() requests:write("\n@block"):flush() end
local function _end_block() requests:write("\n@after"):flush() end
local function first(kind, params)
  local page = assert(client:list(kind, params))
  return assert(page.records[1], "no " .. kind .. " message").as2MessageId
end
]]

-- The requests the block itself made (not its prelude's, nor its checks'), as
-- "METHOD path status" lines.
local function block_requests(dir)
  local log = assert(h.read_file(dir .. "/requests.log"), "no requests.log")
  local lines = {}
  for line in assert(log:match("\n@block\n(.-)\n@after"), log):gmatch("[^\n]+") do
    lines[#lines + 1] = line
  end
  return lines
end

-- Lines that an epilogue prints as "key=value" checks, gathered into a table.
local function printed(out)
  local t = {}
  for k, v in out:gmatch("@([%w_]+)=([^\t\n]*)") do t[k] = v end
  return t
end

-- The claims a block's comments make (`-- err.kind == "notfound", err.status == 404`,
-- `-- tostring(err) == "..."`) as Lua assertions, to run after the block: what the
-- comments say is checked, not only read. Every `==` of the comments must be read.
local function claims(code)
  local out, seen = {}, 0
  local function claim(lhs, rhs)
    out[#out + 1] = ("assert(%s == %s, %q .. tostring(%s))"):format(lhs, rhs,
      lhs .. " == " .. rhs .. ", not ", lhs)
  end
  for comment in code:gmatch("%-%-([^\n]*)") do
    seen = seen + select(2, comment:gsub("==", ""))
    for lhs, rhs in comment:gmatch("([%w_%.]+%b())%s*==%s*(\"[^\"]*\")") do claim(lhs, rhs) end
    for lhs, rhs in comment:gmatch("([%w_%.]+)%s*==%s*(\"[^\"]*\")") do claim(lhs, rhs) end
    for lhs, rhs in comment:gmatch("([%w_%.]+)%s*==%s*(%d+)") do claim(lhs, rhs) end
  end
  assert(#out == seen, ("%d claims read of the %d `==` in the comments"):format(#out, seen))
  return out
end

-- For the shell blocks that start a sandbox of their own: none of the spec's AS2G_*
-- (the block must not lean on them), and whatever sandbox it started stopped when it
-- ends, however it ends (a failure half way, the deadline).
local OWN_SANDBOX = [[
for v in $(env | sed -n 's/^\(AS2G_[A-Z_]*\)=.*/\1/p'); do unset "$v"; done
cleanup() {
  if [ -n "${AS2G_SANDBOX_DIR:-}" ] && [ -d "$AS2G_SANDBOX_DIR" ]; then
    "$SPEC_BIN/as2g-sandbox" stop --dir "$AS2G_SANDBOX_DIR" >/dev/null 2>&1
    case "$AS2G_SANDBOX_DIR" in /tmp/as2g-sandbox.?*) rm -rf "$AS2G_SANDBOX_DIR";; esac
  fi
}
trap cleanup EXIT
trap 'exit 143' TERM INT
]]

-- How each block is run, by key. Every block that runs gets a new temporary folder as
-- its cwd, with `files` and `dirs` made there and `bin` linking to this checkout's
-- bin/, and the sandbox reset (then `before()`: control-surface fixtures). In the block,
-- `subst` replaces literal paths and example values (%DIR%: the folder); nothing else.
-- - lua = true: lua5.4 runs `prelude` (fixtures only: a client, IDs, a function the
--   block calls), the block, then `after` (checks, in the same chunk); `claims`: the
--   comments' `x == v` are asserted; `all_ok = N`: the block's own requests (at least
--   N) were each answered 2xx.
-- - sh = true: bash runs the block, every command of it required to succeed;
--   `own_sandbox`: it starts and stops a sandbox of its own. sh = "command": the block
--   is written to the file `block`, which the command uses.
-- - check(code, dir): a check of its own.
-- Then `expect(out, dir, block)` checks what it printed and left. exempt: why it
-- cannot run here.
local plan = {
  ["Two commands #1"] = { exempt = "`make test` is the whole suite (this spec among it); "
    .. "`make demo` runs `make deps` (apt-get) and drains into the checkout's ./inbox; "
    .. "what it runs, examples/quickstart.lua, is run by examples_spec.lua" },

  ["Quickstart #1"] = {
    lua = true, files = { ["invoice-1001.xml"] = '<?xml version="1.0"?><invoice/>\n' },
    expect = function(out, dir)
      assert.truthy(out:match("^sent\t%S"), out)
      -- the echo partner's copy came back and was drained into ./inbox
      local found = h.sh("find " .. h.quote(dir .. "/inbox") .. " -name invoice-1001.xml")
      assert.truthy(found:find("invoice-1001.xml", 1, true), out .. found)
    end,
  },

  ["The client #1"] = {
    lua = true, prelude = CLIENT, files = { ["invoice.xml"] = "<invoice/>\n" },
    claims = true, -- the comments say what err holds: checked
  },

  -- the quota option: a state folder the client makes (0700), the token in it (0600)
  ["The client #2"] = {
    lua = true, prelude = 'local as2gateway = require "as2gateway"\nlocal folder = "quota"\n',
    after = [[
assert(client:stations())
print("@backend=" .. client:stats().quota.backend)
]],
    expect = function(out, dir)
      assert.equal("file", printed(out).backend, out)
      local mode = h.sh("stat -c %a " .. h.quote(dir .. "/quota") .. " "
        .. h.quote(dir .. "/quota/token"))
      assert.equal("700\n600\n", mode, out)
    end,
  },

  ["Sending — examples/send_invoice.lua #1"] = {
    lua = true, files = { ["invoice-1001.xml"] = "<invoice n='1001'/>\n" },
    prelude = CLIENT .. 'local station, partner = "ACME-AS2", "GLOBEX-AS2"\n'
      .. 'local files = "invoice-1001.xml"\n',
    after = 'assert(result, err); print("@id=" .. result.as2MessageId)',
    expect = function(out)
      local p = printed(out)
      assert.truthy(p.id and p.id:match("^<.+>"), out)
      local ours = 0
      for _, m in ipairs(h.control("GET", "messages").outbound) do
        if m.as2MessageId == p.id then
          ours = ours + 1
          assert.equal("Invoice 1001", m.subject)
          assert.equal("invoice-1001.xml", m.attachments[1].name)
        end
      end
      assert.equal(1, ours, out)
    end,
  },

  ["Waiting for delivery #1"] = {
    lua = true,
    prelude = CLIENT .. 'local result = assert(client:send("ACME-AS2", "AS2G-ECHO", '
      .. '{ { name = "wait.xml", data = "<x/>\\n" } }))\n',
    after = 'print("@state=" .. tostring(state), "@mdn=" .. tostring(mdn))',
    expect = function(out)
      local p = printed(out)
      assert.equal("sent", p.state, out)
      assert.equal("nil", p.mdn, out) -- mdn = false: not read
    end,
  },

  ["Reading an MDN #1"] = {
    lua = true, prelude = CLIENT .. 'local id = first("sent")\n',
    -- the comment is the result's documentation: every field the MDN yields is named
    after = [[
assert(mdn, "no MDN")
print("@disposition=" .. mdn.disposition)
for k in pairs(mdn) do print("@field_" .. k .. "=1") end
]],
    expect = function(out, _, block)
      local p = printed(out)
      assert.equal("processed", p.disposition, out)
      local doc = block.code:match("%-%-(.*)$")
      for k in out:gmatch("@field_([%w_]+)=") do
        assert.truthy(doc:find("%f[%w_]" .. k .. "%f[^%w_]"), "the comment omits " .. k)
      end
    end,
  },

  ["Listing — examples/list_messages.lua #1"] = {
    lua = true, prelude = CLIENT .. 'local id = first("received")\n', all_ok = 4,
    after = 'print("@total=" .. page.totalRecords, "@subject=" .. tostring(m.subject))',
    expect = function(out)
      local p = printed(out)
      assert.equal("2", p.total, out) -- the seed's Production ones, unread
      assert.truthy(out:find("Order 5001", 1, true), out) -- the seed's sent message
    end,
  },

  -- The documented record: the sandbox's record of that message has the same fields,
  -- of the same Lua types (integers as integers), nested tables included.
  ["Listing — examples/list_messages.lua #2"] = {
    lua = true, prelude = CLIENT,
    after = [[
local real = assert(client:get("received", first("received", { subject = message.subject })))
local function shape(doc, got, where)
  for k, v in pairs(doc) do
    local g = got[k]
    assert(g ~= nil, where .. k .. ": in the README, not in the answer")
    assert(type(g) == type(v) and math.type(g) == math.type(v), where .. k .. ": another type")
    if type(v) == "table" then shape(v, g, where .. k .. ".") end
  end
  for k in pairs(got) do
    assert(doc[k] ~= nil, where .. k .. ": in the answer, not in the README")
  end
end
shape(message, real, "")
print("@subject=" .. real.subject)
]],
    expect = function(out) assert.equal("Invoice 1001", printed(out).subject, out) end,
  },

  ["Downloading #1"] = {
    lua = true, dirs = { "in", "mdn" }, all_ok = 6,
    prelude = CLIENT .. [[
local id = first("received", { subject = "Invoice 1002" }) -- two attachments
local sent_id = first("sent")
local ids = { first("received", { subject = "Invoice 1001" }), id }
]],
    after = [[
assert(results and report, report)
for _, r in pairs(results) do assert(not r.err, r.err) end
]],
    expect = function(out, dir)
      local first_file = h.read_file(dir .. "/in/invoice-1002.xml") -- index 0, the default
      assert.truthy(first_file, "no in/invoice-1002.xml")
      assert.equal(out, first_file) -- the sink's
      local second = h.read_file(dir .. "/x.edi")
      assert.truthy(second and second ~= first_file, "x.edi is not the second attachment")
      assert.truthy(h.read_file(dir .. "/in/order-5001.xml"), "no in/order-5001.xml")
      assert.truthy(h.read_file(dir .. "/mdn/mdn.txt"), "no mdn/mdn.txt")
      local folders = 0 -- the batch's, one per message
      for _, e in ipairs(h.entries(dir .. "/in")) do
        if h.sh("test -d " .. h.quote(dir .. "/in/" .. e) .. " && echo dir"):find("dir") then
          folders = folders + 1
        end
      end
      assert.equal(2, folders, table.concat(h.entries(dir .. "/in"), ", "))
    end,
  },

  ["Draining the inbox exactly once — examples/drain_inbox.lua #1"] = {
    lua = true, subst = { ["/var/spool/edi/inbox"] = "%DIR%/inbox" },
    prelude = CLIENT .. [[
local imported = 0
local function import(message, paths)
  assert(message.as2MessageId and #paths > 0)
  imported = imported + 1
end
]],
    after = 'assert(summary, err); print("@done=" .. summary.done, "@imported=" .. imported)',
    expect = function(out)
      local p = printed(out)
      assert.equal("3", p.done, out)
      assert.equal("3", p.imported, out)
    end,
  },

  ["Sending a folder exactly once — examples/outbound.lua #1"] = {
    lua = true, subst = { ["/var/spool/edi/outbox"] = "%DIR%/outbox" },
    files = { ["outbox/order-1.csv"] = "sku,qty\n1,1\n",
      ["outbox/order-2.csv"] = "sku,qty\n2,2\n" },
    prelude = CLIENT .. 'local station, partner = "ACME-AS2", "GLOBEX-AS2"\n',
    after = [[
assert(report, err)
for _, entry in ipairs(report) do
  print("@" .. entry.files[1]:match("[^/]+$"):gsub("%W", "") .. "=" .. entry.state)
end
]],
    expect = function(out, dir)
      local p = printed(out)
      assert.equal("sent", p.order1csv, out)
      assert.equal("sent", p.order2csv, out)
      assert.same({ "order-1.csv", "order-2.csv" }, h.entries(dir .. "/outbox/sent"))
    end,
  },

  -- a send whose answer "was lost": the record a journal keeps of it. The block runs
  -- once the message is sent: caught being sent (in no listing) or queued (no
  -- attachments to match), resolve would rightly take its time to decide
  ["Resolving an unknown outcome #1"] = {
    lua = true, subst = { ["/var/spool/edi/outbox"] = "%DIR%/outbox" },
    files = { ["outbox/.keep"] = "" },
    prelude = CLIENT .. [[
local p = io.popen("date +%s%3N")
local began = tonumber(p:read("l"))
p:close()
local sent = assert(client:send("ACME-AS2", "GLOBEX-AS2",
  { { name = "lost.xml", data = "<lost/>\n" } }, { subject = "Lost answer" }))
local core = require "as2gateway.core"
local deadline = core.now() + 30
while not client:get("sent", sent.as2MessageId) do
  assert(core.now() < deadline, "not sent within 30 s")
  core.sleep(0.25)
end
local record = { station = "ACME-AS2", partner = "GLOBEX-AS2", subject = "Lost answer",
  files = { { name = "lost.xml", size = 8 } }, time = began }
]],
    after = 'print("@where=" .. tostring(where))',
    expect = function(out, dir)
      local p = printed(out)
      assert.equal("sent", p.where, out)
      -- as the README says: 1 request once it has been sent; settle, nothing to settle: none
      local lines = block_requests(dir)
      assert.equal(1, #lines, table.concat(lines, "\n"))
      assert.truthy(lines[1]:match("^GET /message/sent%?.* 200$"), lines[1])
    end,
  },

  -- a message to a failing partner: its first attempt failed, the next one is 10 minutes
  -- away (so it is queued, not being sent, whenever the block runs)
  ["Retries, cleanup, partners and stations #1"] = {
    lua = true, all_ok = 6, before = function()
      h.behaviour("INITECH-AS2", "fail")
      h.config { retry_base = 600 }
    end,
    prelude = CLIENT .. [[
local id = assert(client:send("ACME-AS2", "INITECH-AS2",
  { { name = "retry.xml", data = "<x/>" } })).as2MessageId
local core = require "as2gateway.core"
local deadline = core.now() + 20
while not assert(client:list("failed", { as2MessageId = id })).records[1] do
  assert(core.now() < deadline, "no failed attempt within 20 s")
  core.sleep(0.25)
end
local sent_id = first("sent")
local list_of_ids = { id }
]],
    after = [[
local _, err = client:get("sent", sent_id)
print("@sent=" .. err.kind, "@failed=" .. client:list("failed", { as2MessageId = id }).totalRecords)
print("@queued=" .. assert(client:get("queued", id)).as2MessageId:gsub("%W", ""))
]],
    expect = function(out)
      local p = printed(out)
      assert.equal("notfound", p.sent, out) -- deleted
      assert.equal("0", p.failed, out)      -- deleted
      assert.truthy(p.queued and #p.queued > 0, out) -- stopped, and resumed
    end,
  },

  -- the synopsis: every option it names is in `as2g --help`, every form it shows runs
  ["as2g(1): the command-line tool #1"] = { check = function(code, dir)
    local help, help_status = run(h.quote(ROOT .. "/bin/as2g") .. " --help", 20)
    assert.equal(0, help_status, help)
    local usage, forms = code:match("^([^\n]*)\n([^\n]*)")
    for option in usage:gmatch("%-%-[%w%-]+") do
      assert.truthy(help:find(option, 1, true), "as2g --help does not know " .. option)
    end
    for form in (forms:gsub("^as2g%s+", "") .. " | "):gmatch("(.-)%s+|%s+") do
      local word, alternatives = form:match("^(%S+)%s+(%S+|%S+)$")
      local commands = {}
      if alternatives then
        for alt in alternatives:gmatch("[^|]+") do
          commands[#commands + 1] = word .. " " .. alt
        end
      else
        commands[1] = form:gsub("COMMAND", "send")
      end
      for _, c in ipairs(commands) do
        local out, status = run(("cd %s && HOME=%s bin/as2g %s"):format(h.quote(ROOT),
          h.quote(dir), c), 20)
        assert.equal(0, status, "as2g " .. c .. ":\n" .. out)
        assert.truthy(#out > 0, "as2g " .. c .. " printed nothing")
      end
    end
  end },

  -- the config file: its [sandbox] section, with this sandbox's URL and CA where the
  -- README has an example's, works with --account, whatever AS2G_URL says
  ["as2g(1): the command-line tool #2"] = {
    sh = [[env -u AS2G_USERNAME -u AS2G_CA AS2G_URL=https://127.0.0.1:1/v1 \
      AS2G_CONFIG="$PWD/block" bin/as2g --account sandbox stations]],
    subst = { ["https://127.0.0.1:8443/v1"] = h.url,
      ["/tmp/as2g-sandbox.x1y2z3/ca.pem"] = h.ca },
    expect = function(out) assert.truthy(out:find("ACME%-AS2%s+Acme Main"), out) end,
  },

  ["as2g(1): the command-line tool #3"] = {
    sh = true, own_sandbox = true,
    files = { ["invoice.xml"] = '<invoice n="1"/>\n',
      ["import.sh"] = { mode = "755",
        data = '#!/bin/sh\necho "$AS2G_MESSAGE_ID $*" >> imported.log\n' } },
    expect = function(out, dir)
      local imported = h.read_file(dir .. "/imported.log") or ""
      local n = select(2, imported:gsub("\n", ""))
      assert.equal(4, n, imported) -- the seed's three and the echo
      assert.truthy(imported:find("/invoice.xml", 1, true), imported)
      assert.truthy(out:find('<invoice n="1"/>', 1, true), out) -- the download to stdout
      assert.truthy(out:find("\n%d+\n"), out) -- the lengths of the --json lines
    end,
  },

  ["The sandbox in one minute #1"] = {
    sh = true, own_sandbox = true,
    expect = function(out)
      assert.truthy(out:find('^{"message":"Successfully added a new outbound entry"}'), out)
      assert.truthy(out:find('{"totalRecords":%d+,"records":%['), out) -- the received listing
    end,
  },

  ["OpenResty (nginx) #1"] = { exempt = "an nginx.conf, run as written in a real nginx by "
    .. "spec/openresty/readme_spec.lua (Debian's module layout and nginx -p DIR)" },
}

describe("README.md", function()
  local readme = assert(h.read_file("README.md"), "README.md not found: run from the checkout")
  local blocks = code_blocks(readme)

  it("has every code block classified here, and no classification without its block", function()
    local seen, problems = {}, {}
    for _, b in ipairs(blocks) do
      seen[b.key] = true
      if not plan[b.key] then
        problems[#problems + 1] = ("README.md line %d: the %s block %q is neither run nor "
          .. "exempted here"):format(b.line, b.lang ~= "" and b.lang or "plain", b.key)
      end
    end
    for key, how in pairs(plan) do
      if not seen[key] then
        problems[#problems + 1] = ("%q is classified here, but README.md has no such block")
          :format(key)
      elseif how.exempt then
        assert(#how.exempt > 20, key .. ": an exemption says why")
      end
    end
    table.sort(problems)
    assert(#problems == 0, table.concat(problems, "\n"))
  end)

  -- A block's own folder: its files and folders, and `bin` linking to this checkout's.
  local function folder(how)
    local dir = h.mkdtemp()
    assert(os.execute(("ln -s %s %s"):format(h.quote(ROOT .. "/bin"), h.quote(dir .. "/bin"))))
    for _, name in ipairs(how.dirs or {}) do
      assert(os.execute("mkdir " .. h.quote(dir .. "/" .. name)))
    end
    for name, file in pairs(how.files or {}) do
      local path = dir .. "/" .. name
      assert(os.execute("mkdir -p " .. h.quote(path:match("^(.*)/"))))
      h.write_file(path, type(file) == "table" and file.data or file)
      if type(file) == "table" then
        assert(os.execute(("chmod %s %s"):format(file.mode, h.quote(path))))
      end
    end
    return dir
  end

  -- Where a shell block runs: its folder as cwd and HOME (nothing cached or configured
  -- outside it), this checkout's bin/ first on PATH.
  local function shell_env(dir)
    return ("cd %s && HOME=%s XDG_CACHE_HOME=%s XDG_CONFIG_HOME=%s PATH=%s"):format(
      h.quote(dir), h.quote(dir), h.quote(dir .. "/.cache"), h.quote(dir .. "/.config"),
      h.quote(ROOT .. "/bin:" .. os.getenv("PATH")))
  end

  local function run_block(b, how)
    h.reset()
    if how.before then how.before() end
    local dir = folder(how)
    finally(function() h.rmtree(dir) end)
    local code = substitute(b.code, how.subst, dir)
    local out, status
    if how.check then
      return how.check(code, dir)
    elseif how.lua then
      local head = (how.prelude or "") .. "\nif _begin_block then _begin_block() end\n"
      local chunk = { head .. code, "if _end_block then _end_block() end", how.after or "" }
      if how.claims then
        local list = claims(code)
        assert.truthy(#list > 0, "no claims found in the block's comments")
        chunk[#chunk + 1] = table.concat(list, "\n")
      end
      h.write_file(dir .. "/block.lua", table.concat(chunk, "\n"))
      out, status = run(("cd %s && %s lua5.4 block.lua"):format(h.quote(dir), LUA_ENV),
        how.timeout)
      -- errors in the block name its README line; past it, block.lua's (prelude, checks)
      local head_lines, code_lines = select(2, head:gsub("\n", "")), select(2, code:gsub("\n", ""))
      out = out:gsub("block%.lua:(%d+):", function(n)
        n = tonumber(n) - head_lines
        if n >= 1 and n <= code_lines then return ("README.md:%d:"):format(b.line + n) end
      end)
    elseif how.sh == true then -- the block is the script: every command in it must succeed
      h.write_file(dir .. "/block.sh", "SPEC_BIN=" .. h.quote(ROOT .. "/bin") .. "\n"
        .. (how.own_sandbox and OWN_SANDBOX or "")
        .. "set -e -o pipefail\n" .. code)
      out, status = run(shell_env(dir) .. " bash block.sh", how.timeout or 90)
    else -- the block is a file (`block`) that the command uses
      h.write_file(dir .. "/block", code)
      out, status = run(shell_env(dir) .. " " .. how.sh, how.timeout)
    end
    assert.equal(0, status, b.key .. ":\n" .. out)
    if how.all_ok then -- its calls do not check their results: each was answered 2xx
      local lines = block_requests(dir)
      assert.truthy(#lines >= how.all_ok, "fewer requests than expected")
      for _, line in ipairs(lines) do
        assert.truthy(line:match(" 2%d%d$"), b.key .. ": " .. line)
      end
    end
    if how.expect then how.expect(out, dir, b) end
  end

  for _, b in ipairs(blocks) do
    local how = plan[b.key]
    if how and not how.exempt then
      it(("runs %s (README.md line %d, %s)"):format(b.key, b.line, b.lang ~= "" and b.lang
        or "plain"), function() run_block(b, how) end)
    end
  end
end)
