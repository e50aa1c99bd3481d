# Two commands: `make demo` and `make test`. Both set everything up on a fresh machine.
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

.PHONY: demo test setup system-deps lint clean

demo: setup
	$(VENV)/bin/vitfpga run --out runs/demo --force

test: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/pytest

setup: system-deps $(STAMP)

system-deps:
	@bash scripts/system-deps.sh

# torch goes in first and pinned: anything unpinned would pull a multi-GB CUDA build.
$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

lint: setup
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) runs build dist *.egg-info .pytest_cache .ruff_cache
