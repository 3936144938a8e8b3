-- Pins down GET /partner and GET /station: JSON arrays of the contract's Partner and
-- Station entities (exact fields, [] for empty lists) and the `query` search.
local h = require "helpers"

local PARTNER = {
  partnerId = "number", as2Identifier = "string", name = "string", description = "string",
  uri = "string", messageSubject = "string", encryptionAlgorithm = "string",
  signDigestAlgorithm = "string", signEncryptAlgorithm = "string", encryptCert = "cert",
  signCert = "cert", useDiffCertAsSignCert = "boolean", httpsCert = "cert",
  encryptMessages = "boolean", signMessage = "boolean", compressAfter = "boolean",
  compressBefore = "boolean", precompressInputFiles = "boolean", requestAsyncMdn = "boolean",
  requestMdn = "boolean", requestSignedMdn = "boolean", requestHttpsMdn = "boolean",
  customHeaders = "table", useAs2Restart = "boolean", pauseIncoming = "boolean",
  pauseOutgoing = "boolean", sendTimeout = "number", flows = "table", partnerType = "string",
  isGlobalPartner = "boolean", pinned = "boolean",
}

local STATION = {
  id = "number", as2Identifier = "string", name = "string", comments = "string",
  email = "string", certificate = "cert", sftpStructure = "number",
  emailNotifications = "boolean", sendFailureEmails = "boolean",
  sendMdnFailureEmails = "boolean", pinned = "boolean",
}

-- Every field present with its type, and no other field.
local function check_entity(e, fields)
  for k, v in pairs(e) do
    assert(fields[k], "unexpected field " .. tostring(k))
    assert.equal(fields[k] == "cert" and "table" or fields[k], type(v), k)
  end
  for k, t in pairs(fields) do
    assert.is_not_nil(e[k], "missing field " .. k)
    if t == "cert" then
      assert.equal("number", type(e[k].id), k .. ".id")
      local n = 0
      for _ in pairs(e[k]) do n = n + 1 end
      assert.equal(1, n, k .. " has only id")
    end
  end
end

local function count(s, pattern)
  local n = 0
  for _ in s:gmatch(pattern) do n = n + 1 end
  return n
end

local function as2_ids(res)
  local ids = {}
  for i, e in ipairs(res.json) do ids[i] = e.as2Identifier end
  table.sort(ids)
  return ids
end

local function get(what, query)
  local res = h.api("GET", "/" .. what, { query = query and { query = query } })
  assert.equal(200, res.status, res.body)
  assert.equal("table", type(res.json))
  assert.truthy(res.body:match("^%s*%["), "not a JSON array: " .. res.body)
  return res
end

describe("partners", function()
  before_each(h.reset)

  it("lists every partner with every field of the contract", function()
    local res = get("partner")
    assert.same({ "AS2G-ECHO", "AS2G-ECHO-TEST", "GLOBEX-AS2", "HOOLI-TEST", "INITECH-AS2" },
      as2_ids(res))
    for _, p in ipairs(res.json) do
      check_entity(p, PARTNER)
      assert.is_true(p.partnerType == "Production" or p.partnerType == "Test")
      for _, hd in ipairs(p.customHeaders) do
        assert.equal("string", type(hd.headerKey))
        assert.equal("string", type(hd.headerValue))
      end
      for _, f in ipairs(p.flows) do assert.equal("string", type(f)) end
    end
    local by = {}
    for _, p in ipairs(res.json) do by[p.as2Identifier] = p end
    assert.equal("Test", by["HOOLI-TEST"].partnerType)
    assert.equal("Production", by["GLOBEX-AS2"].partnerType)
    assert.equal("Echo", by["AS2G-ECHO"].messageSubject)
    assert.is_false(by["HOOLI-TEST"].requestMdn)
    assert.is_true(by["INITECH-AS2"].requestAsyncMdn)
    assert.same({ { headerKey = "X-Globex-Route", headerValue = "edi" } },
      by["GLOBEX-AS2"].customHeaders)
    assert.same({ "archive" }, by["INITECH-AS2"].flows)
  end)

  it("writes empty customHeaders and flows as []", function()
    local res = get("partner")
    local empty_headers, empty_flows = 0, 0
    for _, p in ipairs(res.json) do
      if #p.customHeaders == 0 then empty_headers = empty_headers + 1 end
      if #p.flows == 0 then empty_flows = empty_flows + 1 end
    end
    assert.equal(4, empty_headers)
    assert.equal(4, empty_flows)
    assert.equal(empty_headers, count(res.body, '"customHeaders"%s*:%s*%[%s*%]'))
    assert.equal(empty_flows, count(res.body, '"flows"%s*:%s*%[%s*%]'))
    assert.equal(0, count(res.body, '"customHeaders"%s*:%s*{'))
    assert.equal(0, count(res.body, '"flows"%s*:%s*{'))
  end)

  it("filters by partial, case-insensitive name or AS2 ID with query", function()
    assert.same({ "AS2G-ECHO", "AS2G-ECHO-TEST" }, as2_ids(get("partner", "echo")))
    assert.same({ "GLOBEX-AS2" }, as2_ids(get("partner", "globex-as2")))
    assert.same({ "GLOBEX-AS2" }, as2_ids(get("partner", "CORPORATION"))) -- name only
    assert.same({ "AS2G-ECHO-TEST", "HOOLI-TEST" }, as2_ids(get("partner", "-test")))
    assert.same({ "INITECH-AS2" }, as2_ids(get("partner", "nite")))
  end)

  it("answers [] when nothing matches", function()
    local res = get("partner", "no such partner")
    assert.equal(0, #res.json)
    assert.truthy(res.body:match("^%s*%[%s*%]%s*$"), res.body)
  end)

  it("lists only the account's own partners", function()
    local token = h.login(h.other_username, h.other_password)
    local res = h.api("GET", "/partner", { token = token })
    assert.equal(200, res.status)
    assert.same({ "STARK-TEST", "WAYNE-AS2" }, as2_ids(res))
    h.token = nil
  end)
end)

describe("stations", function()
  before_each(h.reset)

  it("lists every station with every field of the contract", function()
    local res = get("station")
    assert.same({ "ACME-AS2", "ACME-EU-AS2" }, as2_ids(res))
    for _, s in ipairs(res.json) do check_entity(s, STATION) end
    local by = {}
    for _, s in ipairs(res.json) do by[s.as2Identifier] = s end
    assert.equal(1, by["ACME-AS2"].id)
    assert.equal(2, by["ACME-EU-AS2"].id)
    assert.equal("Acme Main", by["ACME-AS2"].name)
    assert.equal("Acme Europe", by["ACME-EU-AS2"].name)
  end)

  it("filters by partial, case-insensitive name or AS2 ID with query", function()
    assert.same({ "ACME-AS2", "ACME-EU-AS2" }, as2_ids(get("station", "acme")))
    assert.same({ "ACME-EU-AS2" }, as2_ids(get("station", "EUROPE"))) -- name only
    assert.same({ "ACME-EU-AS2" }, as2_ids(get("station", "eu-as2")))
    assert.same({ "ACME-AS2" }, as2_ids(get("station", "main")))
  end)

  it("answers [] when nothing matches", function()
    local res = get("station", "no such station")
    assert.equal(0, #res.json)
    assert.truthy(res.body:match("^%s*%[%s*%]%s*$"), res.body)
  end)

  it("lists only the account's own stations", function()
    local token = h.login(h.other_username, h.other_password)
    local res = h.api("GET", "/station", { token = token })
    assert.same({ "UMBRELLA-AS2" }, as2_ids(res))
    h.token = nil
  end)
end)
