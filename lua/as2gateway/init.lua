--- as2gateway: a client for the AS2 Gateway REST API v1.
-- The public module (pure Lua) over the C core `as2gateway.core`; see README.md.
local core = require "as2gateway.core"

local setmetatable = setmetatable

local _M = { _VERSION = core._VERSION, core = core, kinds = core.kinds }

---@class as2gateway.Client
---@field core userdata the as2gateway.core client underneath
local Client = {}
Client.__index = Client

---@class as2gateway.Options
---@field url string base URL, e.g. "https://api.as2gateway.com/v1"
---@field username? string
---@field password? string
---@field token? string a ready token instead of username and password
---@field cainfo? string an extra CA file (PEM) to trust

--- Creates a client. Nothing goes over the network until the first call.
---@param opts as2gateway.Options
---@return as2gateway.Client
function _M.new(opts)
  if type(opts) ~= "table" then error("as2gateway.new: options table expected", 2) end
  return setmetatable({ core = core.new(opts) }, Client)
end

--- Logs in now (otherwise the first call does).
---@return string|nil token
---@return number|table expiry in ms since the epoch, or the error
function Client:authorize()
  return self.core:authorize()
end

--- Request counters of this client.
function Client:stats()
  return self.core:stats()
end

--- Closes the client and its connection; idempotent.
function Client:close()
  self.core:close()
end

Client.__close = Client.close

return _M
