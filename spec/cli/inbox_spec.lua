-- as2g inbox: an echo round trip (send, wait, inbox), exactly once, --exec handlers retried, --watch.
local h = require "helpers"
local S = require "cli.support"
local zipfile = require "zipfile"
local folder_of = require("as2gateway.batch").folder_of

describe("as2g inbox", function()
  local home, to, log, handler

  local function run(args, opts) return S.run(home, args, opts) end

  -- The handler's log: one {id =, args = {...}, partner =, subject =} per call.
  local function calls()
    local list = {}
    for line in (h.read_file(log) or ""):gmatch("[^\n]+") do
      local id, partner, subject, rest = line:match("^(.-)|(.-)|(.-)|(.*)$")
      local args = {}
      for a in rest:gmatch("[^|]+") do args[#args + 1] = a end
      list[#list + 1] = { id = id, partner = partner, subject = subject, args = args }
    end
    return list
  end

  local function sorted(t)
    table.sort(t)
    return t
  end

  local function ids_of(list)
    local ids = {}
    for _, c in ipairs(list) do ids[#ids + 1] = c.id end
    table.sort(ids)
    return ids
  end

  before_each(function()
    h.reset()
    home = S.home()
    to = home.dir .. "/inbox"
    log = home.dir .. "/handler.log"
    -- logs each call; fails for subjects holding FAIL until the file `fixed` exists
    handler = home.dir .. "/handler.sh"
    h.write_file(handler, table.concat({
      "#!/bin/sh",
      'line="$AS2G_MESSAGE_ID|$AS2G_PARTNER|$AS2G_SUBJECT|"',
      'for f in "$@"; do line="$line$f|"; done',
      'printf "%s\\n" "$line" >> ' .. h.quote(log),
      'case "$AS2G_SUBJECT" in *FAIL*) [ -e ' .. h.quote(home.dir .. "/fixed") .. " ] || exit 3;;",
      "esac",
      "exit 0",
    }, "\n") .. "\n")
    assert(os.execute("chmod +x " .. h.quote(handler)))
    -- the seed's unread messages (of both partner types) are out of the way
    for _, partner_type in ipairs { "production", "test" } do
      for _, id in ipairs(S.ids("received", { partnerType = partner_type })) do
        h.api("GET", "/message/received/" .. h.escape(id), { query = { markAsRead = "true" } })
      end
    end
  end)

  after_each(function()
    h.rmtree(home.dir)
  end)

  it("round-trips a file through the echo partner: send, wait, inbox; then nothing new",
    function()
      local data = "ISA*00*round trip " .. os.time() .. "~\n"
      local file = home.dir .. "/po-4711.edi"
      h.write_file(file, data)
      local out, _, code = run { "send", "ACME-AS2", "AS2G-ECHO", file, "--subject",
        "round trip" }
      assert.equal(0, code)
      local sent = out:gsub("%s+$", "")
      h.advance(5)
      out, _, code = run { "wait", sent, "--initial", "0.05" }
      assert.equal(0, code)
      assert.equal("sent\n", out)
      local err
      out, err, code = run { "inbox", "--to", to }
      assert.equal(0, code)
      assert.matches("1 new message(s), 1 done, 0 failed", err, 1, true)
      local echoed = S.ids("received", { subject = "round trip" })
      assert.equal(1, #echoed)
      local path = to .. "/" .. folder_of(echoed[1]) .. "/po-4711.edi"
      assert.equal(path .. "\n", out)
      assert.equal(data, h.read_file(path))
      assert.same({ folder_of(echoed[1]) .. "/po-4711.edi" }, S.files(to))
      -- the second run fetches nothing new
      local before = h.stats().by_endpoint["POST /message/received/batch/attachments"]
      out, err, code = run { "inbox", "--to", to }
      assert.equal(0, code)
      assert.equal("", out)
      assert.matches("0 new message(s), 0 done, 0 failed", err, 1, true)
      assert.equal(before, h.stats().by_endpoint["POST /message/received/batch/attachments"])
      assert.same({ folder_of(echoed[1]) .. "/po-4711.edi" }, S.files(to))
    end)

  it("prints one JSON line per message with --json", function()
    local a = h.inbound { subject = "first", attachments = { { name = "a.xml", size = 10 },
      { name = "b.xml", size = 20 } } }
    local out, err, code = run { "--json", "inbox", "--to", to }
    assert.equal(0, code)
    assert.equal("", err)
    local docs = S.json_lines(out)
    assert.equal(1, #docs)
    assert.equal(a, docs[1].as2MessageId)
    assert.equal("GLOBEX-AS2", docs[1].partner)
    assert.equal("first", docs[1].subject)
    table.sort(docs[1].paths)
    assert.same({ to .. "/" .. folder_of(a) .. "/a.xml", to .. "/" .. folder_of(a) .. "/b.xml" },
      docs[1].paths)
  end)

  it("runs --exec once per message with its files as arguments and its ID in the environment",
    function()
      local a = h.inbound { subject = "one", attachments = { { name = "a.xml", size = 10 } } }
      local b = h.inbound { subject = "it's two", partner = "INITECH-AS2",
        attachments = { { name = "b 1.xml", size = 10 }, { name = "b2.xml", size = 5 } } }
      local _, _, code = run { "inbox", "--to", to, "--exec", h.quote(handler) .. ' "$@"' }
      assert.equal(0, code)
      local list = calls()
      assert.same(sorted { a, b }, ids_of(list))
      local by = {}
      for _, c in ipairs(list) do by[c.id] = c end
      assert.same({ to .. "/" .. folder_of(a) .. "/a.xml" }, by[a].args)
      table.sort(by[b].args)
      assert.same({ to .. "/" .. folder_of(b) .. "/b 1.xml", to .. "/" .. folder_of(b)
        .. "/b2.xml" }, by[b].args)
      assert.equal("INITECH-AS2", by[b].partner)
      assert.equal("it's two", by[b].subject)
      -- a second run hands nothing to the handler again
      assert.equal(0, select(3, run { "inbox", "--to", to, "--exec", h.quote(handler) }))
      assert.equal(2, #calls())
    end)

  it("keeps the account's password out of the --exec command's environment", function()
    h.inbound { subject = "env" }
    local dump = to .. "-env"
    local _, _, code = run { "inbox", "--to", to, "--exec", "env > " .. h.quote(dump) }
    assert.equal(0, code)
    local env = h.read_file(dump)
    os.remove(dump)
    assert.truthy(env:find("AS2G_MESSAGE_ID=", 1, true), env)
    assert.falsy(env:find("AS2G_PASSWORD", 1, true))
    assert.falsy(env:find(h.password, 1, true))
  end)

  it("hands a message whose handler failed to it again on the next run, and only that one",
    function()
      local good = h.inbound { subject = "fine" }
      local bad = h.inbound { subject = "FAIL at first" }
      local exec = h.quote(handler) .. ' "$@"'
      local _, err, code = run { "inbox", "--to", to, "--exec", exec }
      assert.equal(1, code)
      assert.matches("2 new message(s), 1 done, 1 failed", err, 1, true)
      assert.same(sorted { bad, good }, ids_of(calls()))
      -- still failing: handed again
      _, err, code = run { "inbox", "--to", to, "--exec", exec }
      assert.equal(1, code)
      assert.matches("1 new message(s), 0 done, 1 failed", err, 1, true)
      local list = calls()
      assert.equal(3, #list)
      assert.equal(bad, list[3].id)
      assert.equal(1, #list[3].args)
      assert.equal(100, #h.read_file(list[3].args[1]))
      -- fixed: handed once more, done
      h.write_file(home.dir .. "/fixed", "")
      _, err, code = run { "inbox", "--to", to, "--exec", exec }
      assert.equal(0, code)
      assert.matches("1 new message(s), 1 done, 0 failed", err, 1, true)
      assert.equal(4, #calls())
      assert.equal(bad, calls()[4].id)
      -- and then never again
      _, _, code = run { "inbox", "--to", to, "--exec", exec }
      assert.equal(0, code)
      assert.equal(4, #calls())
      -- nothing unfinished left: no journal, no temporary files
      for _, f in ipairs(S.files(to)) do assert.not_matches("^%.", f) end
      assert.equal(2, #S.files(to))
    end)

  it("keeps polling with --watch: a message arriving between runs is fetched by the next",
    function()
      local first = h.inbound { subject = "before" }
      local job = S.spawn(home, { "inbox", "--to", to, "--watch", "--interval", "2",
        "--max-runs", "2", "--exec", h.quote(handler) .. ' "$@"' })
      assert.truthy(h.wait_until(function()
        return (h.read_file(job.err) or ""):find("new message", 1, true)
      end), "the first run did not finish")
      local second = h.inbound { subject = "between" }
      local out, err, code = S.finish(job)
      assert.equal(0, code, err)
      assert.equal(2, S.count(err, "new message(s)"))
      assert.matches("1 new message(s), 1 done, 0 failed\n1 new message(s), 1 done", err, 1,
        true)
      local list = calls()
      assert.equal(2, #list)
      assert.equal(first, list[1].id)
      assert.equal(second, list[2].id)
      assert.equal(2, S.count(out, to .. "/"))
    end)

  it("drains test partners' messages with --partner-type test", function()
    local t = h.inbound { subject = "test one", partner = "HOOLI-TEST", partnerType = "Test" }
    local out, _, code = run { "--json", "inbox", "--to", to, "--partner-type", "test" }
    assert.equal(0, code)
    local ids = {}
    for _, d in ipairs(S.json_lines(out)) do ids[#ids + 1] = d.as2MessageId end
    assert.is_truthy(ids[1])
    local found = false
    for _, id in ipairs(ids) do found = found or id == t end
    assert.is_true(found)
  end)

  -- The next batch download answers with this zip (crafted: the sandbox's are sound).
  local function serve_zip(entries)
    h.fault { path = "/message/received/batch/attachments", method = "POST", status = 200,
      body_base64 = h.b64(zipfile.make(entries)), content_type = "application/zip" }
  end

  it("prints every failure, exits 1, and hands the failed message to the next run", function()
    local good = h.inbound { attachments = { { name = "g.txt", data = h.b64("good") } } }
    local bad = h.inbound { attachments = { { name = "b.txt", data = h.b64("bad") } } }
    serve_zip { { name = good .. "/g.txt", data = "good" },
      { name = bad .. "/b.txt", data = "/etc/passwd", mode = zipfile.SYMLINK } }
    local out, err, code = run { "inbox", "--to", to }
    assert.equal(1, code)
    assert.equal(to .. "/" .. folder_of(good) .. "/g.txt\n", out)
    assert.matches("as2g: " .. bad .. ": ", err, 1, true)
    assert.matches("b.txt", err, 1, true)
    assert.matches("2 new message(s), 1 done, 1 failed", err, 1, true)
    out, err, code = run { "inbox", "--to", to }
    assert.equal(0, code, err)
    assert.equal(to .. "/" .. folder_of(bad) .. "/b.txt\n", out)
    assert.matches("1 new message(s), 1 done, 0 failed", err, 1, true)
  end)

  it("gives every message a status in --json, and keeps --exec's output out of it", function()
    local good = h.inbound { attachments = { { name = "g.txt", data = h.b64("good") } } }
    local bad = h.inbound { attachments = { { name = "b.txt", data = h.b64("bad") } } }
    serve_zip { { name = good .. "/g.txt", data = "good" },
      { name = bad .. "/b.txt", data = "ba" } }
    local out, err, code = run { "--json", "inbox", "--to", to, "--exec", "echo from-exec" }
    assert.equal(1, code)
    local by = {}
    for line in out:gmatch("[^\n]+") do
      local doc = h.json_decode(line)
      assert.is_table(doc, "not a JSON line: " .. line)
      by[doc.as2MessageId] = doc
    end
    assert.equal("done", by[good].status)
    assert.same({ to .. "/" .. folder_of(good) .. "/g.txt" }, by[good].paths)
    assert.equal("failed", by[bad].status)
    assert.equal("protocol", by[bad].error.kind)
    assert.matches("2 bytes on disk, the record says 3", by[bad].error.message, 1, true)
    assert.matches("from-exec", err, 1, true)
  end)

  it("exits 8 at once while another run holds the folder", function()
    h.inbound { subject = "slow" }
    local gate = home.dir .. "/gate"
    local job = S.spawn(home, { "inbox", "--to", to, "--exec",
      "while [ ! -e " .. h.quote(gate) .. " ]; do sleep 0.05; done" })
    h.wait_until(function() return #S.files(to) > 1 end, 30,
      "the first run did not get its files")
    local _, err, code = run { "inbox", "--to", to }
    assert.equal(8, code)
    assert.matches("another drain is running", err, 1, true)
    h.write_file(gate, "")
    local _, _, rc = S.finish(job)
    assert.equal(0, rc)
  end)

  it("exits 1 when --to cannot be a folder", function()
    h.write_file(home.dir .. "/plain", "x")
    local _, err, code = run { "inbox", "--to", home.dir .. "/plain" }
    assert.equal(1, code)
    assert.matches("plain", err, 1, true)
  end)
end)
