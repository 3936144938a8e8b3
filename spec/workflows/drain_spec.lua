-- drain: 250 unread messages in a handful of requests; cut connections, failing handlers and SIGKILLs lose nothing.
local h = require "helpers"
local as2gateway = require "as2gateway"
local S = require "workflows.support"

local folder_of = require("as2gateway.batch").folder_of

local ATTACHMENTS = { { name = "a.edi", size = 300 }, { name = "b.xml", size = 200 } }
local JOURNAL = ".as2g-drain.journal"
local BATCH = "POST /message/received/batch/attachments"

local unread_messages = S.unread_messages

local function names_of(message)
  local names = {}
  for _, a in ipairs(message.attachments) do names[#names + 1] = a.name end
  table.sort(names)
  return names
end

local count = S.count

-- The end state every drain must reach, however often it was interrupted: each message's
-- attachments on disk exactly once (no "name (2)" copies, right sizes), its handler
-- succeeded at least once, nothing else in `to` (no journal, no temporary files) and
-- nothing unread on the gateway.
local function assert_complete(to, expected, successes)
  local want = {}
  for id, message in pairs(expected) do
    local folder = folder_of(id)
    want[#want + 1] = folder .. "|d"
    for _, a in ipairs(message.attachments) do
      want[#want + 1] = ("%s/%s|f|%d"):format(folder, a.name, a.size)
    end
    assert.is_true((successes[id] or 0) >= 1, "no handler succeeded for " .. id)
  end
  table.sort(want)
  assert.same(want, S.tree_sizes(to))
  assert.equal(0, S.unread())
end

describe("client:drain", function()
  local to

  before_each(function()
    h.reset()
    to = h.mkdtemp()
  end)

  after_each(function()
    h.rmtree(to)
  end)

  it("drains 253 unread messages with 2 attachments each in at most 8 API requests", function()
    h.inject(250, { attachments = ATTACHMENTS })
    local expected, n = unread_messages()
    assert.equal(253, n) -- the seed's 3 unread messages count too (2 production, 1 test)
    local before = h.stats().requests
    local client = as2gateway.new(h.core_options())
    local calls, bad = {}, {}
    local summary, err = client:drain { to = to, handler = function(message, paths)
      local id = message.as2MessageId
      calls[id] = (calls[id] or 0) + 1
      -- the files are complete on disk before the handler sees them
      local names = {}
      for _, p in ipairs(paths) do
        local dir, name = p:match("^(.*)/([^/]+)$")
        if dir ~= to .. "/" .. folder_of(id) then bad[#bad + 1] = p end
        names[#names + 1] = name
        local want
        for _, a in ipairs(expected[id] and expected[id].attachments or {}) do
          if a.name == name then want = a.size end
        end
        if S.size(p) ~= want then bad[#bad + 1] = p .. " has the wrong size" end
      end
      table.sort(names)
      if not expected[id] or table.concat(names, "|") ~= table.concat(names_of(expected[id]), "|")
      then
        bad[#bad + 1] = "paths of " .. id .. ": " .. table.concat(names, ", ")
      end
    end }
    local used = h.stats().requests - before
    local own = client:stats().requests
    client:close()
    assert.is_nil(err)
    assert.same({ messages = 253, done = 253, failed = 0, errors = {} }, summary)
    assert.is_true(used <= 8, ("the gateway counted %d requests"):format(used))
    assert.is_true(own <= 8, ("the client counted %d requests"):format(own))
    assert.same({}, bad)
    assert.equal(253, count(calls))
    for id in pairs(expected) do assert.equal(1, calls[id], id) end
    assert.is_nil(S.size(to .. "/" .. JOURNAL))
    assert_complete(to, expected, calls)
  end)

  it("fetches nothing and calls no handler when run again after a complete drain", function()
    h.inject(20, { attachments = ATTACHMENTS })
    local expected = unread_messages()
    local client = as2gateway.new(h.core_options())
    local first = assert(client:drain { to = to, handler = function() end })
    client:close()
    assert.equal(23, first.done)
    local tree = S.tree(to)

    local before = h.stats()
    client = as2gateway.new(h.core_options())
    local calls = 0
    local again, err = client:drain { to = to, handler = function() calls = calls + 1 end }
    client:close()
    local after = h.stats()
    assert.is_nil(err)
    assert.same({ messages = 0, done = 0, failed = 0, errors = {} }, again)
    assert.equal(0, calls)
    local used = after.requests - before.requests
    -- the login and one listing per partner type, nothing else
    assert.is_true(used >= 2 and used <= 3, ("%d requests"):format(used))
    assert.equal(S.route_count(before, BATCH), S.route_count(after, BATCH))
    assert.same(tree, S.tree(to))
    assert_complete(to, expected, setmetatable({}, { __index = function() return 1 end }))
  end)

  it("loses nothing when the connection is cut in the middle of batch downloads", function()
    h.inject(250, { attachments = ATTACHMENTS })
    local expected = unread_messages()
    local _, status = h.control("POST", "faults", { path = "/message/received/batch/attachments",
      close_after_bytes = 2000, count = 20 })
    assert.equal(200, status)
    local successes, runs = {}, 0
    local summary
    repeat
      runs = runs + 1
      local client = as2gateway.new(h.core_options { retries = 1, backoff_base = 0.01,
        backoff_cap = 0.05 })
      local err
      summary, err = client:drain { to = to, handler = function(message)
        successes[message.as2MessageId] = (successes[message.as2MessageId] or 0) + 1
      end }
      client:close()
      assert.is_nil(err)
      if runs == 1 then
        -- the gateway marked the messages read, but their files never arrived
        assert.equal(253, count(summary.errors))
        assert.equal(0, summary.done)
        assert.equal(0, S.unread())
        assert.is_number(S.size(to .. "/" .. JOURNAL))
        for _, e in pairs(summary.errors) do assert.equal("network", e.kind) end
      end
    until next(summary.errors) == nil or runs == 10
    assert.is_true(runs >= 2)
    assert.is_nil(next(summary.errors), "still failing after 10 runs")
    assert.equal(253, count(successes))
    for id, n in pairs(successes) do assert.equal(1, n, id) end -- handlers ran after the files
    assert_complete(to, expected, successes)
  end)

  it("calls a failing handler again on the next run, and only that one", function()
    h.inject(250, { attachments = ATTACHMENTS })
    local expected = unread_messages()
    local successes, failed_ids, calls = {}, {}, 0
    local client = as2gateway.new(h.core_options())
    local summary, err = client:drain { to = to, handler = function(message)
      calls = calls + 1
      if calls % 3 == 0 then
        failed_ids[message.as2MessageId] = true
        error("the ERP is down")
      end
      successes[message.as2MessageId] = (successes[message.as2MessageId] or 0) + 1
    end }
    client:close()
    assert.is_nil(err)
    assert.equal(253, summary.messages)
    assert.equal(169, summary.done)
    assert.equal(84, summary.failed)
    assert.equal(84, count(summary.errors))
    for id, e in pairs(summary.errors) do
      assert.is_true(failed_ids[id], id)
      assert.equal("callback", e.kind)
      assert.matches("the ERP is down", e.message, 1, true)
    end
    assert.is_number(S.size(to .. "/" .. JOURNAL))
    assert.equal(0, S.unread())

    local second = {}
    client = as2gateway.new(h.core_options())
    summary, err = client:drain { to = to, handler = function(message, paths)
      local id = message.as2MessageId
      second[id] = true
      assert(#paths == 2, "paths missing for " .. id)
      successes[id] = (successes[id] or 0) + 1
    end }
    client:close()
    assert.is_nil(err)
    assert.same({ messages = 84, done = 84, failed = 0, errors = {} }, summary)
    assert.same(failed_ids, second)
    assert.equal(253, count(successes))
    assert_complete(to, expected, successes)
  end)

  it("treats a handler that returns false as failed and retries it", function()
    h.inject(3, { attachments = ATTACHMENTS })
    local expected = unread_messages()
    local client = as2gateway.new(h.core_options())
    local summary = assert(client:drain { to = to, handler = function() return false end })
    assert.equal(6, summary.failed)
    for _, e in pairs(summary.errors) do assert.equal("callback", e.kind) end
    local successes = {}
    summary = assert(client:drain { to = to, handler = function(message)
      successes[message.as2MessageId] = 1
    end })
    client:close()
    assert.equal(6, summary.done)
    assert_complete(to, expected, successes)
  end)

  -- A drain in a subprocess SIGKILLs itself (see drain_child.lua); returns the handler
  -- successes it logged, by ID, and how many.
  local function killed_child(mode, n, pattern)
    local log = h.tmpname()
    local ok, how, code = os.execute(("lua5.4 spec/workflows/drain_child.lua %s %s %s %d %s"
      .. " >/dev/null 2>&1"):format(h.quote(to), h.quote(log), mode, n,
      h.quote(pattern or "/batch/")))
    assert.is_nil(ok, "the child was not killed")
    assert.is_true((how == "signal" and code == 9) or (how == "exit" and code == 137),
      ("the child ended with %s %s, not SIGKILL"):format(how, code))
    assert.is_number(S.size(to .. "/" .. JOURNAL)) -- it did die half-way
    local successes, count_ok = {}, 0
    for id in (h.read_file(log) or ""):gmatch("[^\n]+") do
      successes[id] = (successes[id] or 0) + 1
      count_ok = count_ok + 1
    end
    os.remove(log)
    return successes, count_ok
  end

  -- The rerun in this process: it must end with everything complete.
  local function rerun(expected, successes)
    local client = as2gateway.new(h.core_options())
    local summary, err = client:drain { to = to, handler = function(message, paths)
      assert(#paths == #message.attachments, "paths missing for " .. message.as2MessageId)
      successes[message.as2MessageId] = (successes[message.as2MessageId] or 0) + 1
    end }
    client:close()
    assert.is_nil(err)
    assert.same({}, summary.errors)
    assert.equal(0, summary.failed)
    assert_complete(to, expected, successes)
    return summary
  end

  for _, n in ipairs { 1, 37, 120 } do
    it(("finishes after the process was SIGKILLed in handler %d"):format(n), function()
      h.inject(250, { attachments = ATTACHMENTS })
      local expected = unread_messages()
      local successes, before = killed_child("handler", n)
      assert.equal(n - 1, before)
      local summary = rerun(expected, successes)
      -- every message whose handler had not succeeded is handled now, the killed one too
      assert.equal(253 - (n - 1), summary.done)
    end)
  end

  for _, n in ipairs { 1, 2, 3 } do
    it(("finishes after the process was SIGKILLed as batch download %d arrived"):format(n),
      function()
        h.inject(250, { attachments = ATTACHMENTS })
        local expected = unread_messages()
        local successes, before = killed_child("response", n)
        assert.equal(0, before)
        assert.is_true(#S.lines("find " .. h.quote(to) .. " -name '*.part'") > 0,
          "the killed download left no temporary file to clean up")
        assert.equal(253, rerun(expected, successes).done)
      end)
  end

  describe("with messages larger than the batch limit", function()
    local big = { { name = "x1.bin", size = 1000 }, { name = "x2.bin", size = 1000 },
      { name = "x3.bin", size = 1000 } }

    -- the seed's messages out of the way, then 2 messages that each pass the limit alone
    local function setup()
      local scratch = h.mkdtemp()
      local client = as2gateway.new(h.core_options())
      assert(client:drain { to = scratch })
      client:close()
      h.rmtree(scratch)
      local _, status = h.control("POST", "config", { batch_limit = 1500 })
      assert.equal(200, status)
      local ids = { h.inbound { attachments = big }, h.inbound { attachments = big } }
      local expected = unread_messages()
      assert.equal(2, count(expected))
      return expected, ids
    end

    it("finishes after the process was SIGKILLed between two of them", function()
      local expected, ids = setup()
      -- killed as the second batch request starts: the first message is whole on disk
      -- (its last attachment came one by one) but not yet marked stored in the journal
      local successes = killed_child("request", 2)
      local folder = to .. "/" .. folder_of(ids[1])
      assert.same({ "x1.bin", "x2.bin", "x3.bin" }, S.ls(folder))
      assert.equal(2, rerun(expected, successes).done)
    end)

    it("finishes after the process was SIGKILLed during a one-by-one download", function()
      local expected = setup()
      local successes = killed_child("response", 1, "/attachments/")
      assert.is_true(#S.lines("find " .. h.quote(to) .. " -name '*.part'") > 0)
      assert.equal(2, rerun(expected, successes).done)
    end)
  end)

  it("hands odd attachment names to the handler and keeps them across a rerun", function()
    local id = h.inbound { attachments = { { name = ".error", size = 10 },
      { name = ".x.part", size = 20 }, { name = ".hidden", size = 30 },
      { name = "ok.txt", size = 40 } } }
    local got, calls = nil, 0
    local client = as2gateway.new(h.core_options())
    local summary = assert(client:drain { to = to, handler = function(message)
      if message.as2MessageId == id then error("not yet") end
    end })
    assert.equal(1, summary.failed)
    assert.equal("callback", summary.errors[id].kind)
    summary = assert(client:drain { to = to, handler = function(message, paths)
      calls = calls + 1
      if message.as2MessageId == id then got = paths end
    end })
    client:close()
    assert.same({ messages = 1, done = 1, failed = 0, errors = {} }, summary)
    assert.equal(1, calls)
    local folder = to .. "/" .. folder_of(id)
    local names = {}
    for i, p in ipairs(got or {}) do names[i] = p:sub(#folder + 2) end
    table.sort(names)
    -- never hidden: hidden names are the drain's own temporary files
    assert.same({ "_error", "_hidden", "_x.part", "ok.txt" }, names)
    assert.same({ "_error", "_hidden", "_x.part", "ok.txt" }, S.ls(folder))
    assert.equal(10, S.size(folder .. "/_error"))
    assert.equal(20, S.size(folder .. "/_x.part"))
    assert.equal(0, S.unread())
  end)
  it("gives every message its own folder, however alike their IDs look", function()
    -- a partner chooses its message IDs: none may land in another message's folder
    local ids = { "<x/y@example.com>", "<x_y@example.com>", "x_y@example.com", "<..>",
      "<.x@example.com>", "<x\\y@example.com>" }
    for i, id in ipairs(ids) do
      h.inbound { as2MessageId = id, attachments = { { name = "invoice.xml",
        data = h.b64("content " .. i) } } }
    end
    local got = {}
    local client = as2gateway.new(h.core_options())
    local summary = assert(client:drain { to = to, handler = function(message, paths)
      got[message.as2MessageId] = paths
    end })
    client:close()
    assert.same({}, summary.errors)
    local folders = {}
    for i, id in ipairs(ids) do
      local paths = got[id]
      assert.is_table(paths, "no handler call for " .. id)
      assert.equal(1, #paths, id)
      assert.equal("content " .. i, h.read_file(paths[1]), id)
      local folder = paths[1]:match("^" .. to:gsub("%p", "%%%0") .. "/([^/]+)/invoice%.xml$")
      assert.is_string(folder, paths[1])
      assert.is_nil(folders[folder], "two messages share " .. folder)
      folders[folder] = id
      assert.is_false(folder == "." or folder == "..")
    end
    assert.equal(0, S.unread())
  end)

  it("is not held up by a message with two attachments of the same name", function()
    h.inject(5, { attachments = ATTACHMENTS })
    local dup = h.inbound { attachments = { { name = "dup.txt", size = 10 },
      { name = "dup.txt", size = 20 } } }
    local expected = unread_messages()
    local successes = {}
    local client = as2gateway.new(h.core_options())
    local summary = assert(client:drain { to = to, handler = function(message)
      successes[message.as2MessageId] = 1
    end })
    client:close()
    assert.same({}, summary.errors)
    assert.equal(9, summary.done)
    assert.same({ "dup (2).txt", "dup.txt" }, S.ls(to .. "/" .. folder_of(dup)))
    expected[dup] = nil
    for id in pairs(expected) do assert.equal(1, successes[id], id) end
  end)
end)
