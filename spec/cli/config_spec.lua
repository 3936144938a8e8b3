-- as2g's configuration: which value wins (options, then the environment, then the
-- config file's default section), and no HOME: nothing written at the filesystem root.
local h = require "helpers"
local S = require "cli.support"

describe("as2g configuration", function()
  local t = S.each_test()
  local run = t.run

  -- A config file whose [default] is the sandbox's main account and [other] its second.
  local function write_config()
    local path = t.home.config .. "/as2g/config"
    S.capture("mkdir -p " .. h.quote(t.home.config .. "/as2g"))
    h.write_file(path, table.concat({
      "[default]", "url = " .. h.url, "username = " .. h.username,
      "password = " .. h.password, "ca = " .. h.ca,
      "[other]", "url = " .. h.url, "username = " .. h.other_username,
      "password = " .. h.other_password, "ca = " .. h.ca,
    }, "\n") .. "\n")
    return path
  end

  local function stations(out)
    local ids = {}
    for _, st in ipairs(h.json_decode(out) or {}) do ids[#ids + 1] = st.as2Identifier end
    table.sort(ids)
    return ids
  end

  local MAIN, OTHER = { "ACME-AS2", "ACME-EU-AS2" }, { "UMBRELLA-AS2" }

  it("takes the section named with --account over the AS2G_* environment", function()
    write_config()
    -- the sandbox's variables (the main account) are all in the environment
    local out, err, code = run { "--account", "other", "--json", "stations" }
    assert.equal(0, code, err)
    assert.same(OTHER, stations(out))
  end)

  it("takes an option over --account's section", function()
    write_config()
    -- the username from --username; its password from the environment, whose username
    -- it is (the section's password belongs to the section's username)
    local out, err, code = run { "--account", "other", "--username", h.username, "--json",
      "stations" }
    assert.equal(0, code, err)
    assert.same(MAIN, stations(out))
  end)

  it("takes the environment over [default] and over the section of AS2G_ACCOUNT", function()
    write_config()
    local out, err, code = run({ "--json", "stations" }, { env = {
      AS2G_USERNAME = h.other_username, AS2G_PASSWORD = h.other_password } })
    assert.equal(0, code, err)
    assert.same(OTHER, stations(out))
    out, err, code = run({ "--json", "stations" }, { env = { AS2G_ACCOUNT = "other" } })
    assert.equal(0, code, err)
    assert.same(MAIN, stations(out))
  end)

  it("never gives one username another's password", function()
    write_config()
    -- [other]'s username, the environment's password (the main account's): no pairing,
    -- so no password at all (and no terminal to ask on)
    local _, err, code = run({ "--username", h.other_username, "stations" },
      { env = { AS2G_USERNAME = h.username }, no_tty = true })
    assert.equal(3, code, err)
    assert.matches("no password", err, 1, true)
  end)

  it("documents the order in --help", function()
    local out = run { "--help" }
    assert.matches("the options, then the environment,\nthen the config file", out, 1, true)
  end)

  describe("without HOME", function()
    local NO_HOME = { HOME = false, XDG_CACHE_HOME = false, XDG_CONFIG_HOME = false,
      XDG_STATE_HOME = false }

    -- the filesystem root must stay as it is: the spec refuses to run where a
    -- /.cache, /.config or /.local/state is there already, so that it can tell
    before_each(function()
      assert.is_nil(io.open("/.cache/as2g"), "/.cache/as2g exists already")
      assert.is_nil(io.open("/.config/as2g"), "/.config/as2g exists already")
      assert.is_nil(io.open("/.local/state/as2gateway"), "/.local/state/as2gateway exists")
    end)

    it("runs commands and caches nothing, writing nothing at the filesystem root", function()
      for _, value in ipairs { false, "", "/", "relative/home" } do
        local env = { HOME = value, XDG_CACHE_HOME = false, XDG_CONFIG_HOME = false,
          XDG_STATE_HOME = false }
        local out, err, code = run({ "--json", "stations" }, { env = env, cwd = t.home.dir })
        assert.equal(0, code, err)
        assert.same(MAIN, stations(out))
        assert.is_nil(io.open("/.cache/as2g"), "wrote /.cache/as2g with HOME=" .. tostring(value))
        assert.is_nil(io.open("/.local/state/as2gateway"), "wrote /.local/state/as2gateway")
        assert.is_nil(io.open(t.home.dir .. "/relative"), "wrote under a relative HOME")
      end
      assert.same({}, S.files(t.home.dir))
    end)

    it("makes `login` fail with exit 1 and the reason", function()
      local _, err, code = run({ "login" }, { env = NO_HOME, cwd = t.home.dir })
      assert.equal(1, code)
      assert.matches("HOME is not set", err, 1, true)
      assert.is_nil(io.open("/.cache/as2g"))
      assert.is_nil(io.open("/.local/state/as2gateway"))
    end)

    it("still finds the config file named by AS2G_CONFIG", function()
      local path = write_config()
      local env = { AS2G_CONFIG = path, AS2G_URL = false, AS2G_USERNAME = false,
        AS2G_PASSWORD = false, AS2G_CA = false }
      for k, v in pairs(NO_HOME) do env[k] = v end
      local out, err, code = run({ "--account", "other", "--json", "stations" }, { env = env })
      assert.equal(0, code, err)
      assert.same(OTHER, stations(out))
    end)
  end)
end)
