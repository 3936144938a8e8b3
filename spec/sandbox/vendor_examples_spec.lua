-- Pins down that the vendor page's curl examples work as typed, with host, credentials, CA.
local h = require "helpers"

-- Runs a curl command line built like the page's (one option per line, joined with
-- " \" and a newline) in /bin/sh. The only additions to the page's options are
-- --cacert (our CA) and -si (no progress meter; the answer's head printed before its
-- body, so that the test can read the status and the Link header).
-- Returns {status, headers (lower-cased names), body, exit}.
local function run(lines, cwd)
  local cmd = table.concat(lines, " \\\n  ")
  if cwd then cmd = "cd " .. h.quote(cwd) .. " && " .. cmd end
  local p = io.popen(cmd .. " 2>/dev/null")
  local out = p:read("a")
  local _, _, exit = p:close()
  local res = { exit = exit, headers = {} }
  local head_end = out:find("\r\n\r\n", 1, true)
  assert(head_end, "no HTTP answer from: " .. cmd .. "\n" .. out)
  local head = out:sub(1, head_end - 1)
  res.body = out:sub(head_end + 4)
  res.status = tonumber(head:match("^HTTP/[%d.]+ (%d%d%d)"))
  for line in head:gmatch("[^\r\n]+") do
    local k, v = line:match("^([^:]+):%s*(.-)%s*$")
    if k then res.headers[k:lower()] = v end
  end
  res.json = h.json_decode(res.body)
  return res
end

local function cacert() return "--cacert " .. h.quote(h.ca) end

-- The page's send URL with our station and partner.
local SEND_URL = h.url .. "/message/ACME-AS2/GLOBEX-AS2"

-- Checks a send's 202 answer; returns the AS2 message ID the Link header names.
local function accepted(res)
  assert.are.equal(0, res.exit)
  assert.are.equal(202, res.status, res.body)
  assert.are.same({ message = "Successfully added a new outbound entry" }, res.json)
  local link = res.headers["link"]
  assert.is_string(link, "no Link header")
  assert.is_falsy(link:find("[<>%s;]"), "Link is not a bare URL: " .. link)
  local enc = link:match("^" .. (h.url:gsub("%p", "%%%0")) .. "/message/sent/([^/?#]+)$")
  assert.is_truthy(enc, "Link does not point to /v1/message/sent/<id>: " .. link)
  assert.is_truthy(enc:match("^%%3C.+%%40.+%%3E$"), "ID not percent-encoded: " .. enc)
  local id = enc:gsub("%%(%x%x)", function(x) return string.char(tonumber(x, 16)) end)
  assert.are.equal(enc, h.escape(id))
  return id, link
end

-- After the queue delay: the Link URL answers, and the listing of sent holds the
-- message with these attachments {name, data}.
local function assert_sent(id, link, token, files)
  h.advance(5)
  local want = {}
  for i, f in ipairs(files) do want[i] = { name = f.name, size = #f.data } end
  local res = h.curl { url = link, token = token }
  assert.are.equal(200, res.status)
  assert.are.equal(id, res.json.as2MessageId)
  assert.are.same(want, res.json.attachments)
  local list = h.curl { path = "/message/sent", token = token,
    query = { as2MessageId = id } }
  assert.are.equal(1, list.json.totalRecords)
  assert.are.same(want, list.json.records[1].attachments)
  assert.are.equal("ACME-AS2", list.json.records[1].senderId)
  assert.are.equal("GLOBEX-AS2", list.json.records[1].receiverId)
  for i, f in ipairs(files) do
    local att = h.curl { url = link .. "/attachments/" .. (i - 1), token = token }
    assert.are.equal(200, att.status)
    assert.are.equal(f.data, att.body, "attachment " .. f.name)
  end
end

describe("the vendor page's curl examples", function()
  before_each(h.reset)

  it("obtain a token (Get JWT Token)", function()
    local res = run {
      "curl -si -XPOST " .. h.quote(h.url .. "/authorize"),
      "-H 'Content-Type: application/json'",
      "--data " .. h.quote(h.json_encode { username = h.username, password = h.password }),
      cacert(),
    }
    assert.are.equal(0, res.exit)
    assert.are.equal(200, res.status)
    assert.is_truthy(res.headers["content-type"]:find("application/json", 1, true))
    assert.is_string(res.json.token)
    assert.is_number(res.json.expiry)
    -- the page writes the JSON exactly so: no spaces
    local typed = run {
      "curl -si -XPOST " .. h.quote(h.url .. "/authorize"),
      "-H 'Content-Type: application/json'",
      "--data '{\"username\":\"" .. h.username .. "\",\"password\":\"" .. h.password .. "\"}'",
      cacert(),
    }
    assert.are.equal(200, typed.status)
    assert.are.equal(200, h.curl { path = "/station", token = typed.json.token }.status)
  end)

  it("send a single generated file with Name, Content-Type and Content-Length: 132",
    function()
      local token = h.login()
      -- The page's XML, as the scrape left it and closed with "  </items>", is 118
      -- bytes, not the 132 of its Content-Length header; a Content-Length longer than
      -- the body would leave the server waiting for bytes that never come. So the item
      -- gets a price="100.0" attribute (14 bytes): 132 bytes, as the header says.
      local xml = '<?xml version="1.0" encoding="UTF-8"?>\n'
        .. '  <items total="1000">\n'
        .. '    <item sku="10344" qty="10" price="100.0" total="1000"/>\n'
        .. '  </items>'
      assert.are.equal(132, #xml)
      local res = run {
        "curl -si -XPOST " .. h.quote(SEND_URL),
        "-H " .. h.quote("Authorization: " .. token),
        '-H "Name: invoice_20200101.xml"',
        '-H "Content-Type: text/xml"',
        '-H "Content-Length: 132"',
        "--data-binary",
        h.quote(xml),
        cacert(),
      }
      local id, link = accepted(res)
      local inside = h.control("GET", "messages/" .. h.escape(id))
      assert.are.equal("text/xml", inside.queued[1].attachments[1].contentType)
      assert_sent(id, link, token, { { name = "invoice_20200101.xml", data = xml } })
    end)

  it("send an existing file with --data-binary @invoice_20200101.xml", function()
    local token = h.login()
    local dir = h.tmpname()
    assert(os.execute("mkdir " .. h.quote(dir)))
    local xml = '<?xml version="1.0" encoding="UTF-8"?>\n<items total="1000">\n'
      .. '  <item sku="10344" qty="10" total="1000"/>\n</items>\n'
    h.write_file(dir .. "/invoice_20200101.xml", xml)
    local res = run({
      "curl -si -XPOST " .. h.quote(SEND_URL),
      "-H " .. h.quote("Authorization: " .. token),
      '-H "Name: invoice_20200101.xml"',
      '-H "Content-Type: text/xml"',
      "--data-binary @invoice_20200101.xml",
      cacert(),
    }, dir)
    os.remove(dir .. "/invoice_20200101.xml")
    os.remove(dir)
    local id, link = accepted(res)
    assert_sent(id, link, token, { { name = "invoice_20200101.xml", data = xml } })
  end)

  it("send two files as multipart/form-data; boundary=----foobarbaz, typed with LF ends",
    function()
      local token = h.login()
      -- the body as a shell user types it between single quotes: bare LF line ends
      local body = table.concat({
        "------foobarbaz",
        'Content-Disposition: form-data; name="file"; filename="file1.txt"',
        "Content-Type: text/plain",
        "",
        "one",
        "------foobarbaz",
        'Content-Disposition: form-data; name="file"; filename="file2.txt"',
        "Content-Type: text/plain",
        "",
        "two, a bit longer",
        "------foobarbaz--",
      }, "\n")
      assert.is_falsy(body:find("\r", 1, true))
      local res = run {
        "curl -si -XPOST " .. h.quote(SEND_URL),
        "-H " .. h.quote("Authorization: " .. token),
        '-H "Content-Type: multipart/form-data; boundary=----foobarbaz"',
        "--data-binary",
        h.quote(body),
        cacert(),
      }
      local id, link = accepted(res)
      local inside = h.control("GET", "messages/" .. h.escape(id))
      assert.are.equal("text/plain", inside.queued[1].attachments[1].contentType)
      assert_sent(id, link, token, { { name = "file1.txt", data = "one" },
        { name = "file2.txt", data = "two, a bit longer" } })
    end)
end)
