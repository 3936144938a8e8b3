-- Pins down DELETE /message/:type/:id and bulk DELETE /message/:type for every type
-- (received, sent, queued, stopped, failed): answers, counts, limits and what is gone.
local h = require "helpers"

local unescape = h.unescape

local assert_generic = h.assert_generic

local behaviour = h.behaviour

local function send(partner)
  local res = h.api("POST", "/message/ACME-AS2/" .. partner, { body = "payload",
    headers = { "Name: p.txt", "Content-Type: text/plain" } })
  assert.equal(202, res.status, res.body)
  return unescape(res.headers.link:match("/message/sent/([^/]+)$"))
end

local function delete(kind, id)
  return h.api("DELETE", "/message/" .. kind .. "/" .. h.escape(id))
end

local function delete_many(kind, body)
  return h.api("DELETE", "/message/" .. kind, { json = body })
end

local function get(kind, id)
  return h.api("GET", "/message/" .. kind .. "/" .. h.escape(id))
end

local function total(kind, query)
  local res = h.api("GET", "/message/" .. kind, { query = query })
  assert.equal(200, res.status)
  return res.json.totalRecords
end

local function first_id(kind)
  return h.api("GET", "/message/" .. kind).json.records[1].as2MessageId
end

local function internal(id)
  return (h.control("GET", "messages/" .. h.escape(id)))
end

local function deleted_ok(res, id)
  assert.equal(200, res.status, res.body)
  assert.same({ message = "Successfully deleted message " .. id }, res.json)
end

describe("deleting one message", function()
  before_each(h.reset)

  it("deletes a received message", function()
    local id = first_id("received")
    deleted_ok(delete("received", id), id)
    assert_generic(get("received", id), 404)
    assert.equal(1, total("received"))
    assert.equal(0, total("received", { as2MessageId = id }))
    assert_generic(delete("received", id), 404)
  end)

  it("deletes a sent message", function()
    local id = first_id("sent")
    deleted_ok(delete("sent", id), id)
    assert_generic(get("sent", id), 404)
    assert.equal(0, total("sent"))
  end)

  it("deletes a queued entry, which is then never sent", function()
    behaviour("GLOBEX-AS2", "pause")
    local id = send("GLOBEX-AS2")
    local keep = send("GLOBEX-AS2")
    deleted_ok(delete("queued", id), id)
    assert_generic(get("queued", id), 404)
    assert.equal(1, total("queued"))
    behaviour("GLOBEX-AS2", "deliver")
    h.advance(5)
    assert_generic(get("sent", id), 404)
    assert.equal(200, get("sent", keep).status)
  end)

  it("deletes a stopped entry, which then cannot be retried", function()
    behaviour("GLOBEX-AS2", "pause")
    local id = send("GLOBEX-AS2")
    assert.equal(200, h.api("POST", "/message/queued/" .. h.escape(id) .. "/stop").status)
    assert_generic(delete("queued", id), 404) -- stopped is not queued
    assert.equal(1, #internal(id).stopped)
    deleted_ok(delete("stopped", id), id)
    assert.equal(0, #internal(id).stopped)
    assert_generic(h.api("POST", "/message/queued/" .. h.escape(id) .. "/retry"), 404)
    assert_generic(delete("stopped", id), 404)
  end)

  it("deletes every failed attempt of an AS2 ID", function()
    local _, status = h.control("POST", "config", { processing_time = 0 })
    assert.equal(200, status)
    behaviour("GLOBEX-AS2", "fail")
    local id = send("GLOBEX-AS2")
    local other = send("GLOBEX-AS2")
    h.advance(8) -- attempts at 1, 3 and 7 s
    assert.equal(3, total("failed", { as2MessageId = id }))
    deleted_ok(delete("failed", id), id)
    assert.equal(0, total("failed", { as2MessageId = id }))
    assert_generic(get("failed", id), 404)
    assert.equal(3, total("failed", { as2MessageId = other }))
    assert_generic(delete("failed", id), 404)
  end)

  it("answers 404 to unknown IDs of every type", function()
    for _, kind in ipairs { "received", "sent", "queued", "stopped", "failed" } do
      assert_generic(delete(kind, "<nope.1.1@as2gateway.com>"), 404)
    end
    -- an ID of another type is unknown to this one
    assert_generic(delete("sent", first_id("received")), 404)
    assert.equal(2, total("received"))
  end)

  it("answers 400 to an unknown type", function()
    local id = first_id("received")
    assert_generic(delete("inbox", id), 400)
    assert_generic(delete_many("inbox", { id }), 400)
    assert.equal(2, total("received"))
  end)
end)

describe("bulk delete", function()
  before_each(h.reset)

  it("deletes the listed messages and counts only existing ones", function()
    local a = h.inbound { subject = "A" }
    local b = h.inbound { subject = "B" }
    local res = delete_many("received", { a, "<nope.1.1@example.com>", b })
    assert.equal(200, res.status, res.body)
    assert.same({ message = "Deleted 2 messages" }, res.json)
    assert_generic(get("received", a), 404)
    assert_generic(get("received", b), 404)
    assert.equal(2, total("received")) -- the seed messages stay
    res = delete_many("received", { a, b })
    assert.same({ message = "Deleted 0 messages" }, res.json)
  end)

  it("counts an ID listed twice once", function()
    local a = h.inbound { subject = "A" }
    local res = delete_many("received", { a, a })
    assert.same({ message = "Deleted 1 messages" }, res.json)
  end)

  it("deletes sent, queued, stopped and failed entries in bulk", function()
    local _, status = h.control("POST", "config", { processing_time = 0 })
    assert.equal(200, status)
    local sent = first_id("sent")
    assert.same({ message = "Deleted 1 messages" }, delete_many("sent", { sent }).json)
    behaviour("INITECH-AS2", "pause")
    local q1, q2 = send("INITECH-AS2"), send("INITECH-AS2")
    assert.same({ message = "Deleted 2 messages" }, delete_many("queued", { q1, q2 }).json)
    assert.equal(0, total("queued"))
    local s = send("INITECH-AS2")
    assert.equal(200, h.api("POST", "/message/queued/" .. h.escape(s) .. "/stop").status)
    assert.same({ message = "Deleted 1 messages" }, delete_many("stopped", { s }).json)
    behaviour("GLOBEX-AS2", "fail")
    local f = send("GLOBEX-AS2")
    h.advance(4) -- two attempts
    assert.equal(2, total("failed", { as2MessageId = f }))
    assert.same({ message = "Deleted 1 messages" }, delete_many("failed", { f }).json)
    assert.equal(0, total("failed"))
  end)

  it("accepts 100 IDs and answers 400 to 101", function()
    local a = h.inbound { subject = "A" }
    local ids = { a }
    for i = 2, 101 do ids[i] = ("<nope.%d.1@example.com>"):format(i) end
    assert_generic(delete_many("received", ids), 400)
    assert.equal(200, get("received", a).status)
    ids[101] = nil
    assert.same({ message = "Deleted 1 messages" }, delete_many("received", ids).json)
  end)

  it("answers 400 to an empty array or a body that is not an array", function()
    local a = h.inbound { subject = "A" }
    assert_generic(delete_many("received", "[]"), 400)
    assert_generic(delete_many("received", { ids = { a } }), 400)
    assert_generic(delete_many("received", h.json_encode(a)), 400)
    assert_generic(delete_many("received", "not json"), 400)
    assert_generic(delete_many("received", { a, 42 }), 400)
    assert.equal(200, get("received", a).status)
  end)
end)
