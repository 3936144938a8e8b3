-- The core's lock and hash helpers: flock between processes, SHA-256 against sha256sum.
local h = require "helpers"
local core = require "as2gateway.core"

-- The interpreter and core of this run, for child processes (busted --run=jit too).
local JIT = rawget(_G, "jit") ~= nil
local LUA = JIT and "luajit" or "lua5.4"
local CPATH = JIT and "./build/luajit/?.so" or "./build/lua54/?.so"
local sh = h.sh

-- Runs `code` in a child Lua with the core loaded as `core`, in the background; returns
-- a file that gets the child's output once it ended.
local function child(code)
  local script, out = h.tmpname(), h.tmpname()
  h.write_file(script, ("package.cpath = %q .. ';' .. package.cpath\n"
    .. "local core = require 'as2gateway.core'\n%s\n"):format(CPATH, code))
  os.execute(("(%s %s > %s.tmp 2>&1; mv %s.tmp %s) &"):format(LUA, h.quote(script),
    h.quote(out), h.quote(out), h.quote(out)))
  return out, script
end

-- Polls until `path` exists (a child's readiness or its end), with a deadline.
local function await(path, seconds)
  local deadline = core.now() + (seconds or 20)
  while core.now() < deadline do
    local d = h.read_file(path)
    if d then return d end
    core.sleep(0.01)
  end
  error("nothing at " .. path .. " after " .. (seconds or 20) .. " s")
end

describe("core.sha256 and core.sha256_file", function()
  local dir
  before_each(function() dir = h.mkdtemp() end)
  after_each(function() h.rmtree(dir) end)

  it("agree with sha256sum on block boundaries and on a large file", function()
    for _, n in ipairs { 0, 1, 3, 55, 56, 63, 64, 65, 119, 120, 127, 128, 1000, 65535,
                         65536, 65537, 3 * 1024 * 1024 + 7 } do
      local path = ("%s/f%d"):format(dir, n)
      assert(os.execute(("head -c %d /dev/urandom > %s"):format(n, h.quote(path))))
      local want = sh("sha256sum " .. h.quote(path)):match("^(%x+)")
      local hex, size = core.sha256_file(path)
      assert.equal(want, hex, "size " .. n)
      assert.equal(n, size)
      assert.equal(math.type and "integer" or "number", math.type and math.type(size) or "number")
      assert.equal(want, core.sha256(h.read_file(path)), "size " .. n)
    end
    -- the FIPS 180-2 test vectors
    assert.equal("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
      core.sha256("abc"))
    assert.equal("248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1",
      core.sha256("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"))
  end)

  it("refuses what is not a readable regular file, and paths with NUL", function()
    local hex, err = core.sha256_file(dir .. "/missing")
    assert.is_nil(hex)
    assert.equal("io", err.kind)
    hex, err = core.sha256_file(dir)
    assert.is_nil(hex)
    assert.equal("io", err.kind)
    h.write_file(dir .. "/real", "x")
    assert(os.execute("ln -s real " .. h.quote(dir .. "/link")))
    hex, err = core.sha256_file(dir .. "/link")
    assert.is_nil(hex)
    assert.equal("io", err.kind)
    assert.has_error(function() core.sha256_file(dir .. "/real\0.txt") end)
  end)
end)

describe("core.lock", function()
  local dir, path
  before_each(function()
    dir = h.mkdtemp()
    path = dir .. "/.lock"
  end)
  after_each(function() h.rmtree(dir) end)

  it("keeps a second process out, names the holder, and lets it in once released", function()
    local lock = assert(core.lock(path))
    assert.is_true(lock:held())
    assert.matches("held", tostring(lock))
    local out = child(([[
      local l, err = core.lock(%q)
      print(l and "got" or err.kind, err and err.message or "")
    ]]):format(path))
    local got = await(out)
    assert.matches("^locked", got)
    assert.matches("pid %d+", got)
    -- a waiting process gets the lock as soon as it is released
    local ready = h.tmpname()
    out = child(([[
      local t0 = core.now()
      io.open(%q, "w"):close()
      local l, err = core.lock(%q, { timeout = 30 })
      print(l and "got" or err.kind, core.now() - t0)
    ]]):format(ready, path))
    await(ready)
    core.sleep(0.2)
    lock:close()
    assert.is_false(lock:held())
    got = await(out)
    assert.matches("^got", got)
    os.remove(ready)
  end)

  it("times out with kind locked after the timeout, not before", function()
    local lock = assert(core.lock(path))
    local t0 = core.now()
    local again, err = core.lock(path, { timeout = 0.3 })
    local waited = core.now() - t0
    assert.is_nil(again)
    assert.equal("locked", err.kind)
    assert.is_true(waited >= 0.29, ("gave up after %.3f s"):format(waited))
    -- within one process too: each lock is its own open file
    lock:close()
    assert(core.lock(path, { timeout = 0 })):close()
  end)

  it("is released by the kernel when the holder is SIGKILLed", function()
    local ready = h.tmpname()
    local out = child(([[
      local l = assert(core.lock(%q))
      io.open(%q, "w"):close()
      core.sleep(60)
    ]]):format(path, ready))
    local pid = await(ready) and sh("cat " .. h.quote(path)):match("(%d+)")
    assert.is_string(pid)
    assert.is_nil((core.lock(path)))
    os.execute("kill -KILL " .. pid)
    await(out)
    local lock = assert(core.lock(path, { timeout = 10 }))
    lock:close()
    os.remove(ready)
  end)

  it("shares shared locks and keeps an exclusive one waiting", function()
    local a = assert(core.lock(path, { exclusive = false }))
    local b = assert(core.lock(path, { exclusive = false }))
    local x, err = core.lock(path, { timeout = 0 })
    assert.is_nil(x)
    assert.equal("locked", err.kind)
    a:close()
    b:close()
    assert(core.lock(path)):close()
  end)

  it("is not inherited by commands run while it is held (close-on-exec)", function()
    -- a holder starts a long command and dies: the command must not keep the lock
    local ready, sleeper = h.tmpname(), h.tmpname()
    local out = child(([[
      local l = assert(core.lock(%q))
      os.execute("sleep 30 >/dev/null 2>&1 & echo $! > %s")
      io.open(%q, "w"):close()
      core.sleep(60)
    ]]):format(path, sleeper, ready))
    await(ready)
    local pid = h.read_file(path):match("(%d+)")
    os.execute("kill -KILL " .. pid)
    await(out)
    local again = core.lock(path, { timeout = 0 })
    os.execute("kill " .. h.read_file(sleeper):match("%d+"))
    assert.is_not_nil(again)
    again:close()
    os.remove(ready)
    os.remove(sleeper)
  end)

  it("releases on close (idempotent), on garbage collection and on __close", function()
    local lock = assert(core.lock(path))
    lock:close()
    lock:close()
    assert.is_false(lock:held())
    -- a lock nobody refers to any more
    assert.is_table(getmetatable((assert(core.lock(path)))))
    collectgarbage()
    collectgarbage()
    assert(core.lock(path, { timeout = 0 })):close()
    if _VERSION == "Lua 5.4" then
      assert(load([[
        local core, path = ...
        do local l <close> = assert(core.lock(path)) end
        assert(core.lock(path, { timeout = 0 })):close()
      ]]))(core, path)
    end
  end)

  it("raises on misuse and reports a lock file it cannot create as io", function()
    assert.has_error(function() core.lock(path, { bogus = true }) end)
    assert.has_error(function() core.lock(path, { timeout = -1 }) end)
    assert.has_error(function() core.lock(path, { exclusive = "yes" }) end)
    assert.has_error(function() core.lock(dir .. "/.lo\0ck") end)
    local lock, err = core.lock(dir .. "/missing/folder/.lock")
    assert.is_nil(lock)
    assert.equal("io", err.kind)
  end)
end)

describe("the names files get (csrc/names.c, the one room that decides)", function()
  it("numbers a taken name before its extension, within NAME_MAX, on a UTF-8 boundary",
    function()
      assert.equal("invoice.xml", core.name_variant("invoice.xml", 1))
      assert.equal("invoice (2).xml", core.name_variant("invoice.xml", 2))
      assert.equal("a.b (3).c", core.name_variant("a.b.c", 3))
      -- no extension: a name without a dot, a leading one, a trailing one
      assert.equal("README (2)", core.name_variant("README", 2))
      assert.equal("_x (2)", core.name_variant("_x", 2))
      assert.equal("a. (2)", core.name_variant("a.", 2))
      -- 252 bytes: the suffix would make 257, so the stem gives way, by whole characters
      local long = ("é"):rep(124) .. ".txt"
      assert.equal(255, core.NAME_MAX)
      assert.equal(("é"):rep(123) .. " (12).txt", core.name_variant(long, 12))
      assert.equal(("é"):rep(122) .. " (1000).txt", core.name_variant(long, 1000))
    end)

  it("names the Lua layer's temporary files, and knows every one a download leaves",
    function()
      local tmp = core.temp_path("/some/dir", "batch", ".zip")
      assert.matches("^/some/dir/%.as2g%-batch%-%x+%.zip$", tmp)
      assert.not_equal(tmp, core.temp_path("/some/dir", "batch", ".zip"))
      assert.has_error(function() core.temp_path("/d", "Not/a word") end)
      for _, name in ipairs { ".slow.bin.Ab12Cd.part", ".as2g-download.XyZ123.part",
                              tmp:match("[^/]+$"), ".as2g-all-0f1e.zip", ".as2g-error-9a" } do
        assert.is_true(core.is_leftover(name), name)
      end
      -- finals, journals, locks and the journal's own temporary file are no leftovers
      for _, name in ipairs { "x.part", ".part", ".as2g-drain.journal", ".as2g-send.lock",
                              ".as2g-send.journal", ".as2g-batch-.zip", ".as2g-batch-xyz.zip",
                              core.temp_path("/d", "journal", ".tmp"):match("[^/]+$") } do
        assert.is_false(core.is_leftover(name), name)
      end
    end)
end)
