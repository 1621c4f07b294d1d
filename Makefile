# Thin wrapper around meson/ninja so that `make demo` and `make check` are the whole set-up
# on a fresh Debian 12 machine.  CI=1 makes warnings fatal.
BUILD ?= build
MESON ?= meson
MESON_ARGS ?=
ifneq ($(CI),)
MESON_ARGS += -Dwerror=true
endif
# Suites `make check` runs; `check-slow` runs the ones that need hardware virtualization
# or take long.
CHECK_SUITES := unit qtest guest functional
SLOW_SUITES := slow

.PHONY: all deps build check check-slow demo bench clean

all: build

deps:
	@scripts/install-deps.sh

$(BUILD)/build.ninja:
	$(MESON) setup $(BUILD) $(MESON_ARGS)

build: deps $(BUILD)/build.ninja
	ninja -C $(BUILD)

# Test prerequisites that live outside the build tree (cached per machine): the stock
# Debian kernel for the boot_params test.  The small test kernel is built by its test.
check: build
	@scripts/build-test-guest.sh >/dev/null || \
	  echo "warning: could not fetch the stock Debian kernel; its boot_params test will skip"
	$(MESON) test -C $(BUILD) --print-errorlogs $(addprefix --suite ,$(CHECK_SUITES))

check-slow: build
	$(MESON) test -C $(BUILD) --print-errorlogs $(addprefix --suite ,$(SLOW_SUITES))

demo: build
	scripts/demo.sh $(BUILD)

bench: build
	tests/bench/startup $(BUILD)
	tests/bench/blk $(BUILD)

clean:
	rm -rf $(BUILD)
