-- as2g login/logout, the token kept in the shared state folder (mode 0600, reused, no
-- password in it) and config resolution.
local h = require "helpers"
local S = require "cli.support"

local NO_ENV = { AS2G_URL = false, AS2G_USERNAME = false, AS2G_PASSWORD = false,
  AS2G_CA = false, AS2G_ACCOUNT = false, AS2G_CONFIG = false }

describe("as2g credentials", function()
  local home

  local function run(args, opts) return S.run(home, args, opts) end

  -- The token files of this test's home: one state folder per gateway and username.
  local function caches()
    local names = {}
    for n in S.capture("ls -A " .. h.quote(home.state .. "/as2gateway") .. " 2>/dev/null")
      :gmatch("[^\n]+") do
      local file = home.state .. "/as2gateway/" .. n .. "/token"
      if h.read_file(file) then names[#names + 1] = file end
    end
    return names
  end

  -- A token file: {token, expiry}.
  local function read_token(file)
    local token, expiry = h.read_file(file):match("^(%S+) (%d+)\n$")
    return { token = token, expiry = tonumber(expiry) }
  end

  local function authorizations() return h.stats().authorizations end

  before_each(function()
    h.reset()
    home = S.home()
  end)

  after_each(function()
    h.rmtree(home.dir)
  end)

  describe("a short token lifetime", function()
    it("makes one login for a call, and the next run reuses nothing it cannot", function()
      h.config { token_lifetime = 120 } -- inside the old 5-minute renewal margin
      local out, err, code = run({ "--json", "stations" }, { timeout = 30 })
      assert.equal(0, code, err)
      assert.equal(2, #h.json_decode(out))
      assert.equal(1, authorizations())
      err, code = select(2, run({ "stations" }, { timeout = 30 }))
      assert.equal(0, code, err)
      assert.is_true(authorizations() <= 2)
    end)
  end)

  describe("login", function()
    it("checks the credentials, says so on stderr and keeps a token in a 0600 file", function()
      local out, err, code = run { "login" }
      assert.equal(0, code)
      assert.equal("", out)
      assert.matches("Logged in as " .. h.username, err, 1, true)
      local files = caches()
      assert.equal(1, #files)
      assert.equal("600", S.file_mode(files[1]))
      local cached = read_token(files[1])
      assert.is_string(cached.token)
      -- its folder: the owner's alone, named by a digest of the gateway and username
      local folder = files[1]:match("^(.*)/token$")
      assert.equal("700", S.file_mode(folder))
      assert.matches("/as2gateway/%x+$", folder)
      assert.not_matches(h.username, folder, 1, true)
      assert.is_true(cached.expiry > os.time() * 1000)
      -- the cached token is one the gateway takes
      assert.equal(200, h.curl({ path = "/station", token = cached.token }).status)
    end)

    it("prints url, username and expiry as one JSON document with --json", function()
      local out, _, code = run { "--json", "login" }
      assert.equal(0, code)
      local doc = h.json_decode(out)
      assert.same({ "expiry", "url", "username" }, (function()
        local keys = {}
        for k in pairs(doc) do keys[#keys + 1] = k end
        table.sort(keys)
        return keys
      end)())
      assert.equal(h.url, doc.url)
      assert.equal(h.username, doc.username)
      assert.is_true(doc.expiry > os.time() * 1000)
    end)

    it("creates a state folder that does not exist yet, however deep", function()
      home.state = home.dir .. "/not/yet/there"
      local _, _, code = run { "login" }
      assert.equal(0, code)
      assert.equal(1, #caches())
    end)

    it("exits 1 when the token cannot be kept, instead of claiming it was", function()
      h.write_file(home.dir .. "/file", "not a folder")
      home.state = home.dir .. "/file"
      local _, err, code = run { "login" }
      assert.equal(1, code)
      assert.not_matches("token kept", err, 1, true)
      assert.matches("state folder", err, 1, true)
    end)

    it("exits 3 for a wrong password, and caches nothing", function()
      local out, err, code = run({ "login" }, { env = { AS2G_PASSWORD = "not-the-password" } })
      assert.equal(3, code)
      assert.equal("", out)
      assert.matches("auth", err, 1, true)
      assert.same({}, caches())
    end)

    it("exits 3 for an unknown username", function()
      local _, _, code = run({ "login" }, { env = { AS2G_USERNAME = "nobody@example.com" } })
      assert.equal(3, code)
    end)
  end)

  describe("the token kept", function()
    it("is reused by later commands: no new authorization until it expires", function()
      assert.equal(0, select(3, run { "login" }))
      local before = authorizations()
      for _ = 1, 3 do assert.equal(0, select(3, run { "stations" })) end
      assert.equal(before, authorizations())
    end)

    it("is written by the first command that had to log in", function()
      assert.same({}, caches())
      assert.equal(0, select(3, run { "partners" }))
      assert.equal(1, #caches())
      assert.equal("600", S.file_mode(caches()[1]))
      local before = authorizations()
      assert.equal(0, select(3, run { "stations" }))
      assert.equal(before, authorizations())
    end)

    it("lets commands run without any password after an earlier login", function()
      assert.equal(0, select(3, run { "login" }))
      local out, _, code = run({ "stations" }, { env = { AS2G_PASSWORD = false }, no_tty = true })
      assert.equal(0, code)
      assert.matches("ACME-AS2", out, 1, true)
    end)

    it("is replaced when it has run out and a password is at hand", function()
      assert.equal(0, select(3, run { "login" }))
      local file = caches()[1]
      local cached = read_token(file)
      h.write_file(file, ("%s %d\n"):format(cached.token, (os.time() - 10) * 1000))
      local before = authorizations()
      assert.equal(0, select(3, run { "stations" }))
      assert.equal(before + 1, authorizations())
      assert.is_true(read_token(file).expiry > (os.time() + 3600) * 1000)
      assert.equal("600", S.file_mode(file))
    end)

    it("is kept per gateway and username: another account gets its own file", function()
      assert.equal(0, select(3, run { "login" }))
      assert.equal(0, select(3, run({ "login" }, { env = { AS2G_USERNAME = h.other_username,
        AS2G_PASSWORD = h.other_password } })))
      local files = caches()
      assert.equal(2, #files)
      assert.not_equal(read_token(files[1]).token, read_token(files[2]).token)
    end)
  end)

  describe("the state folder", function()
    it("is shared by as2g processes started together: one login in all, no 429", function()
      local codes = home.dir .. "/codes"
      local jobs = {}
      for i = 1, 6 do
        jobs[i] = ("(timeout 60 %s >/dev/null 2>&1; echo $? >>%s) &")
          :format(S.command(home, { i % 2 == 0 and "partners" or "stations" }), h.quote(codes))
      end
      os.execute(table.concat(jobs, " ") .. " wait")
      assert.equal("0\n0\n0\n0\n0\n0\n", h.read_file(codes))
      assert.equal(1, authorizations())
      assert.equal(0, h.stats().rate_limited)
      assert.equal(7, h.stats().requests)
    end)

    it("is left alone with --quota off: no token kept", function()
      assert.equal(0, select(3, run { "--quota", "off", "stations" }))
      assert.same({}, caches())
      local _, err, code = run { "--quota", "nonsense", "stations" }
      assert.equal(2, code)
      assert.matches("quota must be", err, 1, true)
    end)

    it("refuses a Redis password on the command line, where others can read it", function()
      local _, err, code = run { "--quota", "redis://:secret@127.0.0.1:1", "stations" }
      assert.equal(2, code)
      assert.matches("AS2G_QUOTA", err, 1, true)
      assert.not_matches("secret", err, 1, true)
    end)
  end)

  describe("logout", function()
    it("removes the cached token", function()
      assert.equal(0, select(3, run { "login" }))
      local _, err, code = run { "logout" }
      assert.equal(0, code)
      assert.matches("Token removed", err, 1, true)
      assert.same({}, caches())
    end)

    it("needs no password and no terminal, and says when there was nothing to remove", function()
      assert.equal(0, select(3, run { "login" }))
      local out, _, code = run({ "--json", "logout" }, { env = { AS2G_PASSWORD = false },
        no_tty = true })
      assert.equal(0, code)
      assert.same({ removed = true }, h.json_decode(out))
      local err
      out, err, code = run({ "logout" }, { env = { AS2G_PASSWORD = false }, no_tty = true })
      assert.equal(0, code)
      assert.equal("", out)
      assert.matches("No token kept", err, 1, true)
    end)

    it("makes the next command without a password fail with exit 3", function()
      assert.equal(0, select(3, run { "login" }))
      assert.equal(0, select(3, run { "logout" }))
      local _, _, code = run({ "stations" }, { env = { AS2G_PASSWORD = false }, no_tty = true })
      assert.equal(3, code)
    end)
  end)

  describe("without a password", function()
    it("exits 3 with a clear message when there is no cached token and no terminal", function()
      local before = h.stats().requests
      local out, err, code = run({ "stations" }, { env = { AS2G_PASSWORD = false },
        no_tty = true })
      assert.equal(3, code)
      assert.equal("", out)
      assert.matches("no password: set AS2G_PASSWORD", err, 1, true)
      assert.matches("as2g login", err, 1, true)
      assert.equal(before, h.stats().requests)
    end)

    it("prompts for it on the terminal, without echo, when there is one", function()
      -- script(1) gives as2g a terminal; the password is typed once the prompt shows
      local screen = home.dir .. "/screen"
      local function login(password)
        local typist = ("i=0; while ! grep -q 'Password for' %s 2>/dev/null && [ $i -lt 200 ];"
          .. " do sleep 0.05; i=$((i+1)); done; printf '%%s\\n' %s"):format(h.quote(screen),
          h.quote(password))
        local cmd = "(" .. typist .. ") | script -qec "
          .. h.quote(S.command(home, { "login" }, { env = { AS2G_PASSWORD = false } }))
          .. " /dev/null >" .. h.quote(screen)
        local ok, _, code = os.execute(cmd)
        local text = h.read_file(screen) or ""
        os.remove(screen)
        return text, ok and 0 or code
      end
      local text, code = login("typo-" .. h.password)
      assert.equal(3, code, text)
      assert.not_matches(h.password, text, 1, true)
      assert.same({}, caches())
      text, code = login(h.password)
      assert.equal(0, code, text)
      assert.matches("Password for " .. h.username .. " at " .. h.url .. ": ", text, 1, true)
      assert.matches("Logged in as", text, 1, true)
      assert.not_matches(h.password, text, 1, true)
      assert.equal(1, #caches())
    end)

    it("exits 3 when the cached token has expired", function()
      assert.equal(0, select(3, run { "login" }))
      local file = caches()[1]
      h.write_file(file, ("%s %d\n"):format(read_token(file).token, (os.time() - 10) * 1000))
      local _, err, code = run({ "stations" }, { env = { AS2G_PASSWORD = false }, no_tty = true })
      assert.equal(3, code)
      assert.matches("no password", err, 1, true)
    end)

    it("exits 3 for `login`, which always needs the password", function()
      assert.equal(0, select(3, run { "login" }))
      local _, err, code = run({ "login" }, { env = { AS2G_PASSWORD = false }, no_tty = true })
      assert.equal(3, code)
      assert.matches("no password", err, 1, true)
    end)
  end)

  describe("the config file", function()
    local function write_config(path, extra)
      S.capture("mkdir -p " .. h.quote(path:match("^(.*)/")))
      h.write_file(path, table.concat({
        "# as2g accounts",
        "[default]",
        "url = " .. h.url,
        "username = " .. h.username,
        "password = " .. h.password,
        "ca = " .. h.ca,
        "",
        "; the second account",
        "[other]",
        "  url=" .. h.url,
        "  username=" .. h.other_username,
        "  password=" .. h.other_password,
        "  ca=" .. h.ca,
        extra or "",
      }, "\n"))
    end

    local function station_ids(out)
      local ids = {}
      for _, s in ipairs(h.json_decode(out)) do ids[#ids + 1] = s.as2Identifier end
      table.sort(ids)
      return ids
    end

    it("gives url, username, password and ca from [default] with nothing in the environment",
      function()
        write_config(home.config .. "/as2g/config")
        local out, _, code = run({ "--json", "stations" }, { env = NO_ENV, no_tty = true })
        assert.equal(0, code)
        assert.same({ "ACME-AS2", "ACME-EU-AS2" }, station_ids(out))
      end)

    it("takes the section chosen with --account (or AS2G_ACCOUNT)", function()
      write_config(home.config .. "/as2g/config")
      local out, _, code = run({ "--account", "other", "--json", "stations" },
        { env = NO_ENV, no_tty = true })
      assert.equal(0, code)
      assert.same({ "UMBRELLA-AS2" }, station_ids(out))
      local env = { AS2G_ACCOUNT = "other" }
      for k, v in pairs(NO_ENV) do if k ~= "AS2G_ACCOUNT" then env[k] = v end end
      out, _, code = run({ "--json", "stations" }, { env = env, no_tty = true })
      assert.equal(0, code)
      assert.same({ "UMBRELLA-AS2" }, station_ids(out))
    end)

    it("is read from $AS2G_CONFIG when that is set", function()
      local path = home.dir .. "/elsewhere.ini"
      write_config(path)
      local env = { AS2G_CONFIG = path }
      for k, v in pairs(NO_ENV) do if k ~= "AS2G_CONFIG" then env[k] = v end end
      local out, _, code = run({ "--account", "other", "--json", "stations" },
        { env = env, no_tty = true })
      assert.equal(0, code)
      assert.same({ "UMBRELLA-AS2" }, station_ids(out))
    end)

    it("exits 2 naming the file for an --account with no section", function()
      write_config(home.config .. "/as2g/config")
      local _, err, code = run({ "--account", "missing", "stations" }, { env = NO_ENV })
      assert.equal(2, code)
      assert.matches("no [missing] section in " .. home.config .. "/as2g/config", err, 1, true)
    end)

    it("is overridden by the environment and by options", function()
      write_config(home.config .. "/as2g/config")
      -- the environment's username and password win over [default]'s
      local out, _, code = run({ "--json", "stations" }, { env = {
        AS2G_USERNAME = h.other_username, AS2G_PASSWORD = h.other_password } })
      assert.equal(0, code)
      assert.same({ "UMBRELLA-AS2" }, station_ids(out))
      -- a file whose url leads nowhere: --url and AS2G_URL win over it
      S.capture("mkdir -p " .. h.quote(home.config .. "/as2g"))
      h.write_file(home.config .. "/as2g/config", table.concat({ "[default]",
        "url = https://127.0.0.1:9/v1", "username = " .. h.username,
        "password = " .. h.password, "ca = " .. h.ca }, "\n"))
      out, _, code = run({ "--url", h.url, "--json", "stations" }, { env = NO_ENV })
      assert.equal(0, code)
      assert.same({ "ACME-AS2", "ACME-EU-AS2" }, station_ids(out))
      local env = { AS2G_URL = h.url }
      for k, v in pairs(NO_ENV) do if k ~= "AS2G_URL" then env[k] = v end end
      out, _, code = run({ "--json", "stations" }, { env = env })
      assert.equal(0, code)
      assert.same({ "ACME-AS2", "ACME-EU-AS2" }, station_ids(out))
    end)

    it("with no password in the section still works from a cached token", function()
      S.capture("mkdir -p " .. h.quote(home.config .. "/as2g"))
      h.write_file(home.config .. "/as2g/config", table.concat({ "[default]",
        "url = " .. h.url, "username = " .. h.username, "ca = " .. h.ca }, "\n"))
      local _, err, code = run({ "stations" }, { env = NO_ENV, no_tty = true })
      assert.equal(3, code)
      assert.matches("no password", err, 1, true)
      assert.equal(0, select(3, run({ "login" }, { env = { AS2G_URL = false,
        AS2G_USERNAME = false, AS2G_CA = false } })))
      local out
      out, _, code = run({ "--json", "stations" }, { env = NO_ENV, no_tty = true })
      assert.equal(0, code)
      assert.same({ "ACME-AS2", "ACME-EU-AS2" }, station_ids(out))
    end)
  end)
end)
