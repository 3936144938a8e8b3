--- as2gateway: a client for the AS2 Gateway REST API v1.
-- The public module (pure Lua) over the C core `as2gateway.core`: one method per
-- endpoint, iterators over listings, and (in as2gateway.workflows) the workflows
-- users run. Entities are plain tables with the API's own field names; query
-- parameters keep the API's names. See README.md and docs/core.md.
local core = require "as2gateway.core"
local driver = require "as2gateway.driver"
local files = require "as2gateway.files"
local json = require "as2gateway.json"
local util = require "as2gateway.util"

local setmetatable, type, pairs, ipairs, error = setmetatable, type, pairs, ipairs, error
local tostring, tonumber = tostring, tonumber
local floor = math.floor

local _M = {
  _VERSION = core._VERSION,
  core = core,
  kinds = core.kinds,
  MAX_FILES = files.MAX_FILES,
  MAX_BYTES = files.MAX_BYTES,
  MAX_IDS = 100,
}

-- The path prefix of the message endpoints, and DELETE's own: the vendor text writes
-- `DELETE /:message_type:/:message_as2_id:` with no prefix, and API.md reads it as under
-- /message/ like every other message endpoint. Each lives here alone, so either is one
-- line to change; DELETE_PREFIX is read at each call.
local MESSAGE = "message"
_M.MESSAGE_PREFIX = MESSAGE
_M.DELETE_PREFIX = "message"

local LISTABLE = { received = true, sent = true, failed = true, queued = true }
local DOWNLOADABLE = { received = true, sent = true }
local DELETABLE = { received = true, sent = true, failed = true, queued = true, stopped = true }

local LIST_PARAMS = { sortCol = true, sortDir = true, partnerType = true, pageOffset = true,
  pageLength = true, partnerAS2Id = true, stationAS2Id = true, as2MessageId = true,
  subject = true }
local QUEUED_PARAMS = { sortCol = true, sortDir = true, partnerType = true, pageOffset = true,
  pageLength = true, query = true }

---@class as2gateway.Error
---@field kind as2gateway.ErrorKind stable; only ever appended to (as2gateway.kinds)
---@field message string the gateway's own message when it sent one, else what happened
---@field context? string with the gateway's message: what failed ("not found")
---@field status? integer HTTP status, when there was an answer

local function check_kind(kind, allowed, what)
  if not allowed[kind] then
    local names = {}
    for k in pairs(allowed) do names[#names + 1] = k end
    table.sort(names)
    error(("%s: kind must be one of %s, got %s"):format(what, table.concat(names, ", "),
      tostring(kind)), 3)
  end
end

local function check_id(id, what)
  if type(id) ~= "string" or id == "" then
    error(what .. ": an AS2 message ID (non-empty string) expected", 3)
  end
end

local function check_params(params, allowed, what)
  if params == nil then return {} end
  if type(params) ~= "table" then error(what .. ": params must be a table", 3) end
  util.check_opts(params, allowed, what, 4, "parameter")
  return params
end

---@class as2gateway.Client
---@field core userdata the as2gateway.core client underneath: it holds the clock and the sleep
---@field host_sleep? fun(seconds: number) a class that must yield (as2gateway.openresty) sleeps with this, between steps too; nil: blocking
local Client = {}
Client.__index = Client
_M.Client = Client

---@class as2gateway.Options
---@field url string base URL, e.g. "https://api.as2gateway.com/v1" (https only; http for loopback)
---@field username? string log in lazily with username and password ...
---@field password? string
---@field token? string ... or use a ready token
---@field token_expiry? number its expiry, ms since the epoch
---@field cainfo? string an extra CA file (PEM) to trust, e.g. the sandbox's
---@field proxy? string proxy URL (default: libcurl's *_proxy environment variables)
---@field connect_timeout? number seconds (10)
---@field timeout? number seconds for a whole transfer (none)
---@field low_speed_limit? number bytes/s ... (100)
---@field low_speed_time? number ... for this many seconds (30) aborts a transfer
---@field rate_limit? table|false {requests = 50, window = 10}, or false
---@field quota? string|table|userdata shared with other processes, the token too (docs/quota.md): "file:<folder>",
--- "redis://host:port/db", "unix:///socket", {file = <folder>, ...}, {redis = <url>, ...}, or an engine of
--- core.quota_file / core.quota_redis (the client takes it over); nil: this process's own window
---@field retries? integer retries after the first attempt (5)
---@field backoff_base? number seconds (0.5)
---@field backoff_cap? number seconds (30)
---@field retry_after_cap? number seconds (120)
---@field max_json? integer largest answer held in memory (16 MiB)
---@field json_timeout? number seconds an answer held in memory may take to arrive whole (120; 0: no deadline)
---@field deadline? number seconds each call may take in all, waits and retries included (none; see Client:with)
---@field fail_fast? boolean a call that would wait for the rate limit ends at once with ratelimited
---@field max_transfers? integer transfers in flight at once, each on a connection of its own, for a caller stepping several requests (1; over 64: 64)
---@field max_download? integer largest answer written to a file (512 MiB; 0: no limit)
---@field user_agent? string
---@field log? fun(event: table) one table per event, secrets never included
---@field clock? fun(): number seconds; replaces the clock (tests, event loops)
---@field sleep? fun(seconds: number) replaces sleeping (tests; as2gateway.openresty yields with ngx.sleep instead)
---@field progress? fun(ul_now: number, ul_total: number, dl_now: number, dl_total: number) during transfers
---@field acquire? fun(): number an outside rate limiter: 0 (go) or the seconds to wait; with release
---@field release? fun(seconds: number) gives the slot back, with the time the transfer ended

--- Creates a client. Nothing goes over the network until the first call. Wrong
--- option names or types raise.
---@param opts as2gateway.Options
---@return as2gateway.Client
function _M.new(opts)
  if type(opts) ~= "table" then error("as2gateway.new: options table expected", 2) end
  local deadline, fail_fast = util.check_limits(opts.deadline, opts.fail_fast,
    "as2gateway.new", 2)
  local copy = opts
  if deadline ~= nil or fail_fast ~= nil then -- the call's limits, not the core's
    copy = {}
    for k, v in pairs(opts) do copy[k] = v end
    copy.deadline, copy.fail_fast = nil, nil
  end
  return setmetatable({
    core = core.new(copy),
    log = opts.log,
    marks = 0, -- requests that marked messages read (see Iterator)
    deadline = deadline, fail_fast = fail_fast,
  }, Client)
end

--- Runs one request through the core to its end with the one step driver
--- (as2gateway.driver): the result, or nil and an error. Blocking, unless the class
--- has a host_sleep to yield with (as2gateway.openresty).
---@param spec table a request spec of the core (docs/core.md)
---@return table|nil result
---@return as2gateway.Error|nil err
function Client:perform(spec)
  if spec.query and spec.query.markAsRead then self.marks = self.marks + 1 end
  if self.deadline or self.fail_fast then
    local copy = {}
    for k, v in pairs(spec) do copy[k] = v end
    copy.deadline = copy.deadline or self.deadline
    copy.fail_fast = copy.fail_fast or self.fail_fast
    spec = copy
  end
  local req, err = self.core:request(spec)
  if not req then return nil, err end
  return driver.run(req, self.host_sleep)
end

--- A view of this client whose calls have these limits (the others stay the
--- client's; the view is the client in every other way, closing included):
--- `deadline`, seconds each call may take in all (rate-limit waits, retries and
--- transfers); then `timeout`, or `ratelimited` (with `retry_after`) at once when the
--- rate limit would hold it longer, or `unknown_outcome` for a send stopped in flight;
--- and `fail_fast`: a call that would wait for the rate limit ends at once with
--- `ratelimited`.
---@param limits as2gateway.Limits
---@return as2gateway.Client
function Client:with(limits)
  util.check_opts(limits, { deadline = true, fail_fast = true }, "with", 3)
  local view = setmetatable({}, { __index = self, __newindex = self })
  local deadline, fail_fast = util.check_limits(limits.deadline, limits.fail_fast, "with", 2)
  rawset(view, "deadline", deadline)
  rawset(view, "fail_fast", fail_fast)
  return view
end

--- Seconds on the client's clock (the `clock` option, else monotonic).
---@return number seconds
function Client:now()
  return self.core:now()
end

--- Sleeps the client's way: the class's host_sleep, else the `sleep` option (else
--- core.sleep, which a trapped Ctrl-C cuts short).
---@param seconds number
---@return nil
function Client:sleep(seconds)
  if self.host_sleep then return self.host_sleep(seconds) end
  return self.core:sleep(seconds)
end

--- A `warning` log event: something the gateway did that is not an error.
function Client:_warn(fields)
  if not self.log then return end
  fields.event = "warning"
  self.log(fields)
end

--- Logs in now (otherwise the first call does).
---@return string|nil token
---@return number|as2gateway.Error expiry ms since the epoch, or the error
function Client:authorize()
  local ok, err = self:perform { login = true } -- through the same driver as any request
  if not ok then return nil, err end
  local token, expiry = self.core:token()
  return token, expiry
end

--- The token the client holds now (no request): token, expiry (integer ms since the
--- epoch, 0 when unknown) and whether the client would use it now; or nil.
---@return string|nil token
---@return integer|nil expiry ms since the epoch
---@return boolean|nil usable whether the client would use it now
function Client:token()
  return self.core:token()
end

--- Request counters of this client: requests, retries, authorizations, ...
---@return as2gateway.Stats
function Client:stats()
  return self.core:stats()
end

--- Closes the client and its connection; idempotent (also on __gc and __close).
---@return nil
function Client:close()
  self.core:close()
end
Client.__close = Client.close

-- The shapes answers must have, checked where they come in (json_call): an answer of
-- another shape is `nil, err` of kind protocol, never a Lua error further on. Each
-- returns nil when `v` fits, or what is wrong. The decoder gives [] and {} alike, and a
-- table it makes is never mixed (a JSON object has string keys only, an array the keys
-- 1..n only), so one key tells which it is: the checks stay O(1) per value, which a
-- page of 100 records needs (walking every key cost a quarter of a listing's
-- instructions under Lua 5.4).
local function is_object(v)
  return type(v) == "table" and type((next(v))) ~= "number"
end

local function is_list(v, each)
  if type(v) ~= "table" or type((next(v))) == "string" then return false end
  for i = 1, #v do
    if not each(v[i]) then return false end
  end
  return true
end

local function is_message(v)
  return is_object(v) and type(v.as2MessageId) == "string" and v.as2MessageId ~= ""
end

local SHAPES = {
  object = function(v)
    if not is_object(v) then return "a JSON object" end
  end,
  objects = function(v)
    if not is_list(v, is_object) then return "a JSON array of objects" end
  end,
  page = function(v)
    if not is_object(v) then return "a Pagination object" end
    local total = v.totalRecords
    if total ~= nil and (type(total) ~= "number" or total < 0 or total % 1 ~= 0) then
      return "a Pagination with a count in totalRecords"
    end
    if not is_list(v.records, is_message) then
      return "a Pagination whose records are messages with an as2MessageId"
    end
  end,
}

local function json_call(self, spec, shape)
  spec.json = true
  local res, err = self:perform(spec)
  if not res then return nil, err end
  -- the core's decoder already gives integers as integers (csrc/lua/ljson.c)
  local v = res.json
  local wanted = SHAPES[shape](v)
  if wanted then
    local e = util.err("protocol", "the gateway's answer to %s %s is not %s",
      spec.method or "GET", table.concat(spec.path, "/"), wanted)
    e.status = res.status
    return nil, e
  end
  -- one value on success: a second one would read as an error to `if err then`
  return v
end

-- Listings --------------------------------------------------------------------------

--- One page of a listing.
---@param kind "received"|"sent"|"failed"|"queued"
---@param params? as2gateway.ListParams the API's query parameters (pageOffset is a page number)
---@return as2gateway.Page|nil page
---@return as2gateway.Error|nil err
function Client:list(kind, params)
  check_kind(kind, LISTABLE, "list")
  local allowed = kind == "queued" and QUEUED_PARAMS or LIST_PARAMS
  if kind == "received" then
    allowed = setmetatable({ unreadOnly = true }, { __index = LIST_PARAMS })
  end
  params = check_params(params, allowed, "list")
  return json_call(self, { path = { MESSAGE, kind }, query = params }, "page")
end

local Iterator = {}
Iterator.__index = Iterator

-- Fetches pages of 100 and hands out messages one by one. Two ways a listing moves
-- under a reader are handled: new arrivals push a newest-first listing down (the
-- next page repeats some messages: skipped by ID), and with unreadOnly, messages
-- the reader marks read leave it (then the same page is read again while it still
-- shows unseen messages; only a page of nothing new moves the offset on). A page is
-- read again only when this client marked messages read since it was fetched: a
-- reader that marks nothing pays no more requests than a plain listing. However the
-- gateway answers, util.listing_guard bounds the pages that bring nothing new.
function Iterator:__call()
  while true do
    local m = self.buffer[self.next]
    if m then
      self.next = self.next + 1
      return m
    end
    if self.done then return nil end
    if self.recheck then
      -- the last page of an unreadOnly listing showed unseen messages: read it again
      -- only if messages were marked read since (they leave it, pulling later ones in)
      self.recheck = nil
      if self.client.marks == self.marks then
        if self.short then
          self.done = true
          return nil
        end
        self.offset = self.offset + 1
      end
    end
    local query = {}
    for k, v in pairs(self.params) do query[k] = v end
    query.pageOffset, query.pageLength = self.offset, self.page_length
    local page, err = self.client:list(self.kind, query)
    if not page then
      self.done, self.err = true, err
      return nil, err
    end
    local records = page.records
    local fresh = {}
    for _, rec in ipairs(records) do
      -- the failed listing holds one entry per attempt, all with the message's AS2 ID
      local key = self.kind == "failed"
        and tostring(rec.as2MessageId) .. "\0" .. tostring(rec.persistedTimestamp)
        or rec.as2MessageId
      if not self.seen[key] then
        self.seen[key] = true
        fresh[#fresh + 1] = rec
      end
    end
    self.buffer, self.next = fresh, 1
    -- entries that left the listing since the last page (deleted, sent) pull the later
    -- ones up past the offset: go back as many pages (what comes again is skipped by ID)
    local total = type(page.totalRecords) == "number" and page.totalRecords or nil
    local left = (total and self.total) and self.total - total or 0
    self.total = total
    if left > 0 and not self.rereads and self.offset > 0 then
      self.offset = math.max(0, self.offset - math.ceil(left / self.page_length))
    elseif #records == 0 then
      self.done = true
    elseif self.rereads and #fresh > 0 then
      self.recheck, self.marks = true, self.client.marks
      self.short = #records < self.page_length
    else
      -- a page of nothing new (or any page, when nothing leaves the listing): move on
      if #records < self.page_length then self.done = true end
      self.offset = self.offset + 1
    end
    if not self.done then
      local ok
      ok, err = self.guard:page(#fresh)
      if not ok then
        self.done, self.err = true, err
        return nil, err
      end
    end
  end
end

function Iterator:close()
  self.done, self.buffer = true, {}
end
Iterator.__close = Iterator.close

--- Every message of every page, as a callable iterator:
---   for message in client:messages("received", {unreadOnly = true}) do ... end
--- A failure ends the loop: the call returns nil, err and the error stays in
--- `iterator.err` (`local it = client:messages(...); for m in it do ... end`). The
--- iterator is to-be-closed on Lua 5.4.
---@param kind "received"|"sent"|"failed"|"queued"
---@param params? as2gateway.ListParams query parameters, without pageOffset
---@return as2gateway.Iterator
function Client:messages(kind, params)
  check_kind(kind, LISTABLE, "messages")
  if params ~= nil and type(params) ~= "table" then error("messages: params must be a table", 2) end
  if params and params.pageOffset ~= nil then
    error("messages: the iterator pages by itself; leave out pageOffset", 2)
  end
  -- a copy: the caller's table is left as it was (pageLength is taken out below)
  local copy = {}
  for k, v in pairs(params or {}) do copy[k] = v end
  params = copy
  local it = setmetatable({
    client = self, kind = kind, params = params, offset = 0,
    page_length = params.pageLength or 100, seen = {}, buffer = {}, next = 1,
    rereads = kind == "received" and params.unreadOnly == true,
    guard = util.listing_guard("the " .. kind .. " listing"),
  }, Iterator)
  params.pageLength = nil
  return it, nil, nil, it
end

--- One message.
---@param kind "received"|"sent"|"failed"|"queued"
---@param id string the AS2 message ID
---@param params? as2gateway.GetParams {markAsRead = true} (received only)
---@return as2gateway.Message|nil message
---@return as2gateway.Error|nil err
function Client:get(kind, id, params)
  check_kind(kind, LISTABLE, "get")
  check_id(id, "get")
  params = check_params(params, kind == "received" and { markAsRead = true } or {}, "get")
  return json_call(self, { path = { MESSAGE, kind, id }, query = params }, "object")
end

--- Undoes markAsRead (API scope).
---@param id string the AS2 message ID of a received message
---@return as2gateway.Ack|nil ack
---@return as2gateway.Error|nil err
function Client:mark_unread(id)
  check_id(id, "mark_unread")
  return json_call(self, { method = "POST", path = { MESSAGE, "received", id, "markUnread" } },
    "object")
end

--- Stops retrying a queued message (it moves to the Stopped list).
---@param id string
---@return as2gateway.Ack|nil ack
---@return as2gateway.Error|nil err
function Client:stop(id)
  check_id(id, "stop")
  return json_call(self, { method = "POST", path = { MESSAGE, "queued", id, "stop" } }, "object")
end

--- Resumes retrying a stopped message.
---@param id string
---@return as2gateway.Ack|nil ack
---@return as2gateway.Error|nil err
function Client:retry(id)
  check_id(id, "retry")
  return json_call(self, { method = "POST", path = { MESSAGE, "queued", id, "retry" } },
    "object")
end

--- Deletes one message (returns 1) or a list of them, 100 per request (returns how
--- many the gateway deleted).
---@param kind "received"|"sent"|"failed"|"queued"|"stopped"
---@param id_or_ids string|string[]
---@return integer|nil deleted
---@return as2gateway.Error|nil err
---@return integer|nil deleted_before_the_error
function Client:delete(kind, id_or_ids)
  check_kind(kind, DELETABLE, "delete")
  if type(id_or_ids) == "string" then
    check_id(id_or_ids, "delete")
    local ack, err = json_call(self, { method = "DELETE",
      path = { _M.DELETE_PREFIX, kind, id_or_ids } }, "object")
    if not ack then return nil, err end
    return 1
  end
  if type(id_or_ids) ~= "table" then error("delete: an ID or a list of IDs expected", 2) end
  -- every ID is checked before the first request: misuse must not delete half a list
  for i = 1, #id_or_ids do check_id(id_or_ids[i], "delete") end
  local total = 0
  for first = 1, #id_or_ids, _M.MAX_IDS do
    local chunk = {}
    for i = first, math.min(first + _M.MAX_IDS - 1, #id_or_ids) do
      chunk[#chunk + 1] = id_or_ids[i]
    end
    local ack, err = json_call(self, { method = "DELETE", path = { _M.DELETE_PREFIX, kind },
      headers = { ["Content-Type"] = "application/json" }, body = json.encode(chunk) },
      "object")
    if not ack then return nil, err, total end
    local n = type(ack.message) == "string" and tonumber(ack.message:match("(%d+)"))
    if not n then
      -- the IDs were sent: some may be gone, but the answer does not say how many
      return nil, util.err("protocol", "the gateway's answer to a bulk delete does not say "
        .. "how many were deleted: %s", tostring(ack.message)), total
    end
    total = total + n
  end
  return total
end

--- Partners, optionally filtered by name or AS2 ID (partial match).
---@param query? string
---@return as2gateway.Partner[]|nil partners
---@return as2gateway.Error|nil err
function Client:partners(query)
  return json_call(self, { path = { "partner" }, query = query and { query = query } or nil },
    "objects")
end

--- Stations, optionally filtered by name or AS2 ID (partial match).
---@param query? string
---@return as2gateway.Station[]|nil stations
---@return as2gateway.Error|nil err
function Client:stations(query)
  return json_call(self, { path = { "station" }, query = query and { query = query } or nil },
    "objects")
end

-- Sending ---------------------------------------------------------------------------------

--- Enqueues an AS2 message to a partner. `files` is a path, a list of paths, or a
--- list of {name =, path = | data =, content_type =}. Everything is checked before
--- anything is sent (1-10 files, 10 MB in all, unique safe names, readable files).
--- A send is never repeated once it may have reached the gateway: then the error
--- kind is `unknown_outcome`.
---@param station string the station's AS2 ID
---@param partner string the partner's AS2 ID
---@param list string|string[]|as2gateway.FileSpec[] the files: paths, or names with data
---@param params? as2gateway.SendParams
---@return as2gateway.SendResult|nil result {message, link, as2MessageId, station, partner, subject, partnerType}
---@return as2gateway.Error|nil err
function Client:send(station, partner, list, params)
  if type(station) ~= "string" or station == "" then error("send: station expected", 2) end
  if type(partner) ~= "string" or partner == "" then error("send: partner expected", 2) end
  params = check_params(params, { partnerType = true, subject = true, profile = true }, "send")
  local spec, err = files.request(list)
  if not spec then return nil, err end
  spec.method, spec.send = "POST", true
  spec.path = { MESSAGE, station, partner }
  spec.query = params
  local res
  res, err = self:perform(spec)
  if not res then return nil, err end
  -- a 2xx is the gateway taking the message: a success, whatever its body (reporting
  -- it as a failure would invite a duplicate resend); what is missing is a warning
  local ack = core.decode_json(res.body or "")
  local message = type(ack) == "table" and type(ack.message) == "string" and ack.message or nil
  local warning
  if not message or not res.link then
    warning = ("the gateway accepted the message (HTTP %d) %s"):format(res.status,
      res.link and "with an unexpected body" or "without a Link header: its ID is unknown")
    self:_warn { method = "POST", path = "/" .. table.concat(spec.path, "/"), status = res.status,
      message = warning }
  end
  -- what was sent where comes along, for wait (the partner's type) and resolve
  return {
    message = message, warning = warning,
    link = res.link,
    as2MessageId = res.link and _M.id_of(res.link),
    station = station, partner = partner, subject = params.subject,
    partnerType = params.partnerType or "production",
  }
end

local function unescape(s)
  return (s:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

--- Reads an MDN payload (RFC 8098 multipart/report, signed or not, or its
--- disposition fields alone) into a table: see as2gateway.mdn.
_M.parse_mdn = function(payload) return require("as2gateway.mdn").parse(payload) end

--- The AS2 message ID in a Link URL (its last path segment), or the argument itself
--- when it is already an ID.
---@param link_or_id string
---@return string id
function _M.id_of(link_or_id)
  local seg = link_or_id:match("^https?://[^?#]*/([^/?#]+)[^/]*$")
  if seg then return unescape(seg) end
  return link_or_id
end

-- Downloads --------------------------------------------------------------------------------

local function is_dir(path)
  return core.stat(path) == "dir"
end

--- Downloads one attachment (opts.index, default 0), all of them (opts.all: a zip,
--- extracted when `to` is a folder), into `to` (a file path, or an existing folder:
--- then the name comes from the gateway, sanitised, never replacing a file) or into
--- opts.sink (function(chunk)). Written to a temporary file and renamed into place
--- only when complete. Returns the path; for an extracted `all`, the list of paths
--- (all or nothing: a zip entry that must be refused fails the call); for a sink,
--- the answer's details {status, filename, content_type, bytes}.
---@param kind "received"|"sent"
---@param id string
---@param opts as2gateway.DownloadOptions
---@return string|string[]|as2gateway.SinkResult|nil path
---@return as2gateway.Error|nil err
function Client:download(kind, id, opts)
  check_kind(kind, DOWNLOADABLE, "download")
  check_id(id, "download")
  opts = check_params(opts, { index = true, all = true, to = true, sink = true,
    markAsRead = true, overwrite = true }, "download")
  local path = { MESSAGE, kind, id, "attachments" }
  if opts.all then
    path[#path + 1] = "all"
  elseif opts.index ~= nil then
    if type(opts.index) ~= "number" or opts.index < 0 or opts.index % 1 ~= 0 then
      error("download: index must be a non-negative integer", 2)
    end
    path[#path + 1] = tostring(floor(opts.index))
  end
  return self:_fetch(kind, path, opts)
end

--- Downloads the MDN of a message; opts as for download (to, sink, markAsRead).
---@param kind "received"|"sent"
---@param id string
---@param opts as2gateway.MdnOptions
---@return string|as2gateway.SinkResult|nil path
---@return as2gateway.Error|nil err
function Client:mdn(kind, id, opts)
  check_kind(kind, DOWNLOADABLE, "mdn")
  check_id(id, "mdn")
  opts = check_params(opts, { to = true, sink = true, markAsRead = true, overwrite = true },
    "mdn")
  return self:_fetch(kind, { MESSAGE, kind, id, "mdn" }, opts)
end

--- The MDN of a message, read into a table (see as2gateway.parse_mdn): fetched into
--- memory (at most as2gateway.mdn.MAX_BYTES) and parsed; nil, err (kind notfound when
--- there is no MDN yet, protocol when it is not a readable MDN).
---@param kind "received"|"sent"
---@param id string the AS2 message ID
---@return table|nil report {disposition, error, original_message_id, mic, ...}
---@return as2gateway.Error|nil err
function Client:mdn_report(kind, id)
  check_kind(kind, DOWNLOADABLE, "mdn_report")
  check_id(id, "mdn_report")
  local mdn = require "as2gateway.mdn"
  local chunks, size = {}, 0
  local res, err = self:perform { path = { MESSAGE, kind, id, "mdn" }, sink = function(chunk)
    size = size + #chunk
    if size <= mdn.MAX_BYTES then chunks[#chunks + 1] = chunk end
  end }
  if not res then return nil, err end
  if size > mdn.MAX_BYTES then
    return util.fail("protocol", "the MDN of %s is over %d bytes", id, mdn.MAX_BYTES)
  end
  return mdn.parse(table.concat(chunks))
end

function Client:_fetch(kind, path, opts)
  if opts.to == nil and opts.sink == nil then error("download: give `to` or `sink`", 3) end
  local query = (kind == "received" and opts.markAsRead) and { markAsRead = true } or nil
  local spec = { path = path, query = query }
  if opts.sink then
    spec.sink = opts.sink
    local res, err = self:perform(spec)
    if not res then return nil, err end
    return res -- {status, filename, content_type, bytes}
  end
  local into_dir = is_dir(opts.to)
  if into_dir and opts.all then
    return require("as2gateway.batch").download_all(self, spec, opts.to, opts.overwrite)
  end
  if not into_dir then -- before the transfer, not after it
    local ok, err = util.check_target(opts.to, opts.overwrite)
    if not ok then return nil, err end
  end
  if into_dir then
    spec.to_dir = opts.to
  else
    spec.to_file = opts.to
    spec.no_clobber = not opts.overwrite
  end
  local res, err = self:perform(spec)
  if not res then return nil, err end
  return res.path
end

--- Downloads the attachments of any number of received messages, 100 IDs per
--- request, continuing after 206 answers, and extracts them safely into
--- `opts.to/<message folder>/<attachment>`. Returns a table by ID:
--- {folder =, paths = {...}} or {err = ...}.
---@param ids string[]
---@param opts as2gateway.BatchOptions
---@return table<string, as2gateway.BatchResult>|nil results by ID
---@return as2gateway.BatchReport|as2gateway.Error report, or the error
function Client:download_batch(ids, opts)
  return require("as2gateway.batch").download(self, ids, opts)
end

-- The convenience layer: drain, wait, send_dir (as2gateway.workflows).
for name, fn in pairs(require("as2gateway.workflows")) do
  Client[name] = fn
end

return _M
