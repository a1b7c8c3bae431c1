# SPDX-License-Identifier: MIT
# Front door. `make run` builds and runs the seed's demo; `make test` builds
# and runs every test. CMake does the work underneath, in build*/ folders.
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
CMAKE ?= cmake
CTEST ?= ctest

.PHONY: all run test test-stress test-asan test-tsan test-all bench bench-compare install clean

all: build/Makefile
	$(CMAKE) --build build -j$(JOBS)

build/Makefile:
	$(CMAKE) -S . -B build -DCMAKE_BUILD_TYPE=Release

build-asan/Makefile:
	$(CMAKE) -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DWEFT_SANITIZE=address

build-tsan/Makefile:
	$(CMAKE) -S . -B build-tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DWEFT_SANITIZE=thread

# only what the demo needs, not every test and benchmark
run: build/Makefile
	$(CMAKE) --build build --target fakeio -j$(JOBS)
	./build/examples/fakeio

test: all
	cd build && $(CTEST) --output-on-failure -j$(JOBS)

# every leaf operation returns PENDING once before it completes (the resume
# path of every await runs); the plain build
test-stress: all
	cd build && WEFT_STRESS=1 $(CTEST) --output-on-failure -j$(JOBS)

test-asan: build-asan/Makefile
	$(CMAKE) --build build-asan -j$(JOBS)
	cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 $(CTEST) --output-on-failure -j$(JOBS)

test-tsan: build-tsan/Makefile
	$(CMAKE) --build build-tsan -j$(JOBS)
	cd build-tsan && TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
	  $(CTEST) --output-on-failure -j$(JOBS)

test-all: test test-stress test-asan test-tsan

bench: all
	./bench/run.sh

# scheduler and sync workloads (docs/benchmarks.md), timers W6-W7
# (docs/benchmarks-time.md), network servers W8-W9 (docs/benchmarks-net.md, and
# pinned: load generator and server on a CPU each, docs/benchmarks-net-pinned.md)
bench-compare: all
	./bench/compare.sh
	./bench/compare_time.sh
	./bench/compare_net.sh
	PIN=1 ./bench/compare_net.sh

install: all
	$(CMAKE) --install build $(if $(PREFIX),--prefix $(PREFIX))

clean:
	rm -rf build build-asan build-tsan
