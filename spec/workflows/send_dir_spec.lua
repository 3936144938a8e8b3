-- send_dir: each regular file of a folder as a message (or grouped), with a report of what went where.
local h = require "helpers"
local as2gateway = require "as2gateway"
local S = require "workflows.support"

local SEND = "POST /message/:station/:partner"

local function attachment_names(id)
  local seen = S.inspect(id)
  local entry = (seen.queued or {})[1] or (seen.sent or {})[1] or (seen.stopped or {})[1]
  assert(entry, "the gateway does not know " .. id)
  local names = {}
  for _, a in ipairs(entry.attachments or {}) do names[#names + 1] = a.name end
  table.sort(names)
  return names, entry
end

describe("client:send_dir", function()
  local dir, client

  before_each(function()
    h.reset()
    dir = S.tmpdir()
    h.write_file(dir .. "/a.txt", "alpha\n")
    h.write_file(dir .. "/b.xml", "<b/>\n")
    h.write_file(dir .. "/c.edi", "ISA*00~\n")
    client = as2gateway.new(h.core_options())
  end)

  after_each(function()
    client:close()
    S.rmrf(dir)
  end)

  it("sends each regular, visible file as its own message, in name order", function()
    h.write_file(dir .. "/.hidden", "not me")
    assert(os.execute("mkdir " .. h.quote(dir .. "/sub")))
    h.write_file(dir .. "/sub/inner.txt", "nor me")
    local before = h.stats()
    local report, err = client:send_dir("ACME-AS2", "GLOBEX-AS2", dir, { subject = "Folder run" })
    local after = h.stats()
    assert.is_nil(err)
    assert.equal(3, #report)
    assert.equal(3, S.route_count(after, SEND) - S.route_count(before, SEND))
    local ids = {}
    for i, name in ipairs { "a.txt", "b.xml", "c.edi" } do
      local entry = report[i]
      assert.is_nil(entry.err)
      assert.same({ dir .. "/" .. name }, entry.files)
      assert.is_string(entry.as2MessageId)
      assert.is_string(entry.link)
      assert.equal(entry.as2MessageId, as2gateway.id_of(entry.link))
      assert.is_nil(ids[entry.as2MessageId])
      ids[entry.as2MessageId] = true
      local names, message = attachment_names(entry.as2MessageId)
      assert.same({ name }, names)
      assert.equal("Folder run", message.subject)
      assert.equal("GLOBEX-AS2", message.receiverId)
    end
  end)

  it("puts opts.group files in one message", function()
    local report = assert(client:send_dir("ACME-AS2", "GLOBEX-AS2", dir, { group = 2 }))
    assert.equal(2, #report)
    assert.same({ dir .. "/a.txt", dir .. "/b.xml" }, report[1].files)
    assert.same({ dir .. "/c.edi" }, report[2].files)
    assert.same({ "a.txt", "b.xml" }, attachment_names(report[1].as2MessageId))
    assert.same({ "c.edi" }, attachment_names(report[2].as2MessageId))
    assert.is_nil(report[1].err)
    assert.is_nil(report[2].err)
  end)

  it("reports a file it cannot send and still sends the others", function()
    h.write_file(dir .. "/bad\\name.txt", "a backslash is a path separator to Windows")
    assert(os.execute("truncate -s 11M " .. h.quote(dir .. "/big.bin")))
    local before = h.stats()
    local report = assert(client:send_dir("ACME-AS2", "GLOBEX-AS2", dir))
    local after = h.stats()
    local by_name = {}
    for _, entry in ipairs(report) do
      assert.equal(1, #entry.files)
      by_name[entry.files[1]:match("[^/]+$")] = entry
    end
    assert.equal(5, #report)
    for _, name in ipairs { "bad\\name.txt", "big.bin" } do
      local entry = by_name[name]
      assert.is_table(entry.err, name)
      assert.equal("invalid", entry.err.kind)
      assert.is_nil(entry.as2MessageId)
      assert.is_nil(entry.link)
    end
    for _, name in ipairs { "a.txt", "b.xml", "c.edi" } do
      assert.is_nil(by_name[name].err)
      assert.same({ name }, attachment_names(by_name[name].as2MessageId))
    end
    -- the refused files never went out
    assert.equal(3, S.route_count(after, SEND) - S.route_count(before, SEND))
  end)

  it("reports a missing folder as an error and raises on misuse", function()
    local report, err = client:send_dir("ACME-AS2", "GLOBEX-AS2", dir .. "/missing")
    assert.is_nil(report)
    assert.is_table(err)
    assert.has_error(function() client:send_dir("ACME-AS2", "GLOBEX-AS2", dir, { group = 11 }) end)
    assert.has_error(function() client:send_dir("ACME-AS2", "GLOBEX-AS2", dir, { group = 0 }) end)
    assert.has_error(function() client:send_dir("ACME-AS2", "GLOBEX-AS2", dir, { bogus = 1 }) end)
  end)
end)
