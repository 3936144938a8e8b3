-- The core's streaming: file and reader uploads, file and sink downloads, callback errors, steps.
local h = require "helpers"
local core = require "as2gateway.core"

local SEND_PATH = { "message", "ACME-AS2", "AS2G-ECHO" }

-- `n` bytes that differ from place to place (so that a misplaced chunk shows).
local function pattern_bytes(n, seed)
  local parts, len, i = {}, 0, 0
  while len < n do
    i = i + 1
    local line = ("%s:%08d:%s\n"):format(seed, i, ("abcdefghij"):rep(1 + i % 7))
    parts[#parts + 1] = line
    len = len + #line
  end
  return table.concat(parts):sub(1, n)
end

local mkdtemp = h.mkdtemp

local entries = h.entries

-- The echo partner's copy of a message sent with this subject, once the queue ran.
local function echoed(c, subject)
  h.advance(5)
  local res, err = c:perform { path = { "message", "received" },
    query = { subject = subject }, json = true }
  assert.is_nil(err)
  assert.are.equal(1, res.json.totalRecords, "no echo of " .. subject)
  return res.json.records[1]
end

local function attachment_path(id)
  return { "message", "received", id, "attachments", "0" }
end

describe("core streaming", function()
  local c, dir

  before_each(function()
    h.reset()
    c = core.new(h.core_options())
    dir = mkdtemp()
  end)

  after_each(function()
    if c then c:close() end
    c = nil
    os.execute("rm -rf " .. h.quote(dir))
  end)

  it("uploads a multi-megabyte body_file and downloads identical bytes to_file", function()
    local data = pattern_bytes(3 * 1024 * 1024 + 12345, "file")
    local src = dir .. "/upload.bin"
    h.write_file(src, data)
    local res, err = c:perform { method = "POST", path = SEND_PATH, send = true,
      query = { subject = "streamed file" }, headers = { Name = "upload.bin" },
      body_file = src }
    assert.is_nil(err)
    assert.are.equal(202, res.status)
    local msg = echoed(c, "streamed file")
    assert.are.equal(#data, msg.attachments[1].size)
    local out = dir .. "/download.bin"
    res, err = c:perform { path = attachment_path(msg.as2MessageId), to_file = out }
    assert.is_nil(err)
    assert.are.equal(out, res.path)
    assert.are.equal(#data, res.bytes)
    assert.are.equal("upload.bin", res.filename)
    local got = h.read_file(out)
    assert.are.equal(#data, #got)
    assert.is_true(got == data, "the downloaded bytes differ from the uploaded ones")
    assert.are.same({ "download.bin", "upload.bin" }, entries(dir))
  end)

  it("uploads from a body_reader in chunks", function()
    local data = pattern_bytes(2 * 1024 * 1024 + 777, "reader")
    local pos, calls = 1, 0
    local function reader()
      calls = calls + 1
      if pos > #data then return nil end
      local n = 10000 + (calls * 7919) % 90000 -- chunks of uneven sizes
      local chunk = data:sub(pos, pos + n - 1)
      pos = pos + n
      return chunk
    end
    local res, err = c:perform { method = "POST", path = SEND_PATH, send = true,
      query = { subject = "streamed reader" }, headers = { Name = "reader.bin" },
      body_reader = reader }
    assert.is_nil(err)
    assert.are.equal(202, res.status)
    assert.is_true(calls > 10)
    local msg = echoed(c, "streamed reader")
    assert.are.equal(#data, msg.attachments[1].size)
    local out = dir .. "/reader.bin"
    res, err = c:perform { path = attachment_path(msg.as2MessageId), to_file = out }
    assert.is_nil(err)
    assert.are.equal(#data, res.bytes)
    assert.is_true(h.read_file(out) == data, "the downloaded bytes differ")
  end)

  it("hands every byte of the answer to a sink", function()
    local size = 1536 * 1024
    local id = h.inbound { attachments = { { name = "sink.bin", size = size } } }
    local chunks = {}
    local res, err = c:perform { path = attachment_path(id),
      sink = function(chunk) chunks[#chunks + 1] = chunk end }
    assert.is_nil(err)
    assert.are.equal(200, res.status)
    assert.are.equal(size, res.bytes)
    assert.is_nil(res.body)
    assert.is_true(#chunks > 1)
    local got = table.concat(chunks)
    local want = h.api("GET", "/message/received/" .. h.escape(id) .. "/attachments/0").body
    assert.are.equal(size, #want)
    assert.is_true(got == want, "the sink's bytes differ")
  end)

  it("raises a sink's error from perform and stays usable", function()
    local id = h.inbound { attachments = { { name = "boom.bin", size = 300000 } } }
    local seen = 0
    local ok, msg = pcall(c.perform, c, { path = attachment_path(id),
      sink = function(chunk)
        seen = seen + #chunk
        if seen > 1000 then error("sink exploded", 0) end
      end })
    assert.is_false(ok)
    assert.are.equal("sink exploded", msg)
    -- a non-string error value comes back as it was
    local value = { code = 42 }
    ok, msg = pcall(c.perform, c, { path = attachment_path(id),
      sink = function() error(value) end })
    assert.is_false(ok)
    assert.are.equal(value, msg)
    local res, err = c:perform { path = { "station" }, json = true }
    assert.is_nil(err)
    assert.are.equal(200, res.status)
    res, err = c:perform { path = attachment_path(id), to_file = dir .. "/boom.bin" }
    assert.is_nil(err)
    assert.are.equal(300000, res.bytes)
  end)

  it("raises a body_reader's error from perform and stays usable", function()
    h.control("POST", "config", { queue_delay = 600 })
    local n = 0
    local ok, msg = pcall(c.perform, c, { method = "POST", path = SEND_PATH, send = true,
      query = { subject = "reader error" }, headers = { Name = "r.txt" },
      body_reader = function()
        n = n + 1
        if n > 3 then error("reader exploded", 0) end
        return ("x"):rep(50000)
      end })
    assert.is_false(ok)
    assert.are.equal("reader exploded", msg)
    ok, msg = pcall(c.perform, c, { method = "POST", path = SEND_PATH, send = true,
      headers = { Name = "r.txt" }, body_reader = function() return 42 end })
    assert.is_false(ok)
    assert.matches("body_reader", tostring(msg))
    local res, err = c:perform { path = { "message", "queued" }, json = true }
    assert.is_nil(err)
    assert.are.equal(200, res.status)
    assert.are.equal(0, res.json.totalRecords) -- no partial body was taken as a message
    res, err = c:perform { method = "POST", path = SEND_PATH, send = true,
      headers = { Name = "ok.txt" }, body = "fine" }
    assert.is_nil(err)
    assert.are.equal(202, res.status)
  end)

  it("raises a log hook's error from mid-transfer and stays usable", function()
    c:close()
    local requests, sleeps = 0, 0
    c = core.new(h.core_options {
      log = function(ev)
        if ev.event == "request" then
          requests = requests + 1
          if requests == 2 then error("log exploded", 0) end
        end
      end,
      -- a client stuck behind the abandoned transfer would sleep here forever
      sleep = function() sleeps = sleeps + 1; assert(sleeps < 200, "the client is stuck") end,
    })
    assert.is_string((c:authorize()))
    -- the answer comes late, so the error is raised while the transfer is in flight (and
    -- it is not processed, so it does not land in a later test's rate window)
    h.control("POST", "faults", { path = "/station", delay_ms = 1200, status = 503 })
    local ok, msg = pcall(c.perform, c, { path = { "station" } })
    assert.is_false(ok)
    assert.are.equal("log exploded", msg)
    local res, err = c:perform { path = { "station" }, json = true }
    assert.is_nil(err)
    assert.are.equal(200, res.status)
  end)

  it("raises a sleep hook's error and removes the partial download", function()
    c:close()
    c = core.new(h.core_options { sleep = function() error("no sleep for you", 0) end })
    local id = h.inbound { attachments = { { name = "retry.bin", size = 50000 } } }
    h.control("POST", "faults", { path = "/message/received/" .. h.escape(id)
      .. "/attachments/0", close_after_bytes = 2000 })
    local ok, msg = pcall(c.perform, c, { path = attachment_path(id),
      to_file = dir .. "/retry.bin" })
    assert.is_false(ok)
    assert.are.equal("no sleep for you", msg)
    assert.are.same({}, entries(dir))
    local res, err = c:perform { path = attachment_path(id), to_file = dir .. "/retry.bin" }
    assert.is_nil(err)
    assert.are.equal(50000, res.bytes)
    assert.are.same({ "retry.bin" }, entries(dir))
  end)

  it("refuses to replace an existing file with no_clobber", function()
    local id = h.inbound { attachments = { { name = "keep.txt", size = 5000 } } }
    local path = dir .. "/keep.txt"
    h.write_file(path, "precious")
    local res, err = c:perform { path = attachment_path(id), to_file = path, no_clobber = true }
    assert.is_nil(res)
    assert.are.equal("io", err.kind)
    assert.are.equal("precious", h.read_file(path))
    assert.are.same({ "keep.txt" }, entries(dir))
    -- without no_clobber the file is replaced
    res, err = c:perform { path = attachment_path(id), to_file = path }
    assert.is_nil(err)
    assert.are.equal(path, res.path)
    assert.are.equal(5000, #h.read_file(path))
    assert.are.same({ "keep.txt" }, entries(dir))
  end)

  it("fails with kind io when the download's folder does not exist", function()
    local id = h.inbound {}
    local res, err = c:perform { path = attachment_path(id),
      to_file = dir .. "/missing/x.txt" }
    assert.is_nil(res)
    assert.are.equal("io", err.kind)
    assert.are.same({}, entries(dir))
  end)

  it("puts a download in place only when it is complete", function()
    local size = 60000
    local id = h.inbound { attachments = { { name = "slow.bin", size = size } } }
    h.control("POST", "faults", { path = "/message/received/" .. h.escape(id)
      .. "/attachments/0", trickle_bytes_per_s = 80000 })
    local path = dir .. "/slow.bin"
    local r = c:request { path = attachment_path(id), to_file = path }
    local seen_part, steps = false, 0
    while true do
      local state, s = r:step(0.05)
      steps = steps + 1
      if state == "done" then break end
      assert.is_number(s)
      local names = entries(dir)
      assert.is_nil(io.open(path, "rb"), "the file appeared before the download ended")
      if #names == 1 and names[1]:match("^%.slow%.bin%..+%.part$") then seen_part = true end
      assert.is_true(steps < 2000)
    end
    assert.is_true(seen_part, "no temporary .part file was seen while downloading")
    local res, err = r:result()
    assert.is_nil(err)
    assert.are.equal(size, res.bytes)
    assert.are.equal(size, #h.read_file(path))
    assert.are.same({ "slow.bin" }, entries(dir))
    r:close()
  end)

  it("removes the partial download when a request is abandoned", function()
    local id = h.inbound { attachments = { { name = "gone.bin", size = 60000 } } }
    h.control("POST", "faults", { path = "/message/received/" .. h.escape(id)
      .. "/attachments/0", trickle_bytes_per_s = 40000 })
    local r = c:request { path = attachment_path(id), to_file = dir .. "/gone.bin" }
    local steps = 0
    repeat
      local state = r:step(0.05)
      steps = steps + 1
      assert.are_not.equal("done", state)
    until #entries(dir) == 1 or steps > 100
    assert.matches("%.part$", entries(dir)[1])
    r:close()
    assert.are.same({}, entries(dir))
    local res, err = c:perform { path = { "station" }, json = true }
    assert.is_nil(err)
    assert.are.equal(200, res.status)
  end)

  it("runs requests step-wise: step until done, then result", function()
    local r = c:request { path = { "message", "received" }, json = true }
    local states = {}
    while true do
      local state, s = r:step(0.05)
      states[state] = (states[state] or 0) + 1
      if state == "done" then break end
      assert.is_true(state == "io" or state == "sleep")
      assert.is_true(s >= 0 and s <= 10)
    end
    assert.is_true((states.io or 0) > 0)
    local res, err = r:result()
    assert.is_nil(err)
    assert.are.equal(200, res.status)
    assert.is_table(res.json.records)
    assert.are.equal("done", r:step()) -- stays done
    r:close()
  end)

  it("asks a step-wise caller to sleep for its own rate limit", function()
    c:close()
    c = core.new(h.core_options { rate_limit = { requests = 2, window = 0.3 } })
    local slept, ok = 0, 0
    for _ = 1, 3 do -- /authorize and 3 calls: the third waits
      local r = c:request { path = { "station" } }
      while true do
        local state, s = r:step(0.05)
        if state == "done" then break end
        if state == "sleep" then
          assert.is_true(s > 0 and s <= 0.4)
          slept = slept + s
          os.execute(("sleep %.3f"):format(s)) -- a host sleeps however it likes
        end
      end
      if r:result() then ok = ok + 1 end
      r:close()
    end
    assert.are.equal(3, ok)
    assert.is_true(slept > 0)
    assert.is_true(c:stats().waits >= 1)
  end)

  it("raises when the result of an unfinished request is asked for", function()
    local r = c:request { path = { "station" } }
    local okc, msg = pcall(r.result, r)
    assert.is_false(okc)
    assert.matches("not finished", tostring(msg))
    r:close()
  end)
end)
