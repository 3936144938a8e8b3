-- The benchmarks' one reader of /proc/self/status: a field in KB, e.g. "VmHWM" (peak
-- RSS) or "VmRSS".
return function(field)
  for line in io.lines("/proc/self/status") do
    local kb = line:match("^" .. field .. ":%s+(%d+)")
    if kb then return tonumber(kb) end
  end
end
