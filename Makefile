# gitops: build, test and local control plane. `make` and `make test` are all a newcomer needs.
# Targets: all deps test test-unit test-integration cluster-up cluster-down cluster-status
#          testenv demo bench fuzz clean help

CC ?= cc
PKGS := libgit2 libfyaml libcurl jansson openssl libmicrohttpd
# Debian packages the project needs to build, test and run the demo.
DEB_PKGS := build-essential pkg-config git curl openssl python3 jq openssh-client \
            libgit2-dev libfyaml-dev libcurl4-openssl-dev libjansson-dev libssl-dev \
            libmicrohttpd-dev libcmocka-dev openssh-server
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

MODULES := common kube manifests drift reconcile history web
LIB_SRC := $(foreach m,$(MODULES),$(wildcard $(m)/*.c))
CLI_SRC := $(wildcard cli/*.c)
SUPPORT_SRC := $(wildcard tests/support/*.c)
UNIT_SRC := $(wildcard tests/unit/*/test_*.c)
INTEG_SRC := $(wildcard tests/integration/*/test_*.c)
BENCH_SRC := $(wildcard bench/*.c)

# Deferred (=): pkg-config runs when a recipe needs it, after `deps` installed the packages.
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS))
LIBS = $(shell pkg-config --libs $(PKGS)) -lpthread
WARN := -std=c11 -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter -D_GNU_SOURCE -I.
REL_CFLAGS = $(WARN) -O2 -g $(PKG_CFLAGS)
SAN := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
ASAN_CFLAGS = $(WARN) -O1 -g $(SAN) $(PKG_CFLAGS)

REL_OBJ := $(patsubst %.c,build/obj/%.o,$(LIB_SRC))
ASAN_OBJ := $(patsubst %.c,build/asan/obj/%.o,$(LIB_SRC))
TEST_BINS := $(patsubst %.c,build/asan/%,$(UNIT_SRC) $(INTEG_SRC))
BENCH_BINS := $(patsubst %.c,build/%,$(BENCH_SRC))
DEPS_STAMP := build/.deps-installed

.SECONDARY:
.PHONY: all deps test test-unit test-integration testenv cluster-up cluster-down cluster-status demo bench fuzz clean help
all: build/gitops

help:
	@sed -n '1,3p' Makefile

# Installs the Debian packages that are missing (idempotent; apt-get update only when needed).
deps: $(DEPS_STAMP)
$(DEPS_STAMP): Makefile
	@missing=""; for p in $(DEB_PKGS); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "[deps] installing:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing >/dev/null || exit 1; \
	fi
	@mkdir -p $(@D) && touch $@

build/obj/%.o: %.c | $(DEPS_STAMP)
	@mkdir -p $(@D)
	$(CC) $(REL_CFLAGS) -MMD -MP -c $< -o $@
build/asan/obj/%.o: %.c | $(DEPS_STAMP)
	@mkdir -p $(@D)
	$(CC) $(ASAN_CFLAGS) -MMD -MP -c $< -o $@

build/libgitops.a: $(REL_OBJ)
	@rm -f $@; ar rcs $@ $^
build/asan/libgitops.a: $(ASAN_OBJ)
	@rm -f $@; ar rcs $@ $^

build/gitops: $(patsubst %.c,build/obj/%.o,$(CLI_SRC)) build/libgitops.a
	$(CC) $(REL_CFLAGS) $^ $(LIBS) -o $@
build/asan/gitops: $(patsubst %.c,build/asan/obj/%.o,$(CLI_SRC)) build/asan/libgitops.a
	$(CC) $(ASAN_CFLAGS) $^ $(LIBS) -o $@

build/asan/tests/%: tests/%.c $(patsubst %.c,build/asan/obj/%.o,$(SUPPORT_SRC)) build/asan/libgitops.a
	@mkdir -p $(@D)
	$(CC) $(ASAN_CFLAGS) -Itests $^ $(LIBS) -lcmocka -o $@

# cli/'s unit tests link its option parser and shared helpers (everything of cli/ but main.c and the commands)
build/asan/tests/unit/cli/%: tests/unit/cli/%.c build/asan/obj/cli/opt.o build/asan/obj/cli/args.o $(patsubst %.c,build/asan/obj/%.o,$(SUPPORT_SRC)) build/asan/libgitops.a
	@mkdir -p $(@D)
	$(CC) $(ASAN_CFLAGS) -Itests $^ $(LIBS) -lcmocka -o $@

build/bench/%: bench/%.c build/libgitops.a
	@mkdir -p $(@D)
	$(CC) $(REL_CFLAGS) $^ $(LIBS) -o $@

# The pinned control plane, helm and kustomize, built once into ~/.cache/gitops-testenv/.
testenv: | $(DEPS_STAMP)
	@tests/testenv/build.sh >/dev/null

cluster-up: testenv
	@tests/testenv/cluster-up.sh
cluster-down:
	@tests/testenv/cluster-down.sh
cluster-status:
	@tests/testenv/cluster-status.sh

# make test                 every test (unit, then integration against the local control plane)
# make test MODULE=kube     one module's tests
# make test-unit            unit tests only (no cluster needed)
# make test TEST='*prune*'  only the test cases (cmocka) and scripts whose names match
test: build/asan/gitops $(TEST_BINS) testenv
	@GITOPS_TEST_FILTER='$(TEST)' tests/run.sh all $(MODULE)
test-unit: build/asan/gitops $(TEST_BINS)
	@GITOPS_TEST_FILTER='$(TEST)' tests/run.sh unit $(MODULE)
test-integration: build/asan/gitops $(TEST_BINS) testenv
	@GITOPS_TEST_FILTER='$(TEST)' tests/run.sh integration $(MODULE)

bench: build/gitops $(BENCH_BINS) testenv
	@bench/run.sh

demo: build/gitops testenv
	@examples/demo.sh

# make fuzz: libFuzzer targets (tests/fuzz/fuzz_*.c) for the input parsers, built with clang,
# AddressSanitizer and UndefinedBehaviorSanitizer, each run FUZZ_SECONDS (default 60).
FUZZ_CC := clang-14
FUZZ_SRC := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_CFLAGS = -std=c11 -Wall -g -O1 -D_GNU_SOURCE -I. -fsanitize=fuzzer-no-link,address,undefined $(PKG_CFLAGS)
FUZZ_STAMP := build/.fuzz-deps-installed
$(FUZZ_STAMP): | $(DEPS_STAMP)
	@command -v $(FUZZ_CC) >/dev/null && dpkg-query -W -f='$${Status}' libclang-rt-14-dev 2>/dev/null | grep -q 'install ok installed' || \
	  { echo "[deps] installing clang-14 libclang-rt-14-dev"; $(SUDO) apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq clang-14 libclang-rt-14-dev >/dev/null; }
	@touch $@
build/fuzz/obj/%.o: %.c | $(FUZZ_STAMP)
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -c $< -o $@
build/fuzz/libgitops.a: $(patsubst %.c,build/fuzz/obj/%.o,$(LIB_SRC))
	@rm -f $@; ar rcs $@ $^
build/fuzz/fuzz_%: tests/fuzz/fuzz_%.c build/fuzz/libgitops.a
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer $^ $(LIBS) -o $@
fuzz: $(patsubst tests/fuzz/%.c,build/fuzz/%,$(FUZZ_SRC))
	@tests/fuzz/run.sh

clean:
	rm -rf build/obj build/asan build/bench build/fuzz build/gitops build/libgitops.a

-include $(shell find build -name '*.d' 2>/dev/null)
