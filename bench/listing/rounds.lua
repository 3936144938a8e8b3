-- The listing benchmark's rounds (run by bench/listing/run.sh, which starts the
-- nginx and builds the peers). Every runner is a fresh process that times its own
-- loop after a warm-up (connection and TLS set up), so process start-up is not
-- counted. A round runs every runner of a group once, in an order rotated from round
-- to round; the table gives medians over the rounds and, for each comparison, the
-- median of the per-round ratios (paired: both sides measured in the same round).
-- Instruction counts (callgrind) come last: repeatable on a noisy machine.
local DIR, CA = os.getenv("BENCH_DIR"), os.getenv("BENCH_CA")
local HTTP, HTTPS = os.getenv("BENCH_HTTP"), os.getenv("BENCH_HTTPS")
local ROUNDS = tonumber(os.getenv("BENCH_ROUNDS") or "9")
local LISTINGS, DECODES, TRANSFERS = 300, 1000, 20
local PAGE, BLOB = DIR .. "/www/page.json", DIR .. "/www/blob.bin"
-- BENCH_ONLY=transfers (or listings, decode, callgrind; comma-separated) runs a part
local ONLY = os.getenv("BENCH_ONLY")
local function part(name) return not ONLY or ONLY:find(name, 1, true) end

local function q(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

local PATHS = "env LUA_PATH='./bench/?.lua;./lua/?.lua;./lua/?/init.lua;;' "
local OURS = {
  lua54 = PATHS .. "LUA_CPATH='./build/lua54/?.so;;' lua5.4 bench/listing/client.lua",
  luajit = PATHS .. "LUA_CPATH='./build/luajit/?.so;;' luajit bench/listing/client.lua",
}
local PEER = { lua54 = q(DIR .. "/peer-lua54"), luajit = q(DIR .. "/peer-luajit") }
local PY = "python3 bench/listing/peer.py"

local function run(cmd)
  local p = assert(io.popen(cmd .. " 2>&1"))
  local out = p:read("a")
  local ok = p:close()
  local a, b = out:match("^%s*([%d.e+-]+)%s*([%d-]*)%s*$")
  if not ok or not tonumber(a) then error("runner failed: " .. cmd .. "\n" .. out) end
  return tonumber(a), tonumber(b)
end

-- curl's own per-transfer times (-w), warm-up excluded: N+1 transfers in one process
local function curl_times(args, url, n)
  local cmd = ("curl -sS -o /dev/null -w '%%{time_total}\\n' -H 'Authorization: bench-token' "
    .. "--cacert %s %s %s"):format(q(CA), args, q(url .. "?r=[0-" .. n .. "]"))
  local p = assert(io.popen(cmd))
  local times = {}
  for line in p:lines() do times[#times + 1] = tonumber(line) end
  assert(p:close() and #times == n + 1, "curl failed: " .. cmd)
  local sum = 0
  for i = 2, #times do sum = sum + times[i] end
  return sum / n
end

local function median(t)
  local s = {}
  for i, v in ipairs(t) do s[i] = v end
  table.sort(s)
  local n = #s
  return n % 2 == 1 and s[(n + 1) / 2] or (s[n / 2] + s[n / 2 + 1]) / 2
end

-- Runs the group's runners ROUNDS times, interleaved; returns name -> list of seconds
-- (and of the runner's second figure, when it gives one).
local function rounds(group)
  local secs, extra = {}, {}
  for _, r in ipairs(group) do secs[r.name], extra[r.name] = {}, {} end
  for round = 1, ROUNDS do
    for i = 1, #group do
      local r = group[(i + round - 2) % #group + 1]
      local s, x = r.run()
      table.insert(secs[r.name], s)
      if x then table.insert(extra[r.name], x) end
    end
    io.stderr:write(("  round %d/%d\n"):format(round, ROUNDS))
  end
  return secs, extra
end

-- median over the rounds of a's speed over b's (b's seconds / a's seconds)
local function ratio(secs, a, b)
  local r = {}
  for i = 1, #secs[a] do r[i] = secs[b][i] / secs[a][i] end
  table.sort(r)
  return median(r), r[1], r[#r]
end

local out = {}
local function say(fmt, ...) out[#out + 1] = fmt:format(...) print(out[#out]) end

-- A runner: a name and its command line (format and arguments).
local function R(name, fmt, ...)
  local line = fmt:format(...)
  return { name = name, run = function() return run(line) end }
end

local function listing_group(scheme, base)
  local url = q(base .. "/message/received?pageLength=100")
  local ca = scheme == "https" and (" " .. q(CA)) or ""
  local b = q(base)
  return {
    R("ours, Lua 5.4", "%s list %s %d%s", OURS.lua54, b, LISTINGS, ca),
    R("C libcurl + cjson, Lua 5.4", "%s list %s %d%s", PEER.lua54, url, LISTINGS, ca),
    R("Python http.client + json", "%s list %s %d%s", PY, url, LISTINGS, ca),
    R("ours, LuaJIT", "%s list %s %d%s", OURS.luajit, b, LISTINGS, ca),
    R("C libcurl + cjson, LuaJIT", "%s list %s %d%s", PEER.luajit, url, LISTINGS, ca),
  }
end

local f = io.open(PAGE, "rb")
local page_bytes = #f:read("a")
f:close()
say("Listing benchmark: one nginx on loopback, a fixed page of 100 records (%d bytes),", page_bytes)
say("one connection per runner, %d rounds (order rotated), %d listings / %d decodes / "
  .. "%d transfers per runner and round.", ROUNDS, LISTINGS, DECODES, TRANSFERS)
say("")

local function listing_table(scheme, base)
  io.stderr:write(("listings over %s\n"):format(scheme:upper()))
  local group = listing_group(scheme, base)
  local secs = rounds(group)
  say("| listing over %s | median µs per listing | listings/s |", scheme:upper())
  say("|---|---:|---:|")
  for _, r in ipairs(group) do
    local m = median(secs[r.name])
    say("| %s | %.0f | %.0f |", r.name, m * 1e6, 1 / m)
  end
  say("")
  say("| %s: paired per-round ratio (throughput) | median | min | max | goal |", scheme:upper())
  say("|---|---:|---:|---:|---:|")
  for _, c in ipairs {
    { "ours, Lua 5.4", "C libcurl + cjson, Lua 5.4", "≥ 1.15" },
    { "ours, Lua 5.4", "Python http.client + json", "≥ 1.0" },
    { "ours, LuaJIT", "C libcurl + cjson, LuaJIT", "≥ 1.15" },
  } do
    local m, lo, hi = ratio(secs, c[1], c[2])
    say("| %s / %s | %.2f | %.2f | %.2f | %s |", c[1], c[2], m, lo, hi, c[3])
  end
  say("")
end

if part("listings") then
  listing_table("http", HTTP)
  listing_table("https", HTTPS)
end

if part("decode") then
  io.stderr:write("decode only\n")
  local page = q(PAGE)
  local dgroup = {
    R("ljson (ours), Lua 5.4", "%s decode %s %d", OURS.lua54, page, DECODES),
    R("lua-cjson + the old walk, Lua 5.4", "%s decode-old %s %d", OURS.lua54, page, DECODES),
    R("lua-cjson, Lua 5.4", "%s decode %s %d", PEER.lua54, page, DECODES),
    R("Python json", "%s decode %s %d", PY, page, DECODES),
    R("ljson (ours), LuaJIT", "%s decode %s %d", OURS.luajit, page, DECODES),
    R("lua-cjson, LuaJIT", "%s decode %s %d", PEER.luajit, page, DECODES),
  }
  local dsecs = rounds(dgroup)
  say("| decode only (the page, in memory) | median µs per decode |")
  say("|---|---:|")
  for _, r in ipairs(dgroup) do say("| %s | %.0f |", r.name, median(dsecs[r.name]) * 1e6) end
  say("")
end

local function transfer_table(scheme, base)
  io.stderr:write(("transfers over %s\n"):format(scheme:upper()))
  local ca = scheme == "https" and (" " .. q(CA)) or ""
  local up_url = base .. "/message/ACME-AS2/GLOBEX-AS2"
  local down_url = base .. "/message/received/bench-1/attachments"
  local b, blob, n = q(base), q(BLOB), TRANSFERS
  local curl_up = ("-X POST -H 'Name: blob.bin' -H 'Content-Type: application/octet-stream' "
    .. "-T %s"):format(blob)
  local group = {
    R("upload: ours, Lua 5.4", "%s upload %s %s %d%s", OURS.lua54, b, blob, n, ca),
    R("upload: ours, LuaJIT", "%s upload %s %s %d%s", OURS.luajit, b, blob, n, ca),
    R("upload: C libcurl", "%s upload %s %s %d%s", PEER.lua54, q(up_url), blob, n, ca),
    { name = "upload: curl -T", run = function() return curl_times(curl_up, up_url, n) end },
    R("download: ours, Lua 5.4", "%s download %s %d%s", OURS.lua54, b, n, ca),
    R("download: ours, LuaJIT", "%s download %s %d%s", OURS.luajit, b, n, ca),
    R("download: C libcurl", "%s download %s %d%s", PEER.lua54, q(down_url), n, ca),
    { name = "download: curl", run = function() return curl_times("", down_url, n) end },
  }
  local secs, extra = rounds(group)
  say("| 10 MiB over %s | median ms | MiB/s | peak RSS growth |", scheme:upper())
  say("|---|---:|---:|---:|")
  for _, r in ipairs(group) do
    local m = median(secs[r.name])
    local x = #extra[r.name] > 0
      and ("%.2f MB"):format(math.max(table.unpack(extra[r.name])) / 1024) or ""
    say("| %s | %.1f | %.0f | %s |", r.name, m * 1e3, 10 / m, x)
  end
  say("")
  say("| %s: paired per-round ratio (speed) | median | min | max | goal |", scheme:upper())
  say("|---|---:|---:|---:|---:|")
  for _, dir in ipairs { "upload", "download" } do
    for _, peer in ipairs { "C libcurl", dir == "upload" and "curl -T" or "curl" } do
      for _, ours in ipairs { "ours, Lua 5.4", "ours, LuaJIT" } do
        local m, lo, hi = ratio(secs, dir .. ": " .. ours, dir .. ": " .. peer)
        say("| %s: %s / %s | %.2f | %.2f | %.2f | %s |", dir, ours, peer, m, lo, hi,
          peer == "C libcurl" and "≥ 0.95" or "")
      end
    end
  end
  say("")
end

if part("transfers") then
  transfer_table("http", HTTP)
  transfer_table("https", HTTPS)
end

-- Instructions per listing: callgrind over 10 and over 40 listings, the difference
-- divided by 30 (start-up and warm-up cancel out).
if part("callgrind") and os.execute("command -v valgrind >/dev/null") then
  io.stderr:write("instruction counts (callgrind)\n")
  local function instructions(command)
    -- through env(1) into the interpreter: the count is the last program's
    local p = assert(io.popen("valgrind --tool=callgrind --trace-children=yes "
      .. "--callgrind-out-file=/dev/null " .. command .. " 2>&1 >/dev/null"))
    local text = p:read("a")
    p:close()
    local refs
    for r in text:gmatch("refs:%s+([%d,]+)") do refs = r end
    assert(refs, "callgrind failed: " .. command .. "\n" .. text)
    return tonumber((refs:gsub(",", "")))
  end
  say("| instructions per listing (callgrind) | HTTP | HTTPS |")
  say("|---|---:|---:|")
  for _, r in ipairs {
    { "ours, Lua 5.4", OURS.lua54, false },
    { "C libcurl + cjson, Lua 5.4", PEER.lua54, true },
    { "Python http.client + json", PY, true },
    { "ours, LuaJIT", OURS.luajit, false },
    { "C libcurl + cjson, LuaJIT", PEER.luajit, true },
  } do
    local cells = {}
    for _, scheme in ipairs { "http", "https" } do
      local base = scheme == "http" and HTTP or HTTPS
      local target = r[3] and (base .. "/message/received?pageLength=100") or base
      local ca = scheme == "https" and (" " .. q(CA)) or ""
      local function at(n)
        return instructions(("%s list %s %d%s"):format(r[2], q(target), n, ca))
      end
      cells[#cells + 1] = ("%.2f M"):format((at(40) - at(10)) / 30 / 1e6)
    end
    say("| %s | %s | %s |", r[1], cells[1], cells[2])
  end
  say("")
  -- Instructions per 10 MiB transfer in user space (the kernel's copies are not
  -- counted, and are the same for every runner): over 2 and 6 transfers, the
  -- difference divided by 4.
  say("| instructions per 10 MiB transfer (callgrind) | HTTP | HTTPS | more than C, HTTP | HTTPS |")
  say("|---|---:|---:|---:|---:|")
  local blob = q(BLOB)
  local function transfer_counts(dir, ours)
    local cells = {}
    for _, scheme in ipairs { "http", "https" } do
      local base = scheme == "http" and HTTP or HTTPS
      local ca = scheme == "https" and (" " .. q(CA)) or ""
      local cmd
      if ours then
        cmd = dir == "upload" and ("%s upload %s %s %%d%s"):format(ours, q(base), blob, ca)
          or ("%s download %s %%d%s"):format(ours, q(base), ca)
      else
        cmd = dir == "upload"
          and ("%s upload %s %s %%d%s"):format(PEER.lua54,
            q(base .. "/message/ACME-AS2/GLOBEX-AS2"), blob, ca)
          or ("%s download %s %%d%s"):format(PEER.lua54,
            q(base .. "/message/received/bench-1/attachments"), ca)
      end
      cells[scheme] = (instructions(cmd:format(6)) - instructions(cmd:format(2))) / 4
    end
    return cells
  end
  for _, dir in ipairs { "upload", "download" } do
    local c = transfer_counts(dir, nil)
    say("| %s: C libcurl | %.1f M | %.1f M | | |", dir, c.http / 1e6, c.https / 1e6)
    for _, r in ipairs { { "ours, Lua 5.4", OURS.lua54 }, { "ours, LuaJIT", OURS.luajit } } do
      local o = transfer_counts(dir, r[2])
      say("| %s: %s | %.1f M | %.1f M | %+.1f M | %+.1f M |", dir, r[1], o.http / 1e6,
        o.https / 1e6, (o.http - c.http) / 1e6, (o.https - c.https) / 1e6)
    end
  end
  say("")
end
