# as2gateway: build, test, lint, demo and install. Every target installs the Debian
# packages it needs first (see `deps`), so a fresh Debian machine needs nothing else.

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
# interpreter provides the Lua API.
CORE_SRC := $(addprefix csrc/,buf.c error.c check.c json.c headers.c url.c ratelimit.c \
              auth.c stream.c transport.c client.c fs.c lock.c sha256.c unzip.c \
              interrupt.c qwindow.c quota_file.c quota_redis.c lcore.c lutil.c ljson.c lquota.c)
CORE_HDR := $(wildcard csrc/*.h)
CFLAGS   ?= -O2 -g
CORE_CFLAGS := -std=c11 -D_GNU_SOURCE -Wall -Wextra -fPIC -fvisibility=hidden
CORE_LDLIBS := -lcurl -lzip -lhiredis
CORE_54  := build/lua54/as2gateway/core.so
CORE_JIT := build/luajit/as2gateway/core.so

build: deps $(CORE_54) $(CORE_JIT)

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

test: build
	@if [ -n "$${AS2G_SANDBOX_SECRET:-}" ]; then $(SPECS); \
	else bin/as2g-sandbox run -- $(SPECS); fi

# The core's specs (and the quota engines' API) under valgrind's memcheck: no definite
# leaks, no invalid access.
valgrind: build
	$(call apt_install,valgrind)
	@if [ -n "$${AS2G_SANDBOX_SECRET:-}" ]; then $(VALGRIND_SPECS); \
	else bin/as2g-sandbox run -- $(VALGRIND_SPECS); fi

VALGRIND_SPECS := busted --run=default --lua=spec/valgrind-lua5.4 spec/core spec/quota/api_spec.lua

# The core built with AddressSanitizer and UndefinedBehaviorSanitizer, with a Lua host
# built the same way (spec/asan/lua-host.c), running the core's, the API's and the quota
# engines' specs (their worker processes run on the same host).
ASAN_FLAGS := -g -O1 -fno-omit-frame-pointer -fsanitize=address,undefined \
              -fno-sanitize-recover=undefined
ASAN_SPECS := ASAN_OPTIONS=detect_leaks=1:exitcode=43 \
              UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
              busted --run=default --lua=build/asan/lua5.4-asan --cpath=./build/asan/?.so \
              spec/core spec/api spec/quota

asan: deps
	@mkdir -p build/asan/as2gateway
	$(CC) $(CORE_CFLAGS) $(ASAN_FLAGS) $$(pkg-config --cflags lua5.4) -shared \
	  -o build/asan/as2gateway/core.so $(CORE_SRC) $(CORE_LDLIBS)
	$(CC) $(ASAN_FLAGS) $$(pkg-config --cflags lua5.4) spec/asan/lua-host.c \
	  -o build/asan/lua5.4-asan -llua5.4
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
	    csrc/headers.c csrc/json.c csrc/ljson.c -o build/fuzz/fuzz_$$t \
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
demo: build
	bin/as2g-sandbox run -- env $(LUA_ENV) $(LUA) examples/quickstart.lua

bench: bench-sandbox bench-client bench-listing bench-quota

bench-sandbox: bench-deps
	bench/sandbox_throughput.sh

# The client's benchmarks, each against a fresh sandbox: streaming memory, rate limit
# utilisation (about 20 s), and memory and descriptors over 10,000 clients/requests.
bench-client: build
	bin/as2g-sandbox run -- $(LUA) bench/memory.lua
	bin/as2g-sandbox run -- $(LUA) bench/ratelimit.lua
	bin/as2g-sandbox run -- $(LUA) bench/resources.lua

# Listing speed and transfers against peers on one loopback nginx of its own
# (bench/listing/run.sh: Python, C libcurl + lua-cjson, curl; callgrind counts).
bench-listing: build bench-deps
	bench/listing/run.sh

# What one acquire + release costs in each quota engine (a redis-server of its own).
bench-quota: build
	$(LUA) bench/quota.lua

# Installs the Lua 5.4 build under lib/lua/5.4 and the LuaJIT build (OpenResty)
# under lib/lua/5.1, the Lua modules beside each, and the tools.
LUA_DIRS := 5.4:lua54 5.1:luajit

# Only what the build made: no `deps`, so installing never runs apt-get (a missing
# header fails the build with the compiler's own message instead).
install: $(CORE_54) $(CORE_JIT)
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/doc/as2gateway
	install -m 0755 bin/as2g-sandbox bin/as2g $(DESTDIR)$(PREFIX)/bin/
	install -m 0644 LICENSE README.md CHANGELOG.md $(DESTDIR)$(PREFIX)/share/doc/as2gateway/
	for pair in $(LUA_DIRS); do \
	  v=$${pair%%:*}; b=$${pair#*:}; \
	  lib=$(DESTDIR)$(PREFIX)/lib/lua/$$v; share=$(DESTDIR)$(PREFIX)/share/lua/$$v; \
	  install -d $$lib/as2gateway $$share/as2gateway/sandbox && \
	  install -m 0755 build/$$b/as2gateway/core.so $$lib/as2gateway/ && \
	  install -m 0644 lua/as2gateway/*.lua $$share/as2gateway/ && \
	  install -m 0644 lua/as2gateway/sandbox/*.lua $$share/as2gateway/sandbox/ || exit 1; \
	done

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/bin/as2g-sandbox $(DESTDIR)$(PREFIX)/bin/as2g
	rm -rf $(DESTDIR)$(PREFIX)/share/doc/as2gateway
	for v in 5.4 5.1; do \
	  rm -rf $(DESTDIR)$(PREFIX)/lib/lua/$$v/as2gateway $(DESTDIR)$(PREFIX)/share/lua/$$v/as2gateway; \
	done

clean:
	rm -rf build inbox
