-- make demo from a fresh clone: builds the core, runs the quickstart against its own sandbox.
local h = require "helpers"
local S = require "workflows.support"

local function sh(cmd)
  local p = assert(io.popen(cmd))
  local out = p:read("a")
  p:close()
  return out
end

describe("make demo", function()
  local tmp

  before_each(function()
    tmp = h.mkdtemp()
  end)

  after_each(function()
    h.rmtree(tmp)
  end)

  it("works from a fresh clone: sends, waits, drains the echoes into ./inbox", function()
    local root = sh("git rev-parse --show-toplevel"):gsub("%s+$", "")
    local clone = tmp .. "/clone"
    assert(os.execute(("git clone -q %s %s"):format(h.quote(root), h.quote(clone))))
    assert.is_nil(S.size(clone .. "/build/lua54/as2gateway/core.so")) -- nothing prebuilt
    -- none of this run's sandbox variables: the demo must start (and stop) its own
    local unset = {}
    for _, v in ipairs { "AS2G_URL", "AS2G_HTTP_URL", "AS2G_CA", "AS2G_USERNAME",
      "AS2G_PASSWORD", "AS2G_OTHER_USERNAME", "AS2G_OTHER_PASSWORD", "AS2G_SANDBOX_SECRET",
      "AS2G_SANDBOX_DIR" } do
      unset[#unset + 1] = "-u " .. v
    end
    local log = tmp .. "/demo.log"
    local ok, how, code = os.execute(("env %s make -C %s demo > %s 2>&1"):format(
      table.concat(unset, " "), h.quote(clone), h.quote(log)))
    local out = h.read_file(log) or ""
    assert.is_true(ok == true and how == "exit" and code == 0,
      ("make demo failed (%s %s):\n%s"):format(how, code, out:sub(-3000)))
    assert.matches("drained %d+ messages", out)
    assert.matches("sent +invoice_20200101.xml +MDN Received", out)
    assert.matches("sent +order_5001.edi +MDN Received", out)
    -- the echoed files, each in its message's folder, with the bytes that were sent
    local found = {}
    for _, path in ipairs(S.lines("find " .. h.quote(clone .. "/inbox") .. " -type f")) do
      found[path:match("[^/]+$")] = path
    end
    assert.is_string(found["invoice_20200101.xml"], "no echoed invoice in inbox/")
    assert.is_string(found["order_5001.edi"], "no echoed order in inbox/")
    assert.equal('<?xml version="1.0"?><invoice number="20200101" total="1000"/>\n',
      h.read_file(found["invoice_20200101.xml"]))
    assert.equal("ISA*00*          *00*          *ZZ*ACME*ZZ*ECHO~\n",
      h.read_file(found["order_5001.edi"]))
    assert.same({}, S.hidden(clone .. "/inbox")) -- no journal, no temporary files left
  end)
end)
