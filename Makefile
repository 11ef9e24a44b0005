# The two commands of the README's quick start:
#   make run    dependencies, build, then `tierdb serve` on embedded defaults
#   make test   dependencies, a normal and an ASan+UBSan build, every test
JOBS ?= 2
BUILD ?= build
ASAN_BUILD ?= build-asan
CTEST_ARGS ?=

FUZZ_SECONDS ?= 30
TEST_FUZZ_SECONDS ?= 3
FUZZ_BUILD ?= build-fuzz

.PHONY: all deps peers build asan run test test-release test-asan fuzz clean

all: build

deps:
	bash scripts/deps.sh

# npm packages the tests start as real peers (s3rver, DuckDB).
peers:
	bash scripts/test-peers.sh

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

test: deps peers
	$(MAKE) test-release
	$(MAKE) test-asan
	$(MAKE) fuzz FUZZ_SECONDS=$(TEST_FUZZ_SECONDS)

# libFuzzer targets (docs/fuzzing.md): each runs FUZZ_SECONDS, then the
# whole committed corpus is replayed.
fuzz: deps
	bash tests/fuzz/build.sh $(FUZZ_BUILD)
	bash tests/fuzz/run.sh $(FUZZ_BUILD) $(FUZZ_SECONDS)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)
