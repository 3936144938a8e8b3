--- as2gateway.outbound: client:wait(...) and client:send_dir(...), what happens to
-- messages we send (pure Lua over the client's methods).
local core = require "as2gateway.core"
local util = require "as2gateway.util"

local ipairs, type = ipairs, type
local min = math.min
local err, check_opts = util.err, util.check_opts

local W = {}

-- Wait -------------------------------------------------------------------------------------

--- Waits for a sent message's final state, polling sparingly (first after
--- opts.initial seconds, then at growing intervals up to opts.interval). Returns the
--- message and "sent" (delivered; with opts.mdn, also once its MDN is no longer
--- Pending), or the last failed attempt and "stopped" (it left the queue unsent), or
--- with opts.first_failure the first failed attempt and "failed". After
--- opts.timeout seconds: nil and an error of kind "timeout".
---@param link_or_id string the `link` of a send result, or the AS2 message ID
---@param opts? table {timeout = 300, initial = 2, interval = 30, mdn = false, first_failure = false}
function W.wait(self, link_or_id, opts)
  opts = opts or {}
  check_opts(opts, { timeout = true, initial = true, interval = true, mdn = true,
    first_failure = true }, "wait")
  local id = require("as2gateway").id_of(link_or_id)
  local deadline = self.clock() + (opts.timeout or 300)
  local delay, max_delay = opts.initial or 2, opts.interval or 30
  local absent = 0
  while true do
    local now = self.clock()
    if now >= deadline then break end
    self.sleep(min(delay, deadline - now))
    delay = min(delay * 1.5, max_delay)
    local msg, e = self:get("sent", id)
    if msg then
      if not (opts.mdn and msg.mdnStatus == "Pending") then return msg, "sent" end
    elseif e.kind ~= "notfound" then
      return nil, e
    else
      local queued
      queued, e = self:get("queued", id)
      if not queued and e.kind ~= "notfound" then return nil, e end
      local failed
      if not queued or opts.first_failure then
        local page
        -- the first attempt for first_failure, as documented; else the last one
        page, e = self:list("failed", { as2MessageId = id, pageLength = 1,
          sortCol = "persistedTimestamp", sortDir = opts.first_failure and "asc" or "desc" })
        if not page then return nil, e end
        failed = page.records and page.records[1]
      end
      if failed and opts.first_failure then return failed, "failed" end
      -- out of the queue twice in a row, not sent, with failed attempts: stopped
      absent = queued and 0 or absent + 1
      if failed and absent >= 2 then return failed, "stopped" end
    end
  end
  local e = err("timeout", "message %s reached no final state within %s s", id,
    tostring(opts.timeout or 300))
  return nil, e
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
