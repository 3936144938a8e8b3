-- send_dir: each regular file of a folder as a message (or grouped), exactly once: the
-- journal, reruns, changed files, moves, refusals, the lock, and journal write failures.
local h = require "helpers"
local as2gateway = require "as2gateway"
local core = require "as2gateway.core"
local S = require "workflows.support"

local SEND = "POST /message/:station/:partner"
local JOURNAL = ".as2g-send.journal"

local function sends()
  return S.route_count(h.stats(), SEND)
end

local function journal_lines(dir)
  local out = {}
  for line in (h.read_file(dir .. "/" .. JOURNAL) or ""):gmatch("[^\n]+") do
    out[#out + 1] = line
  end
  return out
end

local function attachment_names(id)
  local seen = S.inspect(id)
  local entry = (seen.queued or {})[1] or (seen.sent or {})[1] or (seen.stopped or {})[1]
  assert(entry, "the gateway does not know " .. id)
  local names = {}
  for _, a in ipairs(entry.attachments or {}) do names[#names + 1] = a.name end
  table.sort(names)
  return names, entry
end

describe("client:send_dir", function()
  local dir, client

  before_each(function()
    h.reset()
    dir = h.mkdtemp()
    h.write_file(dir .. "/a.txt", "alpha\n")
    h.write_file(dir .. "/b.xml", "<b/>\n")
    h.write_file(dir .. "/c.edi", "ISA*00~\n")
    client = as2gateway.new(h.core_options())
  end)

  after_each(function()
    client:close()
    h.rmtree(dir)
  end)

  it("sends each regular, visible file as its own message, in name order", function()
    h.write_file(dir .. "/.hidden", "not me")
    assert(os.execute("mkdir " .. h.quote(dir .. "/sub")))
    h.write_file(dir .. "/sub/inner.txt", "nor me")
    local before = h.stats()
    local report, err = client:send_dir("ACME-AS2", "GLOBEX-AS2", dir, { subject = "Folder run" })
    local after = h.stats()
    assert.is_nil(err)
    assert.equal(3, #report)
    assert.equal(3, S.route_count(after, SEND) - S.route_count(before, SEND))
    local ids = {}
    for i, name in ipairs { "a.txt", "b.xml", "c.edi" } do
      local entry = report[i]
      assert.is_nil(entry.err)
      assert.same({ dir .. "/" .. name }, entry.files)
      assert.is_string(entry.as2MessageId)
      assert.is_string(entry.link)
      assert.equal(entry.as2MessageId, as2gateway.id_of(entry.link))
      assert.is_nil(ids[entry.as2MessageId])
      ids[entry.as2MessageId] = true
      local names, message = attachment_names(entry.as2MessageId)
      assert.same({ name }, names)
      assert.equal("Folder run", message.subject)
      assert.equal("GLOBEX-AS2", message.receiverId)
    end
  end)

  it("puts opts.group files in one message", function()
    local report = assert(client:send_dir("ACME-AS2", "GLOBEX-AS2", dir, { group = 2 }))
    assert.equal(2, #report)
    assert.same({ dir .. "/a.txt", dir .. "/b.xml" }, report[1].files)
    assert.same({ dir .. "/c.edi" }, report[2].files)
    assert.same({ "a.txt", "b.xml" }, attachment_names(report[1].as2MessageId))
    assert.same({ "c.edi" }, attachment_names(report[2].as2MessageId))
    assert.is_nil(report[1].err)
    assert.is_nil(report[2].err)
  end)

  it("reports a file it cannot send and still sends the others", function()
    h.write_file(dir .. "/bad\\name.txt", "a backslash is a path separator to Windows")
    assert(os.execute("truncate -s 11M " .. h.quote(dir .. "/big.bin")))
    local before = h.stats()
    local report = assert(client:send_dir("ACME-AS2", "GLOBEX-AS2", dir))
    local after = h.stats()
    local by_name = {}
    for _, entry in ipairs(report) do
      assert.equal(1, #entry.files)
      by_name[entry.files[1]:match("[^/]+$")] = entry
    end
    assert.equal(5, #report)
    for _, name in ipairs { "bad\\name.txt", "big.bin" } do
      local entry = by_name[name]
      assert.is_table(entry.err, name)
      assert.equal("invalid", entry.err.kind)
      assert.is_nil(entry.as2MessageId)
      assert.is_nil(entry.link)
    end
    for _, name in ipairs { "a.txt", "b.xml", "c.edi" } do
      assert.is_nil(by_name[name].err)
      assert.same({ name }, attachment_names(by_name[name].as2MessageId))
    end
    -- the refused files never went out
    assert.equal(3, S.route_count(after, SEND) - S.route_count(before, SEND))
  end)

  it("sends each file once: a rerun sends nothing, a changed file is a new file", function()
    local report = assert(client:send_dir("ACME-AS2", "GLOBEX-AS2", dir))
    assert.equal(3, #report)
    for _, entry in ipairs(report) do assert.equal("sent", entry.state) end
    assert.equal(3, sends())
    -- the journal: a send line before, an outcome after, for each
    local lines = journal_lines(dir)
    assert.equal(6, #lines)
    local first = h.json_decode(lines[1])
    assert.equal("send", first.op)
    assert.same({ { name = "a.txt", size = 6, sha256 = core.sha256("alpha\n") } }, first.files)
    assert.equal("ACME-AS2", first.station)
    assert.equal("GLOBEX-AS2", first.partner)
    assert.equal("production", first.partnerType)
    assert.is_true(math.abs(first.time - os.time() * 1000) < 60000)
    local second = h.json_decode(lines[2])
    assert.is_true(second.ended >= first.time)
    second.ended = nil
    assert.same({ n = first.n, op = "outcome", state = "sent",
      as2MessageId = report[1].as2MessageId, link = report[1].link }, second)

    report = assert(client:send_dir("ACME-AS2", "GLOBEX-AS2", dir))
    assert.equal(0, #report)
    assert.equal(3, report.settled)
    assert.equal(3, sends())
    -- the journal as records, without a request
    local before = h.stats().requests
    local records = assert(client:send_journal(dir))
    assert.equal(before, h.stats().requests)
    assert.equal(3, #records)
    assert.equal("sent", records[2].state)
    assert.equal(h.json_decode(lines[4]).as2MessageId, records[2].as2MessageId)
    assert.same({ { name = "b.xml", size = 5, sha256 = core.sha256("<b/>\n") } },
      records[2].files)
    local empty = h.mkdtemp()
    assert.same({}, assert(client:send_journal(empty)))
    h.rmtree(empty)

    -- new content under an old name is a new file; so is a new name
    h.write_file(dir .. "/b.xml", "<b version='2'/>\n")
    h.write_file(dir .. "/d.txt", "delta\n")
    report = assert(client:send_dir("ACME-AS2", "GLOBEX-AS2", dir))
    assert.equal(2, #report)
    assert.same({ dir .. "/b.xml" }, report[1].files)
    assert.same({ dir .. "/d.txt" }, report[2].files)
    assert.equal(2, report.settled)
    assert.equal(5, sends())
    -- an old content back under its name was sent already: not again
    h.write_file(dir .. "/b.xml", "<b/>\n")
    report = assert(client:send_dir("ACME-AS2", "GLOBEX-AS2", dir))
    assert.equal(0, #report)
    assert.equal(5, sends())
  end)

  it("with move_to, moves each sent file out, never replacing one", function()
    assert(os.execute("mkdir " .. h.quote(dir .. "/sent")))
    h.write_file(dir .. "/sent/a.txt", "an older a.txt\n")
    local report = assert(client:send_dir("ACME-AS2", "GLOBEX-AS2", dir, { move_to = true }))
    assert.equal(3, #report)
    assert.same({ dir .. "/sent/a (2).txt" }, report[1].moved)
    assert.same({ ".as2g-send.journal", ".as2g-send.lock", "sent" }, S.ls(dir))
    assert.same({ "a (2).txt", "a.txt", "b.xml", "c.edi" }, S.ls(dir .. "/sent"))
    assert.equal("alpha\n", h.read_file(dir .. "/sent/a (2).txt"))
    assert.equal("an older a.txt\n", h.read_file(dir .. "/sent/a.txt"))
    -- the sent folder is not sent; an identical file dropped in again is not either
    h.write_file(dir .. "/a.txt", "alpha\n")
    report = assert(client:send_dir("ACME-AS2", "GLOBEX-AS2", dir, { move_to = true }))
    assert.equal(0, #report)
    assert.equal(3, sends())
    assert.equal(1, report.settled)
    assert.equal("alpha\n", h.read_file(dir .. "/sent/a (3).txt"))
    -- or to a folder of one's own
    local elsewhere = h.mkdtemp()
    h.write_file(dir .. "/e.txt", "echo\n")
    report = assert(client:send_dir("ACME-AS2", "GLOBEX-AS2", dir,
      { move_to = elsewhere .. "/done" }))
    assert.same({ elsewhere .. "/done/e.txt" }, report[1].moved)
    h.rmtree(elsewhere)
  end)

  it("records refused files, does not send them again, and retry_refused does", function()
    h.write_file(dir .. "/empty.txt", "") -- the gateway refuses empty bodies (400)
    local report = assert(client:send_dir("ACME-AS2", "GLOBEX-AS2", dir))
    local by_name = {}
    for _, e in ipairs(report) do by_name[e.files[1]:match("[^/]+$")] = e end
    assert.equal("refused", by_name["empty.txt"].state)
    assert.equal("invalid", by_name["empty.txt"].err.kind)
    assert.equal(4, sends())
    report = assert(client:send_dir("ACME-AS2", "GLOBEX-AS2", dir))
    assert.equal(0, #report)
    assert.same({ dir .. "/empty.txt" }, report.refused)
    assert.equal(4, sends())
    report = assert(client:send_dir("ACME-AS2", "GLOBEX-AS2", dir, { retry_refused = true }))
    assert.equal(1, #report)
    assert.equal("refused", report[1].state)
    assert.equal(5, sends())
  end)

  it("stops, sending nothing, at a journal it cannot write", function()
    -- a journal over the file-size limit of the child's shell: every append fails
    local filler = h.json_encode { n = 1, op = "send", files = { { name = "other.txt",
      size = 1, sha256 = ("0"):rep(64) } }, station = "ACME-AS2", partner = "GLOBEX-AS2",
      time = 1, subject = ("x"):rep(1200), state = "sent", as2MessageId = "<1@x>" }
    h.write_file(dir .. "/" .. JOURNAL, filler .. "\n")
    local script = h.tmpname()
    h.write_file(script, ([[
      package.path = "./lua/?.lua;./lua/?/init.lua;" .. package.path
      package.cpath = "./build/lua54/?.so;" .. package.cpath
      local c = require("as2gateway").new { url = os.getenv("AS2G_URL"),
        username = os.getenv("AS2G_USERNAME"), password = os.getenv("AS2G_PASSWORD"),
        cainfo = os.getenv("AS2G_CA") }
      local report, err, partial = c:send_dir("ACME-AS2", "GLOBEX-AS2", %q)
      print(report and "report" or err.kind, partial and #partial or "")
    ]]):format(dir))
    local out = h.sh("sh -c " .. h.quote("trap '' XFSZ; ulimit -f 1; lua5.4 " .. h.quote(script)))
    os.remove(script)
    assert.matches("^io%s0", out)
    assert.equal(0, sends())
    assert.equal(filler .. "\n", h.read_file(dir .. "/" .. JOURNAL))
  end)

  it("lets one run at a time into a folder", function()
    local lock = assert(core.lock(dir .. "/.as2g-send.lock"))
    local report, err = client:send_dir("ACME-AS2", "GLOBEX-AS2", dir)
    assert.is_nil(report)
    assert.equal("locked", err.kind)
    assert.equal(0, h.stats().requests)
    lock:close()
    -- another process holds it for a moment: a run with lock_timeout waits its turn
    local ready = h.tmpname()
    os.execute(("lua5.4 -e %s >/dev/null 2>&1 &"):format(h.quote(([[
      package.cpath = "./build/lua54/?.so;" .. package.cpath
      local core = require "as2gateway.core"
      local l = assert(core.lock(%q))
      io.open(%q, "w"):close()
      core.sleep(1)
      l:close()
    ]]):format(dir .. "/.as2g-send.lock", ready))))
    local deadline = core.now() + 20
    while not h.read_file(ready) and core.now() < deadline do core.sleep(0.01) end
    assert.is_string(h.read_file(ready), "the lock holder did not start")
    local none, busy = client:send_dir("ACME-AS2", "GLOBEX-AS2", dir)
    assert.is_nil(none)
    assert.equal("locked", busy.kind)
    report = assert(client:send_dir("ACME-AS2", "GLOBEX-AS2", dir, { lock_timeout = 30 }))
    assert.equal(3, #report)
    os.remove(ready)
  end)

  it("skips a torn journal line and compacts a long journal to a line a record", function()
    assert(client:send_dir("ACME-AS2", "GLOBEX-AS2", dir))
    local lines = journal_lines(dir)
    local n1 = h.json_decode(lines[1]).n
    -- a run killed mid-line, then many more lines about the same records
    local f = assert(io.open(dir .. "/" .. JOURNAL, "ab"))
    f:write('{"n":99,"op":"send","files":[{"na')
    f:close()
    local extra = {}
    for i = 1, 80 do extra[i] = h.json_encode { n = n1, op = "note", seen = i } end
    assert(require("as2gateway.journal").append(dir .. "/" .. JOURNAL, extra))
    local report = assert(client:send_dir("ACME-AS2", "GLOBEX-AS2", dir))
    assert.equal(0, #report)
    assert.equal(3, report.settled)
    lines = journal_lines(dir)
    assert.equal(3, #lines)
    for _, line in ipairs(lines) do
      local r = h.json_decode(line)
      assert.equal("record", r.op)
      assert.equal("sent", r.state)
      assert.is_string(r.as2MessageId)
    end
    -- and it reads the same afterwards
    report = assert(client:send_dir("ACME-AS2", "GLOBEX-AS2", dir))
    assert.equal(3, report.settled)
    assert.equal(3, sends())
  end)

  it("sends with params.content_type", function()
    local report = assert(client:send_dir("ACME-AS2", "GLOBEX-AS2", dir,
      { content_type = "application/edi-consent" }))
    local seen = S.inspect(report[1].as2MessageId)
    assert.equal("application/edi-consent", seen.queued[1].attachments[1].contentType)
  end)

  it("reports a missing folder as an error and raises on misuse", function()
    local report, err = client:send_dir("ACME-AS2", "GLOBEX-AS2", dir .. "/missing")
    assert.is_nil(report)
    assert.is_table(err)
    assert.has_error(function() client:send_dir("ACME-AS2", "GLOBEX-AS2", dir, { group = 11 }) end)
    assert.has_error(function() client:send_dir("ACME-AS2", "GLOBEX-AS2", dir, { group = 0 }) end)
    assert.has_error(function() client:send_dir("ACME-AS2", "GLOBEX-AS2", dir, { bogus = 1 }) end)
    assert.has_error(function() client:send_dir("ACME-AS2", "GLOBEX-AS2", dir,
      { move_to = 1 }) end)
    assert.has_error(function() client:send_dir("ACME-AS2", "GLOBEX-AS2", dir,
      { lock_timeout = -1 }) end)
    assert.has_error(function() client:send_dir("ACME-AS2", "GLOBEX-AS2", dir,
      { resolve = { bogus = 1 } }) end)
    assert.has_error(function() client:send_dir("ACME-AS2", "", dir) end)
  end)
end)
