-- Hostile names and archives: nothing lands outside the target folder, replaces a file, or eats memory or disk.
local h = require "helpers"
local core = require "as2gateway.core"
local as2gateway = require "as2gateway"

local folder_of = require("as2gateway.batch").folder_of

local BATCH_PATH = "/message/received/batch/attachments"

local fault = h.fault

local function mkdir(path)
  assert(os.execute("mkdir -p " .. h.quote(path)))
end

local function mkdtemp()
  local d = h.tmpname()
  mkdir(d)
  return d
end

local rmtree = h.rmtree

local lines = h.lines

-- The entries of one folder, hidden ones included.
local function ls(dir)
  return lines("ls -A " .. h.quote(dir) .. " 2>/dev/null")
end

-- Everything under dir as "path|type|size" (type f, d, l, ...), paths relative to dir.
local function tree(dir)
  return lines("cd " .. h.quote(dir) .. " && find . -mindepth 1 -printf '%P|%y|%s\\n'")
end

local function symlinks(dir)
  return lines("find " .. h.quote(dir) .. " -type l")
end

local function basename(path) return path:match("[^/]+$") end
local function dirname(path) return path:match("^(.*)/[^/]*$") end

-- A name this library may write: a plain, visible, bounded file name.
local function assert_plain_name(name)
  assert.is_true(#name > 0 and #name <= 255, "length " .. #name)
  assert.is_nil(name:find("/", 1, true), name)
  assert.is_nil(name:find("[%z\1-\31\127]"), ("control byte in %q"):format(name))
  assert.are_not.equal(".", name:sub(1, 1), name)
  assert.is_truthy(utf8.len(name), ("cut inside a UTF-8 sequence: %q"):format(name))
end

local zipfile = require "zipfile"
local make_zip = zipfile.make
local SYMLINK, DIRECTORY = zipfile.SYMLINK, zipfile.DIRECTORY

-- A real zip bomb made by the zip command: `bytes` zeros deflated, as "<id>/f".
-- The file is sparse: building it costs no disk.
local bombs = {}
local function bomb(id, bytes)
  local key = id .. "|" .. bytes
  if bombs[key] then return bombs[key] end
  local d = mkdtemp()
  mkdir(d .. "/" .. id)
  assert(os.execute(("cd %s && truncate -s %d %s && zip -q -9 bomb.zip %s"):format(h.quote(d),
    bytes, h.quote(id .. "/f"), h.quote(id .. "/f"))))
  bombs[key] = assert(h.read_file(d .. "/bomb.zip"))
  rmtree(d)
  return bombs[key]
end

-- The same archive with its one entry's declared size replaced by `size`.
local function lie_about_size(zip, size)
  local eocd = assert(zip:find("PK\5\6", 1, true))
  local central = string.unpack("<I4", zip, eocd + 16) + 1
  local local_head = string.unpack("<I4", zip, central + 42) + 1
  local function patch(s, at)
    return s:sub(1, at - 1) .. string.pack("<I4", size) .. s:sub(at + 4)
  end
  return patch(patch(zip, central + 24), local_head + 22)
end

-- The next batch request gets these bytes as its 200 answer.
local function serve_zip(bytes)
  fault { path = BATCH_PATH, method = "POST", status = 200, body_base64 = h.b64(bytes),
    content_type = "application/octet-stream" }
end

local function contents(paths)
  local out = {}
  for _, p in ipairs(paths) do out[#out + 1] = h.read_file(p) end
  table.sort(out)
  return out
end

describe("hostile names", function()
  local base, to, c, passwd

  before_each(function()
    h.reset()
    -- the target sits two levels down, so that "../../x" from it lands inside `base`
    base = mkdtemp()
    to = base .. "/a/b/target"
    mkdir(to)
    c = as2gateway.new(h.core_options())
    passwd = h.read_file("/etc/passwd")
  end)

  after_each(function()
    c:close()
    rmtree(base)
    assert.are.equal(passwd, h.read_file("/etc/passwd"))
  end)

  -- Nothing beside the target folder, nothing hidden, no link, under `base`; `extra`
  -- lists what the test itself put there.
  local function only_in_target(extra)
    local allowed = { ["a|d"] = true, ["a/b|d"] = true, ["a/b/target|d"] = true }
    for _, e in ipairs(extra or {}) do allowed[e] = true end
    for _, entry in ipairs(tree(base)) do
      local path, kind = entry:match("^(.-)|(%a)|")
      if not allowed[path .. "|" .. kind] then
        assert.matches("^a/b/target/", path, "written outside the target: " .. entry)
        assert.are.equal("f", kind == "d" and "f" or kind, "not a plain file: " .. entry)
        assert.is_nil(path:find("/%."), "a hidden name: " .. entry)
      end
    end
  end

  describe("from Content-Disposition", function()
    local id

    before_each(function()
      id = h.inbound { attachments = { { name = "plain.txt", data = h.b64("the payload") } } }
    end)

    local function download(disposition)
      fault { path = "/message/received/" .. h.escape(id) .. "/attachments/0",
        headers = { ["Content-Disposition"] = disposition } }
      return c:download("received", id, { index = 0, to = to })
    end

    local cases = {
      { "../../x", 'attachment; filename="../../x"' },
      { "/etc/passwd", 'attachment; filename="/etc/passwd"' },
      { "a\\..\\b", 'attachment; filename="a\\\\..\\\\b"' },
      { "../", "attachment; filename*=UTF-8''%2e%2e%2f" },
      { "../../a/x", "attachment; filename*=UTF-8''%2e%2e%2f%2e%2e%2fa%2fx" },
      { "a\0b\r\nc\n.txt", "attachment; filename*=UTF-8''a%00b%0D%0Ac%0A.txt" },
      { "..", 'attachment; filename=".."' },
      { ".bashrc", 'attachment; filename=".bashrc"' },
      { 'x"; filename="../../y', 'attachment; filename="x\\"; filename=\\"../../y"' },
      { string.rep("L", 400) .. ".txt",
        'attachment; filename="' .. string.rep("L", 400) .. '.txt"' },
      { string.rep("\195\169", 200) .. ".txt",
        "attachment; filename*=UTF-8''" .. string.rep("%C3%A9", 200) .. ".txt" },
      { "attachment", "attachment" }, -- no name at all: the fallback
    }

    for _, case in ipairs(cases) do
      local raw, disposition = case[1], case[2]
      it(("stores %q inside the folder under a sanitised name, replacing nothing"):format(
        raw:sub(1, 40)), function()
        local expected = core.sanitize_filename(raw)
        assert_plain_name(expected)
        -- a file of that name is already there
        h.write_file(to .. "/" .. expected, "old")
        local first, err = download(disposition)
        assert.is_nil(err)
        local second
        second, err = download(disposition)
        assert.is_nil(err)
        assert.are_not.equal(first, second)
        local stem = expected:match("^(.+)%.[^.]+$") or expected
        for _, p in ipairs { first, second } do
          assert.are.equal(to, dirname(p))
          local name = basename(p)
          assert_plain_name(name)
          assert.are_not.equal(expected, name)
          local n = math.min(#stem, 200)
          assert.are.equal(stem:sub(1, n), name:sub(1, n))
          assert.are.equal("the payload", h.read_file(p))
        end
        assert.are.equal("old", h.read_file(to .. "/" .. expected))
        local want = { expected, basename(first), basename(second) }
        table.sort(want)
        assert.are.same(want, ls(to))
        only_in_target()
      end)
    end

    it("does not write through a link that has the sanitised name", function()
      h.write_file(base .. "/outside.txt", "outside")
      local expected = core.sanitize_filename("../../x")
      assert(os.execute(("ln -s %s %s"):format(h.quote(base .. "/outside.txt"),
        h.quote(to .. "/" .. expected))))
      local path, err = download('attachment; filename="../../x"')
      assert.is_nil(err)
      assert.are_not.equal(to .. "/" .. expected, path)
      assert.are.equal("the payload", h.read_file(path))
      assert.are.equal("outside", h.read_file(base .. "/outside.txt"))
      assert.are.same({ to .. "/" .. expected }, symlinks(base))
    end)
  end)

  describe("of attachments in a batch zip", function()
    -- every attachment's bytes tell which one it is
    local names = { "a\0b.txt", "c\r\nd.txt", "../../x", "/etc/passwd", "a\\..\\b",
      "%2e%2e%2fx", string.rep("L", 1000) .. ".txt", "dup.txt", "dup.txt", "..", ".",
      "x/../../y", "\n", ".hidden", "C:\\edi\\out\\INV.edi" }

    local function inbound()
      local atts, kept = {}, {}
      for i, n in ipairs(names) do
        local data = ("attachment %02d"):format(i)
        atts[i] = { name = n, data = h.b64(data) }
        kept[#kept + 1] = data
      end
      table.sort(kept)
      return h.inbound { attachments = atts }, kept
    end

    it("are stored in the message's folder only, every one under a plain name of its own",
      function()
        local id, kept = inbound()
        local results, report = c:download_batch({ id }, { to = to })
        assert.is_table(results)
        local r = results[id]
        assert.is_nil(r.err)
        local folder = to .. "/" .. folder_of(id)
        assert.are.equal(folder, r.folder)
        assert.are.same({ folder_of(id) }, ls(to))
        -- a name that carries a path is a name: nothing is refused, nothing lost
        assert.are.same({}, report.refused)
        assert.are.equal(#kept, #r.paths)
        assert.are.same(kept, contents(r.paths))
        assert.are.equal(#kept, #ls(folder))
        for _, p in ipairs(r.paths) do
          assert.are.equal(folder, dirname(p))
          assert_plain_name(basename(p))
        end
        only_in_target()
      end)

    it("are stored the same way from a message's /all zip", function()
      local id, kept = inbound()
      local paths, err = c:download("received", id, { all = true, to = to })
      assert.is_nil(err)
      assert.are.equal(#kept, #paths)
      assert.are.same(kept, contents(paths))
      for _, p in ipairs(paths) do
        assert.are.equal(to, dirname(p))
        assert_plain_name(basename(p))
      end
      assert.are.equal(#kept, #ls(to))
      only_in_target()
    end)
  end)

  describe("in a crafted batch zip", function()
    local id = "<crafted@example.com>"

    local function fetch()
      local results, report = c:download_batch({ id }, { to = to })
      assert.is_table(results)
      return results[id], report.refused, to .. "/" .. folder_of(id)
    end

    it("refuses entries outside the message's folder and links, and keeps the rest as names",
      function()
        mkdir(base .. "/outside")
        serve_zip(make_zip {
          { name = id .. "/ok.txt", data = "ok" },
          { name = "../../x", data = "traversal" },
          { name = "/etc/passwd", data = "root::0:0::/:/bin/sh\n" },
          { name = base .. "/a/abs", data = "absolute" },
          { name = id .. "/../../x", data = "traversal inside" },
          { name = id .. "/..\\..\\x", data = "backslashes" },
          { name = "<other@example.com>/o.txt", data = "another message" },
          { name = id .. "/sub/deep.txt", data = "nested" },
          { name = id .. "/sub/", mode = DIRECTORY },
          { name = id .. "/link", data = base .. "/outside", mode = SYMLINK },
          { name = id .. "/link/through.txt", data = "through the link" },
          { name = id .. "/passwd", data = "/etc/passwd", mode = SYMLINK },
          { name = id .. "/ok.txt", data = "ok again" },
          { name = id .. "/cr\r\nlf\0nul", data = "control" },
          { name = id .. "/" .. string.rep("z", 600), data = "long" },
          { name = id .. "/..", data = "dots" },
        })
        local r, refused, folder = fetch()
        assert.is_nil(r.err)
        local reasons = {}
        for _, e in ipairs(refused) do reasons[e.entry] = e.reason end
        for _, name in ipairs { "../../x", "/etc/passwd", base .. "/a/abs",
          "<other@example.com>/o.txt", id .. "/link", id .. "/passwd" } do
          assert.is_string(reasons[name], "not refused: " .. name)
        end
        assert.matches("link", reasons[id .. "/link"])
        -- inside the folder, a name with "/", "\\" or ".." is a name: stored as a plain one
        assert.are.same({ "backslashes", "control", "dots", "long", "nested", "ok", "ok again",
          "through the link", "traversal inside" }, contents(r.paths))
        for _, p in ipairs(r.paths) do
          assert.are.equal(folder, dirname(p))
          assert_plain_name(basename(p))
        end
        assert.are.equal(9, #ls(folder))
        assert.are.same({}, ls(base .. "/outside"))
        assert.are.same({}, symlinks(base))
        only_in_target { "outside|d" }
      end)

    it("never follows a link that stands where the message's folder goes", function()
      local real = h.inbound { attachments = { { name = "r.txt", data = h.b64("real") } } }
      mkdir(base .. "/outside")
      assert(os.execute(("ln -s %s %s"):format(h.quote(base .. "/outside"),
        h.quote(to .. "/" .. folder_of(real)))))
      local results = assert(c:download_batch({ real }, { to = to }))
      assert.is_table(results[real].err)
      assert.are.equal("io", results[real].err.kind)
      assert.are.same({}, ls(base .. "/outside"))
    end)

    it("never writes through a link that has an attachment's name", function()
      local real = h.inbound { attachments = { { name = "r.txt", data = h.b64("real") } } }
      local folder = to .. "/" .. folder_of(real)
      mkdir(folder)
      h.write_file(base .. "/outside.txt", "outside")
      assert(os.execute(("ln -s %s %s"):format(h.quote(base .. "/outside.txt"),
        h.quote(folder .. "/r.txt"))))
      for _, overwrite in ipairs { false, true } do
        local results = assert(c:download_batch({ real }, { to = to, overwrite = overwrite }))
        assert.is_nil(results[real].err)
        assert.are.equal("real", h.read_file(results[real].paths[1]))
        assert.are.equal("outside", h.read_file(base .. "/outside.txt"))
      end
    end)

    it("refuses a zip bomb (200 MB of zeros) and writes nothing", function()
      serve_zip(bomb(id, 200000000))
      local r, refused, folder = fetch()
      assert.are.same({}, r.paths)
      assert.are.equal(1, #refused)
      assert.are.equal(id .. "/f", refused[1].entry)
      assert.are.same({}, ls(folder))
      only_in_target()
    end)

    it("refuses a smaller bomb that only its compression ratio gives away", function()
      serve_zip(bomb(id, 50000000))
      local r, refused, folder = fetch()
      assert.are.same({}, r.paths)
      assert.are.equal(1, #refused)
      assert.matches("bomb", refused[1].reason)
      assert.are.same({}, ls(folder))
    end)

    it("stops a bomb that lies about its size once it passes what it declared", function()
      serve_zip(lie_about_size(bomb(id, 200000000), 100000))
      local r, _, folder = fetch()
      assert.is_table(r.err)
      assert.are.equal("protocol", r.err.kind)
      assert.are.same({}, r.paths)
      assert.are.same({}, ls(folder))
      only_in_target()
    end)

    it("refuses archives with too many entries or too many bytes declared", function()
      local many = {}
      for i = 1, 3000 do many[i] = { name = id .. "/f" .. i } end
      serve_zip(make_zip(many))
      local r = fetch()
      assert.are.equal("protocol", r.err.kind)
      local huge = {}
      for i = 1, 10 do
        huge[i] = { name = id .. "/g" .. i, data = "x", size = 60 * 1024 * 1024 }
      end
      serve_zip(make_zip(huge))
      r = fetch()
      assert.are.equal("protocol", r.err.kind)
      serve_zip("PK\3\4 this is not a zip archive")
      r = fetch()
      assert.are.equal("protocol", r.err.kind)
      assert.are.same({}, tree(to))
    end)

    it("applies the same limits to a message's /all zip and writes nothing when it refuses",
      function()
        local real = h.inbound { attachments = { { name = "r.txt", data = h.b64("real") } } }
        local function serve_all(bytes)
          fault { path = "/message/received/" .. h.escape(real) .. "/attachments/all",
            method = "GET", status = 200, body_base64 = h.b64(bytes),
            content_type = "application/zip" }
        end
        local many = {}
        for i = 1, 3000 do many[i] = { name = "f" .. i .. ".txt", data = "x" } end
        local huge = {}
        for i = 1, 12 do huge[i] = { name = "g" .. i, data = "x", size = 50 * 1024 * 1024 } end
        for _, zip in ipairs { make_zip(many), make_zip(huge), bomb("all", 200000000),
          lie_about_size(bomb("all", 200000000), 100000) } do
          serve_all(zip)
          local paths, err = c:download("received", real, { all = true, to = to })
          assert.is_nil(paths)
          assert.are.equal("protocol", err.kind)
          assert.are.same({}, tree(to))
        end
        only_in_target()
      end)

    it("keeps memory bounded while it refuses bombs (a process of its own)", function()
      local script = base .. "/child.lua"
      h.write_file(script, [==[
        package.path = "./lua/?.lua;./lua/?/init.lua;" .. package.path
        package.cpath = "./build/lua54/?.so;" .. package.cpath
        local as2gateway = require "as2gateway"
        local c = as2gateway.new { url = os.getenv("AS2G_URL"), cainfo = os.getenv("AS2G_CA"),
          username = os.getenv("AS2G_USERNAME"), password = os.getenv("AS2G_PASSWORD") }
        local results, report = c:download_batch({ arg[1] }, { to = arg[2] })
        local r = results[arg[1]]
        local f = io.open("/proc/self/status")
        local hwm = f:read("a"):match("VmHWM:%s*(%d+)")
        f:close()
        print(hwm, r.err and r.err.kind or "-", #r.paths, #report.refused)
      ]==])
      for _, zip in ipairs { bomb(id, 200000000), lie_about_size(bomb(id, 200000000), 100000) } do
        serve_zip(zip)
        local p = io.popen(("lua5.4 %s %s %s 2>&1"):format(h.quote(script), h.quote(id),
          h.quote(to)))
        local out = p:read("a")
        p:close()
        local hwm = tonumber(out:match("^(%d+)"))
        assert.is_number(hwm, out)
        assert.is_true(hwm < 64 * 1024, ("peak resident memory %d kB"):format(hwm))
        assert.matches("^%d+%s+%S+%s+0%s", out) -- no file
      end
      -- nothing large anywhere
      for _, entry in ipairs(tree(base)) do
        local size = tonumber(entry:match("|(%d+)$"))
        assert.is_true(size < 1024 * 1024, entry)
      end
    end)
  end)
end)
