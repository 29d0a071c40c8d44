# crmflow: `make demo` and `make test` work on a fresh machine (they create .venv when missing).
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
export DAGSTER_HOME ?= $(CURDIR)/var/dagster_home
export DBT_SEND_ANONYMOUS_USAGE_STATS := false
export DO_NOT_TRACK := 1
SCALE ?= 100000

.PHONY: install manifest demo test test-backends test-spark test-dispatch-crash test-time-travel lint ui bench soak clean

$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[dev]"
	touch $@

install: $(BIN)/.installed

$(DAGSTER_HOME)/dagster.yaml: orchestration/dagster.yaml
	mkdir -p $(DAGSTER_HOME)
	cp orchestration/dagster.yaml $@

manifest: install
	$(BIN)/crmflow prepare

demo: install manifest $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/crmflow demo

test: install manifest $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/pytest -q --durations=30

# crmflow run on DuckDB and on PostgreSQL (127.0.0.1:5432) gives the same tables (issue 14).
test-backends: install manifest $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/pytest -q -m backends_equal tests/test_backends_equal.py

# The dbt project on local Apache Spark (PySpark session, Java 17) gives DuckDB's tables (issue 18).
test-spark: install manifest $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/pip install -q -e ".[spark]"
	$(BIN)/pytest -q -m spark tests/test_dbt_spark.py

# Dispatch crash test (issue 15): 4 workers on PostgreSQL and 1 on DuckDB killed with SIGKILL >= 20 times.
test-dispatch-crash: install manifest $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/pytest -q -m dispatch_crash tests/test_dispatch_crash.py

# Issue 16: T2, T1, T2 again and late changes on one small world (tests/test_time_travel.py; ~8 min).
test-time-travel: install manifest $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/pytest -q -m time_travel tests/test_time_travel.py

# The long end-to-end tests (marker long) CI does not run yet: see pyproject's markers.
test-long: install manifest $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/pytest -q -m long

lint: install
	$(BIN)/ruff check .

PORT ?= 3000
# The UI and the daemon on the one code location ([tool.dg] in pyproject.toml): `make ui PORT=3001`.
ui: install manifest $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/dg dev --port $(PORT)

bench: install manifest
	$(BIN)/python bench/run_bench.py --users $(SCALE)

soak: install manifest
	$(BIN)/python bench/soak.py

clean:
	rm -rf var data target
