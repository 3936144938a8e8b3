--- as2gateway.driver: the one loop that runs a step-wise request of the core to its
-- end, for every caller: the core's blocking perform and authorize, as2gateway's
-- clients, and as2gateway.openresty's, which must yield to nginx.
--  * blocking (no `sleep` given): each step may wait up to a second on the network
--    (libcurl's poll does the waiting), the client's own sleep (its `sleep` hook, run as
--    one of its callbacks, else core.sleep) sleeps through rate-limit waits and
--    backoff, a trapped Ctrl-C ends the request, and a step-wise request of the same
--    client left in flight loses the connection at once (nothing else of the client
--    advances meanwhile);
--  * yielding (`sleep` given: ngx.sleep): no step blocks; `sleep` waits, also between
--    polls of a transfer in flight, at growing intervals: sleep(0) first (nginx's next
--    event-loop turn: a fast answer is taken up at once), then 1 ms doubling to 16 ms
--    (no busy loop, little latency; bench/openresty_polling.lua measures both); with `abandoned` (as2gateway.openresty: the downstream client went
--    away), a request not in flight (about to start, or waiting for the rate limit or a
--    retry) is dropped before its next step: nothing more of it goes out.
-- Pure Lua, no other module: the core loads it.
local pcall, error, min = pcall, error, math.min

local M = {}

local IDLE_FIRST, IDLE_MIN, IDLE_MAX = 0, 0.001, 0.016

--- Runs `req` (a request of as2gateway.core) to its end and closes it: the result, or
--- nil and an error. An error raised by a callback, a hook or `sleep` is raised again,
--- the request closed first (its transfer stopped, a partial download removed).
---@param req userdata
---@param sleep? fun(seconds: number) yielding: the host's sleep; nil: blocking
---@param abandoned? fun(): table|nil the error to end a request not in flight with, or nil
---@return table|nil result
---@return table|nil err
function M.run(req, sleep, abandoned)
  local blocking = sleep == nil
  local wait = blocking and 1 or 0
  local idle = IDLE_FIRST
  local state, secs = "sleep"
  while true do
    local gone = state == "sleep" and abandoned and abandoned()
    if gone then
      req:close()
      return nil, gone
    end
    local ok
    ok, state, secs = pcall(req.step, req, wait, blocking)
    if not ok then
      req:close()
      error(state, 0)
    end
    if state == "done" then break end
    local pause
    if state == "sleep" then
      pause, idle = secs, IDLE_FIRST
    elseif not blocking then
      pause, idle = idle, idle == IDLE_FIRST and IDLE_MIN or min(idle * 2, IDLE_MAX)
    end
    if pause then
      local slept, e
      if blocking then
        slept, e = pcall(req.sleep, req, pause) -- the client's own sleep
      else
        slept, e = pcall(sleep, pause)
      end
      if not slept then
        req:close()
        error(e, 0)
      end
    end
  end
  local ok, res, err = pcall(req.result, req)
  req:close()
  if not ok then error(res, 0) end
  return res, err
end

return M
