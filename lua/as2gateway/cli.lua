--- as2gateway.cli: the `as2g` command-line tool (bin/as2g is its launcher).
-- Tables for people, --json for scripts, data on stdout and diagnostics on stderr,
-- progress bars when stderr is a terminal, documented exit codes, and the password
-- never on the command line.
local argparse = require "argparse"
local json = require "as2gateway.json"
local as2gateway = require "as2gateway"
local core = as2gateway.core

local M = {}

-- Exit codes (documented in `as2g --help` and in the README).
local EXIT = {
  ok = 0, failure = 1, usage = 2, auth = 3, notfound = 4, ratelimited = 5,
  network = 6, unknown_outcome = 7, locked = 8, interrupted = 130,
}
M.EXIT = EXIT

local BY_KIND = {
  auth = EXIT.auth, notfound = EXIT.notfound, ratelimited = EXIT.ratelimited,
  network = EXIT.network, tls = EXIT.network, timeout = EXIT.network,
  redirect = EXIT.network, unknown_outcome = EXIT.unknown_outcome, locked = EXIT.locked,
  interrupted = EXIT.interrupted,
}

local EXIT_HELP = [[
Exit codes:
  0  success
  1  failure (the gateway refused the request, a local file problem, ...)
  2  usage error
  3  authentication failed (credentials or token refused, none available)
  4  not found
  5  rate-limited (still, after waiting and retrying)
  6  network, TLS or timeout failure
  7  outcome of a send unknown: it may have been enqueued; `send --if-absent` checks
     before sending again (send-dir: resolved on its next run, or by `settle`)
  8  another `as2g inbox` or `send-dir` is running in the same folder
130 interrupted (Ctrl-C): nothing is left under a final name; `inbox` resumes next run

Configuration, the first that gives a value wins: the options, then the environment,
then the config file. The options: --url, --username, --ca, and --account NAME, whose
[NAME] section of the config file counts as given on the command line. The
environment: AS2G_URL, AS2G_USERNAME, AS2G_PASSWORD, AS2G_CA. The config file
($AS2G_CONFIG, default ~/.config/as2g/config): [NAME] sections of url, username,
password and ca; without --account, the section named by AS2G_ACCOUNT, else [default].
A password goes with its own username only. It is never taken from the command line:
environment, config file, or a prompt without echo.]]

-- Output -------------------------------------------------------------------------

local stdout, stderr = io.stdout, io.stderr

local function say(...) stderr:write(...) stderr:write("\n") end

-- A raised error's text without the file position Lua puts before it: what the user
-- did wrong, not where in as2g it was noticed.
local function plain(e)
  return (tostring(e):gsub("^[^:\n]*:%d+: ", ""))
end

-- Fields that are lists even when empty (lua-cjson alone would write them as {}).
local ARRAY_KEYS = { records = true, attachments = true, customHeaders = true, flows = true,
  paths = true, refused = true }

local function json_line(v)
  stdout:write(json.encode(v, ARRAY_KEYS), "\n")
end

local function iso(ms)
  if type(ms) ~= "number" then return "" end
  return os.date("!%Y-%m-%d %H:%M:%S", ms // 1000)
end

-- A cell's text: control characters as spaces, and each byte that is no part of a
-- valid UTF-8 sequence as "?", so that widths count characters and a cut never splits
-- a sequence.
local function cell_text(v)
  local text = tostring(v or ""):gsub("%c", " ")
  if utf8.len(text) then return text end
  return (text:gsub("[\0-\x7F\xC2-\xFD]?[\x80-\xBF]*", function(seq)
    if seq == "" or utf8.len(seq) == 1 then return seq end
    return ("?"):rep(utf8.len(seq) and 1 or #seq)
  end))
end

--- Prints rows as aligned columns: `columns` = {{title, function(row) -> text}}. Widths
--- are counted in characters (UTF-8), at most 60 a column; a longer text is cut, on a
--- character boundary, and ends in "~".
local function table_out(columns, rows)
  local widths, cells = {}, {}
  for c, col in ipairs(columns) do widths[c] = utf8.len(col[1]) end
  for r, row in ipairs(rows) do
    cells[r] = {}
    for c, col in ipairs(columns) do
      local text = cell_text(col[2](row))
      cells[r][c] = text
      widths[c] = math.max(widths[c], math.min(utf8.len(text), 60))
    end
  end
  local function line(values)
    local out = {}
    for c, v in ipairs(values) do
      local n = utf8.len(v)
      if n > widths[c] then
        v, n = v:sub(1, utf8.offset(v, widths[c]) - 1) .. "~", widths[c]
      end
      out[c] = c < #values and v .. string.rep(" ", widths[c] - n) or v
    end
    stdout:write(table.concat(out, "  "), "\n")
  end
  local titles = {}
  for c, col in ipairs(columns) do titles[c] = col[1] end
  line(titles)
  for _, row in ipairs(cells) do line(row) end
end

local MESSAGE_COLUMNS = {
  { "ID", function(m) return m.as2MessageId end },
  { "TIME (UTC)", function(m) return iso(m.persistedTimestamp) end },
  { "PARTNER", function(m) return m.receiverId end },
  { "STATION", function(m) return m.senderId end },
  { "SUBJECT", function(m) return m.subject end },
  { "STATUS", function(m) return m.deliveryStatus or m.mdnStatus end },
  { "FILES", function(m) return m.attachments and #m.attachments or "" end },
}

-- Progress: a bar on stderr while a transfer runs, only on a terminal. Small
-- transfers (the login, JSON answers) get none, and a finished bar is drawn once:
-- libcurl keeps reporting a finished transfer until the request is over.
local BAR_MIN_BYTES = 256 * 1024

local function progress_bar()
  local last, shown, finished = 0, false, nil
  return function(ul_now, ul_total, dl_now, dl_total)
    local now, total = dl_now, dl_total
    if ul_total > 0 and ul_now < ul_total or (dl_total == 0 and ul_total > 0) then
      now, total = ul_now, ul_total
    end
    if total < BAR_MIN_BYTES then return end
    if now < total then
      finished = nil
    elseif finished == total then
      return
    end
    local t = core.now()
    if t - last < 0.1 and now < total then return end
    last, shown = t, true
    local width = 30
    local filled = math.floor(width * now / total)
    stderr:write(("\r%3d%% [%s%s] %.1f/%.1f MB"):format(math.floor(100 * now / total),
      string.rep("=", filled), string.rep(" ", width - filled), now / 1048576,
      total / 1048576))
    if now >= total then stderr:write("\n") shown, finished = false, total end
  end, function() if shown then stderr:write("\n") end end
end

-- Configuration -------------------------------------------------------------------

-- A folder of the user's, from the environment: only an absolute path that is not the
-- filesystem root counts (with HOME unset, "~/.cache" would be "/.cache").
local function user_dir(name)
  local v = os.getenv(name)
  if v and v:sub(1, 1) == "/" and not v:match("^/+$") then return (v:gsub("/+$", "")) end
  return nil
end

-- $XDG_<KIND>_HOME, else ~/<fallback>; nil when neither is known.
local function base_dir(kind, fallback)
  local xdg = user_dir("XDG_" .. kind .. "_HOME")
  if xdg then return xdg end
  local home = user_dir("HOME")
  return home and home .. "/" .. fallback or nil
end


local function read_config(file, account)
  if not file then return {} end
  local f = io.open(file, "r")
  if not f then return {} end
  local section, values, found = nil, {}, false
  for line in f:lines() do
    line = line:gsub("^%s+", ""):gsub("%s+$", "")
    local name = line:match("^%[(.-)%]$")
    if name then
      section = name
      found = found or name == account
    elseif section == account and line ~= "" and not line:match("^[#;]") then
      local k, v = line:match("^([%w_]+)%s*=%s*(.-)$")
      if k then values[k] = v end
    end
  end
  f:close()
  return values, found
end

-- A folder and every missing level above it (mkdir -p): true, or nil and an error.
local function mkdirs(dir)
  local sofar = dir:sub(1, 1) == "/" and "" or "."
  for part in dir:gmatch("[^/]+") do
    sofar = sofar .. "/" .. part
    if not core.stat(sofar) then
      local ok, e = core.mkdir(sofar)
      if not ok then return nil, e end
    end
  end
  return true
end

-- The quota and the token, shared by every as2g (and every program with the same
-- `quota`) of this gateway and username: `--quota`, $AS2G_QUOTA or the config file's
-- `quota`. "file" (the default): a state folder of the account's under
-- $XDG_STATE_HOME (else ~/.local/state)/as2gateway/, mode 0700 (without either, the
-- default is off: nothing is written at the filesystem root); "file:<folder>";
-- "redis://..." / "unix://..." (several hosts; a password never on the command line);
-- "off": this process's own window, and no token kept. Returns the backend (nil: off)
-- and the state folder of a file backend, or nil, why and the exit code.
local function quota_backend(cfg)
  local q = cfg.quota or "file"
  if q == "off" then return nil end
  if q == "file" then
    local base = base_dir("STATE", ".local/state")
    if not base and not cfg.quota then return nil end
    if not base then return nil, "HOME is not set (nor XDG_STATE_HOME): no state folder "
      .. "for the quota and the token (set --quota file:<folder>, or off)", EXIT.usage end
    local ok, e = mkdirs(base .. "/as2gateway")
    if not ok then
      return nil, "the state folder cannot be made: " .. tostring(e), EXIT.failure
    end
    q = "file:" .. base .. "/as2gateway/" .. core.quota_account(cfg.url, cfg.username)
  end
  local dir = q:match("^file:(.+)$")
  if dir or q:match("^redis://") or q:match("^unix://") then return q, dir end
  return nil, ("quota must be file, file:<folder>, redis://..., unix://... or off, not %q")
    :format(q), EXIT.usage
end

local function prompt_password(cfg)
  local tty = io.open("/dev/tty", "r")
  if not tty then return nil end
  -- the terminal's settings, given back as they were however the prompt ends (Ctrl-C
  -- included: the read then returns, SIGINT being trapped)
  local p = io.popen("stty -g < /dev/tty 2>/dev/null")
  local saved = p and p:read("l")
  if p then p:close() end
  -- echo off before the prompt shows: what is typed (or pasted) after it never echoes
  os.execute("stty -echo < /dev/tty 2>/dev/null")
  stderr:write(("Password for %s at %s: "):format(cfg.username, cfg.url))
  local pw = tty:read("l")
  os.execute((saved and saved:match("^[%w:]+$")) and ("stty " .. saved .. " < /dev/tty 2>/dev/null")
    or "stty echo < /dev/tty 2>/dev/null")
  stderr:write("\n")
  tty:close()
  if core.interrupted() then return nil end
  return pw
end

local function getenv(name)
  local v = os.getenv(name)
  if v ~= "" then return v end
end

-- The account's settings, strongest first: the options (--url, --username, --ca, and
-- the section named with --account, an explicit choice too); the environment
-- (AS2G_URL, AS2G_USERNAME, AS2G_PASSWORD, AS2G_CA); the config file's section named by
-- AS2G_ACCOUNT, else [default]. A password belongs to its layer's username: the
-- environment's to AS2G_USERNAME (or to any username, when that is unset), a section's
-- to the section's. cfg.from tells where each value came from (--verbose).
local function resolve(args)
  local account = args.account or getenv("AS2G_ACCOUNT") or "default"
  local dir = base_dir("CONFIG", ".config")
  local file = getenv("AS2G_CONFIG") or (dir and dir .. "/as2g/config")
  local conf, found = read_config(file, account)
  if account ~= "default" and not found then -- asked for by name (option or environment)
    return nil, file and ("no [%s] section in %s"):format(account, file)
      or ("no [%s] section: no config file (HOME is not set; set AS2G_CONFIG)"):format(account)
  end
  local section = { name = ("[%s] of %s"):format(account, tostring(file)), url = conf.url,
    username = conf.username, password = conf.password, ca = conf.ca, quota = conf.quota,
    own_password = true }
  local options = { name = "the options", url = args.url, username = args.username,
    ca = args.ca, quota = args.quota }
  local env = { name = "the environment", url = getenv("AS2G_URL"),
    username = getenv("AS2G_USERNAME"), password = getenv("AS2G_PASSWORD"),
    ca = getenv("AS2G_CA"), quota = getenv("AS2G_QUOTA") }
  local layers = args.account and { options, section, env } or { options, env, section }
  local cfg = { from = {} }
  for _, key in ipairs { "url", "username", "ca", "quota" } do
    for _, layer in ipairs(layers) do
      if layer[key] then cfg[key], cfg.from[key] = layer[key], layer.name break end
    end
  end
  for _, layer in ipairs(layers) do
    local owner = layer.username
    if layer.password and (owner == cfg.username or (owner == nil and not layer.own_password))
    then
      cfg.password, cfg.from.password = layer.password, layer.name
      break
    end
  end
  if args.quota and args.quota:match("^%a+://[^/]*:[^/]*@") then
    return nil, "a Redis password does not belong on the command line (others can read it):"
      .. " set AS2G_QUOTA or the config file's quota"
  end
  if not cfg.url then return nil, "no gateway URL: set AS2G_URL, --url or a config file" end
  if not cfg.username then
    return nil, "no username: set AS2G_USERNAME, --username or a config file"
  end
  return cfg
end

-- Commands -----------------------------------------------------------------------------

local Fail = {}

--- Ends the command: with an error object, or an exit code and a message for stderr.
local function fail(err, code, msg)
  error(setmetatable({ err = err, code = code, msg = msg }, Fail), 0)
end

local function check(v, err)
  if v == nil then fail(err) end
  return v
end

local commands = {}

function commands.login(ctx)
  if not ctx.quota then
    fail(nil, EXIT.failure, "no token can be kept: " .. (ctx.cfg.quota == "off"
      and "the quota is off" or "HOME is not set (nor XDG_STATE_HOME)"))
  end
  local token, expiry = ctx.client:authorize()
  check(token, expiry)
  if ctx.args.json then
    json_line { url = ctx.cfg.url, username = ctx.cfg.username, expiry = expiry }
  else
    say(("Logged in as %s; token kept until %s UTC"):format(ctx.cfg.username, iso(expiry)))
  end
end

function commands.logout(ctx)
  local _, dir = quota_backend(ctx.cfg)
  local removed = dir ~= nil and os.remove(dir .. "/token") ~= nil
  if ctx.args.json then json_line { removed = removed } return end
  say(removed and "Token removed" or "No token kept")
end

local function send_params(a)
  return { subject = a.subject, partnerType = a.partner_type, profile = a.profile }
end

-- The files of `send`, with --content-type on each.
local function send_files(a)
  if not a.content_type then return a.file end
  local list = {}
  for i, p in ipairs(a.file) do list[i] = { path = p, content_type = a.content_type } end
  return list
end

local NO_LINK = "the gateway accepted the message but its answer carried no usable Link, "
  .. "so its AS2 message ID is unknown. Do not send it again: find it with "
  .. "`as2g ls queued --query %s` or `as2g ls sent --partner %s`"

-- --if-absent: the message already on the gateway (this station, partner, subject and
-- files, since --since seconds ago), false when provably none, or a Fail.
local function existing(ctx, a)
  local files = {}
  for i, p in ipairs(a.file) do
    local kind, size = core.stat(p)
    if kind ~= "file" then fail(nil, EXIT.failure, p .. " is not a readable file") end
    files[i] = { name = p:match("([^/]+)/*$"), size = math.tointeger(size) or size }
  end
  local record = { station = a.station, partner = a.partner, partnerType = a.partner_type,
    subject = a.subject, files = files,
    time = (os.time() - (tonumber(a.since) or 86400)) * 1000 }
  local found, where = ctx.client:resolve(record, { max_processing = a.max_processing })
  if found == nil then fail(where) end
  return found, where
end

-- Prints a wait's end for `send --wait` and `wait`: the state on stdout (after the ID,
-- for send), or the document with --json; returns the exit code.
local function wait_outcome(a, res, msg, state, mdn)
  if not msg then -- an error: what is known, then the error's exit code
    local e = state
    if a.json then
      local doc = { state = e.kind, error = tostring(e), last = e.last,
        last_state = e.last_state }
      for k, v in pairs(res or {}) do doc[k] = doc[k] or v end
      doc.as2MessageId = doc.as2MessageId or e.as2MessageId
      json_line(doc)
    elseif res then
      stdout:write(res.as2MessageId, "\n")
    end
    stdout:flush()
    fail(e)
  end
  local code = state ~= "sent" and EXIT.failure or nil
  local delivery = msg.deliveryStatus or state
  if state ~= "sent" then delivery = ("%s (%s)"):format(state, msg.deliveryStatus or "-") end
  local detail = ("%s: %s, MDN %s%s"):format(msg.as2MessageId, delivery,
    tostring(msg.mdnStatus),
    mdn and (": " .. (mdn.error and ("error: " .. mdn.error) or mdn.disposition)) or "")
  if a.json then
    local doc = { state = state, message = msg, mdn = mdn and { disposition = mdn.disposition,
      error = mdn.error, warning = mdn.warning, original_message_id = mdn.original_message_id,
      mic = mdn.mic, mic_algorithm = mdn.mic_algorithm, final_recipient = mdn.final_recipient,
      text = mdn.text } or nil }
    if res then
      for k, v in pairs(res) do doc[k] = v end
      doc.state, doc.mdnStatus, doc.deliveryStatus = state, msg.mdnStatus, msg.deliveryStatus
    end
    json_line(doc)
  else
    stdout:write(res and res.as2MessageId or state, "\n")
    say(detail)
  end
  return code
end

function commands.send(ctx)
  local a = ctx.args
  if a.if_absent then
    local found, where = existing(ctx, a)
    if found then
      if a.json then
        json_line { as2MessageId = found.as2MessageId, state = "exists", found = where }
      else
        stdout:write(found.as2MessageId, "\n")
        say(("Already on the gateway (%s) as %s: not sent again"):format(where,
          found.as2MessageId))
      end
      return EXIT.ok
    end
  end
  -- a 2xx is a success whatever its body (client:send): only a send that was not, or
  -- may not have been, accepted fails here
  local res = check(ctx.client:send(a.station, a.partner, send_files(a), send_params(a)))
  if res.warning and res.as2MessageId and not a.json then say("as2g: warning: ", res.warning) end
  if not res.as2MessageId then
    res.warning = NO_LINK:format(a.partner, a.partner)
    if a.json then json_line(res) else say("as2g: warning: ", res.warning) end
    return EXIT.ok
  end
  if a.wait then
    local msg, state, mdn = ctx.client:wait(res, { timeout = tonumber(a.timeout) or 300,
      mdn = a.mdn })
    return wait_outcome(a, res, msg, state, mdn)
  end
  if a.json then json_line(res) return end
  stdout:write(res.as2MessageId, "\n")
  say(("Queued %d file(s) for %s"):format(#a.file, a.partner))
end

-- send-dir and settle: one line a message (or one JSON document) and a summary; exit
-- 0 when everything went (settle: when everything is decided), 1 when something was
-- refused or left unsent, 7 while a send of unknown outcome is still undecided.
local function folder_report(a, report, stop, settling)
  local counts, code = {}, EXIT.ok
  local rows = {}
  for _, e in ipairs(report) do
    counts[e.state] = (counts[e.state] or 0) + 1
    if e.state == "unknown" then code = EXIT.unknown_outcome
    elseif e.state ~= "sent" and code == EXIT.ok and not settling then code = EXIT.failure end
    rows[#rows + 1] = { state = e.state, as2MessageId = e.as2MessageId, files = e.files,
      resolved = e.resolved, moved = e.moved, error = e.err and tostring(e.err) or nil,
      warning = e.warning and tostring(e.warning) or nil }
  end
  if a.json then
    json_line { entries = json.array(rows), settled = report.settled or 0,
      refused = json.array(report.refused or {}), error = stop and tostring(stop) or nil }
  else
    for _, r in ipairs(rows) do
      local names = {}
      for i, f in ipairs(r.files) do names[i] = f:match("[^/]+$") end
      stdout:write(("%-8s %s %s%s\n"):format(r.state, r.as2MessageId or "-",
        table.concat(names, ", "), r.resolved and " (resolved)" or ""))
      if r.error then say(table.concat(names, ", "), ": ", r.error) end
    end
    local parts = {}
    for _, st in ipairs { "sent", "refused", "unsent", "unknown" } do
      if counts[st] then parts[#parts + 1] = ("%d %s"):format(counts[st], st) end
    end
    say(("%s; %d file(s) sent before%s"):format(#parts > 0 and table.concat(parts, ", ")
      or "nothing to do", report.settled or 0, #(report.refused or {}) > 0
      and (", %d refused before (--retry-refused sends them again)"):format(#report.refused)
      or ""))
    if counts.unknown then
      say("as2g: the outcome of some sends is still unknown: they are not sent again until "
        .. "resolved (run again later, or `as2g settle`)")
    end
  end
  stdout:flush()
  if stop then fail(stop) end
  return code
end

local function resolve_opts(a)
  return a.max_processing and { max_processing = a.max_processing } or nil
end

function commands.send_dir(ctx)
  local a = ctx.args
  local move_to
  if a.move_to then move_to = a.move_to[1] or true end
  local report, err, partial = ctx.client:send_dir(a.station, a.partner, a.dir, {
    subject = a.subject, partnerType = a.partner_type, profile = a.profile,
    content_type = a.content_type, group = a.group, move_to = move_to,
    retry_refused = a.retry_refused, lock_timeout = a.lock_timeout,
    resolve = resolve_opts(a) })
  if not report then
    if not partial then fail(err) end
    return folder_report(a, partial, err)
  end
  return folder_report(a, report)
end

commands["send-dir"] = commands.send_dir

function commands.settle(ctx)
  local a = ctx.args
  local report, err = ctx.client:settle(a.dir, { lock_timeout = a.lock_timeout,
    max_processing = a.max_processing })
  if not report then fail(err) end
  return folder_report(a, report, nil, true)
end

local function list_params(a)
  local p = {
    sortCol = a.sort, sortDir = a.asc and "asc" or (a.desc and "desc") or nil,
    partnerType = a.partner_type, pageLength = tonumber(a.page_length),
  }
  if a.kind == "queued" then
    -- the queued listing's one filter is query: the others would be ignored by it
    for _, opt in ipairs { "partner", "station", "id", "subject" } do
      if a[opt] then
        fail(nil, EXIT.usage, ("--%s is no filter of the queued listing: use --query, "
          .. "which matches partner, station, ID or subject"):format(opt))
      end
    end
    p.query = a.query
  elseif a.query then
    fail(nil, EXIT.usage, "--query is for queued (use --partner, --station, --id, --subject)")
  else
    p.partnerAS2Id, p.stationAS2Id, p.as2MessageId, p.subject =
      a.partner, a.station, a.id, a.subject
  end
  if a.unread then
    if a.kind ~= "received" then fail(nil, EXIT.usage, "--unread is for received") end
    p.unreadOnly = true
  end
  return p
end

function commands.ls(ctx)
  local a = ctx.args
  local params = list_params(a)
  if a.all then
    local rows = {}
    local it = ctx.client:messages(a.kind, params)
    for m in it do
      if a.json then json_line(m) else rows[#rows + 1] = m end
    end
    check(not it.err or nil, it.err)
    if not a.json then table_out(MESSAGE_COLUMNS, rows) end
    return
  end
  params.pageOffset = tonumber(a.page)
  local page = check(ctx.client:list(a.kind, params))
  if a.json then json_line(page) return end
  table_out(MESSAGE_COLUMNS, page.records or {})
  say(("%d of %d (page %d)"):format(#(page.records or {}), page.totalRecords or 0,
    tonumber(a.page) or 0))
end

function commands.show(ctx)
  local a = ctx.args
  if a.mark_read and a.kind ~= "received" then
    fail(nil, EXIT.usage, "--mark-read is for received")
  end
  local msg = check(ctx.client:get(a.kind, a.id,
    a.mark_read and { markAsRead = true } or nil))
  if a.json then json_line(msg) return end
  local function row(k, v)
    if v ~= nil then stdout:write(("%-24s %s\n"):format(k, tostring(v))) end
  end
  row("as2MessageId", msg.as2MessageId)
  row("persistedTimestamp", iso(msg.persistedTimestamp) .. " UTC")
  for _, k in ipairs { "subject", "receiverId", "senderId", "partnerType", "deliveryStatus",
    "transportStatusReceived", "mdnStatus", "encrypted", "signed", "compressed" } do
    row(k, msg[k])
  end
  if msg.mdnMessage then row("mdnMessage", msg.mdnMessage.content) end
  for i, att in ipairs(type(msg.attachments) == "table" and msg.attachments or {}) do
    -- a gateway may leave out an attachment's size (or name): shown as far as known
    local size = math.tointeger(att.size)
    row(("attachment %d"):format(i - 1), tostring(att.name or "?")
      .. (size and (" (%d bytes)"):format(size) or ""))
  end
end

-- Where a download goes: "-" (stdout), a folder (created when missing) when it must be
-- one (a batch, --all) or is spelt as one (a trailing "/"), else a file or an existing
-- folder, as the library decides. Checked before any transfer (the library checks a
-- file path's folder and an existing file).
local function target(a, folder)
  local to = a.to or "."
  if to == "-" then
    if folder then fail(nil, EXIT.usage, "--to - writes one attachment to stdout, not a batch")
    end
    if a.json then fail(nil, EXIT.usage, "--to - writes the data to stdout: leave out --json")
    end
    return to
  end
  if folder or to:sub(-1) == "/" then
    check(mkdirs(to))
    to = to:match("^(.-)/*$")
    if to == "" then to = "/" end
  end
  return to
end

-- Streams the answer to stdout (`--to -`).
local function to_stdout()
  return function(chunk) stdout:write(chunk) end
end

function commands.download(ctx)
  local a = ctx.args
  if #a.id > 1 then
    if a.kind ~= "received" then fail(nil, EXIT.usage, "a batch of IDs is for received") end
    local dir = target(a, true)
    local results, report = ctx.client:download_batch(a.id,
      { to = dir, markAsRead = a.mark_read, overwrite = a.overwrite })
    check(results, report)
    local code = EXIT.ok
    for _, id in ipairs(a.id) do
      local r = results[id]
      if a.json then
        json_line { as2MessageId = id, paths = r.paths, error = r.err and tostring(r.err) }
      elseif r.err then
        say(id, ": ", tostring(r.err))
      else
        for _, p in ipairs(r.paths) do stdout:write(p, "\n") end
      end
      if r.err then code = BY_KIND[r.err.kind] or EXIT.failure end
    end
    for _, ref in ipairs(report.refused) do
      say("refused zip entry ", ref.entry, ": ", ref.reason)
    end
    return code
  end
  local to = target(a, a.all and a.to ~= "-")
  local opts = { markAsRead = a.mark_read, all = a.all, index = tonumber(a.index),
    overwrite = a.overwrite }
  if to == "-" then opts.sink = to_stdout() else opts.to = to end
  local path = check(ctx.client:download(a.kind, a.id[1], opts))
  if to == "-" then return end
  local paths = { path }
  if type(path) == "table" then paths = path end -- an extracted --all
  if a.json then json_line { paths = paths } return end
  for _, p in ipairs(paths) do stdout:write(p, "\n") end
end

function commands.mdn(ctx)
  local a = ctx.args
  if a.parse then
    local r = check(ctx.client:mdn_report(a.kind, a.id))
    local fields = { "disposition", "error", "warning", "original_message_id", "mic",
      "mic_algorithm", "final_recipient", "original_recipient", "reporting_ua", "text" }
    if a.json then
      local doc = {}
      for _, k in ipairs(fields) do doc[k] = r[k] end
      json_line(doc)
    else
      for _, k in ipairs(fields) do
        if r[k] then stdout:write(("%-20s %s\n"):format(k, (tostring(r[k]):gsub("\r?\n", " ")))) end
      end
    end
    return r.error and EXIT.failure or nil
  end
  local to = target(a)
  local opts = { overwrite = a.overwrite }
  if to == "-" then opts.sink = to_stdout() else opts.to = to end
  local path = check(ctx.client:mdn(a.kind, a.id, opts))
  if to == "-" then return end
  if a.json then json_line { path = path } return end
  stdout:write(path, "\n")
end

local function shell_quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

-- One message of an `inbox` run, as a JSON line and as text: done with its paths, or
-- failed with the error (on stderr).
local function report_message(a, id, m, e)
  if a.json then
    json_line { as2MessageId = id, status = e and "failed" or "done",
      partner = m and m.partner, subject = m and m.subject, paths = m and not e and m.paths or nil,
      error = e and { kind = e.kind, message = e.message } or nil }
  elseif e then
    say("as2g: ", tostring(id), ": ", tostring(e))
  else
    for _, p in ipairs(m.paths) do stdout:write(p, "\n") end
  end
end

-- What retrying cannot fix ends `inbox --watch`: refused credentials, a usage problem,
-- another run holding the folder, Ctrl-C. Anything else (the network, the gateway's
-- 5xx or 429, a full disk) is logged, and the next run comes after a backoff.
local WATCH_ENDS = { auth = true, invalid = true, locked = true, interrupted = true }
local WATCH_BACKOFF_CAP = 300

function commands.inbox(ctx)
  local a = ctx.args
  local handler
  if a.exec then
    -- the command gets the message's files as arguments and its ID in the environment;
    -- a non-zero exit hands the message to it again on the next run. Its output goes to
    -- stderr: stdout is as2g's own (paths, or the --json lines).
    handler = function(message, paths)
      local quoted = {}
      for i, p in ipairs(paths) do quoted[i] = shell_quote(p) end
      -- the handler gets the message, not the account's password
      local cmd = ("env -u AS2G_PASSWORD AS2G_MESSAGE_ID=%s AS2G_PARTNER=%s AS2G_SUBJECT=%s "
        .. "sh -c %s as2g-exec %s 1>&2")
        :format(shell_quote(message.as2MessageId), shell_quote(message.receiverId or ""),
          shell_quote(message.subject or ""), shell_quote(a.exec), table.concat(quoted, " "))
      if core.interrupted() or ctx.interrupted then return false end
      stdout:flush()
      -- Ctrl-C reaches the command (it shares the terminal), while as2g waits with SIGINT
      -- ignored: a command that died of it stops the whole run
      local ok, how, status = os.execute(cmd)
      if (how == "signal" and status == 2) or (how == "exit" and status == 130) then
        ctx.interrupted = true
      end
      return ok == true
    end
  end
  local runs, interval = 0, tonumber(a.interval) or 30
  local code, failures = EXIT.ok, 0
  -- a folder that cannot be made is no transient failure: said at once, watch or not
  check(core.mkdir(a.to))
  while true do
    runs = runs + 1
    local seen, order = {}, {}
    local summary, derr, partial = ctx.client:drain { to = a.to,
      partnerType = a.partner_type, lock_wait = tonumber(a.lock_wait),
      handler = function(message, paths)
        local id = message.as2MessageId
        if not seen[id] then order[#order + 1] = id end
        seen[id] = { paths = paths, partner = message.receiverId, subject = message.subject }
        if handler then return handler(message, paths) end
        return true
      end }
    local s = summary or partial
    local stopped = core.interrupted() or ctx.interrupted
    if s and stopped then
      -- what was done is reported; the rest is left, unfinished, for the next run
      for _, id in ipairs(order) do
        if not s.errors[id] then report_message(a, id, seen[id]) end
      end
      stdout:flush()
      say(("%d new message(s), %d done before the interrupt; the rest is left for the next "
        .. "run"):format(s.messages, s.done))
      return EXIT.interrupted
    elseif s then
      for _, id in ipairs(order) do report_message(a, id, seen[id], s.errors[id]) end
      local failed = {}
      for id in pairs(s.errors) do
        if not seen[id] then failed[#failed + 1] = id end
      end
      table.sort(failed)
      for _, id in ipairs(failed) do report_message(a, id, nil, s.errors[id]) end
      stdout:flush()
      if s.failed > 0 then code = EXIT.failure end
      if not a.json then
        say(("%d new message(s), %d done, %d failed"):format(s.messages, s.done, s.failed))
      end
    end
    local last = not a.watch or (a.max_runs and runs >= tonumber(a.max_runs))
    local delay = math.max(interval, 2)
    if summary or last or WATCH_ENDS[derr.kind] then
      check(summary, derr)
      failures = 0
    else
      failures = failures + 1
      delay = math.min(delay * 2 ^ (failures - 1), math.max(delay, WATCH_BACKOFF_CAP))
      say(("as2g: %s; trying again in %d s"):format(tostring(derr), math.floor(delay)))
    end
    if last then break end
    ctx.client:sleep(delay)
    if core.interrupted() then return EXIT.interrupted end
  end
  return code
end

function commands.wait(ctx)
  local a = ctx.args
  local msg, state, mdn = ctx.client:wait(a.id, { timeout = tonumber(a.timeout) or 300,
    mdn = a.mdn, initial = tonumber(a.initial), partnerType = a.partner_type,
    grace = a.grace })
  return wait_outcome(a, nil, msg, state, mdn)
end

commands["mark-unread"] = function(ctx)
  local code
  for _, id in ipairs(ctx.args.id) do
    local ok, err = ctx.client:mark_unread(id)
    if ctx.args.json then
      json_line { as2MessageId = id, unread = ok ~= nil or nil,
        error = err and { kind = err.kind, message = err.message } or nil }
    elseif ok then
      say("Marked unread: ", id)
    else
      say("as2g: ", id, ": ", tostring(err))
    end
    if not ok then
      code = BY_KIND[err.kind] or EXIT.failure
      if err.kind == "interrupted" then break end
    end
  end
  return code
end

function commands.stop(ctx)
  local ack = check(ctx.client:stop(ctx.args.id))
  if ctx.args.json then json_line { as2MessageId = ctx.args.id, message = ack.message } return end
  say("Stopped retrying ", ctx.args.id)
end

function commands.retry(ctx)
  local ack = check(ctx.client:retry(ctx.args.id))
  if ctx.args.json then json_line { as2MessageId = ctx.args.id, message = ack.message } return end
  say("Retrying ", ctx.args.id)
end

function commands.rm(ctx)
  local a = ctx.args
  local ids = {}
  for _, id in ipairs(a.id) do
    if id == "-" then
      for line in io.stdin:lines() do
        line = line:gsub("^%s+", ""):gsub("%s+$", "")
        if line ~= "" then ids[#ids + 1] = line end
      end
    else
      ids[#ids + 1] = id
    end
  end
  if #ids == 0 then fail(nil, EXIT.usage, "no IDs to delete") end
  local n = check(ctx.client:delete(a.kind, #ids == 1 and ids[1] or ids))
  local code = n < #ids and EXIT.notfound or nil
  if a.json then json_line { deleted = n, of = #ids } return code end
  say(("Deleted %d of %d"):format(n, #ids))
  return code
end

function commands.partners(ctx)
  local list = check(ctx.client:partners(ctx.args.query))
  if ctx.args.json then json_line(json.array(list)) return end
  table_out({
    { "AS2 ID", function(p) return p.as2Identifier end },
    { "NAME", function(p) return p.name end },
    { "TYPE", function(p) return p.partnerType end },
    { "MDN", function(p)
      return p.requestMdn and (p.requestAsyncMdn and "async" or "sync") or "no"
    end },
    { "OUTGOING", function(p) return p.pauseOutgoing and "paused" or "on" end },
  }, list)
end

function commands.stations(ctx)
  local list = check(ctx.client:stations(ctx.args.query))
  if ctx.args.json then json_line(json.array(list)) return end
  table_out({
    { "AS2 ID", function(s) return s.as2Identifier end },
    { "NAME", function(s) return s.name end },
    { "EMAIL", function(s) return s.email end },
  }, list)
end

-- Arguments ----------------------------------------------------------------------------

local KINDS = { "received", "sent", "failed", "queued" }

local function kind_arg(cmd, kinds)
  cmd:argument("kind", "Message kind: " .. table.concat(kinds, ", ") .. ".")
    :choices(kinds)
end

-- Numeric options are checked when parsed (exit 2), not silently replaced by defaults.
local function count(s)
  local n = math.tointeger(tonumber(s))
  if n and n >= 0 then return n end
  return nil, ("a whole number expected, got '%s'"):format(s)
end

local function seconds(s)
  local n = tonumber(s)
  if n and n >= 0 and n < math.huge then return n end
  return nil, ("a number of seconds expected, got '%s'"):format(s)
end

-- An argument that must not be empty (an ID, an AS2 ID, a path): refused as a usage
-- error here rather than raised by the library as misuse.
local function nonempty(what)
  return function(s)
    if s ~= "" then return s end
    return nil, what .. " must not be empty"
  end
end

-- One example per command, shown by `as2g help COMMAND` (inbox has its own epilog).
local EXAMPLES = {
  login = "as2g --account prod login",
  logout = "as2g logout",
  send = 'as2g send ACME-AS2 GLOBEX-AS2 invoice.xml --subject "Invoice 1001" --wait',
  ["send-dir"] = "as2g send-dir ACME-AS2 GLOBEX-AS2 /var/spool/edi/outbox --move-to",
  settle = "as2g settle /var/spool/edi/outbox",
  ls = "as2g ls received --unread --all --json",
  show = "as2g show received '<90766548.41.1573209810390@as2gateway.com>'",
  download = 'as2g download received "$id" --all --to ./in/',
  mdn = 'as2g mdn sent "$id" --to -',
  wait = 'as2g wait "$(as2g send ACME-AS2 GLOBEX-AS2 po.edi)" --mdn',
  stop = 'as2g stop "$id"',
  retry = 'as2g retry "$id"',
  ["mark-unread"] = 'as2g mark-unread "$id"',
  rm = "as2g ls failed --all --json | lua5.4 -e 'for l in io.lines() do "
    .. "print(require(\"cjson\").decode(l).as2MessageId) end' | as2g rm failed -",
  partners = "as2g partners globex",
  stations = "as2g --json stations",
  sandbox = 'eval "$(as2g sandbox start)" && as2g ls received && as2g sandbox stop',
  completion = "as2g completion bash > ~/.local/share/bash-completion/completions/as2g",
  help = "as2g help inbox",
}

local function build_parser(prog)
  local p = argparse(prog, "Command-line client for the AS2 Gateway REST API v1.")
    :epilog(EXIT_HELP)
  p:command_target("command")
  p:add_help_command()
  p:add_complete_command()
  p:flag("--version", "Print the version and exit."):action(function()
    stdout:write(("%s %s\n"):format(prog, as2gateway._VERSION))
    os.exit(EXIT.ok)
  end)
  p:flag("-v --verbose", "Print each request, answer and retry on stderr (also "
    .. "AS2G_DEBUG=1); never a secret.")
  p:option("--account", "Named section of the config file.")
  p:option("--url", "Gateway base URL (default $AS2G_URL).")
  p:option("--username", "Username (default $AS2G_USERNAME).")
  p:option("--ca", "Extra CA certificate file to trust (default $AS2G_CA).")
  p:option("--quota", "Where the account's quota and token are shared: file (default: a "
    .. "state folder under $XDG_STATE_HOME), file:<folder>, redis://host:port, "
    .. "unix:///socket, or off (default $AS2G_QUOTA).")
  p:flag("--json", "Machine-readable output: one JSON document (or one per line).")

  p:command("login", "Check the credentials and keep the token in the state folder (mode "
    .. "0600), for every as2g of this account.")
  p:command("logout", "Forget the kept token (the file backend's).")

  local send = p:command("send", "Send files to a partner as one AS2 message.")
  send:argument("station", "AS2 ID of your station."):convert(nonempty("the station"))
  send:argument("partner", "AS2 ID of the partner."):convert(nonempty("the partner"))
  send:argument("file", "File(s) to send (1 to 10, 10 MB in all)."):args("+")
    :convert(nonempty("a file name"))
  send:option("--subject", "Message subject.")
  send:option("--partner-type", "production (default) or test."):choices { "production", "test" }
  send:option("--profile", "Message submission profile.")
  send:option("--content-type", "MIME type of the file(s) (default: the gateway detects it).")
  send:flag("--wait", "Wait for the final state (prints the ID even when that times out).")
  send:option("--timeout", "With --wait: seconds (default 300)."):convert(seconds)
  send:flag("--mdn", "With --wait: also wait for the MDN, and read it.")
  send:flag("--if-absent", "Send only if the gateway holds no such message (this station, "
    .. "partner, subject and file names and sizes) since --since: after an exit 7.")
  send:option("--since", "With --if-absent: seconds back to search (default 86400).")
    :convert(seconds)
  send:option("--max-processing", "With --if-absent: seconds a send can keep a message out "
    .. "of every listing (default 120)."):convert(seconds)

  local function folder_options(cmd)
    cmd:option("--lock-timeout", "Seconds to wait for another run on the folder "
      .. "(default 0)."):convert(seconds)
    cmd:option("--max-processing", "Seconds a send can keep a message out of every "
      .. "listing, for resolving unknown outcomes (default 120)."):convert(seconds)
  end
  local send_dir = p:command("send-dir", "Send every file of a folder exactly once "
    .. "(a journal in the folder; unknown outcomes resolved before anything is resent).")
  send_dir:argument("station", "AS2 ID of your station.")
  send_dir:argument("partner", "AS2 ID of the partner.")
  send_dir:argument("dir", "The folder (regular, non-hidden files are sent).")
  send_dir:option("--subject", "Message subject.")
  send_dir:option("--partner-type", "production (default) or test.")
    :choices { "production", "test" }
  send_dir:option("--profile", "Message submission profile.")
  send_dir:option("--content-type", "MIME type of every file (default: detected).")
  send_dir:option("--group", "Files per message, 1 to 10 (default 1)."):convert(count)
  send_dir:option("--move-to", "Move each sent file into this folder (alone: DIR/sent).")
    :args("?")
  send_dir:flag("--retry-refused", "Send again files the gateway refused before.")
  folder_options(send_dir)

  local settle = p:command("settle", "Resolve the sends of unknown outcome in a folder's "
    .. "journal (send-dir's first step), sending nothing.")
  settle:argument("dir", "The folder.")
  folder_options(settle)

  local ls = p:command("ls", "List messages: one page, or --all.")
  kind_arg(ls, KINDS)
  ls:flag("--unread", "Received only: unread messages.")
  ls:flag("--all", "Every page (with --json: one message per line).")
  ls:option("--page", "Page number (from 0)."):convert(count)
  ls:option("--page-length", "Messages per page, 1 to 100 (default 10; --all uses 100).")
    :convert(count)
  ls:option("--sort", "Sort column."):choices { "persistedTimestamp", "receiverId",
    "senderId", "subject" }
  ls:mutex(ls:flag("--asc", "Oldest first."), ls:flag("--desc", "Newest first (default)."))
  ls:option("--partner-type", "production (default) or test."):choices { "production", "test" }
  ls:option("--partner", "Partner AS2 ID (not for queued: see --query).")
  ls:option("--station", "Station AS2 ID (not for queued).")
  ls:option("--id", "AS2 message ID (not for queued).")
  ls:option("--subject", "Subject (not for queued).")
  ls:option("--query", "Queued only (its one filter): matches partner, station, ID or "
    .. "subject.")

  local show = p:command("show", "Show one message.")
  kind_arg(show, KINDS)
  show:argument("id", "AS2 message ID."):convert(nonempty("an ID"))
  show:flag("--mark-read", "Received only: mark it read.")

  local download = p:command("download", "Download attachments: one, all, or a batch of IDs.")
  kind_arg(download, { "received", "sent" })
  download:argument("id", "AS2 message ID (several: a batch into --to DIR)."):args("+")
    :convert(nonempty("an ID"))
  download:mutex(download:option("--index", "Attachment index (default 0)."):convert(count),
    download:flag("--all", "Every attachment."))
  download:option("--to", "File or folder (default: the current folder); a trailing /, "
    .. "--all or a batch: a folder, created if missing; - : stdout.")
  download:flag("--mark-read", "Received only: mark read.")
  download:flag("--overwrite", "Replace existing files (default: name (2).ext, or exit 1 "
    .. "for a file path).")

  local mdn = p:command("mdn", "Download the MDN of a message.")
  kind_arg(mdn, { "received", "sent" })
  mdn:argument("id", "AS2 message ID."):convert(nonempty("an ID"))
  mdn:option("--to", "File or folder (default: the current folder); a trailing /: a "
    .. "folder, created if missing; - : stdout.")
  mdn:flag("--overwrite", "Replace an existing file.")
  mdn:flag("--parse", "Print the MDN's disposition, error, MIC, ... (exit 1 for an error MDN).")

  local inbox = p:command("inbox", "Drain unread received messages into a folder, exactly once.")
  inbox:option("--to", "Folder."):args(1):count(1):convert(nonempty("--to"))
  inbox:flag("--watch", "Keep polling.")
  inbox:option("--interval", "Seconds between polls with --watch (default 30).")
    :convert(seconds)
  inbox:option("--max-runs"):hidden(true):convert(count)
  inbox:option("--exec", "Command run per message with its files as arguments; "
    .. "non-zero exit: handed again next run.")
  inbox:option("--partner-type", "production, test or all (default: all)."):choices {
    "production", "test", "all" }
  inbox:option("--lock-wait", "Seconds to wait for another inbox run on the same folder "
    .. "(default 0: exit 8 at once)."):convert(seconds)
  inbox:epilog([[
Every unread received message (of every partner type, unless --partner-type says
otherwise) gets its attachments in TO/<message folder>/. A message is done only when
every attachment its record lists is on disk with the record's size and --exec (if
given) exited 0; anything else is a failure: printed on stderr (a "failed" line with
--json), left unfinished in TO/.as2g-drain.journal and fetched again by the next run.
One run per folder at a time (a lock on TO/.as2g-drain.lock).

Exit: 0 every message done; 1 some message failed (the others are done); 8 another
run holds TO; 3-6 the gateway could not be reached or refused us (nothing was lost).

Example:
  as2g inbox --to ./inbox --exec 'import-edi "$@"' --watch --interval 60]])

  local wait = p:command("wait", "Wait for a sent message's final state.")
  wait:argument("id", "AS2 message ID or the Link of a send."):convert(nonempty("an ID"))
  wait:option("--timeout", "Seconds (default 300)."):convert(seconds)
  wait:option("--initial"):hidden(true):convert(seconds)
  wait:flag("--mdn", "Also wait for the MDN, and read it (an error MDN is not success).")
  wait:option("--partner-type", "production or test (default: learnt from the message).")
    :choices { "production", "test" }
  wait:option("--grace", "Seconds an ID may be in no list before it is not found "
    .. "(default 30)."):convert(seconds)

  p:command("stop", "Stop retrying a queued message."):argument("id", "AS2 message ID.")
    :convert(nonempty("an ID"))
  p:command("retry", "Resume retrying a stopped message."):argument("id", "AS2 message ID.")
    :convert(nonempty("an ID"))
  p:command("mark-unread", "Mark received messages unread again (as before --mark-read).")
    :argument("id", "AS2 message IDs."):args("+"):convert(nonempty("an ID"))

  local rm = p:command("rm", "Delete messages (IDs, or - to read them from stdin).")
  rm:argument("kind", "received, sent, failed, queued or stopped.")
    :choices { "received", "sent", "failed", "queued", "stopped" }
  rm:argument("id", "AS2 message IDs."):args("+"):convert(nonempty("an ID"))

  p:command("partners", "List partners."):argument("query", "Filter."):args("?")
  p:command("stations", "List stations."):argument("query", "Filter."):args("?")

  local sandbox = p:command("sandbox", "Start or stop a local sandbox gateway.")
  sandbox:handle_options(false)
  sandbox:argument("action", "start or stop"):choices { "start", "stop" }
  sandbox:argument("rest", "Options of as2g-sandbox."):args("*")
  for _, cmd in ipairs(p._commands) do -- argparse keeps its commands there
    local example = EXAMPLES[cmd._name]
    if example then cmd:epilog("Example:\n  " .. example) end
  end
  return p
end

local debug_traceback = debug.traceback

-- --verbose: one line per event of the core's log (which never holds a secret).
local function log_event(e)
  local line
  if e.event == "request" then
    line = ("> %s %s (attempt %d)"):format(e.method, e.path, e.attempt or 1)
  elseif e.event == "response" then
    line = ("< %s in %.3f s%s"):format(e.status and tostring(e.status) or "no answer",
      e.duration or 0, e.reason and (" (" .. e.reason .. ")") or "")
  elseif e.event == "retry" then
    line = ("retry in %.1f s (%s%s)"):format(e.delay or 0, tostring(e.reason),
      e.status and (", HTTP " .. e.status) or "")
  elseif e.event == "ratelimit_wait" then
    line = ("rate limit: waiting %.1f s"):format(e.delay or 0)
  else
    line = e.event
  end
  stderr:write("as2g: ", line, "\n")
end

local function sandbox_command(args, bindir)
  local script = bindir .. "/as2g-sandbox"
  local cmd = { shell_quote(script), args.action }
  -- the sandbox's server code is wherever this Lua finds its modules (an installed
  -- tree, LuaRocks' included): said to the script, which cannot ask Lua's paths
  local server = package.searchpath("as2gateway.sandbox.server", package.path)
  if server and not os.getenv("AS2G_SANDBOX_LUA") then
    local dir = server:match("^(.*)/as2gateway/sandbox/server%.lua$")
    if dir then table.insert(cmd, 1, "AS2G_SANDBOX_LUA=" .. shell_quote(dir)) end
  end
  for _, r in ipairs(args.rest or {}) do cmd[#cmd + 1] = shell_quote(r) end
  local ok, _, code = os.execute(table.concat(cmd, " "))
  return ok and EXIT.ok or (code or EXIT.failure)
end

--- Runs the tool; returns the exit code.
function M.main(argv, prog, bindir)
  -- Ctrl-C ends the core's waits with kind "interrupted" instead of killing the process
  -- mid-transfer (or going unnoticed until a transfer ends): see csrc/interrupt.h
  core.trap_interrupts()
  local parser = build_parser(prog or "as2g")
  -- parsed as pparse does, but keeping the parser that failed: a subcommand's usage
  -- error shows that subcommand's usage
  local failed = parser
  local ok, args = pcall(parser._parse, parser, argv, function(which, msg)
    failed = which
    error({ usage = msg }, 0)
  end)
  if not ok then
    if type(args) ~= "table" or not args.usage then error(args, 0) end
    stderr:write(failed:get_usage(), "\n\nError: ", args.usage, "\n")
    return EXIT.usage
  end
  local verbose = args.verbose or (os.getenv("AS2G_DEBUG") or "") ~= ""
  if args.command == "sandbox" then return sandbox_command(args, bindir or ".") end
  local cfg, why = resolve(args)
  if not cfg then
    say("as2g: ", why)
    return EXIT.usage
  end
  if args.command == "logout" then
    commands.logout { args = args, cfg = cfg }
    return EXIT.ok
  end
  local opts = { url = cfg.url, username = cfg.username, cainfo = cfg.ca }
  if verbose then
    for _, k in ipairs { "url", "username", "password", "ca" } do
      if cfg.from[k] then say(("as2g: %s from %s"):format(k, cfg.from[k])) end
    end
    opts.log = log_event
  end
  -- the quota and the token, shared (docs/quota.md): a token another as2g got serves
  -- this one too, without a password
  local backend, folder, code = quota_backend(cfg)
  if not backend and folder then
    say("as2g: ", folder)
    return code
  end
  local quota
  if backend then
    local qopts = folder and { dir = folder } or { url = backend,
      account = core.quota_account(cfg.url, cfg.username) }
    local e
    quota, e = (folder and core.quota_file or core.quota_redis)(qopts)
    if not quota then
      say("as2g: the quota's state folder: ", tostring(e))
      return EXIT.failure
    end
    local token, expiry = quota:token()
    if args.command ~= "login" and token and expiry > (os.time() + 120) * 1000 then
      opts.token, opts.token_expiry = token, expiry
    end
    opts.quota = quota -- the client takes it over
  end
  opts.password = cfg.password
  if not opts.password and (not opts.token or args.command == "login") then
    opts.password = prompt_password(cfg)
    if core.interrupted() then say("as2g: interrupted") return EXIT.interrupted end
    if not opts.password then
      say("as2g: no password: set AS2G_PASSWORD, put it in the config file, or run "
        .. "from a terminal (or `as2g login` first)")
      return EXIT.auth
    end
  end
  if not opts.password then opts.username = nil end
  local finish_bar
  if core.isatty(2) then opts.progress, finish_bar = progress_bar() end
  local created, client = pcall(as2gateway.new, opts)
  if not created and quota then quota:close() end
  if not created then -- a setting the client refuses (an http:// URL, say)
    say("as2g: ", plain(client))
    return EXIT.usage
  end
  local ctx = { args = args, cfg = cfg, client = client, quota = backend }
  local ran, result = xpcall(commands[args.command], function(e)
    if getmetatable(e) == Fail then return e end
    return { internal = e, trace = verbose and debug_traceback(tostring(e), 2) }
  end, ctx)
  if finish_bar then finish_bar() end
  client:close()
  if core.interrupted() or ctx.interrupted then
    -- said in full when there is more to it (a send that may have gone out)
    local e = not ran and getmetatable(result) == Fail and result.err
    say("as2g: ", (e and e.message ~= "interrupted") and tostring(e) or "interrupted")
    return EXIT.interrupted
  end
  if not ran then
    if result.internal then
      -- a bug of as2g's or the library's: said plainly; where it happened only on request
      say("as2g: internal error: ", plain(result.internal))
      if result.trace then say(result.trace) else say("as2g: AS2G_DEBUG=1 shows where") end
      return EXIT.failure
    end
    if result.code == EXIT.usage and result.msg then
      local cmd = parser
      for _, c in ipairs(parser._commands) do
        if c._name == args.command then cmd = c end
      end
      stderr:write(cmd:get_usage(), "\n\nError: ", result.msg, "\n")
      return EXIT.usage
    end
    if result.err then say("as2g: ", tostring(result.err)) end
    if result.msg then say("as2g: ", result.msg) end
    return result.code or (result.err and BY_KIND[result.err.kind]) or EXIT.failure
  end
  return result or EXIT.ok
end

return M
