-- Shared helpers of the crash specs: run a child process and SIGKILL it at a given
-- moment, and spread kill moments over a span.
local h = require "helpers"
local core = require "as2gateway.core"

local M = {}

--- Starts `command` (shell words, quoted) in the background through a shell that
--- records its exit status; returns the job {pid, started, ...} once it runs.
function M.start(command)
  local job = { pidfile = h.tmpname(), rcfile = h.tmpname(), outfile = h.tmpname() }
  local script = ("%s >%s 2>&1 & echo $! >%s; wait $!; echo $? >%s.tmp; mv %s.tmp %s")
    :format(command, h.quote(job.outfile), h.quote(job.pidfile), h.quote(job.rcfile),
      h.quote(job.rcfile), h.quote(job.rcfile))
  assert(os.execute("sh -c " .. h.quote(script) .. " </dev/null >/dev/null 2>&1 &"))
  job.started = core.now()
  job.pid = h.wait_until(function() return (h.read_file(job.pidfile) or ""):match("^(%d+)\n") end,
    30, "the child did not start", 0.002)
  return job
end

--- Whether a job has ended (its shell writes the status only then).
function M.ended(job)
  return h.read_file(job.rcfile) ~= nil
end

--- Waits until `delay_ms` after the job's start, or its end, whichever comes first.
function M.wait_for(job, delay_ms)
  while core.now() - job.started < delay_ms / 1000 and not M.ended(job) do
    core.sleep(math.min(0.005, delay_ms / 1000 - (core.now() - job.started)))
  end
end

--- SIGKILLs a job unless it has ended: "killed" or "exited".
function M.kill(job)
  if M.ended(job) then return "exited" end
  os.execute("kill -KILL " .. job.pid .. " 2>/dev/null")
  return "killed"
end

--- Waits until a job is gone: its exit status (137 for a kill, as the shell reports
--- it) and its output.
function M.finish(job)
  local rc = h.wait_until(function() return tonumber(h.read_file(job.rcfile) or "") end, 60)
  if not rc then os.execute("kill -KILL " .. job.pid .. " 2>/dev/null") end
  assert(rc, "the child neither ended nor died within 60 s")
  local out = h.read_file(job.outfile) or ""
  for _, f in ipairs { job.pidfile, job.rcfile, job.outfile } do os.remove(f) end
  return rc, out
end

--- Runs `command`, SIGKILLs it after delay_ms unless it ended first, and waits until it
--- is gone. Returns "killed" or "exited", the exit status and the child's output.
function M.run_and_kill(command, delay_ms)
  local job = M.start(command)
  M.wait_for(job, delay_ms)
  local outcome = M.kill(job)
  local rc, out = M.finish(job)
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
