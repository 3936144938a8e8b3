-- LuaRocks spec: `luarocks make rockspec/as2gateway-0.2.0-1.rockspec` from a checkout.
-- The version is csrc/version.h's (spec/packaging_spec.lua holds the two together).
-- lua-cjson (the library) and argparse (bin/as2g) are needed at run time and listed
-- below; on Debian, where the lua-cjson and lua-argparse packages provide them and
-- LuaRocks cannot see those, pass --deps-mode=none.
rockspec_format = "3.0"
package = "as2gateway"
version = "0.2.0-1"
source = {
  url = "git+https://github.com/as2gateway/as2gateway-lua.git",
}
description = {
  summary = "Client for the AS2 Gateway REST API v1, with a local sandbox gateway",
  detailed = [[
Send EDI/XML files to trading partners over AS2 Gateway, list and fetch received,
sent, failed and queued messages, download attachments and MDNs. A C core on libcurl
(connection reuse, token auth, an exact client-side rate limit, streaming uploads and
downloads) under a pure-Lua API, plus bin/as2g-sandbox: a local gateway on nginx.
]],
  license = "MIT",
  labels = { "as2", "edi", "http", "libcurl" },
}
dependencies = {
  "lua >= 5.1",
  "lua-cjson >= 2.1.0",
  "argparse >= 0.7.0",
}
external_dependencies = {
  -- by library only: Debian keeps curl/curl.h in a multiarch include directory that
  -- the compiler searches but LuaRocks does not
  CURL = { library = "curl" },
  ZIP = { header = "zip.h", library = "zip" },
  HIREDIS = { header = "hiredis/hiredis.h", library = "hiredis" },
}
build = {
  type = "builtin",
  modules = {
    ["as2gateway.core"] = {
      sources = {
        "csrc/buf.c", "csrc/error.c", "csrc/check.c", "csrc/clock.c", "csrc/json.c",
        "csrc/headers.c", "csrc/url.c", "csrc/quota_window.c", "csrc/quota_hooks.c",
        "csrc/auth.c", "csrc/stream.c", "csrc/curl_transport.c", "csrc/client.c", "csrc/fs.c",
        "csrc/names.c",
        "csrc/lock.c", "csrc/sha256.c", "csrc/unzip.c", "csrc/interrupt.c",
        "csrc/qwindow.c", "csrc/quota_file.c", "csrc/quota_redis.c", "csrc/quota_shared.c",
        "csrc/lua/lhelpers.c", "csrc/lua/lerror.c", "csrc/lua/lclient.c", "csrc/lua/lrequest.c",
        "csrc/lua/ljson.c", "csrc/lua/lfiles.c", "csrc/lua/lsys.c", "csrc/lua/lzip.c",
        "csrc/lua/llock.c", "csrc/lua/lquota.c", "csrc/lua/lcore.c",
      },
      defines = { "_GNU_SOURCE" },
      incdirs = { "csrc", "$(CURL_INCDIR)", "$(ZIP_INCDIR)", "$(HIREDIS_INCDIR)" },
      libdirs = { "$(CURL_LIBDIR)", "$(ZIP_LIBDIR)", "$(HIREDIS_LIBDIR)" },
      libraries = { "curl", "zip", "hiredis" },
    },
    ["as2gateway"] = "lua/as2gateway/init.lua",
    ["as2gateway.driver"] = "lua/as2gateway/driver.lua",
    ["as2gateway.files"] = "lua/as2gateway/files.lua",
    ["as2gateway.batch"] = "lua/as2gateway/batch.lua",
    ["as2gateway.workflows"] = "lua/as2gateway/workflows.lua",
    ["as2gateway.drain"] = "lua/as2gateway/drain.lua",
    ["as2gateway.outbound"] = "lua/as2gateway/outbound.lua",
    ["as2gateway.util"] = "lua/as2gateway/util.lua",
    ["as2gateway.mdn"] = "lua/as2gateway/mdn.lua",
    ["as2gateway.journal"] = "lua/as2gateway/journal.lua",
    ["as2gateway.types"] = "lua/as2gateway/types.lua", -- LuaLS annotations (---@meta)
    ["as2gateway.cli"] = "lua/as2gateway/cli.lua",
    ["as2gateway.json"] = "lua/as2gateway/json.lua",
    ["as2gateway.openresty"] = "lua/as2gateway/openresty.lua",
    ["as2gateway.quota_scripts"] = "lua/as2gateway/quota_scripts.lua",
    ["as2gateway.quota_resty"] = "lua/as2gateway/quota_resty.lua",
    ["as2gateway.sandbox.api"] = "lua/as2gateway/sandbox/api.lua",
    ["as2gateway.sandbox.control"] = "lua/as2gateway/sandbox/control.lua",
    ["as2gateway.sandbox.crypto"] = "lua/as2gateway/sandbox/crypto.lua",
    ["as2gateway.sandbox.http"] = "lua/as2gateway/sandbox/http.lua",
    ["as2gateway.sandbox.jwt"] = "lua/as2gateway/sandbox/jwt.lua",
    ["as2gateway.sandbox.multipart"] = "lua/as2gateway/sandbox/multipart.lua",
    ["as2gateway.sandbox.seed"] = "lua/as2gateway/sandbox/seed.lua",
    ["as2gateway.sandbox.server"] = "lua/as2gateway/sandbox/server.lua",
    ["as2gateway.sandbox.state"] = "lua/as2gateway/sandbox/state.lua",
    ["as2gateway.sandbox.zip"] = "lua/as2gateway/sandbox/zip.lua",
  },
  install = {
    bin = { ["as2g-sandbox"] = "bin/as2g-sandbox", ["as2g"] = "bin/as2g" },
  },
  copy_directories = { "docs" },
}
