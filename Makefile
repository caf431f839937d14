# evpl: build, check and install libevpl.so (GNU make).
#
#   make / make all      release libevpl.so (Swift runtime linked in) + header, in build/
#   make header          regenerate include/evpl/evpl.h from the @_cdecl declarations
#   make check-abi       header up to date, exports == header, layouts, header compiles
#   make ctests          build and run the C tests (ctests/test_*.c)
#   make ctests-rdma     the C tests over the RDMA protocols on EVPL_TEST_RDMA_ADDR (a local
#                        RDMA-capable address; unset: one skip line, exit 0); not in `make test`
#   make test            swift build + swift test, then all, ctests, check-abi
#   make test-asan       the C tests against an AddressSanitizer build (build/asan/)
#   make valgrind        the C tests under valgrind (VALGRIND_SKIP="test_a test_b")
#   make install         PREFIX=/usr/local: lib, include, lib/pkgconfig/evpl.pc
#   make run             build, then examples/demo.sh and examples/evperf-demo.sh
#   make evperf          the benchmark tool, release build (swift build -c release --product evperf)
#   make swift-example   build and run examples/SwiftEcho (a package using evpl by path)
#   make docs            DocC documentation of the Swift API; warnings fail it
#   make bench           install into build/prefix, ../shared/bench/run.sh, then evperf's full set
#   make clean

PREFIX ?= /usr/local
SWIFT ?= swift
CC ?= gcc
CXX ?= g++
# make's built-in defaults (cc, g++) do not count as a choice.
ifeq ($(origin CC),default)
CC := gcc
endif
ifeq ($(origin CXX),default)
CXX := g++
endif
CLANG ?= clang
# The sanitizer runtime must match the one swiftc instruments for: the
# toolchain's clang (lld avoids gold's warnings about the runtime's symbols).
ASAN_CC ?= $(CLANG) -fuse-ld=lld
ASAN_CFLAGS := -fsanitize=address -fno-omit-frame-pointer -g -std=c11 -Wall -Wextra -pthread \
               -Ibuild/asan/include
ASAN_LDFLAGS := -Lbuild/asan/lib -levpl -Wl,-rpath,$(CURDIR)/build/asan/lib

VERSION := 0.1.0
SOMAJOR := 0
LIBNAME := libevpl.so
SONAME := $(LIBNAME).$(SOMAJOR)
LIBFILE := $(LIBNAME).$(VERSION)
LIB := build/lib/$(LIBFILE)
HEADER := include/evpl/evpl.h

# The dynamic library product, linked self-contained: static Swift runtime,
# our SONAME, and a version script that exports evpl_* only.
# lld (the toolchain's): gold keeps local symbols reached through the GOT (the
# Swift API's error type) in .dynsym, where `nm -D` would show them.
LINK_FLAGS := -Xswiftc -static-stdlib -Xswiftc -use-ld=lld -Xlinker -soname=$(SONAME) \
              -Xlinker --version-script=$(CURDIR)/evpl.map
RELEASE_BUILD := $(SWIFT) build -c release --product evpl $(LINK_FLAGS)
ASAN_BUILD := $(SWIFT) build -c debug --product evpl -Xswiftc -sanitize=address $(LINK_FLAGS) \
              --scratch-path .build-asan
# NEEDED entries a self-contained libevpl.so must not have.
FORBIDDEN_NEEDED := swift|Foundation|dispatch|BlocksRuntime|rdma|ibverbs|xlio

CTEST_SRCS := $(wildcard ctests/test_*.c)
CTEST_NAMES := $(patsubst ctests/%.c,%,$(CTEST_SRCS))
CTEST_BINS := $(addprefix build/ctests/,$(CTEST_NAMES))
CTEST_HDRS := $(wildcard ctests/*.h)
CTEST_CFLAGS := -std=c11 -Wall -Wextra -Werror -pthread
VALGRIND := valgrind -q --error-exitcode=9 --leak-check=full --errors-for-leak-kinds=definite
# Skipped under valgrind: test_alloc_count counts malloc calls (valgrind replaces
# malloc), test_idle_conns bounds RSS (valgrind's shadow memory inflates it),
# test_loop_fairness bounds how long one evpl_continue takes (valgrind's 20-50x slowdown).
VALGRIND_SKIP ?= test_alloc_count test_idle_conns test_loop_fairness
VALGRIND_TIMEOUT ?= 900

.PHONY: deps all header check-abi ctests ctests-build ctests-rdma test test-asan valgrind install run bench clean FORCE evperf \
        swift-example docs

all: deps $(LIB) build/include/evpl/evpl.h

# Swift decides whether anything needs relinking; the copy (and so the
# relinking of the C tests) happens only when the library changed.  The
# SONAME must be ours, and nothing from Swift, RDMA or XLIO may be NEEDED.
$(LIB): FORCE
	$(RELEASE_BUILD)
	@set -e; so="$$($(SWIFT) build -c release --show-bin-path)/$(LIBNAME)"; \
	readelf -d "$$so" | grep -q 'SONAME.*\[$(SONAME)\]' || \
	  { echo "error: $$so: SONAME is not $(SONAME)" >&2; exit 1; }; \
	if readelf -d "$$so" | grep NEEDED | grep -E '$(FORBIDDEN_NEEDED)' >&2; then \
	  echo "error: $$so needs the libraries above; it must be self-contained" >&2; exit 1; \
	fi; \
	mkdir -p build/lib; \
	cmp -s "$$so" $@ || install -m 0755 "$$so" $@; \
	ln -sf $(LIBFILE) build/lib/$(SONAME); \
	ln -sf $(SONAME) build/lib/$(LIBNAME)

build/include/evpl/evpl.h: $(HEADER)
	@mkdir -p $(@D)
	cp $< $@

header: deps
	$(SWIFT) build --product evpl-header
	"$$($(SWIFT) build --show-bin-path)/evpl-header" "$(CURDIR)" $(HEADER)

check-abi: all
	CC="$(CC)" CXX="$(CXX)" CLANG="$(CLANG)" SWIFT="$(SWIFT)" bash scripts/check-abi.sh

# ---- C tests ---------------------------------------------------------------

ctests: ctests-build
	bash ctests/run.sh build/ctests
	bash ctests/run_xlio.sh build/ctests

ctests-build: all $(CTEST_BINS) build/ctests/libxlio-standin.so

ctests-rdma: ctests-build
	bash ctests/run_rdma.sh build/ctests

# A stand-in for libxlio.so (STREAM_XLIO_TCP's tests): XLIO's entry points, forwarded to the kernel.
build/ctests/libxlio-standin.so: ctests/xlio_standin.c
	@mkdir -p $(@D)
	$(CC) -shared -fPIC -std=c11 -Wall -Wextra -Werror -D_GNU_SOURCE -o $@ $< -ldl

build/ctests/%: ctests/%.c $(CTEST_HDRS) build/include/evpl/evpl.h $(LIB)
	@mkdir -p $(@D)
	$(CC) $(CTEST_CFLAGS) -Ibuild/include -o $@ $< -Lbuild/lib -levpl -Wl,-rpath,$(CURDIR)/build/lib

# Debian packages the tests and the demo use (installed when root and missing).
deps:
	@bash scripts/deps.sh

test: deps
	$(SWIFT) build
	$(SWIFT) build --product evperf
	$(SWIFT) test
	$(MAKE) all ctests check-abi
	$(MAKE) swift-example

# AddressSanitizer: a debug libevpl.so instrumented by swiftc, and the C tests
# built with clang -fsanitize=address so that they carry the same runtime.
# No -Werror here: `make ctests` is where warnings are judged.
test-asan: deps
	$(ASAN_BUILD)
	@set -e; so="$$($(ASAN_BUILD) --show-bin-path)/$(LIBNAME)"; \
	mkdir -p build/asan/lib build/asan/include/evpl build/asan/ctests; \
	install -m 0755 "$$so" build/asan/lib/$(SONAME); \
	ln -sf $(SONAME) build/asan/lib/$(LIBNAME); \
	cp $(HEADER) build/asan/include/evpl/evpl.h
	@set -e; for t in $(CTEST_NAMES); do \
	  cmd="$(ASAN_CC) $(ASAN_CFLAGS) -o build/asan/ctests/$$t ctests/$$t.c $(ASAN_LDFLAGS)"; \
	  echo "$$cmd"; $$cmd; \
	done
	ASAN_OPTIONS=detect_leaks=0:abort_on_error=0 bash ctests/run.sh build/asan/ctests

# Valgrind 3.19 cannot read the DWARF 5 that lld writes ("possibly corrupted
# debuginfo"): the tests run against a copy of the library without it
# (LD_LIBRARY_PATH wins over the tests' RUNPATH).
valgrind: ctests-build
	@mkdir -p build/valgrind/lib
	objcopy --strip-debug $(LIB) build/valgrind/lib/$(SONAME)
	LD_LIBRARY_PATH=$(CURDIR)/build/valgrind/lib \
	EVPL_TEST_WRAPPER="$(VALGRIND)" EVPL_TEST_LOGDIR=build/valgrind \
	EVPL_TEST_TIMEOUT=$(VALGRIND_TIMEOUT) EVPL_TEST_SKIP="$(VALGRIND_SKIP)" \
	bash ctests/run.sh build/ctests

# ---- install, run, bench ---------------------------------------------------

install: all
	install -d $(DESTDIR)$(PREFIX)/lib $(DESTDIR)$(PREFIX)/lib/pkgconfig $(DESTDIR)$(PREFIX)/include/evpl
	install -m 0755 $(LIB) $(DESTDIR)$(PREFIX)/lib/$(LIBFILE)
	ln -sf $(LIBFILE) $(DESTDIR)$(PREFIX)/lib/$(SONAME)
	ln -sf $(SONAME) $(DESTDIR)$(PREFIX)/lib/$(LIBNAME)
	install -m 0644 $(HEADER) $(DESTDIR)$(PREFIX)/include/evpl/evpl.h
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@VERSION@|$(VERSION)|g' pkgconfig/evpl.pc.in \
	  > $(DESTDIR)$(PREFIX)/lib/pkgconfig/evpl.pc

run: deps all
	bash examples/demo.sh
	SWIFT="$(SWIFT)" bash examples/evperf-demo.sh

# evperf, the project's benchmark tool (release build; the binary is in
# `swift build -c release --show-bin-path`).
evperf:
	$(SWIFT) build -c release --product evperf

# The downstream sample package: it depends on evpl by path and `import Evpl`s;
# built in its own .build-swiftecho, then its echo exchange must succeed.
swift-example:
	SWIFT="$(SWIFT)" bash examples/SwiftEcho/run.sh

# DocC documentation of the Swift API (swift-docc-plugin), into
# .build/plugins/Swift-DocC/outputs/Evpl.doccarchive.  Any warning, from DocC
# or from the build behind it, fails it (log: build/docs.log).
docs:
	@mkdir -p build
	$(SWIFT) package generate-documentation --target Evpl --warnings-as-errors >build/docs.log 2>&1 \
	  || { cat build/docs.log; exit 1; }
	@cat build/docs.log
	@if grep -i 'warning:' build/docs.log >/dev/null; then echo "error: the docs build warned" >&2; exit 1; fi

bench:
	$(MAKE) install PREFIX=$(CURDIR)/build/prefix
	bash $(CURDIR)/../shared/bench/run.sh $(CURDIR)/build/prefix
	FULL=1 SECS=3 SWIFT="$(SWIFT)" bash examples/evperf-demo.sh

clean:
	rm -rf build .build-asan .build-swiftecho
	$(SWIFT) package clean

FORCE:
