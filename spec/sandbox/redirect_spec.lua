-- Pins down the plain-HTTP port: 307 to the same path and query on HTTPS, method and body kept.
local h = require "helpers"

local https_base = h.url:gsub("/v1$", "")
local http_base = h.http_url:gsub("/v1$", "")

local function plain(method, path_and_query, opts)
  opts = opts or {}
  opts.method, opts.url = method, http_base .. path_and_query
  return h.curl(opts)
end

describe("the plain-HTTP port", function()
  before_each(h.reset)

  it("is another port on the same host", function()
    assert.is_truthy(h.http_url:match("^http://"))
    assert.is_truthy(h.url:match("^https://"))
    assert.are_not.equal(h.http_url:match("^http://([^/]+)"), h.url:match("^https://([^/]+)"))
  end)

  for _, method in ipairs { "GET", "POST", "DELETE" } do
    it("answers " .. method .. " with 307 to the same path and query on the HTTPS port",
      function()
        local pq = "/v1/message/received?pageLength=5&sortDir=asc"
        local res = plain(method, pq)
        assert.are.equal(307, res.status)
        assert.are.equal(https_base .. pq, res.headers["location"])
      end)
  end

  it("keeps a percent-encoded message ID in the Location as sent", function()
    local pq = "/v1/message/sent/" .. h.escape("<90766548.41.1573209810390@as2gateway.com>")
      .. "/attachments/0?markAsRead=true"
    local res = plain("GET", pq)
    assert.are.equal(307, res.status)
    assert.are.equal(https_base .. pq, res.headers["location"])
  end)

  it("redirects a POST /authorize with its JSON body without reading it as a login", function()
    local res = plain("POST", "/v1/authorize",
      { json = { username = h.username, password = h.password } })
    assert.are.equal(307, res.status)
    assert.are.equal(h.url .. "/authorize", res.headers["location"])
    assert.is_nil(res.json and res.json.token)
    assert.are.equal(0, h.stats().authorizations)
  end)

  it("leads curl -L to a token: POST /authorize keeps its method and body", function()
    local res = plain("POST", "/v1/authorize",
      { json = { username = h.username, password = h.password }, args = { "-L" } })
    assert.are.equal(200, res.status)
    assert.is_string(res.json.token)
    assert.is_number(res.json.expiry)
    assert.are.equal(1, h.stats().authorizations)
    assert.are.equal(200, h.curl { path = "/station", token = res.json.token }.status)
  end)

  it("leads curl -L to a 401 for wrong credentials, not a redirect loop", function()
    local res = plain("POST", "/v1/authorize",
      { json = { username = h.username, password = "wrong" }, args = { "-L" } })
    assert.are.equal(401, res.status)
    assert.is_string(res.json.message)
  end)

  it("leads a raw send with the Name header to 202, body and all", function()
    local token = h.login()
    local body = "redirected payload\n" .. ("0123456789"):rep(50)
    -- curl -L drops a custom Authorization header when the redirect changes the port
    -- (curl >= 7.83); --location-trusted (which implies -L) keeps it, as a user must
    local res = plain("POST", "/v1/message/ACME-AS2/AS2G-ECHO?subject=Via%20HTTP",
      { token = token, headers = { Name = "via-http.txt", "Content-Type: text/plain" },
        body = body, args = { "--location-trusted" } })
    assert.are.equal(202, res.status)
    assert.are.equal("Successfully added a new outbound entry", res.json.message)
    local id_enc = res.headers["link"]:match("^" .. h.url:gsub("%p", "%%%0")
      .. "/message/sent/([^/]+)$")
    assert.is_truthy(id_enc, "Link " .. tostring(res.headers["link"]))
    h.advance(5)
    local sent = h.api("GET", "/message/sent", { token = token,
      query = { subject = "Via HTTP" } })
    assert.are.equal(1, sent.json.totalRecords)
    local m = sent.json.records[1]
    assert.are.equal(h.escape(m.as2MessageId), id_enc)
    assert.are.same({ { name = "via-http.txt", size = #body } }, m.attachments)
    local att = h.api("GET", "/message/sent/" .. id_enc .. "/attachments/0", { token = token })
    assert.are.equal(200, att.status)
    assert.are.equal(body, att.body)
  end)

  it("redirects a raw send without enqueuing it when not followed", function()
    local token = h.login()
    local res = plain("POST", "/v1/message/ACME-AS2/AS2G-ECHO",
      { token = token, headers = { Name = "not-followed.txt" }, body = "x" })
    assert.are.equal(307, res.status)
    assert.are.equal(h.url .. "/message/ACME-AS2/AS2G-ECHO", res.headers["location"])
    assert.are.equal(0, h.api("GET", "/message/queued", { token = token }).json.totalRecords)
    h.advance(5)
    assert.are.equal(1, h.api("GET", "/message/sent", { token = token }).json.totalRecords)
  end)
end)
