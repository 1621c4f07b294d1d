# Thin wrapper around meson/ninja so that `make demo` and `make check` are the whole set-up
# on a fresh Debian 12 machine.  CI=1 makes warnings fatal.
BUILD ?= build
# A second build with AddressSanitizer + UndefinedBehaviorSanitizer for the suites that
# feed hostile input to parsers and devices (unit, qtest, fuzz smoke runs).
ASAN_BUILD ?= build-asan
SANITIZE_ENV := ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
SANITIZE_SUITES := unit qtest fuzz
MESON ?= meson
MESON_ARGS ?=
ifneq ($(CI),)
MESON_ARGS += -Dwerror=true
endif
# Suites `make check` runs; `check-slow` runs the ones that need hardware virtualization
# or take long.
CHECK_SUITES := unit qtest guest functional
SLOW_SUITES := slow

.PHONY: all deps build check check-asan check-slow demo bench clean

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
	$(MAKE) check-asan

$(ASAN_BUILD)/build.ninja:
	$(MESON) setup $(ASAN_BUILD) -Db_sanitize=address,undefined -Db_lundef=false \
	  -Dguest_kit=false $(MESON_ARGS)

check-asan: deps $(ASAN_BUILD)/build.ninja
	ninja -C $(ASAN_BUILD)
	$(SANITIZE_ENV) $(MESON) test -C $(ASAN_BUILD) --print-errorlogs \
	  $(addprefix --suite ,$(SANITIZE_SUITES))

check-slow: build
	$(MESON) test -C $(BUILD) --print-errorlogs $(addprefix --suite ,$(SLOW_SUITES))

demo: build
	scripts/demo.sh $(BUILD)

bench: build
	tests/bench/startup $(BUILD)
	tests/bench/blk $(BUILD)
	tests/bench/img $(BUILD)
	tests/bench/firmware $(BUILD)
	tests/bench/migrate $(BUILD)
	tests/bench/savevm $(BUILD)
	tests/bench/net $(BUILD)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)
