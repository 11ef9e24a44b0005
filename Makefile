# The two commands of the README's quick start:
#   make run    dependencies, build, then `tierdb serve` on embedded defaults
#   make test   dependencies, a normal and an ASan+UBSan build, every test
JOBS ?= 2
BUILD ?= build
ASAN_BUILD ?= build-asan
CTEST_ARGS ?=

.PHONY: all deps build asan run test test-release test-asan clean bench

all: build

deps:
	bash scripts/deps.sh

build:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release >/dev/null
	cmake --build $(BUILD) -j$(JOBS)

asan:
	cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DTDB_SANITIZE=ON >/dev/null
	cmake --build $(ASAN_BUILD) -j$(JOBS)

run: deps build
	./$(BUILD)/tierdb serve

test-release: build
	cd $(BUILD) && ctest --output-on-failure -j$(JOBS) $(CTEST_ARGS)

# The sanitizer build runs the unit tests and the project's own end-to-end
# tests (the conformance suite runs once, against the release build).
test-asan: asan
	cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  ctest --output-on-failure -j$(JOBS) -E 'e2e.conformance' $(CTEST_ARGS)

test: deps
	$(MAKE) test-release
	$(MAKE) test-asan

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)
