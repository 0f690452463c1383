# Thin front end to meson. The programs land in build/.
#
#   make            build (gcc, hardened) into build/
#   make check      install what is missing, then run every test tier
#   make demo       install what is missing, build, run the demo
#   make lint       formatting, banned functions, cppcheck
#   make fuzz       each fuzzer for FUZZ_SECONDS (default 600)
#   make bench      the DPS benchmark under bench/ (see bench/README.md)
#   make bench-footprint  the device footprint benchmark
#   make clean      remove the build directories

BUILD ?= build
FUZZ_SECONDS ?= 600

.PHONY: all build check demo demo-stop lint fuzz bench bench-footprint deps clean install

all: build

$(BUILD)/build.ninja:
	meson setup $(BUILD)

build: $(BUILD)/build.ninja
	ninja -C $(BUILD)

deps:
	scripts/install-deps.sh check

check:
	scripts/install-deps.sh check
	scripts/check.sh

demo:
	scripts/install-deps.sh demo
	$(MAKE) build
	scripts/demo.sh

demo-stop:
	scripts/demo.sh stop

lint:
	scripts/lint.sh

fuzz:
	CHECK_STAGES=fuzz FUZZ_SECONDS=$(FUZZ_SECONDS) scripts/check.sh

bench: build
	bench/run-dps.sh

bench-footprint:
	bench/run-footprint.sh

install: build
	meson install -C $(BUILD)

clean:
	rm -rf build build-asan build-fuzz build-clang build-logs
