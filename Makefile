# The two commands a new machine needs: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
PYTEST_ARGS ?= -m "not device"
# make demo ARCH=aarch64: also the emulated aarch64 lab device (a Debian arm64 root, built once)
ARCH ?=

.PHONY: demo test test-fast setup system-deps bench clean

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	# torch first: the CPU build is pinned exactly (an open range pulls a CUDA build)
	$(PY) -m pip install -q --disable-pip-version-check torch==2.13.0
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.txt
	$(PY) -m pip install -q --disable-pip-version-check --no-deps -e .
	$(PY) -m pip check
	touch $(STAMP)

setup: $(STAMP) system-deps

# System parts the lab and tests use: OpenSSH server, iproute2, adb, Chromium (report screenshots).
# Installed only when missing and only when we are root (CI runs as root).
system-deps:
	@bash tools/install_system_deps.sh

demo: setup
	$(PY) tools/demo.py $(if $(ARCH),--arch $(ARCH))

test: setup
	bash tools/run_tests.sh $(PYTEST_ARGS)

test-fast: $(STAMP)
	bash tools/run_tests.sh -m "not slow and not lab and not device"

bench: setup
	for b in tools/bench/*.py; do $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache out demo-out
