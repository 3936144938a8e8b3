-- Shared helpers of the crash specs: run a child process and SIGKILL it at a given
-- moment, and spread kill moments over a span.
local h = require "helpers"
local core = require "as2gateway.core"

local M = {}

--- Starts `command` (shell words, quoted) in the background through a shell that
--- records its exit status; SIGKILLs it after delay_ms unless it ended first; waits
--- until it is gone. Returns "killed" or "exited", the exit status (137 for a kill, as
--- the shell reports it) and the child's output.
function M.run_and_kill(command, delay_ms)
  local pidfile, rcfile, outfile = h.tmpname(), h.tmpname(), h.tmpname()
  local script = ("%s >%s 2>&1 & echo $! >%s; wait $!; echo $? >%s.tmp; mv %s.tmp %s")
    :format(command, h.quote(outfile), h.quote(pidfile), h.quote(rcfile), h.quote(rcfile),
      h.quote(rcfile))
  assert(os.execute("sh -c " .. h.quote(script) .. " </dev/null >/dev/null 2>&1 &"))
  local started = core.now()
  local pid
  repeat
    pid = (h.read_file(pidfile) or ""):match("^(%d+)\n")
    if not pid then core.sleep(0.002) end
  until pid or core.now() - started > 10
  assert(pid, "the child did not start")
  local outcome = "exited"
  while core.now() - started < delay_ms / 1000 and not h.read_file(rcfile) do
    core.sleep(math.min(0.005, delay_ms / 1000 - (core.now() - started)))
  end
  if not h.read_file(rcfile) then -- still running (its shell reaps it only once it ends)
    os.execute("kill -KILL " .. pid .. " 2>/dev/null")
    outcome = "killed"
  end
  local rc
  repeat
    rc = tonumber(h.read_file(rcfile) or "")
    if not rc then core.sleep(0.005) end
  until rc or core.now() - started > 60
  if not rc then os.execute("kill -KILL " .. pid .. " 2>/dev/null") end
  assert(rc, "the child neither ended nor died within 60 s")
  local out = h.read_file(outfile) or ""
  for _, f in ipairs { pidfile, rcfile, outfile } do os.remove(f) end
  return outcome, rc, out
end

--- `kills` delays in ms: one in each slot of max_ms / kills, the slots in random order
--- (math.random: seed it first).
function M.kill_delays(kills, max_ms)
  local slot = max_ms / kills
  local delays = {}
  for i = 1, kills do
    delays[i] = math.floor((i - 1) * slot + math.random() * slot)
  end
  for i = kills, 2, -1 do
    local j = math.random(i)
    delays[i], delays[j] = delays[j], delays[i]
  end
  return delays
end

--- Seeds math.random from AS2G_CRASH_SEED or the time, and says how to replay it.
function M.seed(name)
  local seed = tonumber(os.getenv("AS2G_CRASH_SEED") or "") or os.time()
  math.randomseed(seed)
  print(("\n%s seed %d (replay: AS2G_CRASH_SEED=%d)"):format(name, seed, seed))
  return seed
end

return M
