-- download_batch: continuation after 206, chunks of 100, per-ID errors, one-by-one fallback, hostile zip entries.
local h = require "helpers"
local as2gateway = require "as2gateway"
local S = require "workflows.support"

local folder_of = require("as2gateway.batch").folder_of

local BATCH = "POST /message/received/batch/attachments"
local ONE = "GET /message/:kind/:id/attachments/:index"

-- An attachment of `size` bytes of one letter, so that a mix-up shows.
local function att(name, letter, size)
  return { name = name, data = h.b64(string.rep(letter, size)) }
end

local function set_batch_limit(bytes)
  local _, status = h.control("POST", "config", { batch_limit = bytes })
  assert.equal(200, status)
end

describe("client:download_batch", function()
  local dir, to, client

  before_each(function()
    h.reset()
    dir = h.mkdtemp()
    to = dir .. "/target"
    assert(os.execute("mkdir " .. h.quote(to)))
    client = as2gateway.new(h.core_options())
  end)

  after_each(function()
    client:close()
    h.rmtree(dir)
  end)

  it("continues after 206 answers until every attachment of every message is there", function()
    set_batch_limit(2500)
    local letters = { { "a", "b" }, { "c", "d" }, { "e", "f" } }
    local ids = {}
    for i, l in ipairs(letters) do
      ids[i] = h.inbound { attachments = { att("x1.bin", l[1], 1000), att("x2.bin", l[2], 1000) } }
      assert.is_false(S.inspect(ids[i]).read)
    end
    local before = h.stats()
    local results, report = client:download_batch(ids, { to = to, markAsRead = true })
    local after = h.stats()
    assert.is_table(results)
    assert.same({}, report.refused)
    local batches = S.route_count(after, BATCH) - S.route_count(before, BATCH)
    assert.is_true(batches >= 2 and batches <= 3, ("%d batch requests"):format(batches))
    for i, id in ipairs(ids) do
      local r = results[id]
      local folder = to .. "/" .. folder_of(id)
      assert.is_nil(r.err)
      assert.equal(folder, r.folder)
      -- each file listed once, even for the message that a 206 cut in two
      assert.same({ folder .. "/x1.bin", folder .. "/x2.bin" }, r.paths)
      assert.equal(string.rep(letters[i][1], 1000), h.read_file(folder .. "/x1.bin"))
      assert.equal(string.rep(letters[i][2], 1000), h.read_file(folder .. "/x2.bin"))
      assert.is_true(S.inspect(id).read, "not marked read: " .. id)
    end
    assert.equal(3, #S.ls(to))
    assert.same({}, S.hidden(to))
  end)

  it("asks for 100 IDs a request", function()
    local ids = h.inject(150, { attachments = { { name = "p.txt", size = 50 } } })
    local before = h.stats()
    local results = assert(client:download_batch(ids, { to = to }))
    local after = h.stats()
    assert.equal(2, S.route_count(after, BATCH) - S.route_count(before, BATCH))
    for _, id in ipairs(ids) do
      assert.is_nil(results[id].err)
      assert.same({ to .. "/" .. folder_of(id) .. "/p.txt" }, results[id].paths)
      assert.equal(50, S.size(results[id].paths[1]))
    end
    assert.equal(150, #S.ls(to))
    -- without markAsRead nothing is marked read
    assert.equal(153, S.unread())
  end)

  it("reports unknown IDs one by one, as notfound, and still fetches the others", function()
    local id = h.inbound { attachments = { { name = "real.txt", size = 10 } } }
    local unknown = { "<nope-1@example.com>", "nope-2@example.com" }
    local results = assert(client:download_batch({ unknown[1], id, unknown[2] }, { to = to }))
    assert.is_nil(results[id].err)
    assert.same({ to .. "/" .. folder_of(id) .. "/real.txt" }, results[id].paths)
    for _, u in ipairs(unknown) do
      assert.is_table(results[u].err, u)
      assert.equal("notfound", results[u].err.kind)
      assert.same({}, results[u].paths)
    end
    -- no folder for the unknown IDs, no .error file, no scratch file left
    assert.same({ folder_of(id) }, S.ls(to))
    assert.same({ "real.txt" }, S.ls(to .. "/" .. folder_of(id)))
  end)

  it("fetches a message that alone passes the batch limit whole, the rest one by one", function()
    set_batch_limit(1500)
    local big = h.inbound { attachments = { att("x1.bin", "a", 1000), att("x2.bin", "b", 1000),
      att("x3.bin", "c", 1000) } }
    local small = h.inbound { attachments = { att("s.bin", "s", 1000) } }
    local before = h.stats()
    local results = assert(client:download_batch({ big, small }, { to = to, markAsRead = true }))
    local after = h.stats()
    local folder = to .. "/" .. folder_of(big)
    assert.is_nil(results[big].err)
    assert.same({ folder .. "/x1.bin", folder .. "/x2.bin", folder .. "/x3.bin" },
      results[big].paths)
    for i, l in ipairs { "a", "b", "c" } do
      assert.equal(string.rep(l, 1000), h.read_file(folder .. "/x" .. i .. ".bin"))
    end
    assert.equal(string.rep("s", 1000), h.read_file(results[small].paths[1]))
    assert.is_true(S.inspect(big).read)
    assert.is_true(S.inspect(small).read)
    -- never a loop: one batch for the big message (206), x3.bin alone, one batch for the rest
    assert.equal(2, S.route_count(after, BATCH) - S.route_count(before, BATCH))
    assert.equal(1, S.route_count(after, ONE) - S.route_count(before, ONE))
    assert.is_true(after.requests - before.requests <= 6)
  end)

  it("fetches such a message again into the same folder when asked to overwrite", function()
    -- what a drain does on its rerun when it was stopped before noting the message stored
    set_batch_limit(1500)
    local big = h.inbound { attachments = { att("x1.bin", "a", 1000), att("x2.bin", "b", 1000),
      att("x3.bin", "c", 1000) } }
    local folder = to .. "/" .. folder_of(big)
    for _ = 1, 2 do
      local results = assert(client:download_batch({ big }, { to = to, overwrite = true }))
      assert.is_nil(results[big].err)
      assert.same({ folder .. "/x1.bin", folder .. "/x2.bin", folder .. "/x3.bin" },
        results[big].paths)
    end
    assert.same({ "x1.bin", "x2.bin", "x3.bin" }, S.ls(folder))
  end)

  it("writes nothing outside the target folder, and stores names with paths as plain names",
    function()
      assert.is_false(S.exists("/etc/x"))
      local long = string.rep("n", 296) .. ".txt"
      local id = h.inbound { attachments = { att("../evil", "e", 10), att("/etc/x", "x", 11),
        att("a\\..\\b", "b", 12), att("..", "d", 13), att(long, "l", 14),
        att("ok.txt", "o", 15), att("C:\\edi\\out\\INV.edi", "w", 16) } }
      local results, report = client:download_batch({ id }, { to = to })
      assert.is_table(results)
      local r = results[id]
      assert.is_nil(r.err)
      -- nothing beside `to`, nothing in `to` but the message's folder
      assert.same({ "target" }, S.ls(dir))
      assert.same({ folder_of(id) }, S.ls(to))
      assert.is_false(S.exists("/etc/x"))
      -- a partner's name is never a path: separators and ".." become "_", nothing is
      -- refused, every attachment is there, in its order
      assert.same({}, report.refused)
      local folder = to .. "/" .. folder_of(id)
      assert.equal(7, #S.ls(folder))
      assert.equal(7, #r.paths)
      local want = { { "__evil", "e", 10 }, { "_etc_x", "x", 11 }, { "a___b", "b", 12 },
        { "_", "d", 13 }, nil, { "ok.txt", "o", 15 }, { "C:_edi_out_INV.edi", "w", 16 } }
      for i, w in pairs(want) do
        assert.equal(folder .. "/" .. w[1], r.paths[i])
        assert.equal(string.rep(w[2], w[3]), h.read_file(r.paths[i]))
      end
      local cut = r.paths[5]:match("[^/]+$")
      assert.matches("^n+%.txt$", cut)
      assert.is_true(#cut < #long and #cut <= 255)
      assert.equal(string.rep("l", 14), h.read_file(r.paths[5]))
    end)

  it("gives a second attachment of the same name a distinct name", function()
    local id = h.inbound { attachments = { att("dup.txt", "1", 10), att("dup.txt", "2", 20),
      att("other.txt", "3", 30) } }
    local results = assert(client:download_batch({ id }, { to = to }))
    local folder = to .. "/" .. folder_of(id)
    assert.is_nil(results[id].err)
    assert.same({ folder .. "/dup.txt", folder .. "/dup (2).txt", folder .. "/other.txt" },
      results[id].paths)
    assert.equal(string.rep("1", 10), h.read_file(folder .. "/dup.txt"))
    assert.equal(string.rep("2", 20), h.read_file(folder .. "/dup (2).txt"))
    assert.same({ "dup (2).txt", "dup.txt", "other.txt" }, S.ls(folder))
  end)

  it("writes hidden names visibly, and takes a .error beside other files as an attachment",
    function()
      local id = h.inbound { attachments = { att(".error", "e", 10), att(".bashrc", "b", 11),
        att("ok.txt", "o", 12) } }
      local results = assert(client:download_batch({ id }, { to = to }))
      local folder = to .. "/" .. folder_of(id)
      assert.is_nil(results[id].err)
      assert.same({ "_bashrc", "_error", "ok.txt" }, S.ls(folder))
      assert.equal(string.rep("e", 10), h.read_file(folder .. "/_error"))
      assert.same({}, S.hidden(to))
    end)

  it("downloads the attachments of a message whose ID holds a slash", function()
    local id = h.inbound { as2MessageId = "<a/b@example.com>",
      attachments = { att("x.txt", "x", 10) } }
    local results, report = client:download_batch({ id }, { to = to })
    assert.is_table(results)
    assert.same({}, report.refused)
    assert.is_nil(results[id].err)
    assert.equal(1, #results[id].paths)
    assert.equal(string.rep("x", 10), h.read_file(results[id].paths[1]))
    assert.same({ folder_of(id) }, S.ls(to))
    assert.same({ "x.txt" }, S.ls(to .. "/" .. folder_of(id)))
  end)

  it("never replaces a file that is already there unless asked to", function()
    local id = h.inbound { attachments = { att("a.edi", "n", 20) } }
    local folder = to .. "/" .. folder_of(id)
    assert(os.execute("mkdir " .. h.quote(folder)))
    h.write_file(folder .. "/a.edi", "old")
    local results = assert(client:download_batch({ id }, { to = to }))
    assert.is_nil(results[id].err)
    assert.same({ folder .. "/a (2).edi" }, results[id].paths)
    assert.equal("old", h.read_file(folder .. "/a.edi"))
    assert.equal(string.rep("n", 20), h.read_file(folder .. "/a (2).edi"))

    results = assert(client:download_batch({ id }, { to = to, overwrite = true }))
    assert.same({ folder .. "/a.edi" }, results[id].paths)
    assert.equal(string.rep("n", 20), h.read_file(folder .. "/a.edi"))
    assert.same({ "a (2).edi", "a.edi" }, S.ls(folder))
  end)

  it("refuses a target that is not a folder, and misuse raises", function()
    local results, err = client:download_batch({ "x@y" }, { to = dir .. "/missing" })
    assert.is_nil(results)
    assert.equal("invalid", err.kind)
    assert.has_error(function() client:download_batch("x@y", { to = to }) end)
    assert.has_error(function() client:download_batch({ "x@y" }, {}) end)
    assert.has_error(function() client:download_batch({ "" }, { to = to }) end)
    assert.has_error(function() client:download_batch({ "x@y" }, { to = to, bogus = 1 }) end)
  end)
end)
