# solverd: the two commands a new user needs are `make serve` and `make test`.
# Everything else here is a step of those two.
BUILD ?= build
BUILD_TYPE ?= RelWithDebInfo
SOLVERD_CUDA ?= AUTO
JOBS ?= $(shell nproc)
LISTEN ?= 127.0.0.1:50051
METRICS_PORT ?= 9464

.PHONY: all deps configure build serve test test-gpu gpu-bundle fuzz bench-service bench-ot bench-sor bench-quant clean

all: build

deps:
	scripts/install-deps.sh

configure: deps
	cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) -DSOLVERD_CUDA=$(SOLVERD_CUDA)

build: configure
	cmake --build $(BUILD) --parallel $(JOBS)

# Builds everything, then runs the server in the foreground (Ctrl-C stops it).
serve: build
	$(BUILD)/server/solverd --listen=$(LISTEN) --metrics-address=127.0.0.1 --metrics-port=$(METRICS_PORT)

# The whole test suite. GPU tests skip, with the reason, where no GPU exists.
test: build
	ctest --test-dir $(BUILD) --output-on-failure --parallel $(JOBS)

# GPU-labelled tests only (on a machine with a GPU).
test-gpu: build
	ctest --test-dir $(BUILD) --output-on-failure -L gpu

# Copies GoogleTest's source into .gtest-src (ignored by git) so that the
# GPU machine, which has no Debian packages, can build the kernel tests.
gpu-bundle:
	rm -rf .gtest-src && cp -r /usr/src/googletest .gtest-src

# The fuzz targets for FUZZ_SECONDS (300) each, in the sanitizer build that
# make test also runs (briefly).
FUZZ_SECONDS ?= 300
fuzz: deps
	FUZZ_SECONDS=$(FUZZ_SECONDS) tests/sanitizer_test.sh $(CURDIR) $(BUILD)/sanitize

bench-service: build
	SOLVERD_BUILD_DIR=$(BUILD) bench/service/run

bench-ot: build
	SOLVERD_BUILD_DIR=$(BUILD) bench/ot/run

bench-sor: build
	SOLVERD_BUILD_DIR=$(BUILD) bench/sor/run

bench-quant: build
	SOLVERD_BUILD_DIR=$(BUILD) bench/quant/run

clean:
	rm -rf $(BUILD) build-kernels build-gpu
