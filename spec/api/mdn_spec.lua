-- The MDN parser: hand-written RFC 8098 / RFC 4130 samples, hostile payloads, and the
-- sandbox's own MDNs through client:mdn_report.
local h = require "helpers"
local as2gateway = require "as2gateway"

local parse = as2gateway.parse_mdn

local function crlf(text) return (text:gsub("\r?\n", "\r\n")) end

-- RFC 8098 section 9's example, as the RFC prints it (bare LF here, CRLF below).
local RFC8098 = [[
Date: Wed, 20 Sep 1995 00:19:00 (EDT) -0400
From: Joe Recipient <Joe_Recipient@example.com>
Message-Id: <199509200019.12345@example.com>
Subject: Disposition notification
To: Jane Sender <Jane_Sender@example.org>
MIME-Version: 1.0
Content-Type: multipart/report; report-type=disposition-notification;
    boundary="RAA14128.773615765/example.com"

--RAA14128.773615765/example.com

The message sent on 1995 Sep 19 at 13:30:00 (EDT) -0400 to Joe
Recipient <Joe_Recipient@example.com> with subject "First draft of
report" has been displayed.
This is no guarantee that the message has been read or understood.

--RAA14128.773615765/example.com
content-type: message/disposition-notification

Reporting-UA: joes-pc.cs.example.com; Foomail 97.1
Original-Recipient: rfc822;Joe_Recipient@example.com
Final-Recipient: rfc822;Joe_Recipient@example.com
Original-Message-ID: <199509192301.23456@example.org>
Disposition: manual-action/MDN-sent-manually; displayed

--RAA14128.773615765/example.com
content-type: message/rfc822

[original message optionally goes here]

--RAA14128.773615765/example.com--
]]

-- A signed AS2 MDN in the shape of RFC 4130 section 7.4.3: the report inside
-- multipart/signed, a preamble, a folded field and a MIC.
local SIGNED = [[
MIME-Version: 1.0
Content-Type: multipart/signed; micalg=sha-256;
      protocol="application/pkcs7-signature";
      boundary="----=_Part_5_1234.5678"

This is an S/MIME signed message.
------=_Part_5_1234.5678
Content-Type: multipart/report; report-type=disposition-notification;
    boundary=----=_Part_6_8765.4321

------=_Part_6_8765.4321
Content-Type: text/plain
Content-Transfer-Encoding: 7bit

MDN for -
 Message ID: <200207310834482A70BF63@\"~~foo~~\">
  From: "\"  as2Name  \""
  To: "0123456789"
  Received on: 2002-07-31 at 09:34:14 (EDT)
 Status: processed
 Comment: This is not a guarantee that the message has
  been completely processed or &understood by the receiving
  translator

------=_Part_6_8765.4321
Content-Type: message/disposition-notification
Content-Transfer-Encoding: 7bit

Reporting-UA: AS2 Server
Original-Recipient: rfc822; "0123456789"
Final-Recipient: rfc822; "0123456789"
Original-Message-ID: <200207310834482A70BF63@\"~~foo~~\">
Received-content-MIC: 7v7F++fQaNB1sVLFtMRp+dF+eG4=,
   sha1
Disposition: automatic-action/MDN-sent-automatically;
   processed

------=_Part_6_8765.4321--

------=_Part_5_1234.5678
Content-Type: application/pkcs7-signature; name=smime.p7s
Content-Transfer-Encoding: base64
Content-Disposition: attachment; filename=smime.p7s

BhbWjEfbyXoTAS/H0zpnEqLqbaBh29y2v82b8bdeGw8pipBQWmf53hIcqHGM
4ZBF3CHw5Wrf1JIE6rfaLaA9vUmfj2xSaQdxxmSDJ7oY3ZQ8IfyX6Ekzjpxq
------=_Part_5_1234.5678--
]]

local function mdn_with(disposition, extra)
  return crlf(([[
Content-Type: multipart/report; report-type=disposition-notification; boundary="b1"

--b1
Content-Type: text/plain

Your message could not be processed.
--b1
Content-Type: message/disposition-notification

Reporting-UA: Partner AS2
Final-Recipient: rfc822; PARTNER-AS2
Original-Message-ID: <42@example.com>
%sDisposition: %s
--b1--
]]):format(extra or "", disposition))
end

describe("as2gateway.parse_mdn", function()
  it("reads RFC 8098's own example, CRLF or bare LF, into a table", function()
    for _, text in ipairs { crlf(RFC8098), RFC8098 } do
      local r, err = parse(text)
      assert.is_nil(err)
      assert.equal("displayed", r.disposition)
      assert.equal("manual-action", r.action_mode)
      assert.equal("MDN-sent-manually", r.sending_mode)
      assert.is_nil(r.error)
      assert.equal("<199509192301.23456@example.org>", r.original_message_id)
      assert.equal("Joe_Recipient@example.com", r.final_recipient)
      assert.equal("Joe_Recipient@example.com", r.original_recipient)
      assert.equal("joes-pc.cs.example.com; Foomail 97.1", r.reporting_ua)
      assert.is_nil(r.mic)
      -- a part without Content-Type is text/plain: the human-readable part
      assert.matches("^The message sent on 1995 Sep 19", r.text)
      assert.matches("read or understood%.$", r.text)
    end
  end)

  it("reads a signed AS2 MDN: the report inside multipart/signed, folded fields", function()
    local r = assert(parse(crlf(SIGNED)))
    assert.equal("processed", r.disposition)
    assert.equal("automatic-action", r.action_mode)
    assert.is_nil(r.error)
    assert.equal("7v7F++fQaNB1sVLFtMRp+dF+eG4=", r.mic)
    assert.equal("sha1", r.mic_algorithm)
    assert.equal([[<200207310834482A70BF63@\"~~foo~~\">]], r.original_message_id)
    assert.equal('"0123456789"', r.final_recipient)
    assert.matches("Status: processed", r.text)
    assert.equal("AS2 Server", r.fields["reporting-ua"])
  end)

  it("tells error, failure and warning dispositions apart", function()
    local r = assert(parse(mdn_with(
      "automatic-action/MDN-sent-automatically; processed/error: decryption-failed")))
    assert.equal("processed", r.disposition)
    assert.equal("error", r.modifier)
    assert.equal("decryption-failed", r.error)
    assert.equal("PARTNER-AS2", r.final_recipient)
    assert.equal("<42@example.com>", r.original_message_id)
    assert.equal("Your message could not be processed.", r.text)

    r = assert(parse(mdn_with(
      "automatic-action/MDN-sent-automatically; processed/Error: authentication-failed")))
    assert.equal("authentication-failed", r.error)

    r = assert(parse(mdn_with(
      "automatic-action/MDN-sent-automatically; failed/Failure: unsupported format")))
    assert.equal("failed", r.disposition)
    assert.equal("failure", r.modifier)
    assert.equal("unsupported format", r.error)

    r = assert(parse(mdn_with("automatic-action/MDN-sent-automatically; failed")))
    assert.equal("failed", r.error)

    r = assert(parse(mdn_with(
      "automatic-action/MDN-sent-automatically; processed/warning: duplicate-document")))
    assert.is_nil(r.error)
    assert.equal("duplicate-document", r.warning)

    r = assert(parse(mdn_with("Automatic-Action/MDN-Sent-Automatically ; PROCESSED",
      "Received-Content-MIC: abc=, SHA-256\r\n")))
    assert.equal("processed", r.disposition)
    assert.is_nil(r.error)
    assert.equal("abc=", r.mic)
    assert.equal("sha-256", r.mic_algorithm)
  end)

  it("reads a base64 or quoted-printable notification part, and a bare body", function()
    local fields = "Original-Message-ID: <b64@x>\r\nDisposition: "
      .. "automatic-action/MDN-sent-automatically; processed/error: unexpected-processing-error\r\n"
    local b64 = h.b64(fields)
    local r = assert(parse(crlf(([[
Content-Type: multipart/report; boundary=plain
MIME-Version: 1.0

--plain
Content-Type: message/disposition-notification
Content-Transfer-Encoding: base64

%s
--plain--
]]):format(b64:sub(1, 40) .. "\n" .. b64:sub(41)))))
    assert.equal("<b64@x>", r.original_message_id)
    assert.equal("unexpected-processing-error", r.error)

    r = assert(parse(crlf([[
Content-Type: multipart/report; boundary="qp"

--qp
Content-Type: message/disposition-notification
Content-Transfer-Encoding: quoted-printable

Original-Message-ID: <qp@x>
Disposition: automatic-action/MDN-sent-automatically; processed/warning: sp=
lit=3Dline
--qp--
]])))
    assert.equal("split=line", r.warning)

    -- a body without the entity's headers: the boundary from its first line
    r = assert(parse(crlf([[
--bare
Content-Type: message/disposition-notification

Disposition: automatic-action/MDN-sent-automatically; processed
--bare--
]])))
    assert.equal("processed", r.disposition)

    -- the disposition fields alone (what the sandbox wrote before it made MIME)
    r = assert(parse("Original-Message-ID: <f@x>\r\nDisposition: "
      .. "automatic-action/MDN-sent-automatically; processed\r\n"))
    assert.equal("<f@x>", r.original_message_id)
  end)

  it("does not take a delimiter-like line inside a part for a delimiter", function()
    local r = assert(parse(crlf([[
Content-Type: multipart/report; boundary="b"

--b
Content-Type: text/plain

--b-not-a-delimiter
still text
--b
Content-Type: message/disposition-notification

Disposition: automatic-action/MDN-sent-automatically; processed
--b--
epilogue
]])))
    assert.equal("--b-not-a-delimiter\r\nstill text", r.text)
  end)

  it("answers protocol for what is not a readable MDN, and raises on misuse", function()
    for name, payload in pairs {
      empty = "", blank = "\r\n \r\n",
      garbage = "\0\1\2\255binary",
      no_disposition = mdn_with("x"):gsub("Disposition: x\r\n", ""),
      no_mode = mdn_with("processed"),
      unterminated = crlf("Content-Type: multipart/report; boundary=b\n\n--b\n"
        .. "Content-Type: message/disposition-notification\n\nDisposition: a/b; processed\n"),
      no_boundary = crlf("Content-Type: multipart/report\n\n--b\n--b--\n"),
      bad_base64 = crlf("Content-Type: multipart/report; boundary=b\n\n--b\nContent-Type: "
        .. "message/disposition-notification\nContent-Transfer-Encoding: base64\n\n!!!\n--b--\n"),
      unknown_encoding = crlf("Content-Type: multipart/report; boundary=b\n\n--b\n"
        .. "Content-Type: message/disposition-notification\nContent-Transfer-Encoding: x-rot13\n"
        .. "\nDisposition: a/b; processed\n--b--\n"),
      only_text = crlf("Content-Type: multipart/report; boundary=b\n\n--b\n\nhello\n--b--\n"),
      too_big = ("x"):rep(1024 * 1024 + 1),
      deep = (function()
        local s = "Disposition: a/b; processed\r\n"
        for i = 1, 10 do
          s = ("Content-Type: multipart/mixed; boundary=l%d\r\n\r\n--l%d\r\n%s\r\n--l%d--\r\n")
            :format(i, i, s, i)
        end
        return s
      end)(),
    } do
      local r, err = parse(payload)
      assert.is_nil(r, name)
      assert.equal("protocol", err.kind, name)
      assert.matches("^MDN", err.message, name)
    end
    assert.has_error(function() parse(nil) end)
    assert.has_error(function() parse({}) end)
  end)
end)

describe("client:mdn_report", function()
  local client

  before_each(function()
    h.reset()
    client = as2gateway.new(h.core_options())
  end)

  after_each(function() client:close() end)

  local function sent_to(partner, data, params)
    local result = assert(client:send("ACME-AS2", partner, { { name = "po.xml", data = data } },
      params))
    h.advance(2)
    return result.as2MessageId
  end

  it("reads the sandbox's MDN of a sent message: the partner reports, with the file's MIC",
    function()
      local data = "<po number='1'/>\n"
      local id = sent_to("GLOBEX-AS2", data)
      local r, err = client:mdn_report("sent", id)
      assert.is_nil(err)
      assert.equal("processed", r.disposition)
      assert.is_nil(r.error)
      assert.equal(id, r.original_message_id)
      assert.equal("GLOBEX-AS2", r.final_recipient)
      assert.equal("sha-256", r.mic_algorithm)
      local f = h.tmpname()
      h.write_file(f, data)
      assert.equal(h.sh("openssl dgst -sha256 -binary " .. h.quote(f) .. " | base64 -w0"), r.mic)
      os.remove(f)
      assert.equal(assert(client:get("sent", id)).mdnMessage.content, r.text)
    end)

  it("reads an error MDN, and a received message's MDN naming our station", function()
    h.control("POST", "partner/GLOBEX-AS2", { mdnError = true })
    local id = sent_to("GLOBEX-AS2", "<bad/>")
    local r = assert(client:mdn_report("sent", id))
    assert.equal("decryption-failed", r.error)
    assert.equal("error", r.modifier)
    local inbound = h.inbound { station = "ACME-EU-AS2" }
    r = assert(client:mdn_report("received", inbound))
    assert.equal("ACME-EU-AS2", r.final_recipient)
    assert.equal(inbound, r.original_message_id)
  end)

  it("answers notfound while there is no MDN, and raises on misuse", function()
    local id = sent_to("HOOLI-TEST", "<x/>", { partnerType = "test" })
    local r, err = client:mdn_report("sent", id)
    assert.is_nil(r)
    assert.equal("notfound", err.kind)
    assert.has_error(function() client:mdn_report("queued", id) end)
    assert.has_error(function() client:mdn_report("sent", "") end)
  end)

  it("refuses an MDN larger than MAX_BYTES without holding it", function()
    local id = sent_to("GLOBEX-AS2", "<big/>")
    h.fault { path = "/message/sent/" .. h.escape(id) .. "/mdn", status = 200,
      body = ("x"):rep(1024 * 1024 + 10), content_type = "application/octet-stream" }
    local r, err = client:mdn_report("sent", id)
    assert.is_nil(r)
    assert.equal("protocol", err.kind)
  end)
end)
