--- as2gateway.outbound: client:wait(...) and client:send_dir(...), what happens to
-- messages we send (pure Lua over the client's methods).
local core = require "as2gateway.core"
local util = require "as2gateway.util"

local ipairs, type = ipairs, type
local min = math.min
local err, check_opts = util.err, util.check_opts

local W = {}

-- Wait -------------------------------------------------------------------------------------

-- What a sent message says about its delivery, when that is not plain success.
local function delivery_state(msg)
  if type(msg.mdnMessage) == "table" and msg.mdnMessage.mdnError == true then
    return "mdn_error"
  end
  if msg.deliveryStatus == "Not Delivered" then return "not_delivered" end
  if msg.deliveryStatus == "No Status" then return "no_status" end
end

-- "Test" / "test" -> "test": the listings' partnerType parameter.
local function partner_type(v)
  if type(v) ~= "string" then return nil end
  v = v:lower()
  if v == "test" or v == "production" then return v end
end

local function check_seconds(opts, name)
  local v = opts[name]
  if v ~= nil and (type(v) ~= "number" or v < 0 or v ~= v or v == math.huge) then
    error(("wait: %s must be a number of seconds"):format(name), 3)
  end
end

--- Waits for the final state of a message we sent, polling sparingly (first after
--- opts.initial seconds, then at growing intervals up to opts.interval). Returns the
--- message, its state and (with opts.mdn) the MDN read into a table:
---   "sent"           delivered (with opts.mdn: and its MDN received, no error in it)
---   "mdn_error"      the partner's MDN reports an error or failure
---   "not_delivered", "no_status"  the sent message's deliveryStatus says so
---   "no_mdn"         (opts.mdn) sent, but no MDN will come (mdnStatus "No MDN")
---   "stopped"        it left the queue unsent after failed attempts: the last one
---   "gone"           it left the queue unsent with no failed attempt (stopped before
---                    its first attempt, or deleted): the last entry seen
---   "failed"         (opts.first_failure) the first failed attempt
--- or nil and an error: kind "notfound" when the ID is in no list for opts.grace
--- seconds (unless it is known to have been accepted: then "gone"), "timeout" after
--- opts.timeout seconds (err.last and err.last_state: what was seen last, e.g. a sent
--- message whose MDN never came).
--- The partner's type (which the failed listing needs) comes from opts.partnerType,
--- the target, or the first entry seen.
---@param target string|table a link or AS2 message ID, or a send result / journal record
---@param opts? table {timeout = 300, initial = 2, interval = 30, mdn = false, first_failure = false, grace = 30, settle = 10, partnerType =}
---@return table|nil message
---@return string|as2gateway.Error state, or the error
---@return table|nil mdn with opts.mdn: the parsed MDN
function W.wait(self, target, opts)
  opts = opts or {}
  check_opts(opts, { timeout = true, initial = true, interval = true, mdn = true,
    first_failure = true, grace = true, settle = true, partnerType = true }, "wait")
  for _, k in ipairs { "timeout", "initial", "interval", "grace", "settle" } do
    check_seconds(opts, k)
  end
  local id, accepted, ptype
  if type(target) == "table" then
    id = target.as2MessageId or (type(target.link) == "string"
      and require("as2gateway").id_of(target.link))
    accepted, ptype = true, partner_type(target.partnerType)
    if type(id) ~= "string" or id == "" then
      return nil, err("invalid", "wait: the send result holds no AS2 message ID (the "
        .. "gateway's answer had no usable Link): find the message with resolve()")
    end
  elseif type(target) == "string" and target ~= "" then
    id = require("as2gateway").id_of(target)
  else
    error("wait: a link, an AS2 message ID or a send result expected", 2)
  end
  ptype = partner_type(opts.partnerType) or ptype
  local timeout = opts.timeout or 300
  local grace, settle = opts.grace or 30, opts.settle or 10
  local start = self.clock()
  local deadline = start + timeout
  local delay, max_delay = opts.initial or 2, opts.interval or 30
  local seen, last, last_state = false, nil, nil
  local absent, absent_since = 0, nil

  local function learn(entity)
    seen = true
    ptype = ptype or partner_type(entity.partnerType)
  end

  -- the first (or last) failed attempt, from the listing (which needs the type)
  local function attempt(first)
    local page, e = self:list("failed", { as2MessageId = id, pageLength = 1,
      sortCol = "persistedTimestamp", sortDir = first and "asc" or "desc",
      partnerType = ptype })
    if not page then return nil, e end
    return type(page.records) == "table" and page.records[1] or nil
  end

  while true do
    local now = self.clock()
    if now >= deadline then break end
    self.sleep(min(delay, deadline - now))
    delay = min(delay * 1.5, max_delay)
    now = self.clock()
    local msg, e = self:get("sent", id)
    if msg then
      learn(msg)
      absent = 0
      local bad = delivery_state(msg)
      if bad then
        -- with opts.mdn, the partner's own words on the error come along
        return msg, bad, opts.mdn and bad == "mdn_error" and self:mdn_report("sent", id) or nil
      end
      last, last_state = msg, "sent"
      if not opts.mdn or msg.mdnStatus == "Not Requested" then return msg, "sent" end
      if msg.mdnStatus == "No MDN" then return msg, "no_mdn" end
      if msg.mdnStatus ~= "Pending" then
        local report, re = self:mdn_report("sent", id)
        if report then
          if report.error then return msg, "mdn_error", report end
          return msg, "sent", report
        elseif re.kind ~= "notfound" then
          return nil, re
        end -- listed as Received, MDN not downloadable yet: poll again
      end
    elseif e.kind ~= "notfound" then
      return nil, e
    else
      local queued
      queued, e = self:get("queued", id)
      if not queued and e.kind ~= "notfound" then return nil, e end
      local failed
      if queued then
        learn(queued)
        absent, absent_since = 0, nil
        last, last_state = queued, "queued"
      else
        failed, e = self:get("failed", id)
        if not failed and e.kind ~= "notfound" then return nil, e end
        if failed then learn(failed) end
        absent = absent + 1
        absent_since = absent_since or now
      end
      if opts.first_failure and (failed or queued) then
        local first
        first, e = attempt(true)
        if e then return nil, e end
        if first then return first, "failed" end
      end
      -- out of the queue and not sent, for two polls at least `settle` apart
      local left = absent >= 2 and now - absent_since >= settle
      if failed then
        last, last_state = failed, "failed"
        if left then
          local final
          final, e = attempt(false)
          if e then return nil, e end
          return final or failed, "stopped"
        end
      elseif not queued then
        if left and (seen or accepted) then
          return last or { as2MessageId = id }, "gone"
        end
        if not seen and not accepted and absent >= 2 and now - start >= grace then
          local nf = err("notfound", "message %s is in no list (sent, queued or failed) after "
            .. "%s s: not an ID of this account, deleted, or stopped before its first "
            .. "attempt (the API lists no stopped messages)", id, tostring(grace))
          nf.as2MessageId = id
          return nil, nf
        end
      end
    end
  end
  local te = err("timeout", "message %s reached no final state within %s s%s", id,
    tostring(timeout), last_state == "sent" and " (sent; its MDN is still pending)"
      or last_state and (" (last seen: " .. last_state .. ")") or "")
  te.as2MessageId, te.last, te.last_state = id, last, last_state
  return nil, te
end

-- Send a folder --------------------------------------------------------------------------

--- Sends every regular, non-hidden file of a folder, one message per file (or
--- opts.group files per message), in name order. Returns a report: one entry per
--- message {files = {...}, as2MessageId =, link =, err =}.
---@param params? table {partnerType =, subject =, profile =, group = 1}
function W.send_dir(self, station, partner, dir, params)
  params = params or {}
  check_opts(params, { partnerType = true, subject = true, profile = true, group = true },
    "send_dir")
  local group = params.group or 1
  if type(group) ~= "number" or group < 1 or group > 10 or group % 1 ~= 0 then
    error("send_dir: group must be an integer from 1 to 10", 2)
  end
  local names, e = core.listdir(dir)
  if not names then return nil, e end
  local list = {}
  for _, n in ipairs(names) do
    local path = dir .. "/" .. n
    if n:sub(1, 1) ~= "." and core.stat(path) == "file" then list[#list + 1] = path end
  end
  local send_params = { partnerType = params.partnerType, subject = params.subject,
    profile = params.profile }
  local report = {}
  for first = 1, #list, group do
    local paths = {}
    for i = first, min(first + group - 1, #list) do paths[#paths + 1] = list[i] end
    local res, serr = self:send(station, partner, paths, send_params)
    report[#report + 1] = { files = paths, as2MessageId = res and res.as2MessageId,
      link = res and res.link, err = serr }
  end
  return report
end

return W
