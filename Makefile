# The two commands of the README: `make demo` and `make test`.
# Each creates .venv from PyPI on first use (pinned by constraints.txt) and reuses it after.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lab install bench bench-shaanxi clean-reports

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade "pip>=24"
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[test]"
	@touch $@

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/evalkit demo

test: $(STAMP)
	$(BIN)/python -m pytest -q -n auto --maxprocesses=4 --dist loadfile

# JupyterLab refuses to start as root without --allow-root (containers, CI machines).
lab: $(STAMP)
	$(BIN)/jupyter lab $(if $(filter 0,$(shell id -u)),--allow-root,) notebooks/

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_generate.py --profile demo --out data/demo
	$(BIN)/python benchmarks/bench_exit.py
	$(BIN)/python benchmarks/bench_risk.py
	$(BIN)/python benchmarks/bench_batch.py --notebook notebooks/county_exit_assessment.ipynb --data data/demo --workers 1,2

# The province-scale numbers (several minutes): generation <= 10 min / 16 GiB, risk models, batch.
bench-shaanxi: $(STAMP)
	$(BIN)/python benchmarks/bench_generate.py --profile shaanxi --out data/shaanxi --workers 2
	$(BIN)/python benchmarks/bench_risk.py --profile shaanxi --data data/shaanxi
	$(BIN)/python benchmarks/bench_batch.py --notebook notebooks/county_exit_assessment.ipynb --data data/shaanxi --counties 610602,610603,610621,610622 --workers 1,2

clean-reports:
	rm -rf reports/*/
