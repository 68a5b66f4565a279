# make bench / make test: from a clean clone, create .venv, install torch and sparsespike
# (editable, which builds the C++ extension), then run. Both are idempotent.
# make bench: the headline (M1 at 3% activity, fused vs reference vs eager; a few minutes on 2
# cores), JSON under runs/bench/; make bench-full: every suite (about 25 minutes on 2 cores).
# make docs: docs/performance.md from the bench JSON committed in docs/results/.
# make gpu-check OUT=DIR: on a CUDA machine with torch + triton and no network: the existing
# python, an in-place build without build isolation, then python -m sparsespike.bench.gpu_check, a
# time-boxed run (GPU_BUDGET_S, default 480 s) of the CUDA tests, the bench on cuda, snnTorch and
# SpikingJelly from gpu-wheels/, the LIF's bandwidth and the crossover; results in OUT as it goes.
# make gpu-wheels: (with network) the snnTorch, SpikingJelly and loguru wheels into gpu-wheels/, to
# copy beside the checkout on the GPU machine.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
SPIKINGJELLY_SPEC ?= spikingjelly==2.0.0
NORSE_SPEC ?= norse==1.1.0
PY := $(VENV)/bin/python
STAMP := $(VENV)/.sparsespike-installed
OUT ?= gpu-check-results
GPU_BUDGET_S ?= 480
GPU_WHEELS ?= gpu-wheels
GPU_CHECK_ARGS ?=
BENCH_ARGS ?=
COMPILE_OUT ?= gpu-compile-results
DEVICE_TRITON_SPEC ?= triton==3.6.0
DEVICE_TRITON_DIR ?= .triton-device
PYTEST_ARGS ?=

.PHONY: all install test test-fast bench bench-full docs gpu-check gpu-compile gpu-wheels clean

all: test

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml setup.py $(wildcard csrc/*.cpp csrc/*.h) | $(PY)
	$(PY) -m pip install --quiet "$(TORCH_SPEC)"
	$(PY) -m pip install --quiet "setuptools>=70" wheel "pybind11>=2.12"
	$(PY) -m pip install --quiet --no-build-isolation -e ".[test]"
	# SpikingJelly for the LIFNode equality tests, without its dependencies: its
	# torchvision/torchaudio pins would replace the CPU torch; its neurons need torch and loguru.
	$(PY) -m pip install --quiet "loguru>=0.7,<1"
	$(PY) -m pip install --quiet --no-deps "$(SPIKINGJELLY_SPEC)"
	# Norse for the NIR interop tests, the same way: its torchvision pin would replace the CPU
	# torch; norse.torch needs only torch, numpy, nir and nirtorch (in the test extra)
	$(PY) -m pip install --quiet --no-deps "$(NORSE_SPEC)"
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m pytest $(PYTEST_ARGS)

# the unit tests without the end-to-end ones marked slow (whole runs, subprocesses)
test-fast: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

bench: $(STAMP)
	$(PY) -m sparsespike.bench $(BENCH_ARGS)

bench-full: $(STAMP)
	$(PY) -m sparsespike.bench --full $(BENCH_ARGS)

docs: $(STAMP)
	$(PY) -m sparsespike.bench.report --results docs/results --out docs/performance.md
	$(PY) -m sparsespike.compile_check --report docs/compile --out docs/gpu-compile.md

# every Triton kernel specialisation the ops launch, compiled for sm_80 and sm_90 without a GPU
# (registers, spills, shared memory, FMA contractions), under the pinned Triton and again under
# the device image's Triton, installed beside the CPU torch into a throwaway folder
gpu-compile: $(STAMP)
	mkdir -p "$(COMPILE_OUT)"
	$(PY) -m sparsespike.compile_check --json "$(COMPILE_OUT)/triton-pinned.json" | tee "$(COMPILE_OUT)/triton-pinned.md"
	$(PY) -m pip install --quiet --no-deps --target "$(DEVICE_TRITON_DIR)" "$(DEVICE_TRITON_SPEC)"
	$(PY) -m sparsespike.compile_check --compile-triton "$(DEVICE_TRITON_DIR)" \
		--json "$(COMPILE_OUT)/triton-device.json" | tee "$(COMPILE_OUT)/triton-device.md"

gpu-check:
	mkdir -p "$(OUT)"
	$(PYTHON) setup.py build_ext --inplace 2>&1 | tee "$(OUT)/build.log"
	PYTHONPATH=$(CURDIR) $(PYTHON) -m sparsespike.bench.gpu_check --out "$(OUT)" --device cuda \
		--budget-s $(GPU_BUDGET_S) --wheels "$(GPU_WHEELS)" $(GPU_CHECK_ARGS) 2>&1 | tee "$(OUT)/gpu-check.log"

# the baselines' wheels for gpu-check (no dependencies: snnTorch imports only torch, SpikingJelly's
# neurons torch and loguru; both are on the GPU machine's image or here)
gpu-wheels:
	$(PYTHON) -m pip download --no-deps --only-binary=:all: snntorch "$(SPIKINGJELLY_SPEC)" "loguru>=0.7,<1" \
		-d "$(GPU_WHEELS)"

clean:
	rm -rf build *.egg-info sparsespike/*.so .pytest_cache
