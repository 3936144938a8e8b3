--- as2gateway.workflows: the whole jobs users run, mixed into every client:
-- client:drain{...} (as2gateway.drain), client:wait(...) and client:send_dir(...)
-- (as2gateway.outbound).
local W = {}
for _, name in ipairs { "as2gateway.drain", "as2gateway.outbound" } do
  for k, fn in pairs(require(name)) do W[k] = fn end
end
return W
