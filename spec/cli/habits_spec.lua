-- The habits of a CLI that people expect: --version, --verbose (AS2G_DEBUG=1), shell
-- completion, mark-unread, listing filters that match the API, an example per command.
local h = require "helpers"
local S = require "cli.support"

describe("as2g habits", function()
  local t = S.each_test()
  local run = t.run

  it("prints its version with --version: the package's, one for all", function()
    local out, err, code = run { "--version" }
    assert.equal(0, code, err)
    assert.equal("as2g " .. require("as2gateway")._VERSION .. "\n", out)
    assert.matches("^%d+%.%d+%.%d+$", require("as2gateway")._VERSION)
  end)

  it("prints the requests, answers and where the settings came from with --verbose",
    function()
      for i, way in ipairs { { args = { "-v", "stations" } },
                             { args = { "stations" }, env = { AS2G_DEBUG = "1" } } } do
        local out, err, code = run(way.args, { env = way.env })
        assert.equal(0, code, err)
        assert.matches("ACME-AS2", out, 1, true) -- stdout keeps the data alone
        assert.matches("as2g: url from the environment\n", err, 1, true)
        if i == 1 then -- the second run has the token the first cached
          assert.matches("as2g: > POST /authorize (attempt 1)\n", err, 1, true)
        end
        assert.matches("as2g: > GET /station (attempt 1)\n", err, 1, true)
        assert.matches("as2g: < 200 in %d+%.%d+ s\n", err)
        assert.not_matches(h.password, err, 1, true)
        local token = h.json_decode(h.read_file(S.files(t.home.cache)[1] and
          (t.home.cache .. "/" .. S.files(t.home.cache)[1]) or "") or "")
        if token then assert.not_matches(token.token, err, 1, true) end
      end
    end)

  it("says nothing of that without --verbose", function()
    local _, err, code = run { "stations" }
    assert.equal(0, code)
    assert.equal("", err)
  end)

  it("writes a bash completion script that completes its commands", function()
    local script = t.home.dir .. "/as2g.bash"
    local out, err, code = run { "completion", "bash" }
    assert.equal(0, code, err)
    h.write_file(script, out)
    local words = S.capture(("bash -c %s"):format(h.quote(
      ". " .. h.quote(script) .. "; COMP_WORDS=(as2g ma); COMP_CWORD=1; _as2g; "
      .. "printf '%s\\n' \"${COMPREPLY[@]}\"; COMP_WORDS=(as2g download r --ov); COMP_CWORD=3; "
      .. "_as2g; printf '%s\\n' \"${COMPREPLY[@]}\"")))
    assert.matches("mark-unread\n", words, 1, true)
    assert.matches("--overwrite\n", words, 1, true)
    for _, shell in ipairs { "zsh", "fish" } do
      out, _, code = run { "completion", shell }
      assert.equal(0, code)
      assert.matches("inbox", out, 1, true)
    end
  end)

  it("marks received messages unread again with mark-unread", function()
    local id = S.ids("received")[1]
    h.api("GET", "/message/received/" .. h.escape(id), { query = { markAsRead = "true" } })
    assert.is_true(S.where(id).read)
    local out, err, code = run { "mark-unread", id }
    assert.equal(0, code, err)
    assert.equal("", out)
    assert.matches("Marked unread: " .. id, err, 1, true)
    assert.is_false(S.where(id).read)
    out, err, code = run { "--json", "mark-unread", id, "<nope@x>" }
    assert.equal(4, code, err)
    local docs = S.json_lines(out)
    assert.is_true(docs[1].unread)
    assert.equal("notfound", docs[2].error.kind)
  end)

  it("refuses filters the queued listing does not have, rather than ignore them", function()
    local before = h.stats().requests
    for _, opt in ipairs { "--partner", "--station", "--id", "--subject" } do
      local out, err, code = run { "ls", "queued", opt, "X" }
      assert.equal(2, code, opt)
      assert.equal("", out)
      assert.matches("use --query", err, 1, true)
    end
    local _, err, code = run { "ls", "received", "--query", "X" }
    assert.equal(2, code)
    assert.matches("--query is for queued", err, 1, true)
    assert.equal(before, h.stats().requests)
    -- and --query does filter the queue
    local out
    out, err, code = run { "--json", "ls", "queued", "--query", "no-such-thing" }
    assert.equal(0, code, err)
    assert.equal(0, h.json_decode(out).totalRecords)
  end)

  it("shows an example with each command's help", function()
    local out = run { "--help" }
    local names = {}
    for name in out:gmatch("\n   (%w[%w-]*) ") do names[#names + 1] = name end
    assert.is_true(#names >= 17, out)
    for _, name in ipairs(names) do
      local text, _, code = run { "help", name }
      assert.equal(0, code, name)
      local example = text:match("\nExample:\n  ([^\n]+)\n")
      assert.is_truthy(example, name .. ": no example")
      assert.matches("as2g", example, 1, true)
      assert.matches(" " .. name .. " ", example .. " ", 1, true)
    end
  end)
end)
