--- as2gateway.util: the small helpers every pure-Lua module of the client shares:
-- run-time errors as `as2gateway.Error` values, and the check that raises on misuse.
local core = require "as2gateway.core"

local type, pairs, tostring, error = type, pairs, tostring, error

local U = {}

--- An error value of a stable kind (see as2gateway.kinds), message formatted.
function U.err(kind, fmt, ...)
  return core.error(kind, fmt:format(...))
end

--- `nil, err` of kind "invalid": what the caller can fix, nothing was sent.
function U.invalid(fmt, ...)
  return nil, core.error("invalid", fmt:format(...))
end

--- Raises at the caller's caller (level 3) unless `opts` is a table holding only
--- `allowed` keys: an unknown option is misuse, never silently ignored.
function U.check_opts(opts, allowed, what, level)
  level = level or 3
  if type(opts) ~= "table" then error(what .. ": options table expected", level) end
  for k in pairs(opts) do
    if not allowed[k] then
      error(("%s: unknown option '%s'"):format(what, tostring(k)), level)
    end
  end
end

return U
