-- Crash safety: a drain SIGKILLed at 20 random moments, rerun, ends with every file once, all read.
local h = require "helpers"
local as2gateway = require "as2gateway"
local S = require "workflows.support"
local C = require "hardening.support"

local batch = require "as2gateway.batch"
local folder_of = batch.folder_of

local JOURNAL = ".as2g-drain.journal"
local KILLS = 20
local MAX_DELAY_MS = 1500
local BATCH_LIMIT = 128 * 1024 -- a big message alone may pass it: 206s and one-by-one downloads
-- new messages before each rerun: as many as at first after a drain that finished
-- before its kill (else the next kill finds nothing to do), a few after a killed one
local ARRIVALS_AFTER_EXIT, ARRIVALS_AFTER_KILL = 300, 20
local CHILD = "spec/hardening/crash_child.lua"

local unread_messages = S.unread_messages

-- n groups of 10 messages with 2 attachments each: in a fifth of the groups one of them
-- is big (50-200 KB: over the batch limit, or nearly), else both are small; kinds and
-- sizes come from the seeded RNG. Adds them to `expected` (ID -> {attachments = ...}).
local function inject_groups(n, expected)
  for _ = 1, n do
    local atts
    if math.random(5) == 1 then
      atts = { { name = "big.bin", size = math.random(50, 200) * 1024 },
        { name = "scan.pdf", size = math.random(1000, 10000) } }
    else
      atts = { { name = "a.edi", size = math.random(100, 3000) },
        { name = "b.xml", size = math.random(100, 3000) } }
    end
    for _, id in ipairs(h.inject(10, { attachments = atts })) do
      expected[id] = { attachments = atts }
    end
  end
end

-- Why the files a handler gets are not the message's attachments, whole; nil when they
-- are (crash_child.lua checks the same).
local function check(message, paths)
  local atts = message.attachments or {}
  if #paths ~= #atts then return ("%d paths for %d attachments"):format(#paths, #atts) end
  local size_of = {}
  for _, p in ipairs(paths) do size_of[p:match("[^/]+$")] = S.size(p) or "no" end
  for _, a in ipairs(atts) do
    if size_of[a.name] ~= a.size then
      return ("%s has %s bytes, not %s"):format(a.name, tostring(size_of[a.name]), a.size)
    end
  end
end

local function lines_of(path)
  local out = {}
  for line in (h.read_file(path) or ""):gmatch("[^\n]+") do out[#out + 1] = line end
  return out
end

-- The end state every drain must reach, however often it was killed: each message's
-- handler succeeded at least once, in some run, and always with its files complete
-- (`handled`: the handlers' log lines, "<ID> ok" or "<ID> bad: ..."; IDs hold no
-- spaces); no journal and no temporary file left; each attachment on disk exactly once
-- with its size and nothing else ("x (2).bin", ...); nothing unread on the gateway.
local function assert_complete(to, expected, handled)
  local calls, bad = {}, {}
  for _, line in ipairs(handled) do
    local id, verdict = line:match("^(%S+) (.*)$")
    if id then calls[id] = (calls[id] or 0) + 1 end
    if verdict ~= "ok" then bad[#bad + 1] = line end
  end
  assert.same({}, bad)
  local unhandled, unknown = {}, {}
  for id in pairs(expected) do
    if not calls[id] then unhandled[#unhandled + 1] = id end
  end
  for id in pairs(calls) do
    if not expected[id] then unknown[#unknown + 1] = id end
  end
  assert.same({}, unhandled)
  assert.same({}, unknown)

  assert.is_false(S.exists(to .. "/" .. JOURNAL), "the journal is still there")
  assert.same({}, S.hidden(to)) -- .part files, .as2g-batch-*.zip, .as2g-error-*
  local want = {}
  for id, message in pairs(expected) do
    local folder = folder_of(id)
    want[#want + 1] = folder .. "|d"
    for _, a in ipairs(message.attachments) do
      want[#want + 1] = ("%s/%s|f|%d"):format(folder, a.name, a.size)
    end
  end
  table.sort(want)
  assert.same(want, S.tree_sizes(to))
  assert.equal(0, S.unread())
end

-- A handler for in-process drains that logs like crash_child.lua's.
local function logging_handler(log)
  return function(message, paths)
    local why = check(message, paths)
    log[#log + 1] = message.as2MessageId .. (why and (" bad: " .. why) or " ok")
  end
end

-- What a killed drain left behind: journal steps and temporary files, for the report.
local function snapshot(to)
  local steps = { fetch = 0, stored = 0, done = 0 }
  for _, line in ipairs(lines_of(to .. "/" .. JOURNAL)) do
    local step = line:match("^(%a+) ")
    if step then steps[step] = (steps[step] or 0) + 1 end
  end
  local parts, zips = 0, 0
  for _, p in ipairs(S.hidden(to)) do
    if p:match("%.part$") then parts = parts + 1 end
    if p:match("/%.as2g%-batch%-%x+%.zip$") then zips = zips + 1 end
  end
  return ("journal fetch=%d stored=%d done=%d, %d .part, %d zip"):format(steps.fetch,
    steps.stored, steps.done, parts, zips)
end

-- Starts crash_child.lua (see its usage) as a job of hardening.support.
local function start_child(dir, log, lock_wait, handler_ms)
  return C.start(("lua5.4 %s %s %s %s %s"):format(CHILD, h.quote(dir), h.quote(log),
    tostring(lock_wait or 0), tostring(handler_ms or 0)))
end

-- Runs crash_child.lua and SIGKILLs it after delay_ms unless it ended first.
local function run_and_kill(to, log, delay_ms)
  return C.run_and_kill(("lua5.4 %s %s %s"):format(CHILD, h.quote(to), h.quote(log)), delay_ms)
end

describe("crash safety of client:drain", function()
  local to, log

  before_each(function()
    h.reset()
    to = h.mkdtemp()
    log = h.tmpname()
  end)

  after_each(function()
    h.rmtree(to)
    os.remove(log)
  end)

  it("ends with every message on disk once and read after 20 SIGKILLs at random moments",
    function()
      C.seed("crash_spec")
      local _, status = h.control("POST", "config", { batch_limit = BATCH_LIMIT,
        rate_limit = "off" })
      assert.equal(200, status)
      local expected = {}
      inject_groups(30, expected)
      local unread, n = unread_messages()
      assert.equal(303, n) -- the seed's 3 unread messages count too
      for id, m in pairs(unread) do expected[id] = expected[id] or m end

      -- one delay in each 75 ms slot of 0-1500 ms, the slots in random order
      local delays = C.kill_delays(KILLS, MAX_DELAY_MS)

      local hits, bad_exits, outcome, arrivals = 0, {}, nil, 0
      for i, delay in ipairs(delays) do
        -- partners keep sending: without new arrivals the drain of 300 is over after
        -- 2 or 3 runs and the other kills hit nothing
        if outcome then
          arrivals = outcome == "killed" and ARRIVALS_AFTER_KILL or ARRIVALS_AFTER_EXIT
          inject_groups(arrivals // 10, expected)
        end
        local rc, out
        outcome, rc, out = run_and_kill(to, log, delay)
        if rc == 137 then -- 128 + SIGKILL, as the shell reports it
          hits = hits + 1
        elseif rc == 0 and out:match("^drained %d+\n$") then
          outcome = "exited" -- done before the kill (or just as it came)
        else
          bad_exits[#bad_exits + 1] = ("run %d: status %d: %s"):format(i, rc, out:sub(1, 300))
        end
        print(("  run %2d  +%3d new, kill after %4d ms: %-6s %s, %d handler calls so far")
          :format(i, arrivals, delay, outcome, snapshot(to), #lines_of(log)))
      end
      assert.same({}, bad_exits) -- a drain after a crash finishes or is killed: never fails
      -- the kills must have caught drains at work, or this test proved nothing
      assert.is_true(hits >= KILLS // 4, ("only %d of %d kills hit a running drain")
        :format(hits, KILLS))

      -- the clean run, in this process
      local client = as2gateway.new(h.core_options { rate_limit = false })
      local handled = lines_of(log)
      local before = #handled
      local summary, err = client:drain { to = to, handler = logging_handler(handled) }
      client:close()
      assert.is_nil(err)
      assert.same({}, summary.errors)
      assert.equal(0, summary.failed)
      print(("  clean run: %d messages handled; %d of %d kills hit a running drain")
        :format(#handled - before, hits, KILLS))

      assert_complete(to, expected, handled)
    end)

  -- Every message the gateway shows as read, with its record (through curl).
  local function read_messages()
    local read = {}
    for _, partner_type in ipairs { "production", "test" } do
      local unread = {}
      for _, pass in ipairs { "unread", "all" } do
        for page = 0, 50 do
          local query = { pageLength = 100, pageOffset = page, partnerType = partner_type }
          if pass == "unread" then query.unreadOnly = "true" end
          local res = h.api("GET", "/message/received", { query = query })
          assert(res.status == 200, "listing failed: " .. tostring(res.status))
          for _, m in ipairs(res.json.records) do
            if pass == "unread" then unread[m.as2MessageId] = true
            elseif not unread[m.as2MessageId] then read[m.as2MessageId] = m end
          end
          if #res.json.records < 100 then break end
        end
      end
    end
    return read
  end

  -- The IDs the journal shows announced and not finished.
  local function unfinished_in_journal(dir)
    local open = {}
    for _, line in ipairs(lines_of(dir .. "/" .. JOURNAL)) do
      local step, rest = line:match("^(%a+) (.+)$")
      if step == "fetch" then
        local m = h.json_decode(rest)
        if type(m) == "table" and m.as2MessageId then open[m.as2MessageId] = true end
      elseif step == "done" or step == "gone" then
        local id = h.json_decode(rest)
        if id then open[id] = nil end
      end
    end
    return open
  end

  it("two drains on one folder, SIGKILLed 20 times in turn at random moments, 300 messages "
    .. "in bursts: every file once, every message handled once or twice", function()
      C.seed("crash_spec")
      local _, status = h.control("POST", "config", { batch_limit = BATCH_LIMIT,
        rate_limit = "off" })
      assert.equal(200, status)
      local expected = {}
      for id, m in pairs((unread_messages())) do expected[id] = m end
      -- a drain of a burst takes a few hundred ms, less on a fast machine: each kill falls
      -- at a random moment within a window that follows how long the drains last (it
      -- shrinks when a drain ended before its kill, grows when the kill caught it)
      local window, hits, bad_exits, without_files = 400, 0, {}, {}
      for i = 1, KILLS do
        local delay = math.floor(math.random() * window)
        inject_groups(i % 2 == 1 and 2 or 1, expected) -- 300 new messages in all, in bursts
        -- two drains started together (one waits for the other's lock); one of them dies
        local jobs = { start_child(to, log, 30, 20), start_child(to, log, 30, 20) }
        local victim = math.random(2)
        C.wait_for(jobs[victim], delay)
        local outcome = C.kill(jobs[victim])
        window = outcome == "killed" and math.min(3000, window * 1.2) or math.max(40, window * 0.7)
        local outs = {}
        for j, job in ipairs(jobs) do
          local rc, out = C.finish(job)
          outs[j] = out:gsub("\n", " ")
          if rc == 137 and j == victim then
            hits = hits + 1
          elseif not (rc == 0 and (out:match("^drained %d+\n$") or out == "locked\n")) then
            bad_exits[#bad_exits + 1] = ("run %d, drain %d: status %d: %s"):format(i, j, rc,
              out:sub(1, 300))
          end
        end
        -- between runs, nothing the gateway shows read lacks its files, unless the journal
        -- still has it to fetch
        local open = unfinished_in_journal(to)
        for id, m in pairs(read_messages()) do
          if expected[id] and not open[id] and not batch.stored_paths(to, m) then
            without_files[#without_files + 1] = ("run %d: %s"):format(i, id)
          end
        end
        print(("  run %2d  kill drain %d after %4d ms: %-6s (%s | %s) %s, %d handler calls")
          :format(i, victim, delay, outcome, outs[1], outs[2], snapshot(to), #lines_of(log)))
      end
      assert.same({}, bad_exits)
      assert.same({}, without_files)
      assert.is_true(hits >= KILLS // 4, ("only %d of %d kills hit a running drain")
        :format(hits, KILLS))

      local client = as2gateway.new(h.core_options { rate_limit = false })
      local handled = lines_of(log)
      local summary, err = client:drain { to = to, handler = logging_handler(handled) }
      client:close()
      assert.is_nil(err)
      assert.same({}, summary.errors)
      assert_complete(to, expected, handled)
      local times, twice, more = {}, 0, {}
      for _, line in ipairs(handled) do
        local id = line:match("^(%S+)")
        times[id] = (times[id] or 0) + 1
      end
      for id, n in pairs(times) do
        if n == 2 then twice = twice + 1 elseif n > 2 then more[#more + 1] = id .. " x" .. n end
      end
      assert.same({}, more)
      print(("  clean run: %d messages, %d handled twice; %d of %d kills hit a running drain")
        :format(S.count(times), twice, hits, KILLS))
    end)

  it("finishes every message after a kill tore the journal's last line", function()
    -- a drain killed while appending to its journal leaves half a line behind; the next
    -- drain appends its own lines after it
    h.inject(5, { attachments = { { name = "a.edi", size = 300 },
      { name = "b.xml", size = 200 } } })
    local expected, n = unread_messages()
    assert.equal(8, n) -- with the seed's 3
    h.write_file(to .. "/" .. JOURNAL, 'fetch {"as2MessageId":"<4711.1.17')
    -- that drain downloads everything (and so marks it read), but its handler fails
    local client = as2gateway.new(h.core_options())
    local summary = assert(client:drain { to = to, handler = function()
      error("the ERP is down")
    end })
    assert.equal(8, summary.failed)
    -- the next one must hand every message to the handler
    local handled = {}
    summary = assert(client:drain { to = to, handler = logging_handler(handled) })
    client:close()
    assert.same({}, summary.errors)
    assert_complete(to, expected, handled)
  end)
end)
