# as2gateway: build, test, lint, demo and install. `deps` installs the Debian packages
# the project needs; test, demo, lint, asan, fuzz and CI call it first, so a fresh
# Debian machine needs nothing else. build and install never run apt-get: a missing
# header fails them with the compiler's own message.

LUA       ?= lua5.4
PREFIX    ?= /usr/local
DESTDIR   ?=
LUA_SHARE ?= $(PREFIX)/share/lua/5.4

SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

# What the specs, the sandbox and the tools need from Debian.
DEB_PACKAGES := lua5.4 liblua5.4-dev libluajit2-5.1-dev luajit2 libcurl4-openssl-dev libzip-dev \
                lua-cjson lua-busted lua-check nginx libnginx-mod-http-lua openssl curl \
                unzip ca-certificates gcc make pkg-config luarocks lua5.1 liblua5.1-0-dev \
                lua-argparse util-linux procps zip tmux lua-socket redis-server libhiredis-dev
BENCH_PACKAGES := wrk python3 valgrind

.PHONY: all deps bench-deps build test valgrind asan fuzz lint demo bench bench-sandbox bench-client \
        bench-listing bench-quota \
        install uninstall clean

all: build

# Installs whatever of $(PKGS) is missing (apt-get update only when something is).
define apt_install
	@missing=$$(for p in $(1); do \
	  dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; \
	done); \
	if [ -n "$$missing" ]; then \
	  echo "Installing Debian packages:" $$missing; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing >/dev/null; \
	fi
endef

deps:
	$(call apt_install,$(DEB_PACKAGES))

bench-deps: deps
	$(call apt_install,$(BENCH_PACKAGES))

# The C core, built once per Lua ABI: Lua 5.4 and LuaJIT (OpenResty). No -llua: the
# interpreter provides the Lua API. The one list of its sources is the rockspec's (a
# spec holds it to csrc/); symbol visibility comes from the headers (#pragma GCC
# visibility), so that any build exports luaopen_as2gateway_core alone.
ROCKSPEC := $(wildcard rockspec/as2gateway-*.rockspec)
CORE_SRC := $(shell grep -o 'csrc/[a-z0-9_/]*\.c' $(ROCKSPEC))
CORE_HDR := $(wildcard csrc/*.h csrc/lua/*.h)
CFLAGS   ?= -O2 -g
CORE_CFLAGS := -std=c11 -D_GNU_SOURCE -Wall -Wextra -fPIC -Icsrc
CORE_LDLIBS := -lcurl -lzip -lhiredis
CORE_54  := build/lua54/as2gateway/core.so
CORE_JIT := build/luajit/as2gateway/core.so

# The request state machine on its own, against a scripted transport (csrc/test/): a C
# program of the core without its binding, run by spec/core/state_machine_spec.lua.
STATE_TEST := build/test/client_test
TEST_SRC := $(filter-out csrc/lua/%,$(CORE_SRC)) csrc/test/fake_transport.c csrc/test/client_test.c

$(STATE_TEST): $(TEST_SRC) $(CORE_HDR) $(wildcard csrc/test/*.h)
	@mkdir -p $(@D)
	$(CC) $(CORE_CFLAGS) $(CFLAGS) -Icsrc/test -o $@ $(TEST_SRC) $(LDFLAGS) $(CORE_LDLIBS)

build: $(CORE_54) $(CORE_JIT) $(STATE_TEST)

$(CORE_54): $(CORE_SRC) $(CORE_HDR)
	@mkdir -p $(@D)
	$(CC) $(CORE_CFLAGS) $(CFLAGS) $$(pkg-config --cflags lua5.4) -shared -o $@ \
	  $(CORE_SRC) $(LDFLAGS) $(CORE_LDLIBS)

$(CORE_JIT): $(CORE_SRC) $(CORE_HDR)
	@mkdir -p $(@D)
	$(CC) $(CORE_CFLAGS) $(CFLAGS) $$(pkg-config --cflags luajit) -shared -o $@ \
	  $(CORE_SRC) $(LDFLAGS) $(CORE_LDLIBS)

# Runs the specs against a sandbox: the one described by the AS2G_* variables when
# they are set (eval "$$(bin/as2g-sandbox start)"), otherwise a fresh one for the run.
SPECS := sh -c 'busted --run=default && busted --run=jit'

test: deps build
	@if [ -n "$${AS2G_SANDBOX_SECRET:-}" ]; then $(SPECS); \
	else bin/as2g-sandbox run -- $(SPECS); fi

# The core's specs (and the quota engines' API) under valgrind's memcheck, and the
# state machine's own test: no definite leaks, no invalid access.
valgrind: deps build
	$(call apt_install,valgrind)
	valgrind -q --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite \
	  $(STATE_TEST)
	@if [ -n "$${AS2G_SANDBOX_SECRET:-}" ]; then $(VALGRIND_SPECS); \
	else bin/as2g-sandbox run -- $(VALGRIND_SPECS); fi

VALGRIND_SPECS := busted --run=default --lua=spec/valgrind-lua5.4 spec/core spec/quota/api_spec.lua \
                  spec/quota/client_spec.lua

# The core built with AddressSanitizer and UndefinedBehaviorSanitizer, with a Lua host
# built the same way (spec/asan/lua-host.c), running the core's, the API's and the quota
# engines' specs (their worker processes run on the same host; not the 3-minute
# end-to-end runs, #e2e, which add no C path of their own); the state machine's own
# test built so too.
ASAN_FLAGS := -g -O1 -fno-omit-frame-pointer -fsanitize=address,undefined \
              -fno-sanitize-recover=undefined
ASAN_SPECS := ASAN_OPTIONS=detect_leaks=1:exitcode=43 \
              UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
              busted --run=default --lua=build/asan/lua5.4-asan --cpath=./build/asan/?.so \
              --exclude-tags=e2e spec/core spec/api spec/quota

asan: deps
	@mkdir -p build/asan/as2gateway
	$(CC) $(CORE_CFLAGS) $(ASAN_FLAGS) $$(pkg-config --cflags lua5.4) -shared \
	  -o build/asan/as2gateway/core.so $(CORE_SRC) $(CORE_LDLIBS)
	$(CC) $(ASAN_FLAGS) $$(pkg-config --cflags lua5.4) spec/asan/lua-host.c \
	  -o build/asan/lua5.4-asan -llua5.4
	$(CC) $(CORE_CFLAGS) $(ASAN_FLAGS) -Icsrc/test -o build/asan/client_test $(TEST_SRC) \
	  $(CORE_LDLIBS)
	ASAN_OPTIONS=detect_leaks=1 build/asan/client_test
	@if [ -n "$${AS2G_SANDBOX_SECRET:-}" ]; then $(ASAN_SPECS); \
	else bin/as2g-sandbox run -- env $(ASAN_SPECS); fi

# libFuzzer harnesses for every parser of server-supplied bytes (csrc/fuzz/), each
# run for FUZZ_SECONDS from its seed corpus; a crash fails the target and leaves
# its input in build/fuzz/. The JSON harnesses are differential: fuzz_json (the
# core's own reader) and fuzz_ljson (the decoder into Lua values) embed Lua 5.4 and
# load Debian's lua-cjson (their oracle) with require; a target ending in _jit is the
# same harness built against LuaJIT (doubles, and lua-cjson for 5.1), without leak
# detection: LuaJIT's heap is memory LeakSanitizer does not scan, so lua-cjson's
# buffers that only it holds look leaked (the Lua 5.4 build keeps the check).
# FUZZ_TARGETS=json FUZZ_ARGS=-runs=10000000 runs one for a number of executions.
FUZZ_TARGETS ?= retry_after truncation_index link sanitize json ljson ljson_jit
FUZZ_SECONDS ?= 60
FUZZ_ARGS ?=
FUZZ_FLAGS := -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
              -D_GNU_SOURCE

fuzz: deps
	$(call apt_install,clang libclang-rt-14-dev)
	@mkdir -p build/fuzz
	@set -e; for t in $(FUZZ_TARGETS); do \
	  case $$t in *_jit) src=$${t%_jit} lua=luajit leaks=0 ;; *) src=$$t lua=lua5.4 leaks=1 ;; esac; \
	  clang $(FUZZ_FLAGS) -Icsrc $$(pkg-config --cflags $$lua) csrc/fuzz/fuzz_$$src.c \
	    csrc/headers.c csrc/names.c csrc/fs.c csrc/json.c csrc/error.c csrc/lua/ljson.c \
	    csrc/lua/lerror.c \
	    -o build/fuzz/fuzz_$$t \
	    $$(pkg-config --libs $$lua) -lm; \
	  mkdir -p build/fuzz/corpus_$$t; \
	  echo "== fuzz_$$t for $(FUZZ_SECONDS) s $(FUZZ_ARGS)"; \
	  rc=0; (cd build/fuzz && ASAN_OPTIONS=detect_leaks=$$leaks ./fuzz_$$t \
	    -max_total_time=$(FUZZ_SECONDS) -detect_leaks=$$leaks $(FUZZ_ARGS) \
	    -print_final_stats=1 corpus_$$t ../../csrc/fuzz/corpus/$$src > fuzz_$$t.log 2>&1) \
	    || rc=$$?; \
	  grep -E '^stat::number_of_executed_units|^SUMMARY|Test unit written' \
	    build/fuzz/fuzz_$$t.log || true; \
	  [ $$rc -eq 0 ] || { echo "fuzz_$$t FOUND A CRASH: build/fuzz/fuzz_$$t.log"; exit 1; }; \
	done

lint: deps
	luacheck --no-color .
	bash -n bin/as2g-sandbox .ci/run bench/*.sh bench/listing/*.sh

# Lua 5.4 with this checkout's modules and core first on the paths.
LUA_ENV := LUA_PATH="$(CURDIR)/lua/?.lua;$(CURDIR)/lua/?/init.lua;;" \
           LUA_CPATH="$(CURDIR)/build/lua54/?.so;;"

# The main job: build, start a sandbox, run the quickstart workflow, stop.
demo: deps build
	bin/as2g-sandbox run -- env $(LUA_ENV) $(LUA) examples/quickstart.lua

bench: bench-sandbox bench-client bench-listing bench-quota

bench-sandbox: bench-deps
	bench/sandbox_throughput.sh

# The client's benchmarks, each against a fresh sandbox: streaming memory, rate limit
# utilisation (about 20 s), and memory and descriptors over 10,000 clients/requests.
bench-client: deps build
	bin/as2g-sandbox run -- $(LUA) bench/memory.lua
	bin/as2g-sandbox run -- $(LUA) bench/ratelimit.lua
	bin/as2g-sandbox run -- $(LUA) bench/resources.lua

# Listing speed and transfers against peers on one loopback nginx of its own
# (bench/listing/run.sh: Python, C libcurl + lua-cjson, curl; callgrind counts).
bench-listing: bench-deps build
	bench/listing/run.sh

# What one acquire + release costs in each quota engine (a redis-server of its own).
bench-quota: build
	$(LUA) bench/quota.lua

# Installs the Lua 5.4 build under lib/lua/5.4 and the LuaJIT build (OpenResty)
# under lib/lua/5.1, and the tools; each Lua module only beside the interpreter that
# can load it: as2g's cli.lua (Lua 5.3+) under 5.4, the sandbox (run by nginx's
# LuaJIT) under 5.1, the rest under both.
LUA_DIRS := 5.4:lua54 5.1:luajit
LUA_ONLY_54 := lua/as2gateway/cli.lua

# Only what the build made: no `deps`, so installing never runs apt-get (a missing
# header fails the build with the compiler's own message instead).
install: $(CORE_54) $(CORE_JIT)
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/doc/as2gateway
	install -m 0755 bin/as2g-sandbox bin/as2g $(DESTDIR)$(PREFIX)/bin/
	install -m 0644 LICENSE README.md CHANGELOG.md $(DESTDIR)$(PREFIX)/share/doc/as2gateway/
	for pair in $(LUA_DIRS); do \
	  v=$${pair%%:*}; b=$${pair#*:}; \
	  lib=$(DESTDIR)$(PREFIX)/lib/lua/$$v; share=$(DESTDIR)$(PREFIX)/share/lua/$$v; \
	  install -d $$lib/as2gateway $$share/as2gateway && \
	  install -m 0755 build/$$b/as2gateway/core.so $$lib/as2gateway/ || exit 1; \
	  if [ $$v = 5.4 ]; then mods="$(wildcard lua/as2gateway/*.lua)"; \
	  else mods="$(filter-out $(LUA_ONLY_54),$(wildcard lua/as2gateway/*.lua))"; \
	    install -d $$share/as2gateway/sandbox && \
	    install -m 0644 lua/as2gateway/sandbox/*.lua $$share/as2gateway/sandbox/ || exit 1; \
	  fi; \
	  install -m 0644 $$mods $$share/as2gateway/ || exit 1; \
	done

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/bin/as2g-sandbox $(DESTDIR)$(PREFIX)/bin/as2g
	rm -rf $(DESTDIR)$(PREFIX)/share/doc/as2gateway
	for v in 5.4 5.1; do \
	  rm -rf $(DESTDIR)$(PREFIX)/lib/lua/$$v/as2gateway $(DESTDIR)$(PREFIX)/share/lua/$$v/as2gateway; \
	done

clean:
	rm -rf build inbox
