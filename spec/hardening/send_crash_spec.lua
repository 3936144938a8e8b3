-- Crash safety: send_dir SIGKILLed at 20 random moments, rerun each time, sends each file once.
local h = require "helpers"
local as2gateway = require "as2gateway"
local core = require "as2gateway.core"
local S = require "workflows.support"
local C = require "hardening.support"

local FILES, KILLS = 30, 20
local MAX_DELAY_MS = 3000    -- runs spend time resolving, sending and moving: kill in any
local SEND_DELAY_MS = 300    -- each send held this long by the gateway: kills land mid-send
local CHILD = "spec/hardening/send_child.lua"
local JOURNAL = ".as2g-send.journal"

local send_journal = require("as2gateway.outbound").send_journal

-- The journal's records by state, for the progress lines.
local function journal_states(dir)
  local records = send_journal(nil, dir) or {}
  local count = {}
  for _, r in ipairs(records) do count[r.state] = (count[r.state] or 0) + 1 end
  local parts = {}
  for _, st in ipairs { "pending", "unknown", "unsent", "sent", "refused" } do
    if count[st] then parts[#parts + 1] = st .. "=" .. count[st] end
  end
  return table.concat(parts, " "), records
end

describe("crash safety of client:send_dir", function()
  local dir

  before_each(function()
    h.reset()
    dir = h.mkdtemp()
  end)

  after_each(function()
    h.rmtree(dir)
  end)

  it("sends each of 30 files exactly once, and every one, after 20 SIGKILLs at random "
     .. "moments", function()
    C.seed("send_crash_spec")
    h.config { rate_limit = "off" }
    h.fault { path = "/message/ACME-AS2/GLOBEX-AS2", method = "POST", count = 100000,
      delay_ms = SEND_DELAY_MS }
    local files = {}
    for i = 1, FILES do
      local name = ("invoice-%02d.edi"):format(i)
      local data = ("ISA*%02d~"):format(i) .. ("x"):rep(math.random(10, 5000)) .. "\n"
      h.write_file(dir .. "/" .. name, data)
      files[name] = core.sha256(data)
    end

    local hits, bad = 0, {}
    for i, delay in ipairs(C.kill_delays(KILLS, MAX_DELAY_MS)) do
      local outcome, rc, out = C.run_and_kill(("lua5.4 %s %s"):format(CHILD, h.quote(dir)),
        delay)
      if rc == 137 then
        hits = hits + 1
      elseif rc == 0 and out:match("^sent %d+ settled %d+\n$") then
        outcome = "exited"
      else
        bad[#bad + 1] = ("run %d: status %d: %s"):format(i, rc, out:sub(1, 300))
      end
      print(("  run %2d  kill after %4d ms: %-6s journal %s, %d left in the folder"):format(i,
        delay, outcome, (journal_states(dir)), #S.ls(dir) - 3))
    end
    assert.same({}, bad) -- a run after a crash finishes or is killed: never fails
    assert.is_true(hits >= KILLS // 4, ("only %d of %d kills hit a running send_dir")
      :format(hits, KILLS))

    -- the clean run, in this process
    local client = as2gateway.new(h.core_options { rate_limit = false })
    local report, err = client:send_dir("ACME-AS2", "GLOBEX-AS2", dir, { move_to = true,
      resolve = { max_processing = 1 } })
    client:close()
    assert.is_nil(err)
    print(("  clean run: %d entries; %d of %d kills hit a running send_dir"):format(#report,
      hits, KILLS))

    -- the gateway holds each file exactly once, byte for byte
    local seen = {}
    for _, m in ipairs(h.control("GET", "messages").outbound) do
      for _, a in ipairs(m.attachments) do
        if files[a.name] then
          assert.equal(files[a.name], a.sha256, a.name)
          seen[a.name] = (seen[a.name] or 0) + 1
        end
      end
    end
    local wrong = {}
    for name in pairs(files) do
      if seen[name] ~= 1 then wrong[#wrong + 1] = name .. " x" .. tostring(seen[name] or 0) end
    end
    table.sort(wrong)
    assert.same({}, wrong)

    -- nothing left unsent: the folder holds only the journal, the lock and sent/, which
    -- holds each file once
    assert.same({ JOURNAL, ".as2g-send.lock", "sent" }, S.ls(dir))
    local names = {}
    for name in pairs(files) do names[#names + 1] = name end
    table.sort(names)
    assert.same(names, S.ls(dir .. "/sent"))
    for name, sha in pairs(files) do
      assert.equal(sha, core.sha256(h.read_file(dir .. "/sent/" .. name)), name)
    end

    -- and the journal ends with every file settled: in one sent record, with its ID
    local states, records = journal_states(dir)
    print("  journal: " .. states)
    local sent_in = {}
    for _, r in ipairs(records) do
      assert.is_true(r.state == "sent" or r.state == "unsent",
        ("record %d is %s"):format(r.n, r.state))
      if r.state == "sent" then
        assert.is_string(r.as2MessageId)
        for _, f in ipairs(r.files) do
          assert.equal(files[f.name], f.sha256)
          sent_in[f.name] = (sent_in[f.name] or 0) + 1
        end
      end
    end
    for name in pairs(files) do assert.equal(1, sent_in[name], name) end
  end)
end)
