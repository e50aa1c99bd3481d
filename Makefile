# Two commands: `make demo` and `make test`. Both set everything up on a fresh machine.
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
# The PYNQ host client in its own environment, as a user's laptop has it: pynq 4.0 pins grpcio
# 1.64, protobuf < 6 and numpy < 2, which the main environment's onnx cannot share.
PYNQ_VENV  := .venv-pynq
PYNQ_STAMP := $(PYNQ_VENV)/.installed-stamp
PYNQ_PIN   := pynq==4.0.0

.PHONY: demo test setup system-deps lint clean

demo: setup
	$(VENV)/bin/vitfpga run --out runs/demo --force

test: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/pytest

setup: system-deps $(STAMP) $(PYNQ_STAMP)

system-deps:
	@bash scripts/system-deps.sh

# torch goes in first and pinned: anything unpinned would pull a multi-GB CUDA build.
$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[test]'
	# board-sim serves PYNQ.remote with pynq's own generated gRPC modules; only those are used
	# here, so pynq comes without its (conflicting) pins.
	$(PY) -m pip install -q --no-deps $(PYNQ_PIN)
	touch $(STAMP)

$(PYNQ_STAMP): Makefile
	test -x $(PYNQ_VENV)/bin/python || python3 -m venv $(PYNQ_VENV)
	$(PYNQ_VENV)/bin/python -m pip install -q --upgrade pip
	$(PYNQ_VENV)/bin/python -m pip install -q $(PYNQ_PIN)
	touch $(PYNQ_STAMP)

lint: setup
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) $(PYNQ_VENV) runs build dist *.egg-info .pytest_cache .ruff_cache
