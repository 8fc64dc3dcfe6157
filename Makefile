# The two commands of the README: `make demo` and `make test`.
# Each creates .venv from PyPI on first use (pinned by constraints.txt) and reuses it after.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lab install bench clean-reports

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade "pip>=24"
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[test]"
	@touch $@

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/evalkit demo

test: $(STAMP)
	$(BIN)/python -m pytest -q

lab: $(STAMP)
	$(BIN)/jupyter lab notebooks/

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_generate.py --profile demo
	$(BIN)/python benchmarks/bench_exit.py
	$(BIN)/python benchmarks/bench_risk.py
	$(BIN)/python benchmarks/bench_batch.py --help >/dev/null && echo "bench_batch: see benchmarks/bench_batch.py --help (needs a notebook and data dir)"

clean-reports:
	rm -rf reports/*/
