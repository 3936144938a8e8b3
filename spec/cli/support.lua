-- Shared helpers of the as2g specs: run bin/as2g as a subprocess with a private home.
local h = require "helpers"

local M = {}

local function capture(cmd)
  local p = assert(io.popen(cmd))
  local out = p:read("a")
  p:close()
  return out
end
M.capture = capture

M.root = capture("pwd"):gsub("%s+$", "")
-- AS2G_SPEC_BIN runs the specs against another as2g (an installed one, an older build)
M.as2g = os.getenv("AS2G_SPEC_BIN") or (M.root .. "/bin/as2g")

--- A test's private place: XDG_CACHE_HOME, XDG_CONFIG_HOME and XDG_STATE_HOME under one
--- folder, so the shared quota and token (the state folder) and config files never
--- touch the real home.
function M.home()
  local dir = h.mkdtemp()
  return { dir = dir, cache = dir .. "/cache", config = dir .. "/config",
    state = dir .. "/state" }
end

--- A fresh start for a test: the sandbox reset, a private home, and (with `sub`) an
--- empty folder of that name in it. Returns home, folder.
function M.fresh(sub)
  h.reset()
  local home = M.home()
  local dir = sub and home.dir .. "/" .. sub
  if dir then capture("mkdir -p " .. h.quote(dir)) end
  return home, dir
end

--- The usual setup of an as2g spec, registered in the calling describe block: before
--- each test a fresh start (M.fresh), after it the private home removed. Returns a
--- table holding the current test's `home` (and `dir`, with `sub`) and `run(args, opts)`.
function M.each_test(sub)
  local t = {}
  local busted = require "busted" -- its hooks are no globals outside a spec file
  busted.before_each(function() t.home, t.dir = M.fresh(sub) end)
  busted.after_each(function() h.rmtree(t.home.dir) end)
  function t.run(args, opts) return M.run(t.home, args, opts) end
  return t
end

--- A private home with a work folder, for specs that run as2g on files: w.setup()
--- (M.fresh with a folder "work": give it to before_each) and w.teardown() (to
--- after_each); w.home, w.dir, w.run(args, opts) runs as2g there (see M.run),
--- w.file(name, data) writes a file into the work folder: its path.
function M.workspace()
  local w = {}
  function w.setup() w.home, w.dir = M.fresh("work") end
  function w.teardown() h.rmtree(w.home.dir) end
  function w.run(args, opts) return M.run(w.home, args, opts) end
  function w.file(name, data)
    local path = w.dir .. "/" .. name
    h.write_file(path, data)
    return path
  end
  return w
end

--- The shell words that run bin/as2g: `env`, the private XDG folders, the variables of
--- opts.env (false unsets one), the tool and its (quoted) arguments.
function M.command(home, args, opts)
  opts = opts or {}
  local words = { "env" }
  local env = { XDG_CACHE_HOME = home.cache, XDG_CONFIG_HOME = home.config,
    XDG_STATE_HOME = home.state }
  for k, v in pairs(opts.env or {}) do env[k] = v end
  local names = {}
  for k in pairs(env) do names[#names + 1] = k end
  table.sort(names)
  for _, k in ipairs(names) do
    if env[k] == false then words[#words + 1] = "-u " .. k end
  end
  for _, k in ipairs(names) do
    if env[k] then words[#words + 1] = k .. "=" .. h.quote(env[k]) end
  end
  if opts.no_tty then words[#words + 1] = "setsid -w" end
  words[#words + 1] = h.quote(M.as2g)
  for _, a in ipairs(args) do words[#words + 1] = h.quote(a) end
  return table.concat(words, " ")
end

--- Runs bin/as2g; returns stdout, stderr, exit code. opts: env (table; false unsets),
--- stdin (a string), cwd, no_tty (no controlling terminal: setsid), timeout (seconds:
--- then it is stopped, exit code 124).
function M.run(home, args, opts)
  opts = opts or {}
  local out, err, input = h.tmpname(), h.tmpname(), h.tmpname()
  h.write_file(input, opts.stdin or "")
  local cmd = (opts.timeout and ("timeout " .. opts.timeout .. " ") or "")
    .. M.command(home, args, opts) .. " <" .. h.quote(input) .. " >" .. h.quote(out)
    .. " 2>" .. h.quote(err)
  if opts.cwd then cmd = "cd " .. h.quote(opts.cwd) .. " && " .. cmd end
  local ok, how, code = os.execute(cmd)
  if how ~= "exit" then code = 128 + (code or 0) end
  if ok then code = 0 end
  local o, e = h.read_file(out) or "", h.read_file(err) or ""
  os.remove(out) os.remove(err) os.remove(input)
  return o, e, code
end

--- Starts bin/as2g in the background; returns {pid =, out =, err =, rc =} (the files
--- of its stdout, stderr and, once it has ended, its exit code).
function M.spawn(home, args, opts)
  local job = { out = h.tmpname(), err = h.tmpname(), rc = h.tmpname(), pidfile = h.tmpname() }
  local inner = M.command(home, args, opts) .. " </dev/null >" .. h.quote(job.out) .. " 2>"
    .. h.quote(job.err) .. " & echo $! >" .. h.quote(job.pidfile) .. "; wait $!; echo $? >"
    .. h.quote(job.rc .. ".part") .. "; mv " .. h.quote(job.rc .. ".part") .. " "
    .. h.quote(job.rc)
  assert(os.execute("sh -c " .. h.quote(inner) .. " >/dev/null 2>&1 &"))
  job.pid = h.wait_until(function() return tonumber(h.read_file(job.pidfile) or "") end, 30,
    "the background as2g did not start", 0.02)
  return job
end

--- Runs a shell command line in a terminal of its own: a detached tmux session on a
--- private server (its socket under `dir`). Returns {screen = fn() -> text,
--- keys = fn(...) (tmux send-keys), wait = fn(text, timeout) (until the screen shows
--- it), kill = fn()}.
function M.tmux(dir, cmdline)
  local sock = dir .. "/tmux.sock"
  local function tmux(args)
    return capture("tmux -S " .. h.quote(sock) .. " " .. args .. " 2>&1")
  end
  tmux("new-session -d -x 160 -y 40 -s t " .. h.quote(cmdline))
  local t = {}
  function t.screen() return tmux("capture-pane -p -t t") end
  function t.keys(...)
    local words = {}
    for i, k in ipairs { ... } do words[i] = h.quote(k) end
    tmux("send-keys -t t " .. table.concat(words, " "))
  end
  function t.wait(text, timeout)
    return h.wait_until(function() return t.screen():find(text, 1, true) end, timeout or 30,
      "the terminal did not show '" .. text .. "'")
  end
  function t.kill() tmux("kill-server") end
  return t
end

--- Waits for a spawned job's end: stdout, stderr, exit code.
function M.finish(job, timeout)
  local rc = h.wait_until(function() return tonumber(h.read_file(job.rc) or "") end,
    timeout or 20)
  local o, e = h.read_file(job.out) or "", h.read_file(job.err) or ""
  for _, f in ipairs { job.out, job.err, job.rc, job.pidfile } do os.remove(f) end
  return o, e, rc
end

--- The command lines of every process, as `ps -eo args` shows them, and from /proc.
function M.process_args()
  local lines = { capture("ps -eo args 2>/dev/null") }
  for pid in capture("ls /proc"):gmatch("%d+") do
    local cmdline = h.read_file("/proc/" .. pid .. "/cmdline")
    if cmdline then lines[#lines + 1] = pid .. ": " .. cmdline:gsub("%z", " ") end
  end
  return table.concat(lines, "\n")
end

--- Files under `dir`, relative to it, sorted (hidden ones included).
function M.files(dir)
  local out = {}
  -- the drain's lock file, which stays, left out
  for line in capture("cd " .. h.quote(dir) .. " 2>/dev/null && find . -type f"
    .. " ! -path ./.as2g-drain.lock | sort"):gmatch("[^\n]+") do
    out[#out + 1] = line:sub(3)
  end
  return out
end

--- The JSON documents of a --json output, one per line.
function M.json_lines(text)
  local docs = {}
  for line in text:gmatch("[^\n]+") do docs[#docs + 1] = assert(h.json_decode(line), line) end
  return docs
end

--- The AS2 message IDs of a listing, through curl (independent of the tool).
function M.ids(kind, query)
  query = query or {}
  query.pageLength = query.pageLength or 100
  local res = h.api("GET", "/message/" .. kind, { query = query })
  assert(res.status == 200, "listing failed: " .. tostring(res.status))
  local ids = {}
  for _, m in ipairs(res.json.records) do ids[#ids + 1] = m.as2MessageId end
  return ids, res.json.records
end

--- Where the sandbox keeps a message (its control surface): lists and read flag.
function M.where(id)
  return (h.control("GET", "messages/" .. h.escape(id)))
end

function M.file_mode(path)
  return (capture("stat -c %a " .. h.quote(path)):gsub("%s+$", ""))
end

--- Occurrences of a plain string in a text.
function M.count(text, s)
  local n, at = 0, 1
  while true do
    local i = text:find(s, at, true)
    if not i then return n end
    n, at = n + 1, i + #s
  end
end

return M
