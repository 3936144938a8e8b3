-- as2g and Ctrl-C: in a terminal (tmux) and without one (kill -INT), it stops at once,
-- gives the terminal back as it was, leaves no file under a final name, and exits 130.
local h = require "helpers"
local S = require "cli.support"

describe("as2g interrupted", function()
  local home, dir, term

  before_each(function()
    home, dir = S.fresh("to")
  end)

  after_each(function()
    if term then term.kill() end
    term = nil
    h.rmtree(home.dir)
  end)

  -- Runs as2g in a terminal of its own; once it ends, its exit code goes to
  -- home.dir/rc and the terminal's settings (stty -a) to home.dir/stty.
  local function in_terminal(args, opts)
    local rc, stty = home.dir .. "/rc", home.dir .. "/stty"
    term = S.tmux(home.dir, S.command(home, args, opts) .. "; echo $? > " .. h.quote(rc)
      .. "; stty -a > " .. h.quote(stty) .. "; sleep 300") -- the screen stays to be read
    return function()
      local code = h.wait_until(function() return tonumber(h.read_file(rc) or "") end, 60,
        "as2g did not end")
      h.wait_until(function() return (h.read_file(stty) or ""):find("\n") end, 20,
        "stty did not run")
      return code, h.read_file(stty), term.screen()
    end
  end

  -- Presses Ctrl-C once the terminal shows `text`; asserts that as2g ended with 130,
  -- saying so without a traceback, the terminal echoing again. Returns the screen.
  local function ctrl_c(finished, text)
    if text then term.wait(text) end
    term.keys("C-c")
    local code, stty, screen = finished()
    assert.equal(130, code, screen)
    assert.matches(" echo ", stty, 1, true)
    assert.not_matches("-echo ", stty, 1, true)
    assert.matches("as2g: interrupted", screen, 1, true)
    assert.not_matches("traceback", screen, 1, true)
    assert.not_matches("%.lua:%d+:", screen)
    return screen
  end

  -- kill -INT, as a service manager or a script would; returns stdout, stderr, the
  -- exit code and how long it took to end.
  local function kill_int(job)
    local sent = h.now()
    assert(os.execute("kill -INT " .. job.pid))
    local out, err, code = S.finish(job, 60)
    return out, err, code, h.now() - sent
  end

  -- A received message with one attachment of `bytes` that the sandbox sends slowly.
  local function slow_message(bytes)
    local id = h.inbound { attachments = { { name = "slow.bin", size = bytes } } }
    h.fault { path = "/message/received/*", method = "GET", count = 5,
      trickle_bytes_per_s = 40000 }
    return id
  end

  it("at the password prompt: the terminal's echo comes back, no traceback, exit 130",
    function()
      ctrl_c(in_terminal({ "login" }, { env = { AS2G_PASSWORD = false } }), "Password for")
      assert.equal(0, h.stats().authorizations)
    end)

  it("during a download without a terminal: stops at once, no file left, exit 130",
    function()
      local id = slow_message(2 * 1024 * 1024) -- 50 s at 40 kB/s
      local job = S.spawn(home, { "download", "received", id, "--to", dir })
      h.wait_until(function() return #h.entries(dir) > 0 end, 30,
        "the download did not start writing") -- the hidden .part file
      local out, err, code, took = kill_int(job)
      assert.equal(130, code, err)
      assert.is_true(took < 5, ("it took %.1f s to stop"):format(took))
      assert.equal("", out)
      assert.equal("as2g: interrupted\n", err)
      assert.same({}, h.entries(dir)) -- neither slow.bin nor its .part file
    end)

  it("during a download in a terminal (with the progress bar): the same", function()
    local id = slow_message(2 * 1024 * 1024)
    ctrl_c(in_terminal { "download", "received", id, "--to", dir }, "MB")
    assert.same({}, h.entries(dir))
  end)

  it("in inbox --exec: stops the whole run, not only the running command", function()
    for _, partner_type in ipairs { "production", "test" } do -- the seed's, out of the way
      for _, id in ipairs(S.ids("received", { unreadOnly = true, partnerType = partner_type })) do
        h.api("GET", "/message/received/" .. h.escape(id), { query = { markAsRead = "true" } })
      end
    end
    h.inbound { subject = "one" }
    h.inbound { subject = "two" }
    local log = home.dir .. "/calls"
    local exec = "echo \"$AS2G_SUBJECT\" >> " .. h.quote(log) .. "; sleep 30"
    local finished = in_terminal { "inbox", "--to", dir, "--exec", exec }
    h.wait_until(function() return h.read_file(log) end, 30, "the command did not start")
    ctrl_c(finished)
    assert.equal(1, S.count(h.read_file(log), "\n")) -- the second was never started
    -- nothing is lost: the next run hands both messages to the command
    local out, err, rc = S.run(home, { "inbox", "--to", dir, "--exec",
      "echo \"$AS2G_SUBJECT\" >> " .. h.quote(log) })
    assert.equal(0, rc, err)
    assert.matches("2 new message(s), 2 done, 0 failed", err, 1, true)
    assert.equal(2, S.count(out, dir .. "/"))
  end)

  it("in inbox --lock-wait: stops waiting for the other run's lock", function()
    local gate = home.dir .. "/gate"
    local first = S.spawn(home, { "inbox", "--to", dir, "--exec",
      "while [ ! -e " .. h.quote(gate) .. " ]; do sleep 0.05; done" })
    h.wait_until(function() return #h.entries(dir) > 1 end, 30, "the first run did not start")
    local job = S.spawn(home, { "inbox", "--to", dir, "--lock-wait", "120" })
    h.wait_until(function() return S.process_args():find("--lock-wait", 1, true) end, 20,
      "the second run did not start")
    h.sleep(0.5) -- it is waiting for the lock now
    local _, err, code, took = kill_int(job)
    h.write_file(gate, "")
    S.finish(first, 60)
    assert.equal(130, code, err)
    assert.is_true(took < 5, ("it took %.1f s to stop"):format(took))
  end)

  it("in inbox --watch: ends during the sleep between runs, exit 130", function()
    local job = S.spawn(home, { "inbox", "--to", dir, "--watch", "--interval", "120" })
    h.wait_until(function() return (h.read_file(job.err) or ""):find("new message") end, 30,
      "the first run did not finish")
    local _, err, code, took = kill_int(job)
    assert.equal(130, code, err)
    assert.is_true(took < 5, ("it took %.1f s to stop"):format(took))
    assert.matches("as2g: interrupted", err, 1, true)
  end)
end)
