-- client:download and client:mdn check a file destination before any transfer.
local h = require "helpers"
local as2gateway = require "as2gateway"

describe("as2gateway download destinations", function()
  local client, dir, id

  local function transfers()
    return h.stats().by_endpoint["GET /message/:kind/:id/attachments"] or 0
  end

  before_each(function()
    h.reset()
    client = as2gateway.new(h.core_options())
    dir = h.mkdtemp()
    id = h.api("GET", "/message/received", { query = { subject = "Invoice 1001" } })
      .json.records[1].as2MessageId
  end)

  after_each(function()
    client:close()
    h.rmtree(dir)
  end)

  it("fails with kind io before the transfer when the file's folder is missing", function()
    local before = transfers()
    local path, err = client:download("received", id, { to = dir .. "/missing/x.edi" })
    assert.is_nil(path)
    assert.equal("io", err.kind)
    assert.matches("is not a folder", err.message, 1, true)
    assert.equal(before, transfers())
  end)

  it("fails with kind io before the transfer when the file exists, unless overwrite",
    function()
      h.write_file(dir .. "/x.edi", "mine")
      local before = transfers()
      local path, err = client:download("received", id, { to = dir .. "/x.edi" })
      assert.is_nil(path)
      assert.equal("io", err.kind)
      assert.equal(before, transfers())
      assert.equal("mine", h.read_file(dir .. "/x.edi"))
      path, err = client:download("received", id, { to = dir .. "/x.edi", overwrite = true })
      assert.equal(dir .. "/x.edi", path, tostring(err))
      assert.equal(217, #h.read_file(path))
    end)

  it("checks an MDN's destination the same way", function()
    local sent = h.api("GET", "/message/sent").json.records[1].as2MessageId
    local before = h.stats().by_endpoint["GET /message/:kind/:id/mdn"] or 0
    local path, err = client:mdn("sent", sent, { to = dir .. "/missing/mdn.txt" })
    assert.is_nil(path)
    assert.equal("io", err.kind)
    assert.equal(before, h.stats().by_endpoint["GET /message/:kind/:id/mdn"] or 0)
  end)
end)
