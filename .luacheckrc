-- luacheck configuration: Lua 5.4 for the client, tools and specs; the sandbox runs
-- inside nginx (LuaJIT + ngx_lua).
std = "lua54"
max_line_length = 100
max_comment_line_length = 160 -- LuaLS annotations list every value
files["lua/as2gateway/sandbox"] = { std = "luajit+ngx_lua" }
files["lua/as2gateway/openresty.lua"] = { std = "luajit+ngx_lua" }
files["lua/as2gateway/quota_resty.lua"] = { std = "luajit+ngx_lua" }
files["spec/quota/resty_app.lua"] = { std = "luajit+ngx_lua" }
files["spec/openresty/app.lua"] = { std = "luajit+ngx_lua" }
files["spec"] = { std = "+busted" }
files["lua/as2gateway/types.lua"] = { max_comment_line_length = false } -- annotations only
exclude_files = { ".luarocks", "build" }
