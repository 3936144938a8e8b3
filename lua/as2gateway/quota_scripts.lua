--- as2gateway.quota_scripts: the Redis scripts of the shared quota, in one place for
-- both clients (the C engine, csrc/quota_redis.c, gets them from its binding; the
-- OpenResty client, as2gateway.quota_resty, sends them itself). Each runs atomically in
-- Redis, and Redis's TIME is the only clock: the hosts' clocks may disagree.
--
-- Keys of one account (one hash tag, so a cluster keeps them on one node):
--   as2g:{account}:done   sorted set: requests released, scored by release time (ms)
--   as2g:{account}:live   sorted set: leases (requests in flight), scored by their end
--   as2g:{account}:block  a string whose PTTL is a block (a 429's Retry-After)
--   as2g:{account}:token  "token expiry" with a PX of the token's life
--   as2g:{account}:login  the login lock: its holder's id, SET NX PX
--   as2g:{account}:epoch  an id set when the window began: a new one says Redis lost
--                         the window (a restart without its data), which the engines
--                         that knew the old one treat as an outage
-- A request counts from its admission (a lease) until `window + margin` after its
-- release; a lease past its end counts from its end (its holder died, or its transfer
-- outlived the bound it promised). Admitted when (done in window) + (live) < limit.
local _M = { _VERSION = "1" }

-- Redis's clock in ms, and what every script does first: leases past their end become
-- entries at their end, entries out of the window go.
local PRELUDE = [[
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function settle(done, live, span)
  local ended = redis.call('ZRANGEBYSCORE', live, '-inf', now, 'WITHSCORES')
  for i = 1, #ended, 2 do
    redis.call('ZADD', done, 'GT', ended[i + 1], ended[i])
    redis.call('ZREM', live, ended[i])
  end
  redis.call('ZREMRANGEBYSCORE', done, '-inf', now - span)
end
local function keep(done, live, span, lease)
  redis.call('PEXPIRE', done, span + lease)
  redis.call('PEXPIRE', live, span + lease)
end
]]

-- The wait until a slot frees: the (over+1)-th oldest entry's exit; a lease frees one
-- no sooner than a window after its release. 0 when a request may start now.
local WAIT = [[
local function wait_for(done, live, block, limit, span)
  local wait = 0
  local blocked = tonumber(redis.call('PTTL', block))
  if blocked > 0 then wait = blocked end
  local used = redis.call('ZCARD', done) + redis.call('ZCARD', live)
  if used >= limit then
    local free_at = now + span
    local e = redis.call('ZRANGE', done, used - limit, used - limit, 'WITHSCORES')
    if e[2] and tonumber(e[2]) + span < free_at then free_at = tonumber(e[2]) + span end
    if free_at - now > wait then wait = free_at - now end
    if wait < 1 then wait = 1 end
  end
  return wait, used
end
]]

--- KEYS done, live, block, epoch; ARGV limit, window, margin, lease, id, new epoch.
--- -> {1, now, epoch} admitted (a lease `id` until now + lease) | {0, wait_ms, epoch}
_M.acquire = PRELUDE .. WAIT .. [[
local limit, lease = tonumber(ARGV[1]), tonumber(ARGV[4])
local span = tonumber(ARGV[2]) + tonumber(ARGV[3])
local epoch = redis.call('GET', KEYS[4])
if not epoch then
  epoch = ARGV[6]
  redis.call('SET', KEYS[4], epoch)
end
settle(KEYS[1], KEYS[2], span)
local wait = wait_for(KEYS[1], KEYS[2], KEYS[3], limit, span)
if wait > 0 then return {0, wait, epoch} end
redis.call('ZADD', KEYS[2], now + lease, ARGV[5])
keep(KEYS[1], KEYS[2], span, lease)
return {1, now, epoch}
]]

--- KEYS done, live; ARGV id, window, margin, lease. The request ended now: counted
--- until a window from now (also when its lease had run out first). -> now
_M.release = PRELUDE .. [[
local span, lease = tonumber(ARGV[2]) + tonumber(ARGV[3]), tonumber(ARGV[4])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZADD', KEYS[1], 'GT', now, ARGV[1])
settle(KEYS[1], KEYS[2], span)
keep(KEYS[1], KEYS[2], span, lease)
return now
]]

--- KEYS done, live; ARGV id, window, margin, lease. The transfer goes on: its lease
--- ends a lease from now. -> 1 renewed | 0 no longer live (counted from its end)
_M.renew = PRELUDE .. [[
local span, lease = tonumber(ARGV[2]) + tonumber(ARGV[3]), tonumber(ARGV[4])
settle(KEYS[1], KEYS[2], span)
if not redis.call('ZSCORE', KEYS[2], ARGV[1]) then return 0 end
redis.call('ZADD', KEYS[2], 'XX', 'GT', now + lease, ARGV[1])
keep(KEYS[1], KEYS[2], span, lease)
return 1
]]

--- KEYS done, live; ARGV id, ... An admission that sent nothing. -> 1 | 0
_M.cancel = [[
return redis.call('ZREM', KEYS[2], ARGV[1])
]]

--- KEYS done, live, epoch; ARGV window, margin, lease, new epoch, then groups of 3:
--- "e", id, age (ms) | "l", id, ms left. A local window written into Redis by age on
--- Redis's clock (never moving a stamp earlier), by an engine back from fallback (its
--- hold covered whatever Redis may have lost, so it takes the epoch as it finds it or
--- begins one). -> epoch
_M.replay = PRELUDE .. [[
local span, lease = tonumber(ARGV[1]) + tonumber(ARGV[2]), tonumber(ARGV[3])
for i = 5, #ARGV - 2, 3 do
  local rel = tonumber(ARGV[i + 2])
  if ARGV[i] == 'e' then
    redis.call('ZADD', KEYS[1], 'GT', now - rel, ARGV[i + 1])
  else
    redis.call('ZADD', KEYS[2], 'GT', now + rel, ARGV[i + 1])
  end
end
settle(KEYS[1], KEYS[2], span)
keep(KEYS[1], KEYS[2], span, lease)
local epoch = redis.call('GET', KEYS[3])
if not epoch then
  epoch = ARGV[4]
  redis.call('SET', KEYS[3], epoch)
end
return epoch
]]

--- KEYS block; ARGV ms. No admission for ms from now (never shortens one). -> 1
_M.block = [[
local ms = tonumber(ARGV[1])
if tonumber(redis.call('PTTL', KEYS[1])) < ms then
  redis.call('SET', KEYS[1], '1', 'PX', ms)
end
return 1
]]

--- KEYS done, live, block; ARGV limit, span. -> {entries, leases, wait_ms, now}
_M.state = PRELUDE .. WAIT .. [[
local limit, span = tonumber(ARGV[1]), tonumber(ARGV[2])
settle(KEYS[1], KEYS[2], span)
local wait = wait_for(KEYS[1], KEYS[2], KEYS[3], limit, span)
return {redis.call('ZCARD', KEYS[1]), redis.call('ZCARD', KEYS[2]), wait, now}
]]

--- KEYS login; ARGV owner. Ends the login lock when it is still ours. -> 1 | 0
_M.login_done = [[
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
]]

return _M
