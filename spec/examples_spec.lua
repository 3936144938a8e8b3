-- Every example in examples/ (the README links to them) runs against the sandbox; the
-- README's own code blocks: readme_spec.lua.
local h = require "helpers"

local function run(script, args, env)
  local cmd = ("cd %s && %s LUA_PATH='./lua/?.lua;./lua/?/init.lua;;' "
    .. "LUA_CPATH='./build/lua54/?.so;;' lua5.4 %s %s 2>&1; echo \"exit=$?\"")
    :format(h.quote(os.getenv("PWD") or "."), env or "", script, args or "")
  local p = io.popen(cmd)
  local out = p:read("a")
  p:close()
  return out, tonumber(out:match("exit=(%d+)%s*$"))
end

describe("examples", function()
  before_each(h.reset)

  it("quickstart.lua sends, waits, drains and summarises", function()
    local inbox = h.tmpname()
    local out, code = run("examples/quickstart.lua", "", "INBOX=" .. h.quote(inbox))
    assert.are.equal(0, code, out)
    -- the three seed messages (both partner types) and the two echoes
    assert.truthy(out:find("drained 5 messages into " .. inbox, 1, true), out)
    os.execute("rm -rf " .. h.quote(inbox))
  end)

  it("shared_quota.lua shares one login between two clients through a state folder",
    function()
      local dir = h.mkdtemp()
      local out, code = run("examples/shared_quota.lua", h.quote(dir .. "/acme"))
      assert.are.equal(0, code, out)
      assert.truthy(out:find("first: 2 request(s), 1 login(s), 0 token(s) shared, backend file",
        1, true), out)
      assert.truthy(out:find("second: 1 request(s), 0 login(s), 1 token(s) shared", 1, true), out)
      assert.are.equal(1, h.stats().authorizations)
      h.rmtree(dir)
    end)

  it("send_invoice.lua sends a file and sees it delivered", function()
    local out, code = run("examples/send_invoice.lua")
    assert.are.equal(0, code, out)
    assert.truthy(out:find("sent%s+Delivered%s+MDN Received"), out)
  end)

  it("drain_inbox.lua drains into a folder, and a second run finds nothing", function()
    local dir = h.tmpname()
    local out, code = run("examples/drain_inbox.lua", h.quote(dir))
    assert.are.equal(0, code, out)
    assert.truthy(out:find("3 messages, 3 done"), out)
    out, code = run("examples/drain_inbox.lua", h.quote(dir))
    assert.are.equal(0, code, out)
    assert.truthy(out:find("0 messages, 0 done"), out)
    os.execute("rm -rf " .. h.quote(dir))
  end)

  it("list_messages.lua walks a listing", function()
    local out, code = run("examples/list_messages.lua", "received")
    assert.are.equal(0, code, out)
    assert.truthy(out:find("2 messages"), out)
    assert.truthy(out:find("Invoice 1001", 1, true), out)
  end)

  it("outbound.lua sends a folder once, sends nothing on the rerun, and sees each end",
    function()
      local dir = h.mkdtemp()
      for i = 1, 2 do
        h.write_file(("%s/order-%d.csv"):format(dir, i), "sku,qty\n1," .. i .. "\n")
      end
      local out, code = run("examples/outbound.lua", h.quote(dir))
      assert.are.equal(0, code, out)
      local sent, ends = 0, 0
      for _ in ("\n" .. out):gmatch("\nsent%s+<[^>]+>%s+order%-%d%.csv") do sent = sent + 1 end
      for _ in out:gmatch("<[^>]+>%s+sent, MDN processed") do ends = ends + 1 end
      assert.are.equal(2, sent, out)
      assert.are.equal(2, ends, out)
      assert.truthy(out:find("rerun: 0 sent now, 1 already sent", 1, true), out)
      assert.same({ ".as2g-send.journal", ".as2g-send.lock", "sent" }, h.entries(dir))
      assert.same({ "order-1 (2).csv", "order-1.csv", "order-2.csv" }, h.entries(dir .. "/sent"))
      assert.equal(3, #h.control("GET", "messages").outbound) -- the seed's and ours, once
      h.rmtree(dir)
    end)

  it("send_folder.lua sends every file and reports it", function()
    local out, code = run("examples/send_folder.lua")
    assert.are.equal(0, code, out)
    local sent = 0
    for _ in out:gmatch("order%-%d%.csv%s+<") do sent = sent + 1 end
    assert.are.equal(3, sent, out)
  end)
end)
