-- The sandbox's seed data: two accounts, each with stations, partners and a few
-- messages. Documented in docs/sandbox.md; tests rely on these names.
local M = {}

local function partner(id, as2, name, ptype, extra)
  local p = {
    partnerId = id, as2Identifier = as2, name = name,
    description = name .. " (sandbox partner)",
    uri = "https://as2.example.com/" .. as2:lower(),
    messageSubject = "", encryptionAlgorithm = "AES256_CBC",
    signDigestAlgorithm = "SHA256", signEncryptAlgorithm = "RSA",
    encryptCert = { id = 100 + id }, signCert = { id = 100 + id },
    useDiffCertAsSignCert = false, httpsCert = { id = 200 + id },
    encryptMessages = true, signMessage = true, compressAfter = false,
    compressBefore = false, precompressInputFiles = false,
    requestAsyncMdn = false, requestMdn = true, requestSignedMdn = true,
    requestHttpsMdn = false, customHeaders = {}, useAs2Restart = false,
    pauseIncoming = false, pauseOutgoing = false, sendTimeout = 60, flows = {},
    partnerType = ptype, isGlobalPartner = false, pinned = false,
  }
  for k, v in pairs(extra or {}) do p[k] = v end
  return p
end

local function station(id, as2, name, email, extra)
  local s = {
    id = id, as2Identifier = as2, name = name, comments = name .. " (sandbox station)",
    email = email, certificate = { id = 300 + id }, sftpStructure = 0,
    emailNotifications = false, sendFailureEmails = true,
    sendMdnFailureEmails = true, pinned = false,
  }
  for k, v in pairs(extra or {}) do s[k] = v end
  return s
end

local X12 = "ISA*00*          *00*          *ZZ*GLOBEX         *ZZ*ACME           "
  .. "*251101*1200*U*00401*000000101*0*P*>~GS*IN*GLOBEX*ACME*20251101*1200*101*X*004010~"
  .. "ST*810*0001~BIG*20251101*1001~SE*3*0001~GE*1*101~IEA*1*000000101~\n"

-- `echo = true` marks an echo partner: whatever is sent to it comes back as a
-- received message. `behaviour` is the sandbox-only delivery switch.
function M.accounts(cfg)
  return {
    {
      username = cfg.username, password = cfg.password,
      stations = {
        station(1, "ACME-AS2", "Acme Main", "edi@acme.example.com", { pinned = true }),
        station(2, "ACME-EU-AS2", "Acme Europe", "edi-eu@acme.example.com"),
      },
      partners = {
        partner(1, "AS2G-ECHO", "Echo Partner", "Production",
          { messageSubject = "Echo", pinned = true }),
        partner(2, "GLOBEX-AS2", "Globex Corporation", "Production",
          { customHeaders = { { headerKey = "X-Globex-Route", headerValue = "edi" } } }),
        partner(3, "INITECH-AS2", "Initech", "Production",
          { requestAsyncMdn = true, flows = { "archive" } }),
        partner(4, "AS2G-ECHO-TEST", "Echo Partner (test)", "Test",
          { messageSubject = "Echo test" }),
        partner(5, "HOOLI-TEST", "Hooli (test)", "Test",
          { requestMdn = false, requestSignedMdn = false, encryptMessages = false }),
      },
      echo = { ["AS2G-ECHO"] = true, ["AS2G-ECHO-TEST"] = true },
      profiles = { default = {}, ["edi-headers"] = { ["X-EDI-Profile"] = "edi" } },
      received = {
        { partner = "GLOBEX-AS2", station = "ACME-AS2", subject = "Invoice 1001",
          attachments = { { name = "invoice-1001.edi", data = X12 } } },
        { partner = "GLOBEX-AS2", station = "ACME-AS2", subject = "Invoice 1002",
          attachments = { { name = "invoice-1002.xml",
            data = '<?xml version="1.0"?><invoice number="1002" total="250.00"/>\n' },
            { name = "invoice-1002.pdf", data = "%PDF-1.4\n% sandbox placeholder\n" } } },
        { partner = "HOOLI-TEST", station = "ACME-EU-AS2", partnerType = "Test",
          attachments = { { name = "test-order.csv", data = "sku,qty\n10344,10\n" } } },
      },
      sent = {
        { partner = "GLOBEX-AS2", station = "ACME-AS2", subject = "Order 5001",
          attachments = { { name = "order-5001.xml",
            data = '<?xml version="1.0"?><order number="5001"/>\n' } } },
      },
    },
    {
      username = cfg.other_username, password = cfg.other_password,
      stations = { station(3, "UMBRELLA-AS2", "Umbrella", "edi@umbrella.example.com") },
      partners = {
        partner(6, "WAYNE-AS2", "Wayne Enterprises", "Production"),
        partner(7, "STARK-TEST", "Stark Industries (test)", "Test"),
      },
      echo = {},
      profiles = { default = {} },
      received = {
        { partner = "WAYNE-AS2", station = "UMBRELLA-AS2", subject = "Umbrella secret",
          attachments = { { name = "secret.txt", data = "only for Umbrella\n" } } },
      },
      sent = {},
    },
  }
end

return M
