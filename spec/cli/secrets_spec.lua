-- The password never shows: not in any process's arguments while as2g runs, its output or the token cache.
local h = require "helpers"
local S = require "cli.support"

describe("as2g and the password", function()
  local home

  local function run(args, opts) return S.run(home, args, opts) end

  before_each(function()
    h.reset()
    home = S.home()
  end)

  after_each(function()
    h.rmtree(home.dir)
  end)

  it("is in no process's arguments (ps, /proc/PID/cmdline) while a long command runs", function()
    local to = home.dir .. "/inbox"
    local job = S.spawn(home, { "inbox", "--to", to, "--watch", "--interval", "2",
      "--max-runs", "2" })
    -- while it sleeps between its two runs
    assert.truthy(h.wait_until(function()
      return (h.read_file(job.err) or ""):find("new message", 1, true)
    end), "the first run did not finish")
    local args = S.process_args()
    -- the scan does see the running as2g (so it would see a password there)
    local mine = h.read_file("/proc/" .. job.pid .. "/cmdline")
    assert.truthy(mine, "the as2g process is not running")
    assert.matches("bin/as2g", mine, 1, true)
    assert.matches("--watch", args, 1, true)
    assert.matches(job.pid .. ": ", args, 1, true)
    assert.not_matches(h.password, args, 1, true)
    local out, err, code = S.finish(job)
    assert.equal(0, code)
    assert.matches("3 new message", err, 1, true) -- the seed's, of both partner types
    assert.not_matches(h.password, out .. err, 1, true)
  end)

  it("is in no output of any command, successful or failing, table or --json", function()
    local file = home.dir .. "/order.xml"
    h.write_file(file, "<order/>")
    local all = {}
    for _, args in ipairs {
      { "login" }, { "--json", "login" }, { "stations" }, { "--json", "partners" },
      { "ls", "received" }, { "--json", "ls", "sent", "--all" },
      { "send", "ACME-AS2", "GLOBEX-AS2", file }, { "show", "sent", "nope" },
      { "ls", "received", "--page-length", "500" }, { "logout" },
    } do
      local out, err = run(args)
      all[#all + 1] = out .. err
    end
    local out, err = run({ "ls", "received" }, { env = { AS2G_CA = false } })
    all[#all + 1] = out .. err
    local text = table.concat(all, "\n")
    assert.matches("ACME-AS2", text, 1, true) -- the commands did produce output
    assert.not_matches(h.password, text, 1, true)
  end)

  it("is not echoed back when it is wrong", function()
    local wrong = "Wr0ng-" .. h.password:reverse()
    local out, err, code = run({ "login" }, { env = { AS2G_PASSWORD = wrong } })
    assert.equal(3, code)
    assert.not_matches(wrong, out .. err, 1, true)
  end)

  it("is not in the state folder, where the token is alone in its 0600 file", function()
    assert.equal(0, select(3, run { "login" }))
    local base = home.state .. "/as2gateway"
    local folders = S.files(base)
    assert.is_true(#folders >= 1)
    local dir = base .. "/" .. folders[1]:match("^[^/]+")
    for _, name in ipairs(S.files(dir)) do
      assert.not_matches(h.password, h.read_file(dir .. "/" .. name), 1, true)
    end
    assert.matches("^%S+ %d+\n$", h.read_file(dir .. "/token"))
    assert.equal("600", S.file_mode(dir .. "/token"))
    assert.equal("700", S.file_mode(dir))
  end)

  it("is taken from neither the command line nor an option", function()
    local out, err, code = run { "--password", h.password, "stations" }
    assert.equal(2, code)
    assert.equal("", out)
    assert.not_matches(h.password, err, 1, true)
  end)
end)
