-- The sandbox's MDNs: RFC 8098 multipart/report payloads, and partners set for an error
-- MDN, No Status or an MDN that never arrives; the outbound view of /_sandbox/messages.
local h = require "helpers"

local function send(partner, name, data, query)
  local res = h.api("POST", "/message/ACME-AS2/" .. partner, { headers = { Name = name,
    ["Content-Type"] = "text/plain" },
    body = data, query = query })
  assert.equal(202, res.status, res.body)
  return h.unescape(res.headers.link:match("([^/]+)$"))
end

local function sent(id)
  local res = h.api("GET", "/message/sent/" .. h.escape(id))
  assert.equal(200, res.status, res.body)
  return res.json
end

local function mdn(kind, id)
  local res = h.api("GET", "/message/" .. kind .. "/" .. h.escape(id) .. "/mdn")
  assert.equal(200, res.status, res.body)
  return res.body
end

local function partner(name, settings)
  local res, status = h.control("POST", "partner/" .. name, settings)
  assert.equal(200, status, res and res.message)
end

-- The parts of a multipart body, split with nothing but string search (not the
-- client's parser): {headers = text, body = text} each, and the boundary.
local function parts(payload)
  local boundary = payload:match('boundary="([^"]+)"')
  assert.is_string(boundary, payload)
  local delim = "\r\n--" .. boundary
  local body = "\r\n" .. payload:match("\r\n\r\n(.*)$")
  local out, pos = {}, 1
  while true do
    local _, e = body:find(delim, pos, true)
    if not e or body:sub(e + 1, e + 2) == "--" then break end
    local nxt = body:find(delim, e + 1, true) or #body + 1
    local head, text = body:sub(e + 3, nxt - 1):match("^(.-)\r\n\r\n(.*)$")
    out[#out + 1] = { headers = head, body = text }
    pos = nxt
  end
  return out, boundary
end

-- base64 of the SHA-256 of some bytes, by openssl.
local function mic_of(data)
  local f = h.tmpname()
  h.write_file(f, data)
  local out = h.sh("openssl dgst -sha256 -binary " .. h.quote(f) .. " | base64 -w0")
  os.remove(f)
  return out
end

describe("sandbox MDNs", function()
  before_each(h.reset)

  it("are multipart/report with a text part and a disposition-notification part",
    function()
      local data = "<order number='7'/>\n"
      local id = send("GLOBEX-AS2", "order.xml", data)
      h.advance(2)
      local payload = mdn("sent", id)
      assert.matches("^Content%-Type: multipart/report; report%-type=disposition%-notification;",
        payload)
      local list, boundary = parts(payload)
      assert.equal(2, #list, payload)
      assert.truthy(payload:find("\r\n--" .. boundary .. "--\r\n", 1, true))
      assert.matches("Content%-Type: text/plain", list[1].headers)
      assert.equal(sent(id).mdnMessage.content, (list[1].body:gsub("\r\n$", "")))
      assert.matches("Content%-Type: message/disposition%-notification", list[2].headers)
      local fields = {}
      for name, value in list[2].body:gmatch("([%w-]+): ([^\r\n]*)") do fields[name] = value end
      assert.equal("AS2 Gateway sandbox", fields["Reporting-UA"])
      -- the partner received a sent message: it reports
      assert.equal("rfc822; GLOBEX-AS2", fields["Final-Recipient"])
      assert.equal("rfc822; GLOBEX-AS2", fields["Original-Recipient"])
      assert.equal(id, fields["Original-Message-ID"])
      assert.equal("automatic-action/MDN-sent-automatically; processed", fields.Disposition)
      assert.equal(mic_of(data) .. ", sha-256", fields["Received-Content-MIC"])
    end)

  it("of received messages name our station, with the MIC over all attachments", function()
    local a, b = "first attachment\n", "second attachment\n"
    local id = h.inbound { station = "ACME-EU-AS2", attachments = {
      { name = "a.txt", data = h.b64(a) }, { name = "b.txt", data = h.b64(b) } } }
    local payload = mdn("received", id)
    assert.truthy(payload:find("Final-Recipient: rfc822; ACME-EU-AS2\r\n", 1, true), payload)
    assert.truthy(payload:find("Original-Message-ID: " .. id .. "\r\n", 1, true))
    assert.truthy(payload:find("Received-Content-MIC: " .. mic_of(a .. b) .. ", sha-256\r\n",
      1, true), payload)
  end)

  it("report an error for a partner set to mdnError, with mdnError on the entity", function()
    partner("GLOBEX-AS2", { mdnError = true })
    local id = send("GLOBEX-AS2", "bad.xml", "<bad/>")
    h.advance(2)
    local m = sent(id)
    assert.equal("Received", m.mdnStatus)
    assert.is_true(m.mdnMessage.mdnError)
    assert.matches("could not be decrypted", m.mdnMessage.content)
    local payload = mdn("sent", id)
    assert.truthy(payload:find("Disposition: automatic-action/MDN-sent-automatically; "
      .. "processed/error: decryption-failed\r\n", 1, true), payload)
    -- asynchronous MDNs too, once they arrive
    partner("INITECH-AS2", { mdnError = true })
    id = send("INITECH-AS2", "late.xml", "<late/>")
    h.advance(2)
    assert.equal("Pending", sent(id).mdnStatus)
    h.advance(3)
    assert.is_true(sent(id).mdnMessage.mdnError)
    assert.truthy(mdn("sent", id):find("processed/error", 1, true))
  end)

  it("give No Status (and no MDN) for a partner set to it", function()
    partner("GLOBEX-AS2", { deliveryStatus = "No Status" })
    local id = send("GLOBEX-AS2", "x.xml", "<x/>")
    h.advance(2)
    local m = sent(id)
    assert.equal("No Status", m.deliveryStatus)
    assert.equal("No MDN", m.mdnStatus)
    assert.is_nil(m.mdnMessage)
    h.assert_generic(h.api("GET", "/message/sent/" .. h.escape(id) .. "/mdn"), 404)
  end)

  it("never arrive from a partner set to mdnLost: Pending for ever", function()
    partner("INITECH-AS2", { mdnLost = true })
    partner("GLOBEX-AS2", { mdnLost = true })
    local async = send("INITECH-AS2", "a.xml", "<a/>")
    local sync = send("GLOBEX-AS2", "s.xml", "<s/>")
    h.advance(2)
    h.advance(30 * 24 * 3600)
    h.token = nil -- the helpers' token expired meanwhile
    for _, id in ipairs { async, sync } do
      local m = sent(id)
      assert.equal("Delivered", m.deliveryStatus)
      assert.equal("Pending", m.mdnStatus)
      assert.is_nil(m.mdnMessage)
    end
  end)

  it("settings are checked and undone by reset", function()
    for _, bad in ipairs { { mdnError = "yes" }, { mdnLost = 1 },
                           { deliveryStatus = "Lost" }, { requestMdn = "true" } } do
      local _, status = h.control("POST", "partner/GLOBEX-AS2", bad)
      assert.equal(400, status)
    end
    partner("GLOBEX-AS2", { mdnError = true, deliveryStatus = "Not Delivered" })
    h.reset()
    local id = send("GLOBEX-AS2", "ok.xml", "<ok/>")
    h.advance(2)
    local m = sent(id)
    assert.equal("Delivered", m.deliveryStatus)
    assert.is_false(m.mdnMessage.mdnError)
  end)
end)

describe("GET /_sandbox/messages", function()
  before_each(h.reset)

  it("lists every outbound message once, in any state, with attachment digests", function()
    h.behaviour("INITECH-AS2", "pause")
    local queued = send("INITECH-AS2", "q.txt", "queued one")
    local delivered = send("GLOBEX-AS2", "d.txt", "delivered one")
    h.behaviour("AS2G-ECHO", "fail")
    local failing = send("AS2G-ECHO", "f.txt", "failing one")
    h.advance(3) -- one failed attempt of `failing`, back in the queue
    local stopped = send("GLOBEX-AS2", "s.txt", "stopped one")
    assert.equal(200, h.api("POST", "/message/queued/" .. h.escape(stopped) .. "/stop").status)
    local res, status = h.control("GET", "messages")
    assert.equal(200, status)
    local by_id = {}
    for _, m in ipairs(res.outbound) do
      assert.is_nil(by_id[m.as2MessageId], "listed twice: " .. m.as2MessageId)
      by_id[m.as2MessageId] = m
    end
    -- the seed's sent message, and ours
    assert.equal(5, #res.outbound)
    assert.equal("queued", by_id[queued].state)
    assert.equal("sent", by_id[delivered].state)
    assert.equal("queued", by_id[failing].state)
    assert.equal("stopped", by_id[stopped].state)
    local want = h.sh("printf %s 'delivered one' | sha256sum"):match("^(%x+)")
    assert.same({ { name = "d.txt", size = 13, contentType = "text/plain", sha256 = want } },
      by_id[delivered].attachments)
    assert.equal("GLOBEX-AS2", by_id[delivered].receiverId)
    assert.equal("ACME-AS2", by_id[delivered].senderId)
  end)
end)
