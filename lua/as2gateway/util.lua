--- as2gateway.util: the small helpers every pure-Lua module of the client shares:
-- run-time errors as `as2gateway.Error` values (err, fail, invalid: the one way to
-- make one), the one check of option tables that raises on misuse, free names on disk
-- and the bound on listings.
local core = require "as2gateway.core"

local type, pairs, tostring, error = type, pairs, tostring, error

local U = {}

--- An error value of a stable kind (see as2gateway.kinds), message formatted.
function U.err(kind, fmt, ...)
  return core.error(kind, fmt:format(...))
end

--- `nil, err`: a run-time failure of a stable kind, for `return util.fail(...)`.
function U.fail(kind, fmt, ...)
  return nil, core.error(kind, fmt:format(...))
end

--- `nil, err` of kind "invalid": what the caller can fix, nothing was sent.
function U.invalid(fmt, ...)
  return nil, core.error("invalid", fmt:format(...))
end

--- Raises at the caller's caller (level 3) unless `opts` is a table holding only
--- `allowed` keys: an unknown option is misuse, never silently ignored. `noun` names
--- the keys in the message ("option"; "parameter" for the API's query parameters).
function U.check_opts(opts, allowed, what, level, noun)
  level = level or 3
  if type(opts) ~= "table" then error(what .. ": options table expected", level) end
  for k in pairs(opts) do
    if not allowed[k] then
      error(("%s: unknown %s '%s'"):format(what, noun or "option", tostring(k)), level)
    end
  end
end

--- A call's limits, checked: `deadline`, seconds a call may take in all (a number > 0,
--- at most 1e9; nil: none), and `fail_fast`, a boolean (nil: not set). Raises at the
--- caller's caller otherwise (`level` as error's, from the caller); returns both.
function U.check_limits(deadline, fail_fast, what, level)
  level = (level or 2) + 1
  if deadline ~= nil and (type(deadline) ~= "number" or deadline ~= deadline
      or deadline <= 0 or deadline > 1e9) then
    error(what .. ": deadline: seconds (a number > 0) expected", level)
  end
  if fail_fast ~= nil and type(fail_fast) ~= "boolean" then
    error(what .. ": fail_fast must be a boolean", level)
  end
  return deadline, fail_fast
end

--- A path in `dir` for `name` or its first variant ("name (2).ext", ...: the core's
--- rule, core.name_variant, the one the core's own downloads into folders follow) for
--- which `usable(path, variant)` is true - by default, that nothing is there (a
--- stat: a file that appears meanwhile is the writer's no_clobber to refuse). The
--- path and the variant, or nil when 10,000 were taken.
function U.free_path(dir, name, usable)
  for n = 1, 10000 do
    local variant = core.name_variant(name, n)
    local path = dir .. "/" .. variant
    if usable then
      if usable(path, variant) then return path, variant end
    elseif core.stat(path) == nil then
      return path, variant
    end
  end
end

--- Whether a download can be stored at `path`, a file path, before any request is
--- made (a missing folder found after 10 MB went over the wire costs the transfer and
--- the request): its folder must exist, and the file must not, unless `overwrite`.
--- True, or nil and an error of kind "io" (the kind the same failure has afterwards).
function U.check_target(path, overwrite)
  local parent = path:match("^(.*)/[^/]*$") or "."
  if parent == "" then parent = "/" end
  if core.stat(parent) ~= "dir" then
    return U.fail("io", "cannot store the download in %s: %s is not a folder", path, parent)
  end
  if core.stat(path) and not overwrite then
    return U.fail("io", "cannot store the download in %s: the file exists (overwrite "
      .. "replaces it)", path)
  end
  return true
end

--- The one bound on listings that depend on the server to end: a loop over pages
--- calls guard:page(fresh) after each page it goes on from, with how many of its
--- records it had not seen before. MAX_STALE_PAGES pages in a row that bring nothing
--- new end the listing with `nil, err` of kind protocol - a gateway that ignores
--- pageOffset, or whose totalRecords lies or alternates, would otherwise keep it
--- going for ever. Legitimate churn (arrivals pushing a page down, deletions pulling
--- it up) brings something new within a page or two.
---   local guard = util.listing_guard("the unread listing")
---   ... local ok, err = guard:page(new_on_this_page); if not ok then return nil, err end
U.MAX_STALE_PAGES = 5

local Guard = {}
Guard.__index = Guard

function U.listing_guard(what)
  return setmetatable({ stale = 0, what = what or "the listing" }, Guard)
end

function Guard:page(fresh)
  if fresh > 0 then
    self.stale = 0
    return true
  end
  self.stale = self.stale + 1
  if self.stale < U.MAX_STALE_PAGES then return true end
  return U.fail("protocol", "%s made no progress: %d pages in a row brought no message not "
    .. "seen before (the gateway ignores pageOffset, or its totalRecords is inconsistent)",
    self.what, self.stale)
end

return U
